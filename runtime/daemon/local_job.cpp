#include "runtime/daemon/local_job.h"

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "runtime/ckpt/request.h"
#include "runtime/core/exit_rule.h"
#include "runtime/topology/node_load.h"
#include "runtime/topology/speed.h"
#include "runtime/topology/topology.h"
#include "runtime/daemon/control.h"
#include "runtime/daemon/job_signals.h"
#include "runtime/daemon/orphan_watcher.h"
#include "runtime/daemon/output_relay.h"
#include "runtime/daemon/proc_stat_file.h"

namespace mosix {
namespace {

namespace asio = boost::asio;

// Reads one output pipe of one guest until EOF and hands the bytes to the
// relay, in order.
class OutputStream {
 public:
  OutputStream(asio::io_context& io, int fd, int rank, bool is_stderr, OutputRelay& relay)
      : sd_(io, fd), rank_(rank), is_stderr_(is_stderr), relay_(relay) {}

  bool eof() const { return eof_; }

  template <typename Done>
  void start(Done done) {
    sd_.async_read_some(asio::buffer(buf_), [this, done](boost::system::error_code ec, size_t n) {
      if (n > 0) relay_.deliver(rank_, is_stderr_, buf_.data(), n);
      if (ec) {
        eof_ = true;
        relay_.finish(rank_, is_stderr_);
        boost::system::error_code ignored;
        sd_.close(ignored);
        done();
        return;
      }
      start(done);
    });
  }

 private:
  asio::posix::stream_descriptor sd_;
  std::array<char, 1 << 17> buf_;  // not zeroed: 128 KiB of fresh pages per stream at every start
  int rank_;
  bool is_stderr_;
  OutputRelay& relay_;
  bool eof_ = false;
};

struct Guest {
  GuestProcess proc;
  bool running = false;
  bool runtime_signaled = false;  // our SIGTERM/SIGKILL reached it while it ran
  GuestEnd end;
  std::unique_ptr<OutputStream> out, err;
};

class LocalJob {
 public:
  explicit LocalJob(LocalJobSpec spec)
      : spec_(std::move(spec)),
        relay_(spec_.tag_output, spec_.output_dir),
        signals_(io_, {.signal_copies = [this](int signo, bool whole_group) { signal_running(signo, whole_group); },
                       .end_job =
                           [this](int signo) {
                             spdlog::info("got signal {}; ending the job", signo);
                             end_job("interrupted");
                           },
                       .child_exited = [this] { reap(); }}),
        timeout_(io_),
        grace_(io_),
        ckpt_timer_(io_) {}
  ~LocalJob() {
    if (ckpt_thread_.joinable()) ckpt_thread_.join();
  }

  Expected<int> run();

 private:
  Status start_guests(OrphanWatcher& watcher);
  void start_stdin_pump(int target_fd);
  void reap();
  void guest_ended(Guest& g, int status);
  void end_job(const char* why);
  void signal_running(int sig, bool whole_group);
  void maybe_finish();
  void kill_everything();

