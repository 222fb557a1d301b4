#include "runtime/daemon/remote_job.h"

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "runtime/core/exit_rule.h"
#include "runtime/daemon/control.h"
#include "runtime/daemon/job_signals.h"
#include "runtime/daemon/frame_socket.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/daemon/orphan_watcher.h"
#include "runtime/daemon/output_relay.h"
#include "runtime/transport/local/local_transport.h"

namespace mosix {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

class RemoteJob {
 public:
  explicit RemoteJob(RemoteJobSpec spec)
      : spec_(std::move(spec)),
        relay_(spec_.tag_output, spec_.output_dir),
        // The nodes signal a copy's process or group as the signal needs.
        signals_(io_, {.signal_copies = [this](int signo, bool) { signal_all(signo); },
                       .end_job = [this](int) { end_job("interrupted"); },
                       .child_exited = [this] { reap_mpirun(); }}),
        timeout_(io_),
        grace_(io_) {}

  Expected<int> run();

 private:
  struct Rank {
    bool started = false;
    std::chrono::steady_clock::time_point started_at;  // when its GuestStarted came
    bool ended = false;
    GuestEnd end;
    int node = -1;
    int pid = 0;
    bool migrating = false;
    std::string cantmove;        // why its last migration was refused, if it was the guest's doing
    std::string last_migration;  // one line on its last migration
    bool pinned = false;         // --pin
    std::string progress;        // while it moves: how far ("transfer: 300 of 1024 MiB")
    int moves = 0;               // migrations that moved it
    int balancer_moves = 0;      // of which the node daemons decided on their own
    GuestDecision decision;      // its node's last rebalancing verdict
  };
  struct PendingMigration {
    ControlReply reply;
    int from = -1;
    std::chrono::steady_clock::time_point started;
  };

  void accept_home();
  void read_home();
  void from_home(Message message);
  void output_from_home(const GuestOutputView& out);
  void read_mpirun(asio::posix::stream_descriptor& sd, std::array<char, 8192>& buf);
  void start_stdin_pump();
  void signal_all(int signo);
  // Ends the job: SIGTERM to every copy, SIGKILL after the grace period.
  // For a copy's failure (wait_for_starts) the signals wait until every copy
  // has been seen started and has run as long as the failed copy had (see
  // end_when_started): copies that fail together all count, as under mpirun.
  void end_job(const char* why, bool wait_for_starts = false);
  void signal_end();
  void end_when_started();
  bool all_seen_started() const;
  bool end_waits_ = false;     // the job is ending, its signals wait (end_when_started)
  bool end_signaled_ = false;  // signal_end() has run
  std::chrono::steady_clock::duration failed_ran_{};  // how long the copy that ended the job ran
  void rank_ended(int rank, const GuestExited& e);
  void maybe_finish();
  // The node daemons have ended: mpirun (or mosixd --launch) with `status`,
  // or our own node daemon's thread (its exit code as a wait status).
  void daemons_ended(int status);
  std::string daemons_status(int status) const;
  // Ends the node daemons whatever they are doing: a signal to mpirun's
  // group, or Shutdown to our own node daemon (it ends its guests and returns).
  void stop_daemons(int signo);
  bool stop_local_ = false;
  Status start_local_daemon(OrphanWatcher& watcher);
  Status start_mpirun(OrphanWatcher& watcher);
  std::thread local_daemon_;
  bool pump_stdin_ = true;     // false: rank 0 reads our stdin itself
  bool record_dirty_ = false;  // the job's record changed: written after this batch of frames
  void find_dead_daemon();
  void node_lost(int node);
  void write_mpirun_lines(std::string_view more, bool at_end);
  std::vector<RankRestart> restarting_;  // of the node being declared lost
  std::set<std::uint64_t> ended_migrations_;
  std::string mpirun_partial_;  // the start of a line mpirun has not finished
  void reap_mpirun();
  std::string node_name(int node) const {
    auto it = node_names_.find(node);
    return it == node_names_.end() ? "node " + std::to_string(node) : it->second;
  }

