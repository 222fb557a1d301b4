// HomeJob's node daemons: started by mpirun (real nodes) or mosixd --launch
// (a virtual cluster), or, for a job on this node alone, one node daemon on
// a thread of ours over LocalTransport. However started, they reach us by
// the home socket and the rest of HomeJob does not know how.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>
#include <cstdlib>
#include <fcntl.h>
#include <regex>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/core/launch_event.h"
#include "runtime/job/home_job_impl.h"
#include "runtime/sys/write_all.h"
#include "runtime/transport/local/local_transport.h"

namespace mosix {

namespace asio = boost::asio;

// Several nodes: mpirun (or mosixd --launch) starts the node daemons; what
// it says goes to our stderr.
Status HomeJob::start_mpirun(OrphanWatcher& watcher) {
  GuestLaunch l;
  l.rank = -1;
  l.path = spec_.mpirun_path;
  l.argv = spec_.mpirun_argv;
  l.argv.push_back("--home-socket");
  l.argv.push_back(socket_path_);
  l.env = spec_.mpirun_env;
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  l.stdin_fd = null_fd;
  auto mpirun = start_guest(l);
  ::close(null_fd);
  if (!mpirun) return make_error("cannot start the node daemons: " + mpirun.error().message);
  mpirun_ = *mpirun;
  daemons_running_ = true;
  watcher.watch(mpirun_.pid);
  mpirun_out_ = std::make_unique<stream_descriptor>(io_, mpirun_.stdout_fd);
  mpirun_err_ = std::make_unique<stream_descriptor>(io_, mpirun_.stderr_fd);
  read_mpirun(*mpirun_out_, mpirun_out_buf_);
  read_mpirun(*mpirun_err_, mpirun_err_buf_);
  return {};
}

// A job on this node alone: its node daemon runs here, on a thread, over
// LocalTransport, and reaches us by the home socket as mosixd does.
Status HomeJob::start_local_daemon(OrphanWatcher& watcher) {
  auto group = LocalTransport::create_group(1);
  if (!group) return make_error("cannot start the node daemon: " + group.error().message);
  NodeDaemonOptions options = *spec_.local_daemon;
  options.home_socket = socket_path_;
  options.in_process = true;
  options.on_guest_started = [&watcher](pid_t pgid) { watcher.watch(pgid); };
  // Our stdin, when the event loop cannot wait on it (a file, /dev/null),
  // is rank 0's own; otherwise it is pumped to rank 0 as on several nodes.
  struct stat st {};
  const bool stdin_open = ::fstat(0, &st) == 0;
  const bool pollable = stdin_open && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
                                       (S_ISCHR(st.st_mode) && ::isatty(0)));
  if (stdin_open && !pollable) {
    options.guest_stdin_fd = 0;
    pump_stdin_ = false;
  }
  daemons_running_ = true;
  local_daemon_ = std::thread([this, transport = std::move((*group)[0]), options = std::move(options)]() mutable {
    const int rc = run_node_daemon(*transport, options);
    transport.reset();
    asio::post(io_, [this, rc] { daemons_ended(W_EXITCODE(rc, 0)); });
  });
  return {};
}

void HomeJob::stop_daemons(int signo) {
  if (!daemons_running_) return;
  if (!spec_.local_daemon) {
    ::kill(-mpirun_.pid, signo);
    return;
  }
  // Ours ends its guests and returns when told to (if it has not connected
  // yet, it is told as soon as it does).
  stop_local_ = true;
  if (home_ && !shutdown_sent_) {
    shutdown_sent_ = true;
    home_->send(Shutdown{"the job is ended"});
  }
}

void HomeJob::wind_down_daemons() {
  if (local_daemon_.joinable()) {
    if (daemons_running_) {
      // The loop ended first (a failed start, a broken link): make sure the
      // node daemon ends, connected or not.
      stop_daemons(SIGKILL);
      if (home_sd_) ::shutdown(home_sd_->native_handle(), SHUT_RDWR);
      listen_sd_.reset();
      ::unlink(socket_path_.c_str());
    }
    local_daemon_.join();
    daemons_running_ = false;
    return;
  }
  if (!daemons_running_) return;
  // Give mpirun a moment to wind the daemons down after Shutdown, then make sure.
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(mpirun_.pid, nullptr, WNOHANG) == mpirun_.pid) {
      daemons_running_ = false;
      return;
    }
    ::usleep(50000);
  }
  ::kill(-mpirun_.pid, SIGKILL);
  ::waitpid(mpirun_.pid, nullptr, 0);
  daemons_running_ = false;
}