  LocalJobSpec spec_;
  OutputRelay relay_;
  asio::io_context io_;
  JobSignals signals_;
  asio::steady_timer timeout_, grace_, ckpt_timer_;
  std::thread ckpt_thread_;
  std::atomic<bool> ckpt_busy_{false};
  void schedule_checkpoints();
  std::vector<Guest> guests_;
  std::unique_ptr<ControlServer> control_;
  std::string socket_dir_;
  nlohmann::json control(const nlohmann::json& request);
  bool ending_ = false;
  bool timed_out_ = false;
};

// Whether the event loop can wait on `fd` (epoll refuses regular files and
// most character devices). Those are handed to rank 0 directly instead.
bool pollable(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || (S_ISCHR(st.st_mode) && ::isatty(fd));
}

Status LocalJob::start_guests(OrphanWatcher& watcher) {
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return make_error(std::string("cannot open /dev/null: ") + std::strerror(errno));
  bool stdin_open = ::fcntl(0, F_GETFD) >= 0;
  bool relay_stdin = stdin_open && pollable(0);
  int rank0_stdin = -1;
  for (GuestLaunch& l : spec_.guests) {
    if (Status s = relay_.open_files(l.rank); !s) {
      ::close(null_fd);
      return s;
    }
    if (l.rank == 0) {
      l.stdin_fd = relay_stdin ? -1 : (stdin_open ? 0 : null_fd);
    } else {
      l.stdin_fd = null_fd;
    }
    auto proc = start_guest(l);
    if (!proc) {
      ::close(null_fd);
      return proc.error();
    }
    watcher.watch(proc->pid);
    spdlog::debug("rank {} started as pid {}", l.rank, proc->pid);
    Guest g;
    g.proc = *proc;
    g.running = true;
    g.end.rank = l.rank;
    g.out = std::make_unique<OutputStream>(io_, proc->stdout_fd, l.rank, false, relay_);
    g.err = std::make_unique<OutputStream>(io_, proc->stderr_fd, l.rank, true, relay_);
    if (l.rank == 0) rank0_stdin = proc->stdin_fd;
    guests_.push_back(std::move(g));
    spec_.record.guests.push_back(GuestRecord{l.rank, proc->pid, spec_.record.home_node,
                                              "running", -1});
  }
  ::close(null_fd);
  if (rank0_stdin >= 0) start_stdin_pump(rank0_stdin);
  return {};
}

// Our stdin goes to rank 0 only. A thread does blocking reads so that we
// never set O_NONBLOCK on a descriptor we share with the shell.
void LocalJob::start_stdin_pump(int target_fd) {
  std::thread([target_fd] {
    std::array<char, 1 << 16> buf;
    for (;;) {
      ssize_t n = ::read(0, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EOF, or EIO when in the background of a terminal
      const char* p = buf.data();
      size_t left = static_cast<size_t>(n);
      bool failed = false;
      while (left > 0) {
        ssize_t w = ::write(target_fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          failed = true;  // rank 0 closed its stdin or ended
          break;
        }
        p += w;
        left -= static_cast<size_t>(w);
      }
      if (failed) break;
    }
    ::close(target_fd);
  }).detach();
}

void LocalJob::signal_running(int sig, bool whole_group) {
  for (Guest& g : guests_) {
    if (!g.running) continue;
    // A copy that ended on its own (not reaped yet) keeps its own end.
    if ((sig == SIGTERM || sig == SIGKILL) && !guest_has_ended(g.proc.pid)) g.runtime_signaled = true;
    ::kill(whole_group ? -g.proc.pid : g.proc.pid, sig);
  }
}

void LocalJob::end_job(const char* why) {
  if (ending_) return;
  ending_ = true;
  spdlog::debug("ending the job: {}", why);
  signal_running(SIGTERM, true);
  signal_running(SIGCONT, true);  // a stopped guest must see its SIGTERM
  grace_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(spec_.kill_grace_seconds)));
  grace_.async_wait([this](boost::system::error_code ec) {
    if (!ec) signal_running(SIGKILL, true);
  });
}

void LocalJob::reap() {
  for (Guest& g : guests_) {
    if (!g.running) continue;
    int status = 0;
    pid_t r = ::waitpid(g.proc.pid, &status, WNOHANG);
    if (r == g.proc.pid) guest_ended(g, status);
  }
  maybe_finish();
}

void LocalJob::guest_ended(Guest& g, int status) {
  g.running = false;
  g.end.signaled = WIFSIGNALED(status);
  g.end.value = g.end.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
  g.end.ended_by_runtime = g.runtime_signaled && ended_by_our_signal(g.end);
  for (GuestRecord& r : spec_.record.guests) {
    if (r.rank == g.end.rank) {
      r.state = "exited";
      r.exit_code = shell_status(g.end);
    }
  }
  spdlog::debug("rank {} {}", g.end.rank, describe_end(g.end));
  if (is_failure(g.end) && !ending_) {
    if (!spec_.keep_going) {
      spdlog::error("rank {} (pid {}) on {} {}; ending the job (--keep-going lets the others finish)",
                    g.end.rank, g.proc.pid, spec_.record.home_node, describe_end(g.end));
      end_job("a copy failed");
    } else {
      spdlog::warn("rank {} (pid {}) on {} {}", g.end.rank, g.proc.pid, spec_.record.home_node,
                   describe_end(g.end));
    }
  }
}

void LocalJob::maybe_finish() {
  for (const Guest& g : guests_) {
    if (g.running) return;
  }
  // Every copy has ended. Output still open belongs to processes the copies
  // left behind; mpirun waits for it unless the job is being ended.
  if (ending_) kill_everything();
  for (const Guest& g : guests_) {
    if (!g.out->eof() || !g.err->eof()) return;
  }
  io_.stop();
}

void LocalJob::kill_everything() {
  for (const Guest& g : guests_) ::kill(-g.proc.pid, SIGKILL);
}

nlohmann::json LocalJob::control(const nlohmann::json& request) {
  std::string cmd = request.value("cmd", "");
  const std::string& me = spec_.record.home_node;
  if (cmd == "ps") {
    nlohmann::json guests = nlohmann::json::array();
    for (const Guest& g : guests_) {
      char st = g.running ? process_state(g.proc.pid) : 'X';
      guests.push_back({{"rank", g.end.rank}, {"pid", g.proc.pid}, {"home", me}, {"node", me},
                        {"state", !g.running ? "exited" : st == 'T' ? "stopped" : "running"},
                        {"cpu_seconds", g.running ? process_cpu_seconds(g.proc.pid) : -1},
                        {"exit_status", g.running ? -1 : shell_status(g.end)}});
    }
    return {{"ok", true}, {"job", spec_.record.id}, {"guests", guests}};
  }
  if (cmd == "nodes") {
    int runnable = 0, alive = 0;
    for (const Guest& g : guests_) {
      if (!g.running) continue;
      ++alive;
      runnable += process_state(g.proc.pid) == 'R';
    }
    static const int cores = [] {
      auto t = probe_this_node();
      return t ? std::max(1, t->cores) : 1;
    }();
    double speed = stored_speed_or(1.0);
    std::uint64_t free_memory = 0, memory = 0;
    if (auto mem = read_meminfo()) {
      free_memory = mem->available_bytes;
      memory = mem->total_bytes;
    }
    nlohmann::json node = {{"node", 0}, {"name", me}, {"speed", speed}, {"cores", cores},
                           {"load", runnable / (speed * cores)}, {"guests", alive},
                           {"free_memory", free_memory}, {"memory", memory}};
    return {{"ok", true}, {"job", spec_.record.id}, {"nodes", nlohmann::json::array({node})}};
  }
  return {{"ok", false}, {"error", "unknown request '" + cmd + "'"}};
}

// Periodic checkpoints (--ckpt-interval): every interval, each running copy
// writes its image to DIR/rank.N.img (atomically: the newest complete image
// is always there). The requests block until the image is verified, so they
// run on a thread of their own while the loop keeps relaying output; a round
// still running when the next is due is not doubled.
void LocalJob::schedule_checkpoints() {
  ckpt_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(spec_.ckpt_interval_seconds)));
  ckpt_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || ending_) return;
    if (!ckpt_busy_) {
      std::vector<std::pair<int, pid_t>> targets;
      for (const Guest& g : guests_) {
        if (g.running) targets.emplace_back(g.end.rank, g.proc.pid);
      }
      if (ckpt_thread_.joinable()) ckpt_thread_.join();
      ckpt_busy_ = true;
      ckpt_thread_ = std::thread([this, targets] {
        for (auto [rank, pid] : targets) {
          ckpt::CheckpointRequest r;
          r.pid = pid;
          r.image_path = spec_.ckpt_dir + "/rank." + std::to_string(rank) + ".img";
          r.mode = ckpt::AfterCheckpoint::kLeaveRunning;
          r.compression = ckpt::Compression::fast;
          auto done = ckpt::request_checkpoint(r);
          if (done) {
            spdlog::info("rank {}: checkpoint {} ({} bytes)", rank, done->image_path, done->bytes);
          } else {
            spdlog::warn("rank {}: periodic checkpoint failed: {}", rank, done.error().message);
          }
        }
        ckpt_busy_ = false;
      });
    }
    schedule_checkpoints();
  });
}

