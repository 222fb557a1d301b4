// mosix-deputy: placement at exec, and the deputy a child leaves behind.
//
// A guest's child that starts a program runs this first, in the child's own
// process (the agent's constructor execs it: compat/agent/place_at_exec.cpp):
//
//   mosix-deputy PROGRAM ARGV0 ARGV1 ...
//
// It asks its node daemon, over the guest socket, where the program should
// run (the home node decides: core/placement.h place_at_exec). "Here": it
// execs the program itself, which then runs as if nothing had happened. On
// another node: the program starts there as a guest of the job (its body),
// and this process stays as its deputy, with the pid the parent knows. It
//   - writes the body's stdout and stderr to its own (the same open files:
//     a pipe to a sibling, the terminal, a file shared with the parent);
//   - feeds its own stdin to the body when it is a pipe or socket no other
//     process reads (nothing can be taken from a later reader); /dev/null
//     stays /dev/null; any other stdin keeps the child here;
//   - forwards every signal it gets to the body, stops with it (SIGTSTP),
//     and SIGPIPE when its output's reader is gone;
//   - makes the body's kill(), tgkill() and sigqueue() of this node's pids
//     (HomeKill);
//   - ends as the body ended: the same exit status, or killed by the same
//     signal, so the parent's wait() sees what it would have seen.
// Its start is part of every placed child's: it runs without the agent
// (LD_PRELOAD comes as MOSIX_DEPUTY_PRELOAD and goes back before the program
// runs, here or away) and with libstdc++ linked in, which were most of it.
// A child holding descriptors other than 0-2 across exec stays here: they
// could not follow it (docs/mosixrun.md, "Children"). The agent checks that
// before it execs us (runtime/core/exec_stay_rule.h).
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/core/exec_stay_rule.h"
#include "runtime/core/node_seats.h"
#include "runtime/core/protocol.h"

extern char** environ;

