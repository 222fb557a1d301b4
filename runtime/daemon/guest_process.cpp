#include "runtime/daemon/guest_process.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/ckpt/request_protocol.h"
#include "runtime/daemon/proc_stat_file.h"

namespace mosix {
namespace {

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

Expected<std::string> check_executable(const std::string& path, const std::string& shown) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return make_error("program '" + shown + "' not found: " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return make_error("program '" + shown + "' is a directory");
  if (!S_ISREG(st.st_mode)) return make_error("program '" + shown + "' is not a regular file");
  if (::access(path.c_str(), X_OK) != 0) {
    return make_error("program '" + shown + "' is not executable: chmod +x it");
  }
  return path;
}

// What the child needs, all of it built before the clone: the child shares
// our memory until it execs and must not allocate.
struct ChildStart {
  const GuestLaunch* launch;
  int in_fd, out_fd, err_fd, report_fd;
  pid_t parent;
  char* const* argv;
  char* const* envp;
  bool with_agent;
};

// The child below runs on its own small stack in memory it shares with us,
// so it is built without sanitizers: their bookkeeping knows only our
// threads' stacks, and their reports would go to the guest's stderr.
#define MOSIX_CHILD_CODE __attribute__((no_sanitize("address", "undefined")))

MOSIX_CHILD_CODE [[noreturn]] void child_fail(int report_fd, int what) {
  int code[2] = {what, errno};
  [[maybe_unused]] ssize_t n = ::write(report_fd, code, sizeof code);
  ::_exit(127);
}

// Runs in the child between clone and exec: only async-signal-safe calls,
// and nothing that writes memory the parent uses (it shares ours until it
// execs; errno is the one exception, its thread's own and not read after).
MOSIX_CHILD_CODE int exec_child(void* arg) {
  const ChildStart& c = *static_cast<const ChildStart*>(arg);
  const GuestLaunch& l = *c.launch;
  // Our own process group: the runtime signals the guest and everything it
  // starts as one, and the terminal's job control stays with mosixrun.
  // An MPICH copy gets a session of its own as well, as Hydra gives each
  // rank: where the kernel groups tasks by session for scheduling
  // (autogroup), each rank then competes as Hydra's do, not all of them
  // together as one session's share. Its process group is its pid either way.
  // A guest with a terminal of its own (--pty) leads the terminal's session,
  // as a login shell does, so that it has job control.
  if (l.new_session || l.pty ? ::setsid() < 0 : ::setpgid(0, 0) != 0) child_fail(c.report_fd, 1);
  if (l.pty && ::ioctl(c.in_fd, TIOCSCTTY, 0) != 0) child_fail(c.report_fd, 7);
  // The kernel kills the guest if the daemon that started it dies, even by
  // SIGKILL; the orphan watcher covers the guest's own children.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(c.report_fd, 2);
  if (::getppid() != c.parent) ::_exit(127);
  // Every signal is blocked (start_guest blocked them before the clone), so
  // none runs one of our handlers here. The dispositions go back to the
  // default before the mask is set for the program.
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
  }
  // A guest with the agent starts with the agent's signals blocked: a
  // checkpoint request that comes before the agent's constructor has put its
  // handler in place stays pending instead of killing the program (the
  // default action of a real-time signal), and the agent unblocks them.
  sigset_t mask;
  sigemptyset(&mask);
  if (c.with_agent) {
    sigaddset(&mask, ckpt::kRequestSignal);
    sigaddset(&mask, ckpt::kStopSignal);
  }
  ::sigprocmask(SIG_SETMASK, &mask, nullptr);
  if (::dup2(c.in_fd, 0) < 0 || ::dup2(c.out_fd, 1) < 0 || ::dup2(c.err_fd, 2) < 0) child_fail(c.report_fd, 3);
  if (l.close_inherited_fds) {
    // Our own pipes are close-on-exec; what is left came from our parent.
    // The report pipe must stay open until exec: mark, do not close.
    const unsigned report = static_cast<unsigned>(c.report_fd);
    bool marked = (report <= 3 || ::close_range(3, report - 1, CLOSE_RANGE_CLOEXEC) == 0) &&
                  ::close_range(report + 1, ~0u, CLOSE_RANGE_CLOEXEC) == 0;
    for (int fd = 3; !marked && fd < 4096; ++fd) {  // a kernel before 5.11
      if (fd != c.report_fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  if (l.pass_fd >= 0 && ::fcntl(l.pass_fd, F_SETFD, 0) != 0) child_fail(c.report_fd, 3);
  if (!l.cwd.empty() && ::chdir(l.cwd.c_str()) != 0) child_fail(c.report_fd, 4);
  if (!l.cgroup_procs.empty()) {
    // Join the CPU cap before the program runs a single instruction.
    int fd = ::open(l.cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      [[maybe_unused]] ssize_t n = ::write(fd, "0", 1);
      ::close(fd);
    }
  }
  if (!l.cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : l.cpus) CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) child_fail(c.report_fd, 5);
  }
  ::execve(l.path.c_str(), c.argv, c.envp);
  child_fail(c.report_fd, 6);
}

// A new pseudo-terminal of `l`'s size: its master and its slave, both
// close-on-exec (the child dups the slave onto 0, 1 and 2).
Status open_pty(const GuestLaunch& l, int& master, int& slave) {
  auto fail = [&](const char* step) {
    const int e = errno;
    close_fd(master);
    close_fd(slave);
    return make_error("cannot give rank " + std::to_string(l.rank) + " a terminal: " + step + ": " + std::strerror(e));
  };
  master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return fail("posix_openpt");
  char name[128];
  if (::grantpt(master) != 0 || ::unlockpt(master) != 0 || ::ptsname_r(master, name, sizeof name) != 0) {
    return fail("ptsname");
  }
  slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) return fail(name);
  if (l.pty_rows > 0 && l.pty_cols > 0) {
    struct winsize size {};
    size.ws_row = l.pty_rows;
    size.ws_col = l.pty_cols;
    ::ioctl(master, TIOCSWINSZ, &size);
  }
  return {};
}

}  // namespace

