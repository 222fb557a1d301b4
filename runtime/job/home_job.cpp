// HomeJob: the link to the home node's daemon (frames in, orders out), how
// the job ends (mpirun's rules), and the run from start to exit status.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/core/environment.h"
#include "runtime/job/home_job_impl.h"
#include "runtime/sys/runtime_dir.h"
#include "runtime/sys/write_all.h"

namespace mosix {

namespace asio = boost::asio;

HomeJob::HomeJob(HomeJobSpec spec)
    : spec_(std::move(spec)),
      relay_(spec_.tag_output, spec_.output_dir),
      // The nodes signal a copy's process or group as the signal needs.
      signals_(io_, {.signal_copies = [this](int signo, bool) { signal_all(signo); },
                     .end_job = [this](int) { end_job("interrupted"); },
                     .child_exited = [this] { reap_mpirun(); }}),
      timeout_(io_),
      grace_(io_),
      start_timer_(io_) {}

HomeJob::~HomeJob() {
  stop_credit_thread();
  wind_down_daemons();
}

void HomeJob::accept_home() {
  listen_sd_->async_wait(stream_descriptor::wait_read, [this](error_code ec) {
    if (ec) return;
    int fd = ::accept4(listen_sd_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      accept_home();
      return;
    }
    auto uid = peer_uid(fd);
    if (!uid || *uid != ::getuid()) {
      spdlog::warn("refused a connection to the job socket from uid {}: not the job's owner",
                   uid ? std::to_string(*uid) : "unknown");
      ::close(fd);
      accept_home();
      return;
    }
    if (home_) {  // one home daemon per job
      ::close(fd);
      return;
    }
    home_ = std::make_shared<FrameSender>(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (stop_local_) {  // the job was ended before its node daemon had connected
      shutdown_sent_ = true;
      home_->send(Shutdown{"the job is ended"});
      home_sd_ = std::make_unique<stream_descriptor>(io_, fd);
      return;
    }
    start_timer_.cancel();
    start_credit_thread();
    sys::write_all(2, mpirun_messages_.data(), mpirun_messages_.size());
    home_sd_ = std::make_unique<stream_descriptor>(io_, fd);
    // Plain output: the home daemon writes it to our stdout and stderr itself
    // (one copy less and no hop through us); tagged or copied into files, it
    // comes here.
    if (spec_.tag_output || !spec_.output_dir.empty() || ::fcntl(1, F_GETFD) < 0 || ::fcntl(2, F_GETFD) < 0 ||
        !home_->send_with_fds(OutputFds{}, std::array<int, 2>{1, 2})) {
      spdlog::debug("guest output goes through mosixrun");
    }
    for (const SpawnGuest& g : spec_.guests) home_->send(g);
    if (pump_stdin_) start_stdin_pump();
    read_home();
  });
}

void HomeJob::read_home() {
  auto space = home_reader_.space();  // frames are read in place: output is written out from there
  home_sd_->async_read_some(asio::buffer(space.data(), space.size()), [this](error_code ec, size_t n) {
    home_reader_.filled(n);
    for (;;) {
      auto frame = home_reader_.next();
      if (frame && frame->empty()) break;
      std::string bad;
      if (!frame) {
        bad = frame.error().message;
      } else if (guest_output_rank(*frame)) {
        auto out = view_guest_output(*frame);
        if (out) output_from_home(*out); else bad = out.error().message;
      } else {
        auto message = decode_frame(*frame);
        if (message) from_home(std::move(*message)); else bad = message.error().message;
      }
      if (!bad.empty()) {
        fatal_ = "the home node daemon sent a bad frame: " + bad;
        end_job("protocol error");
        return;
      }
    }
    if (record_dirty_) {
      record_dirty_ = false;
      (void)write_job(spec_.record);
    }
    if (ec) {
      if (!finished_ && fatal_.empty()) fatal_ = "lost the home node daemon";
      return;
    }
    read_home();
  });
}

void HomeJob::output_from_home(const GuestOutputView& out) {
  relay_.deliver(out.rank, out.stream == OutputStream::kStderr,
                 reinterpret_cast<const char*>(out.bytes.data()), out.bytes.size());
  // Written out: give the rank's node credit for more, in batches.
  std::uint64_t& done = output_done_[out.rank];
  done += out.bytes.size();
  if (done >= kCreditBatch && home_) {
    post_credit(out.rank, done);
    done = 0;
  }
}

void HomeJob::post_credit(int rank, std::uint64_t bytes) {
  {
    std::lock_guard lock(credit_mu_);
    credit_pending_[rank] += bytes;
  }
  credit_cv_.notify_one();
}

void HomeJob::start_credit_thread() {
  credit_thread_ = std::thread([this] {
    std::unique_lock lock(credit_mu_);
    for (;;) {
      credit_cv_.wait(lock, [this] { return credit_stop_ || !credit_pending_.empty(); });
      if (credit_stop_) return;
      std::map<int, std::uint64_t> batch;
      batch.swap(credit_pending_);
      lock.unlock();
      for (auto [rank, bytes] : batch) home_->send(OutputCredit{rank, bytes});
      lock.lock();
    }
  });
}

void HomeJob::stop_credit_thread() {
  {
    std::lock_guard lock(credit_mu_);
    credit_stop_ = true;
  }
  credit_cv_.notify_one();
  if (credit_thread_.joinable()) credit_thread_.join();
}

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};

void HomeJob::from_home(Message message) {
  if (body_message(message)) return;
  std::visit(Overloaded{
                 [this](GuestOutput& out) { output_from_home(GuestOutputView{out.rank, out.stream, out.bytes}); },
                 [this](Hello& hello) {
                   node_names_[static_cast<int>(hello.rank)] = hello.node_name;
                   spdlog::debug("node {} is {} (speed {:.2f}, {} cores)", hello.rank, hello.node_name, hello.speed,
                                 hello.cores);
                   hellos_[static_cast<int>(hello.rank)] = std::move(hello);
                 },
                 [this](GuestStarted& started) { guest_started(started); },
                 // A guest asked for new guests of the job (the spawn
                 // service): they count as copies from now on.
                 [this](SpawnGuest& spawned) { guest_spawned(spawned); },
                 [this](GuestExited& exited) { rank_ended(exited.rank, exited); },
                 [this](LoadReport& load) {
                   for (const LoadEntry& e : load.entries) loads_[static_cast<int>(e.node)] = e;
                 },
                 [this](MigrateResult& moved) { migration_ended(moved); },
                 [this](MigrateProgress& step) { migration_progress(step); },
                 [this](NodeLost& lost) {
                   restarting_ = std::move(lost.restarting);
                   node_lost(static_cast<int>(lost.node));
                 },
                 [this](BalanceReport& report) { balance_report(report); },
                 [this](Shutdown& bye) {
                   fatal_ = bye.reason;
                   end_job("the home node daemon gave up");
                 },
                 [](auto&) {},  // nothing else comes this way
             },
             message);
}

void HomeJob::guest_started(const GuestStarted& started) {
  Rank& r = ranks_[started.rank];
  r.started = true;
  r.suspended = false;
  r.node = static_cast<int>(started.node);
  r.pid = started.pid;
  for (GuestRecord& g : spec_.record.guests) {
    if (g.rank == started.rank) {
      g.pid = started.pid;
      g.node = node_name(r.node);
      g.state = "running";
    }
  }
  record_dirty_ = true;
  if (end_signaled_) {
    // It started after the job's end was signalled: it is ended too.
    home_->send(GuestSignal{started.rank, SIGTERM, end_cpu_us_});
    home_->send(GuestSignal{started.rank, SIGCONT, end_cpu_us_});
  }
  end_when_started();
}

// The home node announces each guest it starts for another guest before
// that guest's own end can reach us: the job waits for the new one too.
void HomeJob::guest_spawned(const SpawnGuest& spawned) {
  if (ranks_.count(spawned.rank)) return;
  if (Status s = relay_.open_files(spawned.rank); !s) spdlog::warn("rank {}: {}", spawned.rank, s.error().message);
  ranks_[spawned.rank].end.rank = spawned.rank;
  ranks_[spawned.rank].spawned = true;
  ranks_[spawned.rank].flags = spawned.flags;
  if (spawned.flags & kSpawnMpi) {  // MPI_Comm_spawn's children stay, as the job's MPI copies
    ranks_[spawned.rank].pinned = true;
    ranks_[spawned.rank].cantmove = kMpiCantMove;
    // --tag-output names them as mpirun does: [2,0] is the first spawn's rank 0.
    auto first = get_env(spawned.env, "MOSIX_SPAWN_RANKS");
    auto vpid = get_env(spawned.env, "OMPI_COMM_WORLD_RANK");
    if (first && vpid) {
      const int spawn = std::atoi(first->c_str());
      auto [it, added] = mpi_spawn_jobs_.try_emplace(spawn, static_cast<int>(mpi_spawn_jobs_.size()) + 2);
      relay_.set_tag(spawned.rank, it->second, std::atoi(vpid->c_str()));
    }
  }
  if (spawned.flags & kSpawnOneOutput) {
    // A PVM task: its id is PVM's for its rank (host 1, local part rank + 1,
    // compat/pvm/pack.h); MOSIX_PVM_OUTPUT=catchout when its spawner called
    // pvm_catchout.
    relay_.set_pvm_task(spawned.rank, 0x40000 | ((spawned.rank + 1) & 0x3ffff),
                        get_env(spawned.env, "MOSIX_PVM_OUTPUT").value_or("") == "catchout");
  }
  spec_.record.guests.push_back(GuestRecord{spawned.rank, 0, "", "starting", -1});
  record_dirty_ = true;
}

// A body's announcement, start and end: shown by ps and mon, and nothing
// else (its output and end go to its deputy). Its moves are any guest's.
bool HomeJob::body_message(const Message& message) {
  if (auto* s = std::get_if<SpawnGuest>(&message); s && (s->flags & kSpawnBody)) {
    body_ranks_.insert(s->rank);
    Rank& b = bodies_[s->rank];
    if (auto parent = get_env(s->env, "MOSIX_PARENT_RANK")) b.parent = std::atoi(parent->c_str());
    for (const std::string& arg : s->argv) b.command += (b.command.empty() ? "" : " ") + arg;
    return true;
  }
  int rank = -1;
  if (auto* started = std::get_if<GuestStarted>(&message)) rank = started->rank;
  else if (auto* exited = std::get_if<GuestExited>(&message)) rank = exited->rank;
  if (rank < 0 || !body_ranks_.count(rank)) return false;
  auto it = bodies_.find(rank);
  if (it == bodies_.end()) return true;  // ended already
  if (auto* started = std::get_if<GuestStarted>(&message)) {
    it->second.started = true;
    it->second.node = static_cast<int>(started->node);
    it->second.pid = started->pid;
  } else {
    bodies_.erase(it);
  }
  return true;
}

// --pty: each new size of our terminal goes to the rank's own terminal.
void HomeJob::watch_terminal_size(int rank) {
  if (!resized_) resized_ = std::make_unique<asio::signal_set>(io_, SIGWINCH);
  resized_->async_wait([this, rank](error_code ec, int) {
    if (ec) return;
    struct winsize size {};
    if (home_ && ::ioctl(0, TIOCGWINSZ, &size) == 0) home_->send(PtyResize{rank, size.ws_row, size.ws_col});
    watch_terminal_size(rank);
  });
}

HomeJob::Rank* HomeJob::find_guest(int rank) {
  if (auto it = ranks_.find(rank); it != ranks_.end()) return &it->second;
  if (auto it = bodies_.find(rank); it != bodies_.end()) return &it->second;
  return nullptr;
}

// Progress comes from the target straight home, the result through the
// source: a late word on a migration that has ended is dropped.
void HomeJob::migration_progress(const MigrateProgress& step) {
  auto it = ranks_.find(step.rank);
  if (it == ranks_.end() || it->second.ended || ended_migrations_.count(step.migration_id)) return;
  auto mib = [](std::uint64_t b) { return std::to_string((b + (1u << 19)) >> 20); };
  Rank& r = it->second;
  r.migrating = true;  // also when the balancer moves it
  switch (step.phase) {
    case MigratePhase::kCheckpoint: r.progress = "checkpoint: " + mib(step.bytes) + " MiB written"; break;
    case MigratePhase::kTransfer:
      // Pre-copy rounds say no total: the guest runs, and what it writes
      // meanwhile goes again.
      r.progress = step.total == 0 ? "pre-copy: " + mib(step.bytes) + " MiB sent while it runs"
                                   : "transfer: " + mib(step.bytes) + " of " + mib(step.total) + " MiB";
      break;
    case MigratePhase::kRestore:
      r.progress = step.total < (1u << 20) ? std::string("restore") : "restore: " + mib(step.total) + " MiB";
      break;
  }
}

void HomeJob::balance_report(BalanceReport& report) {
  for (GuestDecision& d : report.guests) {
    auto it = ranks_.find(d.rank);
    if (it == ranks_.end() || it->second.node != static_cast<int>(report.node)) continue;
    // The balancer numbers nodes ("best node 2 (load ...)"); users know names.
    for (const auto& [id, name] : node_names_) {
      std::string number = "node " + std::to_string(id) + " (";
      for (auto at = d.explanation.find(number); at != std::string::npos; at = d.explanation.find(number, at)) {
        d.explanation.replace(at, number.size(), name + " (");
      }
    }
    it->second.decision = std::move(d);
  }
}

void HomeJob::rank_ended(int rank, const GuestExited& e) {
  Rank& r = ranks_[rank];
  if (r.ended) return;
  if (!e.suspended_image.empty() && !ending_) return suspend(rank, e);
  r.suspended = false;
  r.ended = true;
  r.end.rank = rank;
  r.end.signaled = e.term_signal != 0;
  r.end.value = e.term_signal != 0 ? e.term_signal : e.exit_code;
  // Only its node knows whether our signal reached it while it ran: a copy
  // that ended of SIGTERM or SIGKILL on its own keeps that end.
  r.end.ended_by_runtime = e.runtime_signaled && ended_by_our_signal(r.end);
  spdlog::debug("rank {} {}{}", rank, describe_end(r.end), r.end.ended_by_runtime ? " (ended by us)" : "");
  relay_.finish(rank);
  for (GuestRecord& g : spec_.record.guests) {
    if (g.rank == rank) {
      g.state = "exited";
      g.exit_code = shell_status(r.end);
    }
  }
  if (is_failure(r.end) && !ending_) {
    if (!spec_.keep_going) {
      spdlog::error("rank {} (pid {}) on {} {}; ending the job (--keep-going lets the others finish)",
                    rank, r.pid, node_name(r.node), describe_end(r.end));
      end_cpu_us_ = catch_up_cpu_us(e.cpu_us);
      end_job("a copy failed", true);
    } else {
      spdlog::warn("rank {} (pid {}) on {} {}", rank, r.pid, node_name(r.node), describe_end(r.end));
    }
  }
  end_when_started();
  maybe_finish();
}

// The home node declared a node gone (it stopped answering). The copies it
// held are lost: with mpirun's rule they end the job (they count as killed
// by SIGKILL), unless --keep-going. A node that held none changes nothing.
void HomeJob::node_lost(int node) {
  std::string what = "node " + node_name(node) + " died (no word from its node daemon for " +
                     fmt::format("{}", spec_.node_timeout) + " s)";
  std::string lost, restarting;
  std::map<int, int> restart_on;
  for (const RankRestart& rr : restarting_) restart_on[rr.rank] = static_cast<int>(rr.node);
  for (auto& [rank, r] : ranks_) {
    if (r.ended || r.node != node) continue;
    if (auto it = restart_on.find(rank); it != restart_on.end()) {
      // Back from its last checkpoint: what it wrote since then comes again.
      restarting += std::string(restarting.empty() ? "" : ", ") + std::to_string(rank) + " on " +
                    node_name(it->second);
      r.node = it->second;
      r.pid = 0;
      r.migrating = false;
      r.last_migration = "restarted from its last checkpoint on " + node_name(it->second) + " (its node died)";
      continue;
    }
    lost += (lost.empty() ? "" : ", ") + std::to_string(rank);
    r.ended = true;
    r.end.rank = rank;
    r.end.signaled = true;
    r.end.value = SIGKILL;
    r.end.ended_by_runtime = false;
    relay_.finish(rank);
    for (GuestRecord& g : spec_.record.guests) {
      if (g.rank == rank) {
        g.state = "lost";
        g.exit_code = shell_status(r.end);
      }
    }
  }
  if (!restarting.empty()) {
    spdlog::warn("{}; restarting from their last checkpoints: rank{} {} (output since then is repeated)", what,
                 restart_on.size() == 1 ? "" : "s", restarting);
  }
  if (lost.empty()) {
    if (restarting.empty()) spdlog::warn("{}; no copy of the job was on it: the job goes on", what);
    return;
  }
  bool end = !spec_.keep_going && !ending_;
  spdlog::error("{}; ranks lost: {}{}", what, lost, end ? "; ending the job (--keep-going lets the others finish)" : "");
  if (end) end_job("a node died", true);
  end_when_started();
  maybe_finish();
}

void HomeJob::maybe_finish() {
  for (const auto& [rank, r] : ranks_) {
    if (!r.ended && !r.suspended) return;
  }
  if (end_suspended()) return;
  end_waits_ = false;  // nothing left to end
  if (!shutdown_sent_ && home_) {
    shutdown_sent_ = true;
    home_->send(Shutdown{"the job is over"});
  }
  finished_ = true;
  if (!daemons_running_) io_.stop();
}

void HomeJob::signal_all(int signo, std::uint64_t not_before_cpu_us) {
  if (spec_.local_daemon && signo == SIGSTOP) {
    // SIGTSTP: we stop ourselves right after this, our node daemon's thread
    // with us, so the copies are stopped here first (all are our children).
    for (const auto& [rank, r] : ranks_) {
      if (r.started && !r.ended && r.pid > 0) ::kill(-r.pid, SIGSTOP);
    }
  }
  if (home_) home_->send(GuestSignal{kAllRanks, signo, not_before_cpu_us});
}

bool HomeJob::all_seen_started() const {
  for (const auto& [rank, r] : ranks_) {
    if (!r.started && !r.ended) return false;
  }
  return true;
}

void HomeJob::end_job(const char* why, bool wait_for_starts) {
  if (ending_) {
    // An interrupt, a timeout or a fault does not wait for copies to start.
    if (end_waits_ && !wait_for_starts) {
      spdlog::debug("ending the job now: {}", why);
      end_waits_ = false;
      end_cpu_us_ = 0;
      signal_end();
    } else if (end_signaled_ && end_cpu_us_ > 0 && !wait_for_starts) {
      // No copy waits any longer to catch up with the failed one.
      spdlog::debug("ending the job now: {}", why);
      end_cpu_us_ = 0;
      signal_all(0);
    }
    return;
  }
  ending_ = true;
  spdlog::debug("ending the job: {}", why);
  if (wait_for_starts && home_) {
    end_waits_ = true;
    end_when_started();
    return;
  }
  signal_end();
}

// A copy still starting when the first failure is seen would be ended before
// it got as far as the failed one: the job's end waits until every copy has
// been seen started. Then each node holds it for its copies until each has
// run as far as the failed copy (GuestSignal::not_before_cpu_us).
void HomeJob::end_when_started() {
  if (!end_waits_ || !all_seen_started()) return;
  spdlog::debug("ending the job; each copy gets it once it has used {} ms of CPU time or waits", end_cpu_us_ / 1000);
  end_waits_ = false;
  signal_end();
}

void HomeJob::signal_end() {
  if (end_signaled_) return;
  end_signaled_ = true;
  signal_all(SIGTERM, end_cpu_us_);
  signal_all(SIGCONT, end_cpu_us_);
  grace_.expires_after(seconds_of(spec_.kill_grace_seconds));
  grace_.async_wait([this](error_code ec) {
    if (ec) return;
    signal_all(SIGKILL);  // and what is held goes first: the grace bounds the wait
    if (!fatal_.empty() || !home_) {
      // Nobody will report the ends: stop the daemons themselves.
      stop_daemons(SIGTERM);
    }
  });
  if (!home_) stop_daemons(SIGTERM);
}

void HomeJob::start_stdin_pump() {
  bool stdin_open = ::fcntl(0, F_GETFD) >= 0;
  std::thread([home = home_, stdin_open] {
    std::vector<char> buf(1 << 16);
    for (;;) {
      ssize_t n = stdin_open ? ::read(0, buf.data(), buf.size()) : 0;
      if (n < 0 && errno == EINTR) continue;
      GuestStdin in;
      in.rank = 0;
      if (n <= 0) {
        in.eof = true;
        home->send(in);
        return;
      }
      in.bytes.assign(buf.data(), buf.data() + n);
      if (!home->send(in)) return;
    }
  }).detach();
}

// The job's sockets: the control socket (mosixctl) and the home socket the
// home node's daemon connects to, in a 0700 directory of this job.
Status HomeJob::open_sockets() {
  auto dir = sys::runtime_dir();
  if (!dir) return dir.error();
  auto sockets = job_socket_dir(spec_.record.id);
  if (!sockets) return sockets.error();
  socket_dir_ = *sockets;
  socket_path_ = socket_dir_ + "/home.sock";
  auto server = ControlServer::start(
      io_, socket_dir_ + "/control.sock",
      AsyncControlHandler([this](const nlohmann::json& r, ControlReply reply) { control_async(r, std::move(reply)); }));
  if (!server) return server.error();
  control_ = std::move(*server);
  spec_.record.control_socket = control_->path();
  auto listen_fd = listen_unix(socket_path_);
  if (!listen_fd) return listen_fd.error();
  listen_sd_ = std::make_unique<stream_descriptor>(io_, *listen_fd);
  return {};
}

Expected<int> HomeJob::run() {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTTIN, SIG_IGN);
  if (Status s = open_sockets(); !s) return s.error();
  for (const SpawnGuest& g : spec_.guests) {
    if (Status s = relay_.open_files(g.rank); !s) return s.error();
    ranks_[g.rank].end.rank = g.rank;
    ranks_[g.rank].flags = g.flags;
    if (g.flags & kSpawnPty) {
      ranks_[g.rank].pinned = true;
      ranks_[g.rank].cantmove = kPtyCantMove;
    } else if (g.flags & kSpawnPinned) {
      ranks_[g.rank].pinned = true;
      ranks_[g.rank].cantmove = "pinned (--pin)";
    } else if (g.flags & kSpawnMpi) {
      // Its peers hold sockets and shared memory with it: it stays until
      // checkpoints of a whole MPI job exist.
      ranks_[g.rank].pinned = true;
      ranks_[g.rank].cantmove = kMpiCantMove;
    }
    spec_.record.guests.push_back(GuestRecord{g.rank, 0, "", "starting", -1});
  }