namespace {

using namespace mosix;

// The body's kill(), tgkill() or sigqueue() (with the siginfo's code and
// value; si_pid is ours, the pid the body has here) of a pid of this node.
int home_signal(const HomeKill& k) {
  if (!k.queued) return k.tid == 0 ? ::kill(k.pid, k.signo) : ::tgkill(k.pid, k.tid, k.signo);
  siginfo_t info{};
  info.si_signo = k.signo;
  info.si_code = k.code;
  info.si_pid = ::getpid();
  info.si_uid = ::getuid();
  static_assert(sizeof info.si_value == sizeof k.value);
  std::memcpy(&info.si_value, &k.value, sizeof k.value);
  const long r = k.tid == 0 ? ::syscall(SYS_rt_sigqueueinfo, k.pid, k.signo, &info)
                            : ::syscall(SYS_rt_tgsigqueueinfo, k.pid, k.tid, k.signo, &info);
  return r == 0 ? 0 : -1;
}

// Runs the program here, with MOSIX_PLACED set so that its agent does not
// ask again (the agent removes it).
[[noreturn]] void run_here(const char* program, char** argv) {
  ::setenv("MOSIX_PLACED", "1", 1);
  ::execv(program, argv);
  std::fprintf(stderr, "mosix-deputy: cannot run %s: %s\n", program, std::strerror(errno));
  ::_exit(127);
}

// The home node said "here": the program takes a seat on its node's page
// (runtime/core/node_seats.h), so that the programs starting after it count
// it before the node's next probe does.
void take_seat_here() {
  const char* path = std::getenv("MOSIX_SEATS");
  if (path == nullptr || *path != '/') return;
  const int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  void* map = MAP_FAILED;
  if (::fstat(fd, &st) == 0 && st.st_size >= static_cast<off_t>(sizeof(NodeSeats))) {
    map = ::mmap(nullptr, sizeof(NodeSeats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  ::close(fd);
  if (map == MAP_FAILED) return;
  auto* page = static_cast<NodeSeats*>(map);
  if (page->magic == kSeatsMagic) {
    (void)give_seat(*page, ::getpid(), [](std::int32_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; });
  }
  ::munmap(map, sizeof(NodeSeats));
}

bool is_dev_null(int fd) {
  struct stat st {}, null {};
  return ::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && ::stat("/dev/null", &null) == 0 &&
         st.st_rdev == null.st_rdev;
}

// Whether another process of ours holds this pipe or socket open for
// reading. Then bytes the body would be given and never read could not be
// left for that process: the child stays here.
bool another_reader(int fd) {
  struct stat mine {};
  if (::fstat(fd, &mine) != 0) return true;
  const std::string want = (S_ISFIFO(mine.st_mode) ? "pipe:[" : "socket:[") + std::to_string(mine.st_ino) + "]";
  const pid_t self = ::getpid();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return true;
  bool found = false;
  while (dirent* p = ::readdir(proc)) {
    if (found) break;
    const pid_t pid = std::atoi(p->d_name);
    if (pid <= 0 || pid == self) continue;
    const std::string base = std::string("/proc/") + p->d_name;
    DIR* fds = ::opendir((base + "/fd").c_str());
    if (fds == nullptr) continue;  // not ours, or gone
    while (dirent* e = ::readdir(fds)) {
      if (e->d_name[0] == '.') continue;
      char target[64];
      ssize_t n = ::readlink((base + "/fd/" + e->d_name).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (want != target) continue;
      if (S_ISSOCK(mine.st_mode)) {  // a socket's either end reads
        found = true;
        break;
      }
      // A pipe: its read end (O_RDONLY in fdinfo's flags) only.
      FILE* info = std::fopen((base + "/fdinfo/" + e->d_name).c_str(), "r");
      if (info == nullptr) continue;
      char line[128];
      while (std::fgets(line, sizeof line, info)) {
        unsigned long flags = 0;
        if (std::sscanf(line, "flags: %lo", &flags) == 1) {
          if ((flags & O_ACCMODE) != O_WRONLY) found = true;
          break;
        }
      }
      std::fclose(info);
      if (found) break;
    }
    ::closedir(fds);
  }
  ::closedir(proc);
  return found;
}

// A pipe whose writers are all gone and which holds nothing: whoever reads
// it gets end-of-file, now and for ever, so the body may read its own copy.
bool at_end_for_good(int fd) {
  pollfd p{fd, POLLIN, 0};
  int queued = 0;
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) && ::ioctl(fd, FIONREAD, &queued) == 0 && queued == 0;
}

bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool send_message(int sock, const Message& m) {
  Frame f = encode_frame(m);
  return write_all(sock, f.data(), f.size());
}

// Signals reach the loop through a pipe (the handler only writes).
int signal_pipe[2] = {-1, -1};
extern "C" void on_signal(int signo) {
  const int saved = errno;
  const unsigned char s = static_cast<unsigned char>(signo);
  [[maybe_unused]] ssize_t n = ::write(signal_pipe[1], &s, 1);
  errno = saved;
}

// Ends this process as the body ended.
[[noreturn]] void end_as(const GuestExited& e) {
  if (e.term_signal > 0) {
    // No core file of the deputy's: the body's was written where it ran.
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    ::signal(e.term_signal, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, e.term_signal);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(e.term_signal);
    ::_exit(128 + e.term_signal);
  }
  ::_exit(e.exit_code & 0xff);
}

// Reads frames from the node daemon until one complete message is there.
class Reader {
 public:
  explicit Reader(int sock) : sock_(sock) {}
  // The next message, reading as needed; false when the socket ended.
  bool next(Message& out, bool block) {
    for (;;) {
      if (buffered(out)) return true;
      if (!block) {
        pollfd p{sock_, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
      }
      std::uint8_t chunk[1 << 16];
      ssize_t n = ::read(sock_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ended_ = true;
        return false;
      }
      in_.insert(in_.end(), chunk, chunk + n);
      if (!block) return buffered(out);
    }
  }
  bool ended() const { return ended_; }

 private:
  bool buffered(Message& out) {
    if (in_.size() < kFrameHeaderSize) return false;
    auto header = parse_frame_header(in_);
    if (!header) {
      ended_ = true;
      return false;
    }
    const std::size_t whole = kFrameHeaderSize + header->payload_size;
    if (in_.size() < whole) return false;
    auto m = decode_frame(std::span<const std::uint8_t>(in_.data(), whole));
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(whole));
    if (!m) {
      ended_ = true;
      return false;
    }
    out = std::move(*m);
    return true;
  }
  int sock_;
  std::vector<std::uint8_t> in_;
  bool ended_ = false;
};

int connect_guest_socket(const char* path) {
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (s < 0 || std::strlen(path) >= sizeof addr.sun_path) return -1;
  std::strcpy(addr.sun_path, path);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

// The deputy's life once the body runs elsewhere.
[[noreturn]] void relay(int sock, Reader& reader, bool feed_stdin) {
  if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) ::_exit(127);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s = 1; s < NSIG; ++s) {
    if (s == SIGKILL || s == SIGSTOP || s == SIGCHLD || (s >= 32 && s < SIGRTMIN)) continue;
    ::sigaction(s, &sa, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  bool out_gone = false;  // our stdout's or stderr's reader left: the body got SIGPIPE
  // Stdin sent that the body has not taken into its pipe yet: at most a
  // pipe's worth, so that what it never reads stays here for whoever reads
  // our stdin after it, much as at home.
  constexpr std::uint64_t kStdinWindow = 64u << 10;
  std::uint64_t stdin_unconfirmed = 0;
  auto take = [&](const Message& m) {
    if (auto* out = std::get_if<GuestOutput>(&m)) {
      const int fd = out->stream == OutputStream::kStderr ? 2 : 1;
      if (!out_gone && !write_all(fd, out->bytes.data(), out->bytes.size()) && errno == EPIPE) {
        // Our reader is gone: so is the body's. It gets the SIGPIPE it
        // would have got writing here.
        out_gone = true;
        send_message(sock, GuestSignal{0, SIGPIPE, 0});
      }
      send_message(sock, OutputCredit{0, out->bytes.size()});
    } else if (auto* credit = std::get_if<StdinCredit>(&m)) {
      stdin_unconfirmed -= std::min(stdin_unconfirmed, credit->bytes);
    } else if (auto* e = std::get_if<GuestExited>(&m)) {
      end_as(*e);
    } else if (auto* k = std::get_if<HomeKill>(&m)) {
      // The body's kill() of a pid of this node (compat/agent/home_kill.cpp):
      // made here, by us, as if the body had never left. One for our own
      // pid or group reaches us too, and goes on to the body as any signal.
      HomeKill answer = *k;
      answer.answered = true;
      answer.error = home_signal(*k) == 0 ? 0 : errno;
      send_message(sock, answer);
    }
  };
  // Every frame already read is taken before a wait: those that came with
  // the reply (what the body sent before it reached us) first of all.
  auto take_all = [&] {
    Message m;
    while (reader.next(m, false)) take(m);
    if (reader.ended()) {
      std::fprintf(stderr, "mosix-deputy: lost the node daemon: the program's end is unknown\n");
      ::_exit(255);
    }
  };
  for (;;) {
    take_all();
    const bool want_stdin = feed_stdin && stdin_unconfirmed < kStdinWindow;
    pollfd p[3] = {{sock, POLLIN, 0}, {signal_pipe[0], POLLIN, 0}, {want_stdin ? 0 : -1, POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(127);
    }
    if (p[1].revents & POLLIN) {
      unsigned char signo;
      while (::read(signal_pipe[0], &signo, 1) == 1) {
        if (signo == SIGTSTP || signo == SIGTTIN || signo == SIGTTOU) {
          // Job control: the body stops, and so do we, as the parent expects.
          send_message(sock, GuestSignal{0, SIGSTOP, 0});
          ::raise(SIGSTOP);
        } else if (signo == SIGPIPE) {
          continue;  // our own write's: handled where it failed
        } else {
          send_message(sock, GuestSignal{0, signo, 0});
        }
      }
    }
    if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      std::uint8_t buf[1 << 16];
      ssize_t n = ::read(0, buf, static_cast<std::size_t>(kStdinWindow - stdin_unconfirmed));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      GuestStdin in;
      if (n > 0) {
        in.bytes.assign(buf, buf + n);
        stdin_unconfirmed += static_cast<std::uint64_t>(n);
      } else {
        in.eof = true;
        feed_stdin = false;
      }
      send_message(sock, in);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: mosix-deputy PROGRAM ARGV0 [ARG...]\n"
                 "Run by the guest agent in a child that starts a program; not meant to be run by hand.\n");
    return 2;
  }
  const char* program = argv[1];
  char** program_argv = argv + 2;
  // The agent execs us without itself (place_at_exec.cpp): the program,
  // here or away, gets it back.
  if (const char* preload = std::getenv("MOSIX_DEPUTY_PRELOAD"); preload != nullptr) {
    ::setenv("LD_PRELOAD", preload, 1);
    ::unsetenv("MOSIX_DEPUTY_PRELOAD");
  }
  const char* socket_path = std::getenv("MOSIX_GUEST_SOCKET");
  if (socket_path == nullptr) run_here(program, program_argv);
  struct stat out {}, err {}, in {};
  if (::fstat(1, &out) != 0 || ::fstat(2, &err) != 0 || ::fstat(0, &in) != 0) run_here(program, program_argv);
  // The descriptors' rule (core/exec_stay_rule.h): the agent that exec'd us
  // applied it whole; its stdin part again here, with what only we check: a
  // pipe someone else reads too stays (unless nothing more will come).
  const bool null_stdin = is_dev_null(0);
  const StdinKind stdin_kind = null_stdin ? StdinKind::kNull
                               : S_ISFIFO(in.st_mode) || S_ISSOCK(in.st_mode) ? StdinKind::kPipeOrSocket
                                                                              : StdinKind::kOther;
  if (stays_for_descriptors(stdin_kind, false)) run_here(program, program_argv);
  if (stdin_kind == StdinKind::kPipeOrSocket && !at_end_for_good(0) && another_reader(0)) run_here(program, program_argv);

  const int sock = connect_guest_socket(socket_path);
  if (sock < 0) run_here(program, program_argv);
  GuestSpawn ask;
  ask.flags = kGuestSpawnDeputy | (null_stdin ? 0 : kGuestSpawnStdin);
  const char* rank = std::getenv("MOSIX_RANK");
  ask.parent_rank = rank != nullptr ? std::atoi(rank) : 0;
  ask.program = program;
  for (char** a = program_argv; *a != nullptr; ++a) ask.argv.emplace_back(*a);
  for (char** e = environ; *e != nullptr; ++e) ask.env.emplace_back(*e);
  // The body answers to our pid and parent, as we do (the agent's getpid),
  // and starts with the signals ignored and blocked that exec would have
  // left it (the node daemon starts it with every signal at its default).
  ask.env.push_back("MOSIX_HOME_PIDS=" + std::to_string(::getpid()) + "," + std::to_string(::getppid()));
  unsigned long long ignored = 0, blocked = 0;
  sigset_t mask;
  ::sigprocmask(SIG_SETMASK, nullptr, &mask);
  for (int s = 1; s <= 64 && s < NSIG; ++s) {
    struct sigaction old {};
    if (s != SIGKILL && s != SIGSTOP && ::sigaction(s, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) {
      ignored |= 1ull << (s - 1);
    }
    if (sigismember(&mask, s) == 1) blocked |= 1ull << (s - 1);
  }
  char sigs[64];
  std::snprintf(sigs, sizeof sigs, "MOSIX_HOME_SIGNALS=%llx,%llx", ignored, blocked);
  ask.env.emplace_back(sigs);
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) != nullptr) ask.cwd = cwd;
  if (!send_message(sock, ask)) run_here(program, program_argv);
  Reader reader(sock);
  Message m;
  if (!reader.next(m, true)) run_here(program, program_argv);
  auto* reply = std::get_if<GuestSpawnReply>(&m);
  if (reply == nullptr || reply->status != 0 || reply->ranks.size() != 1) {
    ::close(sock);
    if (reply != nullptr && reply->status == kSpawnRunHere) take_seat_here();
    run_here(program, program_argv);
  }
  relay(sock, reader, !null_stdin);
}