void HomeJob::reap_mpirun() {
  int status = 0;
  if (daemons_running_ && !spec_.local_daemon && ::waitpid(mpirun_.pid, &status, WNOHANG) == mpirun_.pid) {
    daemons_ended(status);
  }
}

// The home daemon must connect within a deadline: a daemon that died after
// mpirun let go of it would otherwise leave us waiting forever.
void HomeJob::arm_start_timer() {
  double start_limit = 60;
  if (const char* env = std::getenv("MOSIX_START_TIMEOUT")) start_limit = std::atof(env);
  start_timer_.expires_after(seconds_of(start_limit));
  start_timer_.async_wait([this, start_limit](error_code ec) {
    if (ec || home_ || finished_) return;
    start_failure_ = "the node daemons did not start within " + std::to_string(static_cast<int>(start_limit)) +
                     " s (MOSIX_START_TIMEOUT); mpirun said: " +
                     (mpirun_messages_.empty() ? "nothing" : mpirun_messages_.substr(0, 300));
    stop_daemons(SIGKILL);
    finished_ = true;
    io_.stop();
  });
}

// mpirun's own messages (and the daemons' diagnostics) go to our stderr;
// mosixd --launch's standard output carries its launch events.
void HomeJob::read_mpirun(stream_descriptor& sd, std::array<char, 8192>& buf) {
  sd.async_read_some(asio::buffer(buf), [this, &sd, &buf](error_code ec, size_t n) {
    std::string events_text;
    std::string_view text(buf.data(), n);
    if (spec_.launch_events && &sd == mpirun_out_.get()) {
      events_text = take_launch_events(text, static_cast<bool>(ec));
      text = events_text;
    }
    if (!text.empty()) {
      // Until the home daemon is up, keep mpirun's words: a failed start is
      // summed up in one line rather than mpirun's boxes.
      if (home_) write_mpirun_lines(text, false);
      if (mpirun_messages_.size() < (1u << 16)) mpirun_messages_.append(text);
      find_dead_daemon();
    }
    if (!ec) read_mpirun(sd, buf);
    else if (home_) write_mpirun_lines({}, true);
  });
}

