#include "runtime/daemon/guest_table.h"

#include <algorithm>
#include <cstdio>
#include <boost/asio/buffer.hpp>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <span>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ckpt/request.h"
#include "runtime/core/environment.h"
#include "runtime/daemon/proc_stat_file.h"
#include "runtime/daemon/cpu_cap.h"
#include "runtime/daemon/pmi_server.h"
#include "runtime/daemon/pmix_link.h"
#include "runtime/sys/install_path.h"

namespace mosix {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// Signals that concern everything a guest started go to its process group;
// the others (SIGUSR1, ...) to the guest alone, as mpirun delivers them.
bool to_whole_group(int signo) {
  return signo == SIGTERM || signo == SIGKILL || signo == SIGSTOP || signo == SIGCONT ||
         signo == SIGINT || signo == SIGHUP;
}

// Guests carry the checkpoint agent so that they can move: <bin>/../lib/
// libmosix.so goes first in LD_PRELOAD, before the program's own entries.
void add_agent(std::vector<std::string>& env) {
  auto found = sys::installed_library("libmosix.so");
  if (!found || ::access(found->c_str(), R_OK) != 0) return;
  const std::string& agent = *found;
  for (std::string& e : env) {
    if (e.rfind("LD_PRELOAD=", 0) != 0) continue;
    if (e.find("libmosix.so") != std::string::npos) return;
    std::string old = e.substr(11);
    e = "LD_PRELOAD=" + agent + (old.empty() ? "" : ":" + old);
    return;
  }
  env.push_back("LD_PRELOAD=" + agent);
}

// PVM programs find our libpvm3.so.3 (compat/pvm) before the system's: their
// tasks are guests, and they need no pvmd.
void add_pvm_library(std::vector<std::string>& env) {
  auto found = sys::installed_library("pvm/libpvm3.so.3");
  if (!found || ::access(found->c_str(), R_OK) != 0) return;
  std::string dir = found->substr(0, found->rfind('/'));
  auto old = get_env(env, "LD_LIBRARY_PATH");
  if (old && (*old == dir || old->rfind(dir + ":", 0) == 0)) return;
  set_env(env, "LD_LIBRARY_PATH", old && !old->empty() ? dir + ":" + *old : dir);
}

// Whatever the transport opened (MPI's sockets and pipes) must not leak into
// guests: a guest holding a socket could not be checkpointed, nor moved.
void keep_fds_from_guests() { ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); }

std::uint64_t output_window(const LocalGuest& g) {
  return (g.flags & kSpawnBody) ? kBodyOutputWindow : kOutputWindow;
}

void close_stdin(LocalGuest& g) {
  error_code ignored;
  g.in->close(ignored);
  g.in.reset();
}

}  // namespace

std::string restorer_path() {
  if (const char* env = std::getenv("MOSIX_RESTORER"); env != nullptr && *env != '\0') return env;
  auto restorer = sys::installed_program("mosix-restore");
  return restorer ? *restorer : "mosix-restore";  // the start fails and says so
}

GuestTable::GuestTable(DaemonContext& context)
    : context_(context), child_signal_(context.io(), SIGCHLD), hold_timer_(context.io()) {}

GuestTable::~GuestTable() {
  auto end = [](LocalGuest& g) {
    if (!g.running) return;
    ::kill(-g.proc.pid, SIGKILL);
    ::waitpid(g.proc.pid, nullptr, 0);
  };
  for (auto& [r, g] : guests_) end(*g);
  for (auto& g : retired_) end(*g);
}

void GuestTable::start() { wait_children(); }

void GuestTable::set_cores(std::vector<std::vector<int>> core_pus) {
  core_pus_ = std::move(core_pus);
  core_users_.assign(core_pus_.size(), 0);
}

LocalGuest* GuestTable::find(int rank) {
  auto it = guests_.find(rank);
  return it == guests_.end() ? nullptr : it->second.get();
}

double GuestTable::work_done(const LocalGuest& g) const {
  const double cpu = process_cpu_seconds(g.proc.pid);
  return g.work_before + (cpu > 0 ? cpu * machine_speed_ : 0.0);
}

// Its CPU time on earlier nodes, in µs: their reference seconds, in ours.
std::uint64_t GuestTable::cpu_before_us(const LocalGuest& g) const {
  return static_cast<std::uint64_t>(std::max(0.0, g.work_before / machine_speed_ * 1e6));
}