Expected<std::string> resolve_program(const std::string& program, const std::string& path_env,
                                      const std::string& cwd) {
  if (program.empty()) return make_error("empty program name");
  if (program.find('/') != std::string::npos) {
    std::string path = program[0] == '/' || cwd.empty() ? program : cwd + "/" + program;
    return check_executable(path, program);
  }
  std::string first_problem;
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      if (first_problem.empty()) first_problem = candidate + " is not executable";
    }
    start = end + 1;
  }
  if (!first_problem.empty()) {
    return make_error("program '" + program + "': " + first_problem + ": chmod +x it");
  }
  return make_error("program '" + program +
                    "' not found in PATH: give its path (./" + program + ") or fix PATH");
}

Expected<GuestProcess> start_guest(const GuestLaunch& l) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  auto cleanup = [&] {
    for (int* p : {in, out, err, report}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  };
  bool own_stdin = l.stdin_fd < 0 && !l.pty;
  if ((own_stdin && ::pipe2(in, O_CLOEXEC) != 0) || ::pipe2(out, O_CLOEXEC) != 0 ||
      ::pipe2(err, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0) {
    int e = errno;
    cleanup();
    return make_error(std::string("cannot make pipes for rank ") + std::to_string(l.rank) + ": " +
                      std::strerror(e));
  }
  if (l.pty) {
    // The terminal: out[0] its master (ours, read and written), in[0] its
    // slave (the child's 0, 1 and 2). Its stderr pipe is left at its end.
    close_fd(out[0]);
    close_fd(out[1]);
    if (Status s = open_pty(l, out[0], in[0]); !s) {
      cleanup();
      return s.error();
    }
    close_fd(err[1]);
    out[1] = ::fcntl(in[0], F_DUPFD_CLOEXEC, 0);
    err[1] = ::fcntl(in[0], F_DUPFD_CLOEXEC, 0);
    if (out[1] < 0 || err[1] < 0) {
      cleanup();
      return make_error("cannot start rank " + std::to_string(l.rank) + ": dup: " + std::strerror(errno));
    }
  }
  if (l.one_output && !l.pty) {
    // One pipe for both streams: the stderr pipe is left at its end.
    close_fd(err[1]);
    err[1] = ::fcntl(out[1], F_DUPFD_CLOEXEC, 0);
    if (err[1] < 0) {
      cleanup();
      return make_error("cannot start rank " + std::to_string(l.rank) + ": dup: " + std::strerror(errno));
    }
  }
  // argv and envp are built before the clone: the child must not allocate.
  std::vector<char*> argv, envp;
  for (const std::string& a : l.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : l.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  bool with_agent = false;
  for (const std::string& e : l.env) {
    if (e.rfind("LD_PRELOAD=", 0) == 0 && e.find("libmosix.so") != std::string::npos) with_agent = true;
  }

  // The child shares our memory and we wait until it has exec'd
  // (CLONE_VM|CLONE_VFORK, as posix_spawn does): no copy of our page tables,
  // which made a fork of mosixrun, big and threaded, cost more than the
  // program's own start. Its stack is its own; every signal stays blocked
  // in this thread until the child has reset their handlers.
  constexpr std::size_t kChildStack = 64 << 10;
  void* stack = ::mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int e = errno;
    cleanup();
    return make_error(std::string("cannot start rank ") + std::to_string(l.rank) + ": mmap: " + std::strerror(e));
  }
  ChildStart child{&l, own_stdin || l.pty ? in[0] : l.stdin_fd, out[1], err[1], report[1], ::getpid(), argv.data(),
                   envp.data(), with_agent};
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::clone(exec_child, static_cast<char*>(stack) + kChildStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
  int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, kChildStack);
  if (pid < 0) {
    cleanup();
    return make_error(std::string("cannot start rank ") + std::to_string(l.rank) + ": clone: " +
                      std::strerror(clone_errno));
  }
  close_fd(in[0]);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(report[1]);
  int code[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report[0], code, sizeof code);
  } while (n < 0 && errno == EINTR);
  close_fd(report[0]);
  if (n > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    cleanup();
    static const char* what[] = {"", "setpgid", "prctl", "dup2", "chdir", "sched_setaffinity",
                                 "exec", "its terminal (TIOCSCTTY)"};
    std::string step = code[0] >= 1 && code[0] <= 7 ? what[code[0]] : "start";
    std::string detail = std::strerror(code[1]);
    if (code[0] == 4) return make_error("cannot enter working directory '" + l.cwd + "': " + detail);
    return make_error("cannot start rank " + std::to_string(l.rank) + " (" + l.path + "): " +
                      step + ": " + detail);
  }
  GuestProcess g;
  g.rank = l.rank;
  g.pid = pid;
  g.stdin_fd = own_stdin ? in[1] : -1;
  if (l.pty) g.stdin_fd = ::fcntl(out[0], F_DUPFD_CLOEXEC, 0);  // what is typed goes to the master
  g.stdout_fd = out[0];
  g.stderr_fd = err[0];
  return g;
}

bool guest_has_ended(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
    return true;
  }
  auto st = read_proc_stat(pid);
  return !st || st->exiting();
}

}  // namespace mosix