// Launch events, one a line (runtime/core/launch_event.h); the lines that
// are not are returned, as text.
std::string HomeJob::take_launch_events(std::string_view more, bool at_end) {
  launch_partial_.append(more);
  std::string text;
  size_t start = 0;
  for (size_t nl; (nl = launch_partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string_view line(launch_partial_.data() + start, nl + 1 - start);
    if (auto ended = parse_launch_event(line)) {
      daemon_end_reported(*ended);
    } else {
      text += line;
    }
  }
  launch_partial_.erase(0, start);
  if (at_end) {
    text += launch_partial_;
    launch_partial_.clear();
  }
  return text;
}

// A node daemon ended on its own. The home node's own daemon takes the job
// with it (the launcher ends the others); any other one, the home node
// declares lost when it falls silent, as under mpirun --enable-recovery.
void HomeJob::daemon_end_reported(const NodeDaemonEnded& e) {
  const GuestEnd end{e.rank, e.signal != 0, e.signal != 0 ? e.signal : e.exit_status, false};
  const std::string what = "node daemon " + std::to_string(e.rank) + " (pid " + std::to_string(e.pid) + " on " +
                           e.node + ") " + describe_end(end) + (e.ending_others ? "; ending the other node daemons" : "");
  if (e.signal != 0 && e.rank != 0) {
    spdlog::debug("{}", what);
    return;
  }
  if (e.signal != 0 && dead_daemon_ < 0) {
    dead_daemon_ = e.rank;
    dead_daemon_signal_ = e.signal;
  }
  if (mpirun_messages_.size() < (1u << 16)) mpirun_messages_ += what + "\n";
  if (home_) spdlog::error("{}", what);
}

// mpirun's lines go to our stderr whole, but for one: with --enable-recovery
// Open MPI 4.1's PMIx complains of a bad parameter whenever a daemon dies,
// which says nothing to the user (mosixrun says which node died).
void HomeJob::write_mpirun_lines(std::string_view more, bool at_end) {
  mpirun_partial_.append(more);
  size_t start = 0;
  for (size_t nl; (nl = mpirun_partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(mpirun_partial_.data() + start, nl + 1 - start);
    if (line.find("PMIX ERROR: BAD-PARAM") != std::string_view::npos &&
        line.find("pmix_event_notification.c") != std::string_view::npos) {
      continue;
    }
    sys::write_all(2, line.data(), line.size());
  }
  mpirun_partial_.erase(0, start);
  if (at_end && !mpirun_partial_.empty()) {
    sys::write_all(2, mpirun_partial_.data(), mpirun_partial_.size());
    mpirun_partial_.clear();
  }
}

// Open MPI's mpirun reports a daemon that died as "... noticed that process
// rank R with PID P on node H exited on signal S": daemon rank R is node R
// of the job. (mosixd --launch says so in a launch event instead.)
void HomeJob::find_dead_daemon() {
  if (dead_daemon_ >= 0 || spec_.launch_events) return;
  static const std::regex died(
      R"(process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+))");
  std::string flat = mpirun_messages_;
  std::replace(flat.begin(), flat.end(), '\n', ' ');
  std::smatch m;
  // from_chars, not stoi: a number too large for an int (mpirun's text is
  // not ours) must not throw out of the event loop.
  int rank = 0, signal = 0;
  if (std::regex_search(flat, m, died) &&
      std::from_chars(&*m[1].first, &*m[1].first + m[1].length(), rank).ec == std::errc() &&
      std::from_chars(&*m[2].first, &*m[2].first + m[2].length(), signal).ec == std::errc()) {
    dead_daemon_ = rank;
    dead_daemon_signal_ = signal;
  }
}

std::string HomeJob::daemons_status(int status) const {
  const std::string who = spec_.local_daemon ? "" : "mpirun ";
  return who + (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                    : "exit status " + std::to_string(WEXITSTATUS(status)));
}

void HomeJob::daemons_ended(int status) {
  daemons_running_ = false;
  if (finished_) {
    io_.stop();
    return;
  }
  if (!home_) {
    // The daemons never came up: a host that cannot be reached, a node
    // without mosixd, a daemon of another version. Nothing runs anywhere.
    std::string said;
    std::istringstream lines(mpirun_messages_);
    for (std::string line; std::getline(lines, line);) {
      if (line.find_first_not_of("- \t") == std::string::npos) continue;
      said += (said.empty() ? "" : " ") + line;
      if (said.size() > 300) break;
    }
    start_failure_ = "cannot start the node daemon" + std::string(spec_.local_daemon ? "" : "s") + " (" +
                     daemons_status(status) + ")" + (said.empty() ? "" : ": " + said);
    finished_ = true;
    io_.stop();
    return;
  }
  // The daemons are gone before the job ended: say which node died and
  // which copies were lost with it. The copies on the other nodes were ended
  // by mpirun's clean-up: they count as ended by the runtime.
  find_dead_daemon();
  std::string lost, ended;
  for (auto& [rank, r] : ranks_) {
    if (r.ended) continue;
    bool on_dead_node = dead_daemon_ < 0 || r.node == dead_daemon_ || r.node < 0;
    (on_dead_node ? lost : ended) += std::string((on_dead_node ? lost : ended).empty() ? "" : ", ") +
                                     std::to_string(rank);
    r.ended = true;
    r.end.rank = rank;
    r.end.signaled = true;
    r.end.value = SIGKILL;
    r.end.ended_by_runtime = !on_dead_node;
  }
  if (!ending_ || !fatal_.empty()) {
    std::string what = dead_daemon_ >= 0
                           ? "node " + node_name(dead_daemon_) + " died (its node daemon " +
                                 describe_end(GuestEnd{0, true, dead_daemon_signal_, false}) + ")"
                           : "the node daemons ended before the job (" + daemons_status(status) + ")";
    spdlog::error("{}{}; ranks lost: {}{}", fatal_.empty() ? "" : fatal_ + "; ", what,
                  lost.empty() ? "none" : lost, ended.empty() ? "" : "; ended with them: " + ended);
  }
  finished_ = true;
  io_.stop();
}

}  // namespace mosix