// Placement at exec: a guest's children ask their deputy program where to
// run (compat/agent/place_at_exec.cpp); a process this daemon starts (a
// copy, a body) is placed already and knows it by its parent's pid.
std::vector<std::string> GuestTable::node_env() const {
  return {"MOSIX_NODE=" + context_.node_name(), "MOSIX_GUEST_SOCKET=" + guest_socket_,
          "MOSIX_DAEMON_PID=" + std::to_string(::getpid()), "MOSIX_DEPUTY=" + deputy_path_,
          "MOSIX_SEATS=" + (seats_ != nullptr ? seats_->path() : std::string())};
}

void GuestTable::spawn(SpawnGuest s) {
  for (const std::string& e : node_env()) {
    const std::size_t eq = e.find('=');
    if (eq + 1 < e.size()) set_env(s.env, e.substr(0, eq), e.substr(eq + 1));
    else unset_env(s.env, e.substr(0, eq));
  }
  if (!guest_socket_.empty()) add_pvm_library(s.env);
  if (!context_.options().no_agent) add_agent(s.env);
  GuestStart start;
  start.flags = s.flags;
  start.launch.rank = s.rank;
  start.launch.argv = s.argv;
  start.launch.env = s.env;
  start.launch.cwd = s.cwd;
  std::string path_env = get_env(s.env, "PATH").value_or("/usr/bin:/bin");
  Expected<std::string> path = std::string();
  if (s.flags & kSpawnRestore) {
    // The restorer turns into the program of the image (its own cwd, env).
    path = restorer_path();
    start.launch.argv = {"mosix-restore", s.argv.empty() ? "" : s.argv[0]};
  } else {
    path = resolve_program(!s.program.empty() ? s.program : s.argv.empty() ? "" : s.argv[0], path_env, s.cwd);
  }
  std::string error;
  if (path && (s.flags & kSpawnPmix) && !(s.flags & kSpawnRestore)) {
    if (Status pmix = add_pmix_client(s); !pmix) {
      path = pmix.error();
    } else {
      start.launch.env = s.env;
    }
  }
  int pmi_fd = -1;
  if (path && (s.flags & kSpawnPmi) && !(s.flags & kSpawnRestore)) {
    auto fd = pmi_ == nullptr ? Expected<int>(make_error("an MPICH copy, but the home node did not say where the "
                                                         "job's ranks run"))
                              : pmi_->add_client(s.rank, s.env);
    if (!fd) {
      path = fd.error();
    } else {
      pmi_fd = *fd;
      start.launch.env = s.env;
      start.launch.pass_fd = pmi_fd;
      start.launch.new_session = true;
    }
  }
  if (path) {
    start.launch.path = *path;
    auto started = start_local_guest(std::move(start));
    if (pmi_fd >= 0) ::close(pmi_fd);
    if (started) {
      context_.send(0, GuestStarted{s.rank, (*started)->proc.pid, static_cast<std::uint32_t>(context_.rank())});
      return;
    }
    error = started.error().message;
  } else {
    error = path.error().message;
  }
  spdlog::error("{}: rank {}: {}", context_.node_name(), s.rank, error);
  context_.send(0, GuestExited{s.rank, 127, 0});
}

Status GuestTable::add_pmix_client(SpawnGuest& s) {
  if (pmix_ == nullptr) return make_error("an MPI copy, but the home node did not say where the job's ranks run");
  return pmix_->add_client(s.rank, s.env);
}

void GuestTable::abort_guest(int rank, int code) {
  LocalGuest* g = find(rank);
  if (g == nullptr || !g->running) return;
  g->abort_code = code < 0 || code > 255 ? 1 : code;
  ::kill(-g->proc.pid, SIGKILL);
}

bool GuestTable::in_mpi(const LocalGuest& g) {
  if ((g.flags & kSpawnPmix) && pmix_ != nullptr) return pmix_->in_mpi(g.rank);
  if ((g.flags & kSpawnPmi) && pmi_ != nullptr) return pmi_->in_mpi(g.rank);
  return false;
}