  auto watcher = OrphanWatcher::start();
  if (!watcher) return watcher.error();
  watcher->remove_sockets_at_death(socket_dir_);  // killed: the daemons and the job's sockets go
  if (Status s = spec_.local_daemon ? start_local_daemon(*watcher) : start_mpirun(*watcher); !s) return s.error();
  spec_.record.start_time = static_cast<long>(::time(nullptr));
  if (Status s = write_job(spec_.record); !s) {
    spdlog::warn("mosixctl will not see this job: {}", s.error().message);
  }
  accept_home();
  arm_start_timer();
  signals_.start();
  for (const SpawnGuest& g : spec_.guests) {
    if ((g.flags & kSpawnPty) && ::isatty(0)) watch_terminal_size(g.rank);
  }
  if (spec_.timeout_seconds > 0) {
    timeout_.expires_after(seconds_of(spec_.timeout_seconds));
    timeout_.async_wait([this](error_code ec) {
      if (ec) return;
      if (ending_ && !end_waits_) {
        if (end_cpu_us_ > 0) end_job("timeout");  // a copy still catching up is ended now
        return;
      }
      timed_out_ = true;
      spdlog::error("the job ran longer than --timeout {} s; ending it", spec_.timeout_seconds);
      end_job("timeout");
    });
  }
  reap_mpirun();
  if (daemons_running_ || !finished_) io_.run();
  stop_credit_thread();
  wind_down_daemons();
  remove_job(spec_.record.id);
  ::unlink(socket_path_.c_str());
  control_.reset();
  ::rmdir(socket_dir_.c_str());
  watcher->release();
  return exit_status();
}

Expected<int> HomeJob::exit_status() {
  // A --timeout that fires while the daemons are still starting ends the
  // start too: the timeout is the cause, and mpirun's status for it is 110.
  if (timed_out_) return kTimeoutExitStatus;
  if (!start_failure_.empty()) return make_error(start_failure_);
  std::vector<GuestEnd> ends;
  for (const auto& [rank, r] : ranks_) {
    // A guest started for another one and ended by a signal through the
    // runtime (pvm_kill of a PVM task) was ended by its own job, as asked.
    if (r.spawned && r.end.ended_by_runtime && !ending_) continue;
    ends.push_back(r.end);
  }
  if (signals_.interrupted()) return kInterruptedExitStatus;
  if (!fatal_.empty() && !std::any_of(ends.begin(), ends.end(), is_failure)) {
    spdlog::error("{}", fatal_);
    return 1;
  }
  return job_exit_status(ends);
}

Expected<int> run_home_job(HomeJobSpec spec) {
  HomeJob job(std::move(spec));
  return job.run();
}

}  // namespace mosix