  RemoteJobSpec spec_;
  OutputRelay relay_;
  asio::io_context io_;
  JobSignals signals_;
  asio::steady_timer timeout_, grace_, start_timer_{io_}, end_hold_{io_};
  std::unique_ptr<asio::posix::stream_descriptor> listen_sd_, home_sd_, mpirun_out_, mpirun_err_;
  std::array<char, 8192> mpirun_out_buf_{}, mpirun_err_buf_{};
  std::unique_ptr<FrameSender> home_;
  FrameReader home_reader_;
  std::string socket_dir_, socket_path_;
  GuestProcess mpirun_;
  bool daemons_running_ = false;
  int mpirun_status_ = 0;
  std::map<int, Rank> ranks_;
  std::map<int, std::string> node_names_;
  std::map<int, Hello> hellos_;
  std::map<int, LoadEntry> loads_;
  std::map<int, std::uint64_t> output_done_;  // written out, not yet credited, per rank
  static constexpr std::uint64_t kCreditBatch = 256u << 10;
  // Credits go out from a thread of their own: the event loop must never
  // block on the socket (the home daemon may be blocked writing to us while
  // the stdin pump fills the other direction).
  std::mutex credit_mu_;
  std::condition_variable credit_cv_;
  std::map<int, std::uint64_t> credit_pending_;
  bool credit_stop_ = false;
  std::thread credit_thread_;
  void post_credit(int rank, std::uint64_t bytes) {
    {
      std::lock_guard lock(credit_mu_);
      credit_pending_[rank] += bytes;
    }
    credit_cv_.notify_one();
  }
  void start_credit_thread() {
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
  void stop_credit_thread() {
    {
      std::lock_guard lock(credit_mu_);
      credit_stop_ = true;
    }
    credit_cv_.notify_one();
    if (credit_thread_.joinable()) credit_thread_.join();
  }
  std::string mpirun_messages_;
  std::string start_failure_;   // what mpirun said, to find a dead daemon in it
  int dead_daemon_ = -1;
  int dead_daemon_signal_ = 0;
  std::unique_ptr<ControlServer> control_;
  nlohmann::json control(const nlohmann::json& request);
  void control_async(const nlohmann::json& request, ControlReply reply);
  void migrate(const nlohmann::json& request, ControlReply reply);
  void migration_ended(const MigrateResult& result);
  std::map<std::uint64_t, PendingMigration> migrations_;
  std::uint64_t next_migration_ = 1;
  bool ending_ = false, timed_out_ = false, finished_ = false;
  bool shutdown_sent_ = false;
  std::string fatal_;
};

void RemoteJob::accept_home() {
  listen_sd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
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
    home_ = std::make_unique<FrameSender>(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (stop_local_) {  // the job was ended before its node daemon had connected
      shutdown_sent_ = true;
      home_->send(Shutdown{"the job is ended"});
      home_sd_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
      return;
    }
    start_timer_.cancel();
    start_credit_thread();
    write_all(2, mpirun_messages_.data(), mpirun_messages_.size());
    home_sd_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
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

void RemoteJob::read_home() {
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

void RemoteJob::output_from_home(const GuestOutputView& out) {
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

void RemoteJob::from_home(Message message) {
  if (auto* out = std::get_if<GuestOutput>(&message)) {
    output_from_home(GuestOutputView{out->rank, out->stream, out->bytes});
  } else if (auto* hello = std::get_if<Hello>(&message)) {
    node_names_[static_cast<int>(hello->rank)] = hello->node_name;
    hellos_[static_cast<int>(hello->rank)] = *hello;
    spdlog::debug("node {} is {} (speed {:.2f}, {} cores)", hello->rank, hello->node_name,
                  hello->speed, hello->cores);
  } else if (auto* started = std::get_if<GuestStarted>(&message)) {
    Rank& r = ranks_[started->rank];
    if (!r.started) r.started_at = std::chrono::steady_clock::now();
    r.started = true;
    r.node = static_cast<int>(started->node);
    r.pid = started->pid;
    for (GuestRecord& g : spec_.record.guests) {
      if (g.rank == started->rank) {
        g.pid = started->pid;
        g.node = node_name(r.node);
        g.state = "running";
      }
    }
    record_dirty_ = true;
    if (end_signaled_) {
      // It started after the job's end was signalled: it is ended too.
      home_->send(GuestSignal{started->rank, SIGTERM});
      home_->send(GuestSignal{started->rank, SIGCONT});
    }
    end_when_started();
  } else if (auto* exited = std::get_if<GuestExited>(&message)) {
    rank_ended(exited->rank, *exited);
  } else if (auto* load = std::get_if<LoadReport>(&message)) {
    for (const LoadEntry& e : load->entries) loads_[static_cast<int>(e.node)] = e;
  } else if (auto* moved = std::get_if<MigrateResult>(&message)) {
    migration_ended(*moved);
  } else if (auto* step = std::get_if<MigrateProgress>(&message)) {
    // Progress comes from the target straight home, the result through the
    // source: a late word on a migration that has ended is dropped.
    if (auto it = ranks_.find(step->rank);
        it != ranks_.end() && !it->second.ended && !ended_migrations_.count(step->migration_id)) {
      auto mib = [](std::uint64_t b) { return std::to_string((b + (1u << 19)) >> 20); };
      Rank& r = it->second;
      r.migrating = true;  // also when the balancer moves it
      switch (step->phase) {
        case MigratePhase::kCheckpoint: r.progress = "checkpoint: " + mib(step->bytes) + " MiB written"; break;
        case MigratePhase::kTransfer:
          r.progress = "transfer: " + mib(step->bytes) + " of " + mib(step->total) + " MiB";
          break;
        case MigratePhase::kRestore: r.progress = "restore: " + mib(step->total) + " MiB"; break;
      }
    }
  } else if (auto* lost = std::get_if<NodeLost>(&message)) {
    restarting_ = lost->restarting;
    node_lost(static_cast<int>(lost->node));
  } else if (auto* report = std::get_if<BalanceReport>(&message)) {
    for (GuestDecision& d : report->guests) {
      if (auto it = ranks_.find(d.rank); it != ranks_.end() && it->second.node == static_cast<int>(report->node)) {
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
  } else if (auto* bye = std::get_if<Shutdown>(&message)) {
    fatal_ = bye->reason;
    end_job("the home node daemon gave up");
  }
}

nlohmann::json RemoteJob::control(const nlohmann::json& request) {
  std::string cmd = request.value("cmd", "");
  if (cmd == "ps") {
    nlohmann::json guests = nlohmann::json::array();
    for (const auto& [rank, r] : ranks_) {
      // Guests of a virtual cluster run on this machine: read their CPU time here.
      double cpu = r.pid > 0 && !r.ended ? process_cpu_seconds(r.pid) : -1;
      std::string state = r.ended ? "exited" : !r.started ? "starting"
                                       : r.migrating                 ? "migrating"
                                       : process_state(r.pid) == 'T' ? "stopped"
                                                                     : "running";
      guests.push_back({{"rank", rank}, {"pid", r.pid}, {"home", spec_.record.home_node},
                        {"node", r.node >= 0 ? node_name(r.node) : ""}, {"state", state},
                        {"cpu_seconds", cpu},
                        {"exit_status", r.ended ? shell_status(r.end) : -1},
                        {"cantmove", r.cantmove}, {"last_migration", r.last_migration},
                        {"migrations", r.moves}, {"balancer_migrations", r.balancer_moves},
                        {"migration_progress", r.migrating ? r.progress : ""},
                        {"decision", {{"verdict", r.decision.verdict}, {"explanation", r.decision.explanation}}}});
    }
    return {{"ok", true}, {"job", spec_.record.id}, {"guests", guests}};
  }
  if (cmd == "nodes") {
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& [id, h] : hellos_) {
      int guests = 0;
      for (const auto& [rank, r] : ranks_) guests += r.node == id && !r.ended;
      auto load = loads_.find(id);
      nodes.push_back({{"node", id}, {"name", h.node_name}, {"speed", h.speed}, {"cores", h.cores},
                       {"load", load == loads_.end() ? 0.0 : load->second.load},
                       {"free_memory", load == loads_.end() ? 0 : load->second.free_memory},
                       {"memory", h.memory_bytes}, {"guests", guests}});
    }
    return {{"ok", true}, {"job", spec_.record.id}, {"nodes", nodes}};
  }
  return {{"ok", false}, {"error", "unknown request '" + cmd + "'"}};
}

void RemoteJob::control_async(const nlohmann::json& request, ControlReply reply) {
  if (request.value("cmd", "") == "migrate") {
    migrate(request, std::move(reply));
  } else {
    reply(control(request));
  }
}

// {"cmd":"migrate","rank":R,"to":"vnode2"|"home"|"best"}: answered when the
// migration has ended, with what it moved and how long the guest was stopped.
void RemoteJob::migrate(const nlohmann::json& request, ControlReply reply) {
  auto refuse = [&reply](const std::string& why) { reply({{"ok", false}, {"error", why}}); };
  if (!request.contains("rank") || !request["rank"].is_number_integer()) {
    refuse("migrate needs \"rank\": a number");
    return;
  }
  int rank = request["rank"].get<int>();
  std::string to = request.value("to", "best");
  auto it = ranks_.find(rank);
  if (it == ranks_.end()) return refuse("this job has no rank " + std::to_string(rank));
  Rank& r = it->second;
  if (r.ended) return refuse("rank " + std::to_string(rank) + " has exited");
  if (!r.started || !home_) return refuse("rank " + std::to_string(rank) + " has not started yet");
  if (r.migrating) return refuse("rank " + std::to_string(rank) + " is already moving");
  if (r.pinned) return refuse("rank " + std::to_string(rank) + " is pinned (mosixrun --pin): it never moves");
  int target = -1;
  if (to == "home") {
    target = 0;
  } else if (to == "best") {
    // The least loaded other node, by what the nodes last reported.
    double best = 0;
    for (const auto& [id, h] : hellos_) {
      if (id == r.node) continue;
      auto load = loads_.find(id);
      double l = load == loads_.end() ? 0.0 : load->second.load;
      if (target < 0 || l < best) {
        target = id;
        best = l;
      }
    }
    if (target < 0) return refuse("this job has no other node to move rank " + std::to_string(rank) + " to");
  } else {
    for (const auto& [id, name] : node_names_) {
      if (name == to) target = id;
    }
    if (target < 0) {
      std::string names;
      for (const auto& [id, name] : node_names_) names += (names.empty() ? "" : ", ") + name;
      return refuse("no node '" + to + "' in this job (its nodes: " + names + "; or home, best)");
    }
  }
  if (target == r.node) {
    return refuse("rank " + std::to_string(rank) + " already runs on " + node_name(target));
  }
  std::uint64_t id = next_migration_++;
  r.migrating = true;
  migrations_[id] = PendingMigration{std::move(reply), r.node, std::chrono::steady_clock::now()};
  MigrateRequest m;
  m.migration_id = id;
  m.rank = rank;
  m.target_node = static_cast<std::uint32_t>(target);
  spdlog::debug("rank {}: moving from {} to {}", rank, node_name(r.node), node_name(target));
  home_->send(m);
}

void RemoteJob::migration_ended(const MigrateResult& m) {
  Rank& r = ranks_[m.rank];
  r.migrating = false;
  r.progress.clear();
  ended_migrations_.insert(m.migration_id);
  auto pending = migrations_.find(m.migration_id);
  int from = static_cast<int>(m.source_node);
  double total_ms = pending == migrations_.end()
                        ? 0.0
                        : std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                                    pending->second.started)
                              .count();
  nlohmann::json reply;
  if (m.ok) {
    r.cantmove.clear();
    if (!r.ended) {
      r.node = static_cast<int>(m.target_node);
      r.pid = m.pid;
    }
    for (GuestRecord& g : spec_.record.guests) {
      if (g.rank == m.rank && !r.ended) {
        g.pid = m.pid;
        g.node = node_name(r.node);
      }
    }
    record_dirty_ = true;
    ++r.moves;
    // A move nobody here asked for was the balancer's (runtime/core/balancer.h).
    if (pending == migrations_.end()) ++r.balancer_moves;
    r.last_migration = std::string(pending == migrations_.end() ? "balancer moved it" : "moved") + " from " +
                       node_name(from) + " to " + node_name(static_cast<int>(m.target_node));
    reply = {{"ok", true}, {"rank", m.rank}, {"from", node_name(from)},
             {"to", node_name(static_cast<int>(m.target_node))}, {"pid", m.pid}, {"bytes", m.bytes},
             {"stopped_ms", m.stopped_ms}, {"total_ms", total_ms}};
  } else {
    if (m.cantmove) r.cantmove = m.reason;
    r.last_migration = "stayed on " + node_name(from) + ": " + m.reason;
    reply = {{"ok", false}, {"rank", m.rank}, {"from", node_name(from)},
             {"to", node_name(static_cast<int>(m.target_node))}, {"cantmove", m.cantmove},
             {"error", "rank " + std::to_string(m.rank) + " stays on " + node_name(from) + ": " + m.reason}};
  }
  spdlog::debug("rank {}: {}", m.rank, r.last_migration);
  if (pending != migrations_.end()) {
    pending->second.reply(reply);
    migrations_.erase(pending);
  }
}

void RemoteJob::rank_ended(int rank, const GuestExited& e) {
  Rank& r = ranks_[rank];
  if (r.ended) return;
  r.ended = true;
  r.end.rank = rank;
  r.end.signaled = e.term_signal != 0;
  r.end.value = e.term_signal != 0 ? e.term_signal : e.exit_code;
  // Only its node knows whether our signal reached it while it ran: a copy
  // that ended of SIGTERM or SIGKILL on its own keeps that end.
  r.end.ended_by_runtime = e.runtime_signaled && ended_by_our_signal(r.end);
  spdlog::debug("rank {} {}{}", rank, describe_end(r.end), r.end.ended_by_runtime ? " (ended by us)" : "");
  relay_.finish(rank, false);
  relay_.finish(rank, true);
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
      failed_ran_ = std::chrono::milliseconds(e.ran_ms);
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
void RemoteJob::node_lost(int node) {
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
    relay_.finish(rank, false);
    relay_.finish(rank, true);
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

void RemoteJob::maybe_finish() {
  for (const auto& [rank, r] : ranks_) {
    if (!r.ended) return;
  }
  end_waits_ = false;  // nothing left to end
  end_hold_.cancel();
  if (!shutdown_sent_ && home_) {
    shutdown_sent_ = true;
    home_->send(Shutdown{"the job is over"});
  }
  finished_ = true;
  if (!daemons_running_) io_.stop();
}

void RemoteJob::signal_all(int signo) {
  if (spec_.local_daemon && signo == SIGSTOP) {
    // SIGTSTP: we stop ourselves right after this, our node daemon's thread
    // with us, so the copies are stopped here first (all are our children).
    for (const auto& [rank, r] : ranks_) {
      if (r.started && !r.ended && r.pid > 0) ::kill(-r.pid, SIGSTOP);
    }
  }
  if (home_) home_->send(GuestSignal{kAllRanks, signo});
}

bool RemoteJob::all_seen_started() const {
  for (const auto& [rank, r] : ranks_) {
    if (!r.started && !r.ended) return false;
  }
  return true;
}

void RemoteJob::end_job(const char* why, bool wait_for_starts) {
  if (ending_) {
    // An interrupt, a timeout or a fault does not wait for copies to start.
    if (end_waits_ && !wait_for_starts) {
      spdlog::debug("ending the job now: {}", why);
      end_waits_ = false;
      signal_end();
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

// mpirun starts every copy before it acts on a failure, so copies that fail
// at the same point of their run all fail on their own. Ours start on several
// nodes, some later than others: a copy still starting when the first failure
// is seen, or started just before, would be ended before it got as far as the
// failed one. So the job's signals wait until every copy has been seen
// started and has run as long as the failed copy ran on its node, and a
// margin for a copy as slow to get going: as long again, at least 250 ms and
// at most one second. Copies that started together with the failed one
// wait no longer than that margin. The margin is wall time, so it is a
// bound, not a guarantee: on a loaded machine a started copy may get no CPU
// for longer than 50 ms (the old minimum; 1 job in 12 at load 15 ended a
// copy that had not yet run its first millisecond).
void RemoteJob::end_when_started() {
  if (!end_waits_ || !all_seen_started()) return;
  using Clock = std::chrono::steady_clock;
  const Clock::duration margin = std::clamp<Clock::duration>(failed_ran_, std::chrono::milliseconds(250),
                                                             std::chrono::seconds(1));
  Clock::time_point at = Clock::now();
  for (const auto& [rank, r] : ranks_) {
    if (!r.ended && r.started) at = std::max(at, r.started_at + failed_ran_ + margin);
  }
  spdlog::debug("ending the job in {} ms (the failed copy ran {} ms)",
                std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now()).count(),
                std::chrono::duration_cast<std::chrono::milliseconds>(failed_ran_).count());
  end_hold_.expires_at(at);
  end_hold_.async_wait([this](error_code ec) {
    if (ec || !end_waits_) return;
    end_waits_ = false;
    signal_end();
  });
}

void RemoteJob::signal_end() {
  if (end_signaled_) return;
  end_signaled_ = true;
  end_hold_.cancel();
  signal_all(SIGTERM);
  signal_all(SIGCONT);
  grace_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(spec_.kill_grace_seconds)));
  grace_.async_wait([this](error_code ec) {
    if (ec) return;
    signal_all(SIGKILL);
    if (!fatal_.empty() || !home_) {
      // Nobody will report the ends: stop the daemons themselves.
      stop_daemons(SIGTERM);
    }
  });
  if (!home_) stop_daemons(SIGTERM);
}

// mpirun's own messages (and the daemons' diagnostics) go to our stderr.
void RemoteJob::read_mpirun(asio::posix::stream_descriptor& sd, std::array<char, 8192>& buf) {
  sd.async_read_some(asio::buffer(buf), [this, &sd, &buf](error_code ec, size_t n) {
    if (n > 0) {
      // Until the home daemon is up, keep mpirun's words: a failed start is
      // summed up in one line rather than mpirun's boxes.
      if (home_) write_mpirun_lines(std::string_view(buf.data(), n), false);
      if (mpirun_messages_.size() < (1u << 16)) mpirun_messages_.append(buf.data(), n);
      find_dead_daemon();
    }
    if (!ec) read_mpirun(sd, buf);
    else if (home_) write_mpirun_lines({}, true);
  });
}

// mpirun's lines go to our stderr whole, but for one: with --enable-recovery
// Open MPI 4.1's PMIx complains of a bad parameter whenever a daemon dies,
// which says nothing to the user (mosixrun says which node died).
void RemoteJob::write_mpirun_lines(std::string_view more, bool at_end) {
  mpirun_partial_.append(more);
  size_t start = 0;
  for (size_t nl; (nl = mpirun_partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(mpirun_partial_.data() + start, nl + 1 - start);
    if (line.find("PMIX ERROR: BAD-PARAM") != std::string_view::npos &&
        line.find("pmix_event_notification.c") != std::string_view::npos) {
      continue;
    }
    write_all(2, line.data(), line.size());
  }
  mpirun_partial_.erase(0, start);
  if (at_end && !mpirun_partial_.empty()) {
    write_all(2, mpirun_partial_.data(), mpirun_partial_.size());
    mpirun_partial_.clear();
  }
}

// mpirun reports a daemon that died as "... noticed that process rank R with
// PID P on node H exited on signal S": daemon rank R is node R of the job.
void RemoteJob::find_dead_daemon() {
  if (dead_daemon_ >= 0) return;
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

std::string RemoteJob::daemons_status(int status) const {
  const std::string who = spec_.local_daemon ? "" : "mpirun ";
  return who + (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                    : "exit status " + std::to_string(WEXITSTATUS(status)));
}

void RemoteJob::stop_daemons(int signo) {
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

// A job on this node alone: its node daemon runs here, on a thread, over
// LocalTransport, and reaches us by the home socket as mosixd does.
Status RemoteJob::start_local_daemon(OrphanWatcher& watcher) {
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

void RemoteJob::daemons_ended(int status) {
  daemons_running_ = false;
  mpirun_status_ = status;
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

void RemoteJob::start_stdin_pump() {
  bool stdin_open = ::fcntl(0, F_GETFD) >= 0;
  FrameSender* home = home_.get();
  std::thread([home, stdin_open] {
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

void RemoteJob::reap_mpirun() {
  int status = 0;
  if (daemons_running_ && !spec_.local_daemon && ::waitpid(mpirun_.pid, &status, WNOHANG) == mpirun_.pid) {
    daemons_ended(status);
  }
}

// Several nodes: mpirun (or mosixd --launch) starts the node daemons; what
// it says goes to our stderr.
Status RemoteJob::start_mpirun(OrphanWatcher& watcher) {
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
  mpirun_out_ = std::make_unique<asio::posix::stream_descriptor>(io_, mpirun_.stdout_fd);
  mpirun_err_ = std::make_unique<asio::posix::stream_descriptor>(io_, mpirun_.stderr_fd);
  read_mpirun(*mpirun_out_, mpirun_out_buf_);
  read_mpirun(*mpirun_err_, mpirun_err_buf_);
  return {};
}

Expected<int> RemoteJob::run() {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTTIN, SIG_IGN);
  auto dir = runtime_dir();
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
  auto listen_fd = listen_unix(socket_path_);
  if (!listen_fd) return listen_fd.error();
  listen_sd_ = std::make_unique<asio::posix::stream_descriptor>(io_, *listen_fd);
  spec_.record.control_socket = control_->path();

  for (const SpawnGuest& g : spec_.guests) {
    if (Status s = relay_.open_files(g.rank); !s) return s.error();
    ranks_[g.rank].end.rank = g.rank;
    if (g.flags & kSpawnPinned) {
      ranks_[g.rank].pinned = true;
      ranks_[g.rank].cantmove = "pinned (--pin)";
    }
    spec_.record.guests.push_back(GuestRecord{g.rank, 0, "", "starting", -1});
  }

  auto watcher = OrphanWatcher::start();
  if (!watcher) return watcher.error();
  if (spec_.local_daemon) {
    if (Status s = start_local_daemon(*watcher); !s) return s.error();
  } else if (Status s = start_mpirun(*watcher); !s) {
    return s.error();
  }

  spec_.record.start_time = static_cast<long>(::time(nullptr));
  if (Status s = write_job(spec_.record); !s) {
    spdlog::warn("mosixctl will not see this job: {}", s.error().message);
  }
  accept_home();
  // The home daemon must connect within a deadline: a daemon that died
  // after mpirun let go of it would otherwise leave us waiting forever.
  double start_limit = 60;
  if (const char* env = std::getenv("MOSIX_START_TIMEOUT")) start_limit = std::atof(env);
  start_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(start_limit)));
  start_timer_.async_wait([this, start_limit](error_code ec) {
    if (ec || home_ || finished_) return;
    start_failure_ = "the node daemons did not start within " + std::to_string(static_cast<int>(start_limit)) +
                     " s (MOSIX_START_TIMEOUT); mpirun said: " +
                     (mpirun_messages_.empty() ? "nothing" : mpirun_messages_.substr(0, 300));
    stop_daemons(SIGKILL);
    finished_ = true;
    io_.stop();
  });
  signals_.start();
  if (spec_.timeout_seconds > 0) {
    timeout_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(spec_.timeout_seconds)));
    timeout_.async_wait([this](error_code ec) {
      if (ec || (ending_ && !end_waits_)) return;
      timed_out_ = true;
      spdlog::error("the job ran longer than --timeout {} s; ending it", spec_.timeout_seconds);
      end_job("timeout");
    });
  }
  reap_mpirun();
  if (daemons_running_ || !finished_) io_.run();
  stop_credit_thread();

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
  } else if (daemons_running_) {
    // Give mpirun a moment to wind the daemons down after Shutdown, then make sure.
    for (int i = 0; i < 100 && daemons_running_; ++i) {
      int status = 0;
      if (::waitpid(mpirun_.pid, &status, WNOHANG) == mpirun_.pid) {
        daemons_running_ = false;
        break;
      }
      ::usleep(50000);
    }
    if (daemons_running_) {
      ::kill(-mpirun_.pid, SIGKILL);
      ::waitpid(mpirun_.pid, nullptr, 0);
    }
  }
  remove_job(spec_.record.id);
  ::unlink(socket_path_.c_str());
  control_.reset();
  ::rmdir(socket_dir_.c_str());
  watcher->release();

  // A --timeout that fires while the daemons are still starting ends the
  // start too: the timeout is the cause, and mpirun's status for it is 110.
  if (timed_out_) return kTimeoutExitStatus;
  if (!start_failure_.empty()) return make_error(start_failure_);
  std::vector<GuestEnd> ends;
  for (const auto& [rank, r] : ranks_) ends.push_back(r.end);
  if (signals_.interrupted()) return kInterruptedExitStatus;
  if (!fatal_.empty() && !std::any_of(ends.begin(), ends.end(), is_failure)) {
    spdlog::error("{}", fatal_);
    return 1;
  }
  return job_exit_status(ends);
}

}  // namespace

Expected<int> run_remote_job(RemoteJobSpec spec) {
  RemoteJob job(std::move(spec));
  return job.run();
}

}  // namespace mosix