Expected<LocalGuest*> GuestTable::start_local_guest(GuestStart start) {
  GuestLaunch& l = start.launch;
  int bound_core = (start.flags & kSpawnBindCore) ? pick_core(l.rank) : -1;
  if (bound_core >= 0) l.cpus = core_pus_[static_cast<size_t>(bound_core)];
  const int null_fd = (start.flags & kSpawnStdin) ? -1 : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // A new copy that takes the job's stdin reads guest_stdin_fd when given
  // (in-process: mosixrun's stdin as it is), and keeps inherited_fds; an
  // arriving guest gets neither.
  const bool new_copy = start.phase == GuestPhase::kLive && !(start.flags & kSpawnBody);
  const NodeDaemonOptions& options = context_.options();
  l.stdin_fd = (start.flags & kSpawnStdin) ? (new_copy ? options.guest_stdin_fd : -1) : null_fd;
  if (cap_) l.cgroup_procs = cap_->path() + "/cgroup.procs";
  if (start.flags & kSpawnPty) {
    l.pty = true;
    if (auto size = get_env(l.env, "MOSIX_PTY_SIZE")) {
      unsigned rows = 0, cols = 0;
      if (std::sscanf(size->c_str(), "%ux%u", &rows, &cols) == 2 && rows < 65536 && cols < 65536) {
        l.pty_rows = static_cast<unsigned short>(rows);
        l.pty_cols = static_cast<unsigned short>(cols);
      }
    }
  }
  l.one_output = (start.flags & kSpawnOneOutput) != 0;
  unset_env(l.env, "MOSIX_PTY_SIZE");  // mosixrun's word to us, not the program's
  keep_fds_from_guests();
  if (new_copy) {
    for (int fd : options.inherited_fds) ::fcntl(fd, F_SETFD, 0);
  }
  auto started = start_guest(l);
  if (null_fd >= 0) ::close(null_fd);
  if (!started) {
    release_core(bound_core);
    return started.error();
  }
  const GuestProcess& proc = *started;
  auto g = std::make_unique<LocalGuest>();
  g->core = bound_core;
  g->rank = l.rank;
  g->phase = start.phase;
  g->flags = start.flags;
  g->work_before = start.work_before;
  g->proc = proc;
  if (!(start.flags & kSpawnBody)) {
    for (int fd : {proc.stdout_fd, proc.stderr_fd}) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(kOutputChunk));
  }
  g->out = std::make_unique<asio::posix::stream_descriptor>(context_.io(), proc.stdout_fd);
  g->err = std::make_unique<asio::posix::stream_descriptor>(context_.io(), proc.stderr_fd);
  if (proc.stdin_fd >= 0) {
    ::fcntl(proc.stdin_fd, F_SETFL, ::fcntl(proc.stdin_fd, F_GETFL) | O_NONBLOCK);
    g->in = std::make_unique<asio::posix::stream_descriptor>(context_.io(), proc.stdin_fd);
  }
  for (GuestStdin& left : start.stdin_left) {
    if (!left.bytes.empty()) g->stdin_queue.push_back(std::move(left.bytes));
    if (left.eof) g->stdin_eof = true;
  }
  if (context_.options().on_guest_started) context_.options().on_guest_started(proc.pid);
  if (cap_) (void)cap_->add(proc.pid);  // in case the child could not join by itself
  if (seats_ != nullptr) seats_->started(proc.pid);
  g->arrived_at = context_.now();
  LocalGuest& ref = *g;
  // A rank that ended here before (suspended, now restored from its image):
  // the old entry is kept until the daemon ends, as a moved one's is.
  if (auto old = guests_.find(l.rank); old != guests_.end() && !old->second->running) retire(l.rank);
  guests_[l.rank] = std::move(g);
  read_output(ref, false);
  read_output(ref, true);
  write_stdin(ref);
  return &ref;
}

void GuestTable::read_output(LocalGuest& g, bool is_stderr) {
  auto& sd = is_stderr ? *g.err : *g.out;
  auto& buf = is_stderr ? g.err_buf : g.out_buf;
  sd.async_read_some(asio::buffer(buf.get(), kOutputChunk), [this, &g, is_stderr, &buf](error_code ec, size_t n) {
    if (n > 0 && g.phase != GuestPhase::kGone) {
      const OutputStream stream = is_stderr ? OutputStream::kStderr : OutputStream::kStdout;
      const std::span<const std::uint8_t> bytes(buf.get(), n);
      if (g.phase == GuestPhase::kIncoming) {
        g.held.push_back(GuestOutput{g.rank, stream, Bytes(bytes.begin(), bytes.end())});
      } else if (Status s = context_.transport().send(0, encode_guest_output(g.rank, stream, bytes)); !s) {
        spdlog::error("{}: cannot send output home: {}", context_.node_name(), s.error().message);
      }
    }
    if (ec) {
      g.open_streams--;
      maybe_report_exit(g);
      return;
    }
    if (n > 0) g.unconfirmed += n;
    if (g.unconfirmed > output_window(g) && g.phase != GuestPhase::kGone) {
      // Home has not written out our last kOutputWindow bytes yet: stop
      // reading, so the guest blocks on its full pipe until credit comes.
      (is_stderr ? g.err_paused : g.out_paused) = true;
      return;
    }
    read_output(g, is_stderr);
  });
}