Expected<int> LocalJob::run() {
  // Ignore SIGPIPE: a closed stdout must not kill the job's relay.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTTIN, SIG_IGN);
  auto watcher = OrphanWatcher::start();
  if (!watcher) return watcher.error();

  if (Status s = start_guests(*watcher); !s) {
    kill_everything();
    for (Guest& g : guests_) ::waitpid(g.proc.pid, nullptr, 0);
    return s.error();
  }
  spec_.record.start_time = static_cast<long>(::time(nullptr));
  if (auto dir = job_socket_dir(spec_.record.id)) {
    socket_dir_ = *dir;
    auto server = ControlServer::start(io_, socket_dir_ + "/control.sock",
                                       [this](const nlohmann::json& r) { return this->control(r); });
    if (server) {
      control_ = std::move(*server);
      spec_.record.control_socket = control_->path();
    } else {
      spdlog::warn("mosixctl cannot reach this job: {}", server.error().message);
    }
  }
  if (Status s = write_job(spec_.record); !s) {
    spdlog::warn("mosixctl will not see this job: {}", s.error().message);
  }

  signals_.start();
  for (Guest& g : guests_) {
    g.out->start([this] { maybe_finish(); });
    g.err->start([this] { maybe_finish(); });
  }
  if (spec_.timeout_seconds > 0) {
    timeout_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(spec_.timeout_seconds)));
    timeout_.async_wait([this](boost::system::error_code ec) {
      if (ec || ending_) return;
      timed_out_ = true;
      spdlog::error("the job ran longer than --timeout {} s; ending it", spec_.timeout_seconds);
      end_job("timeout");
    });
  }
  if (spec_.ckpt_interval_seconds > 0) schedule_checkpoints();
  reap();  // a copy may have ended before the SIGCHLD handler was in place
  io_.run();

  if (ckpt_thread_.joinable()) ckpt_thread_.join();
  kill_everything();  // nothing of the job outlives it
  remove_job(spec_.record.id);
  control_.reset();
  if (!socket_dir_.empty()) ::rmdir(socket_dir_.c_str());
  watcher->release();

  std::vector<GuestEnd> ends;
  for (const Guest& g : guests_) ends.push_back(g.end);
  if (timed_out_) return kTimeoutExitStatus;
  if (signals_.interrupted()) return kInterruptedExitStatus;
  return job_exit_status(ends);
}

}  // namespace

Expected<int> run_local_job(LocalJobSpec spec) {
  LocalJob job(std::move(spec));
  return job.run();
}

}  // namespace mosix