void GuestTable::resize_pty(const PtyResize& size) {
  LocalGuest* g = find(size.rank);
  if (g == nullptr || !(g->flags & kSpawnPty) || !g->out || !g->out->is_open() || size.rows == 0 || size.cols == 0) {
    return;
  }
  struct winsize ws {};
  ws.ws_row = size.rows;
  ws.ws_col = size.cols;
  ::ioctl(g->out->native_handle(), TIOCSWINSZ, &ws);  // the kernel signals the terminal's foreground job
}

void GuestTable::output_credit(const OutputCredit& credit) {
  LocalGuest* g = find(credit.rank);
  if (g == nullptr) return;
  g->unconfirmed -= std::min<std::uint64_t>(g->unconfirmed, credit.bytes);
  if (g->unconfirmed > output_window(*g)) return;
  if (g->out_paused) {
    g->out_paused = false;
    read_output(*g, false);
  }
  if (g->err_paused) {
    g->err_paused = false;
    read_output(*g, true);
  }
}

// A guest's end is reported once it has been reaped and its output has
// reached the home node: GuestExited always follows the last GuestOutput.
void GuestTable::maybe_report_exit(LocalGuest& g) {
  if (g.phase != GuestPhase::kLive || g.running || g.open_streams > 0 || g.exit_sent) return;
  g.exit_sent = true;
  GuestExited e;
  e.rank = g.rank;
  e.runtime_signaled = g.runtime_signaled;
  e.cpu_us = g.cpu_us + cpu_before_us(g);
  const std::optional<std::string> suspended = ckpt::take_suspended(g.proc.pid);
  if (g.abort_code >= 0) {
    e.exit_code = g.abort_code;
  } else if (WIFSIGNALED(g.wait_status)) {
    e.term_signal = WTERMSIG(g.wait_status);
    // Killed by `mosixctl checkpoint --kill`: suspended, not ended.
    if (suspended && e.term_signal == SIGKILL && !g.runtime_signaled) {
      e.suspended_image = *suspended;
      spdlog::info("{}: rank {} (pid {}) is suspended: killed once its image {} was written", context_.node_name(),
                   g.rank, g.proc.pid, *suspended);
    }
  } else {
    e.exit_code = WEXITSTATUS(g.wait_status);
    // mpirun's rule: a rank that called MPI_Init and exits without
    // MPI_Finalize fails the job (status 1 if it said 0): its peers would
    // wait for it for ever.
    if (in_mpi(g)) {
      spdlog::error("rank {} (pid {}) on {} exited with status {} without calling MPI_Finalize: an MPI program "
                    "must call MPI_Finalize before it exits; ending the job",
                    g.rank, g.proc.pid, context_.node_name(), e.exit_code);
      if (e.exit_code == 0) e.exit_code = 1;
    }
  }
  if (ended_) ended_(g.rank);
  context_.send(0, e);
}

bool GuestTable::deliver_stdin(const GuestStdin& in) {
  LocalGuest* g = find(in.rank);
  if (g == nullptr) return false;
  if (!g->in) return true;
  if (!in.bytes.empty()) g->stdin_queue.push_back(in.bytes);
  if (in.eof) g->stdin_eof = true;
  write_stdin(*g);
  return true;
}

// Writes are non-blocking and counted (stdin_offset), so that what the guest
// has not read is known exactly when it moves (take_stdin).
void GuestTable::write_stdin(LocalGuest& g) {
  if (!g.in || g.stdin_writing || g.stdin_held) return;
  const int fd = g.in->native_handle();
  while (!g.stdin_queue.empty()) {
    const Bytes& b = g.stdin_queue.front();
    ssize_t n = ::write(fd, b.data() + g.stdin_offset, b.size() - g.stdin_offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      g.stdin_writing = true;
      g.in->async_wait(asio::posix::stream_descriptor::wait_write, [this, &g](error_code ec) {
        g.stdin_writing = false;
        if (!ec) write_stdin(g);
      });
      return;
    }
    if (n < 0) {
      // The guest closed its stdin or ended: drop what is left, as mpirun does.
      g.stdin_queue.clear();
      g.stdin_offset = 0;
      close_stdin(g);
      return;
    }
    g.stdin_offset += static_cast<std::size_t>(n);
    if (g.flags & kSpawnBody) context_.send(0, StdinCredit{g.rank, static_cast<std::uint64_t>(n)});
    if (g.stdin_offset == b.size()) {
      g.stdin_queue.pop_front();
      g.stdin_offset = 0;
    }
  }
  if (g.stdin_eof) close_stdin(g);
}

// mpirun's --bind-to core on a node: the core with the fewest guests bound
// (local rank i gets core i when they start together). The nodes of a
// virtual cluster share this machine's cores: there, rank i gets core i.
int GuestTable::pick_core(int rank) {
  if (core_pus_.empty()) return -1;
  if (!context_.options().vcluster_cpu.empty()) return rank % static_cast<int>(core_pus_.size());
  auto least = std::min_element(core_users_.begin(), core_users_.end());
  int core = static_cast<int>(least - core_users_.begin());
  ++*least;
  return core;
}

void GuestTable::release_core(int& core) {
  if (core >= 0 && context_.options().vcluster_cpu.empty() && static_cast<size_t>(core) < core_users_.size()) {
    --core_users_[static_cast<size_t>(core)];
  }
  core = -1;
}

// Source side of a move, the guest stopped: what it has not read of its
// stdin, i.e. what is still in its pipe (read through /proc/PID/fd/0, if that
// is still our pipe) and what was not yet written into it. It goes to the
// target with the image, or back into the pipe if the move fails.
GuestStdin GuestTable::take_stdin(LocalGuest& g) {
  GuestStdin left;
  left.rank = g.rank;
  left.eof = g.stdin_eof || !g.in;
  if (!g.in) return left;
  g.stdin_held = true;
  if (g.stdin_writing) g.in->cancel();
  std::string fd0 = "/proc/" + std::to_string(g.proc.pid) + "/fd/0";
  struct stat ours {}, theirs {};
  if (::fstat(g.in->native_handle(), &ours) == 0 && ::stat(fd0.c_str(), &theirs) == 0 && S_ISFIFO(theirs.st_mode) &&
      ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) {
    int fd = ::open(fd0.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      std::uint8_t buf[1 << 16];
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        left.bytes.insert(left.bytes.end(), buf, buf + n);
      }
      ::close(fd);
    }
  }
  for (const Bytes& b : g.stdin_queue) {
    std::size_t skip = &b == &g.stdin_queue.front() ? g.stdin_offset : 0;
    left.bytes.insert(left.bytes.end(), b.begin() + static_cast<std::ptrdiff_t>(skip), b.end());
  }
  g.stdin_queue.clear();
  g.stdin_offset = 0;
  return left;
}

// The move failed: the guest gets its stdin back, in order, before anything
// newer.
void GuestTable::give_back_stdin(LocalGuest& g, GuestStdin left) {
  g.stdin_held = false;
  if (!left.bytes.empty()) {
    g.stdin_queue.push_front(std::move(left.bytes));
    g.stdin_offset = 0;
  }
  write_stdin(g);
}

// Everything the stopped guest wrote is sent before its image, so that the
// home node can put the target's output after it.
void GuestTable::drain_output(LocalGuest& g) {
  for (auto* sd : {g.out.get(), g.err.get()}) {
    int fd = sd->native_handle();
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      const OutputStream stream = sd == g.err.get() ? OutputStream::kStderr : OutputStream::kStdout;
      (void)context_.transport().send(
          0, encode_guest_output(g.rank, stream, {reinterpret_cast<std::uint8_t*>(buf), static_cast<size_t>(n)}));
    }
  }
}

void GuestTable::retire(int rank) {
  auto it = guests_.find(rank);
  if (it == guests_.end()) return;
  it->second->phase = GuestPhase::kGone;
  if (it->second->in) close_stdin(*it->second);
  retired_.push_back(std::move(it->second));
  guests_.erase(it);
}

// SIGTERM and SIGKILL come from the home only when the job is being ended: a
// guest that was still running when one reached it counts as ended by the
// runtime if that signal kills it. One that had already ended on its own
// (its status not yet reported) keeps its own end, and so does one that
// ends while its signals are held.
void GuestTable::signal(int rank, int signo, std::uint64_t not_before_cpu_us) {
  for (auto& [r, g] : guests_) {
    if (!g->running || g->phase != GuestPhase::kLive || (rank != kAllRanks && rank != r)) continue;
    if (not_before_cpu_us > 0 && (!g->held_signals.empty() || !has_caught_up(*g, not_before_cpu_us))) {
      if (g->held_signals.empty()) {
        spdlog::debug("rank {}: the job's end waits until it has used {} ms of CPU time or waits itself", r,
                      not_before_cpu_us / 1000);
      }
      g->hold_cpu_us = not_before_cpu_us;
      g->held_signals.push_back(signo);
      watch_holds();
      continue;
    }
    if (signo == 0 || signo == SIGKILL) release_held(*g);
    deliver(*g, signo);
  }
}

void GuestTable::deliver(LocalGuest& g, int signo) {
  if (signo == 0) return;
  if ((signo == SIGTERM || signo == SIGKILL) && !guest_has_ended(g.proc.pid)) g.runtime_signaled = true;
  // A body gets what its deputy got, as the deputy got it: itself alone
  // (its deputy's SIGKILL excepted: nothing of it may outlive the deputy).
  const bool whole = (g.flags & kSpawnBody) ? signo == SIGKILL : to_whole_group(signo);
  ::kill(whole ? -g.proc.pid : g.proc.pid, signo);
}

bool GuestTable::has_caught_up(LocalGuest& g, std::uint64_t target_cpu_us) {
  auto now = read_copy_progress(g.proc.pid);
  if (!now) return true;  // gone: nothing to wait for
  now->cpu_us += cpu_before_us(g);
  g.quiet_looks = quiet_looks(*now, g.last_look, g.quiet_looks);
  g.last_look = now;
  return caught_up(target_cpu_us, *now, g.quiet_looks);
}

void GuestTable::release_held(LocalGuest& g) {
  std::vector<int> held = std::move(g.held_signals);
  g.held_signals.clear();
  g.last_look.reset();
  g.quiet_looks = 0;
  for (int signo : held) deliver(g, signo);
}

// Held signals are looked at every 2 ms: a copy starting as the job ends
// needs a few ms of CPU, a waiting one kQuietLooks looks in a row.
void GuestTable::watch_holds() {
  if (hold_watched_) return;
  hold_watched_ = true;
  hold_timer_.expires_after(std::chrono::milliseconds(2));
  hold_timer_.async_wait([this](error_code ec) {
    hold_watched_ = false;
    if (ec) return;
    bool more = false;
    for (auto& [r, g] : guests_) {
      if (g->held_signals.empty()) continue;
      if (!g->running || g->phase != GuestPhase::kLive) {
        g->held_signals.clear();  // it ended on its own, or moved: its end is its own
        g->last_look.reset();
        g->quiet_looks = 0;
      } else if (has_caught_up(*g, g->hold_cpu_us)) {
        spdlog::debug("rank {}: caught up, the job's end goes to it", r);
        release_held(*g);
      } else {
        more = true;
      }
    }
    if (more) watch_holds();
  });
}

void GuestTable::wait_children() {
  child_signal_.async_wait([this](error_code ec, int) {
    if (ec) return;
    for (auto& [r, g] : guests_) {
      if (!g->running) continue;
      int status = 0;
      rusage usage{};
      if (::wait4(g->proc.pid, &status, WNOHANG, &usage) == g->proc.pid) {
        g->running = false;
        g->cpu_us = static_cast<std::uint64_t>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000 +
                    static_cast<std::uint64_t>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
        g->ended_at = context_.now();
        release_core(g->core);
        g->wait_status = status;
        maybe_report_exit(*g);
      }
    }
    for (auto& g : retired_) {
      if (g->running && ::waitpid(g->proc.pid, nullptr, WNOHANG) == g->proc.pid) g->running = false;
      if (!g->running) release_core(g->core);
    }
    wait_children();
  });
}

void GuestTable::kill_all() {
  for (auto& [r, g] : guests_) ::kill(-g->proc.pid, SIGKILL);
}

void GuestTable::end_all() {
  kill_all();
  for (auto& [r, g] : guests_) {
    if (g->running) ::waitpid(g->proc.pid, nullptr, 0);
    g->running = false;
  }
  for (auto& g : retired_) {
    if (g->running) {
      ::kill(-g->proc.pid, SIGKILL);
      ::waitpid(g->proc.pid, nullptr, 0);
      g->running = false;
    }
  }
}

}  // namespace mosix
