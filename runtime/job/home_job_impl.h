// The class behind run_home_job (home_job.h), private to runtime/job. Its
// parts live in three files: home_job.cpp (the link to the home node's
// daemon: frames, ends, signals, the run), home_job_daemons.cpp (starting
// and ending the node daemons: mpirun, mosixd --launch, or one on a thread
// of ours) and home_job_control.cpp (mosixctl's questions and orders).
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/core/exit_rule.h"
#include "runtime/core/launch_event.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/frame_socket.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/daemon/job_signals.h"
#include "runtime/daemon/orphan_watcher.h"
#include "runtime/daemon/output_relay.h"
#include "runtime/job/control.h"
#include "runtime/job/home_job.h"
#include "runtime/job/job_view.h"

namespace mosix {

class HomeJob {
 public:
  explicit HomeJob(HomeJobSpec spec);
  ~HomeJob();
  HomeJob(const HomeJob&) = delete;
  HomeJob& operator=(const HomeJob&) = delete;

  Expected<int> run();

 private:
  using error_code = boost::system::error_code;
  using stream_descriptor = boost::asio::posix::stream_descriptor;

  struct Rank {
    bool started = false;
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
    bool spawned = false;        // started for another guest (the spawn service)
    std::uint32_t flags = 0;     // its SpawnGuest's kSpawn* bits
    // Killed once its image was written (mosixctl checkpoint --kill): a
    // member still, until `mosixctl restart` of that image brings it back.
    bool suspended = false;
    std::string suspended_image;
    // A body (a guest's child placed on another node, fork and forget): the
    // rank of the copy it descends from, and what it runs.
    int parent = -1;
    std::string command;
  };
  struct PendingMigration {
    ControlReply reply;
    int from = -1;
    std::chrono::steady_clock::time_point started;
  };

  // home_job.cpp: the link to the home node's daemon.
  void accept_home();
  void read_home();
  void from_home(Message message);
  void output_from_home(const GuestOutputView& out);
  void guest_started(const GuestStarted& started);
  void guest_spawned(const SpawnGuest& spawned);
  bool body_message(const Message& message);
  void watch_terminal_size(int rank);
  Rank* find_guest(int rank);  // a copy's or a body's
  void migration_progress(const MigrateProgress& step);
  void balance_report(BalanceReport& report);
  void start_stdin_pump();
  // `not_before_cpu_us`: see GuestSignal.
  void signal_all(int signo, std::uint64_t not_before_cpu_us = 0);
  // Ends the job: SIGTERM to every copy, SIGKILL after the grace period.
  // For a copy's failure (wait_for_starts) the signals wait until every copy
  // has been seen started, and each copy's node holds them until it has run
  // as far as the failed copy (caught_up in core/exit_rule.h): copies that
  // fail together all count, as under mpirun.
  void end_job(const char* why, bool wait_for_starts = false);
  void signal_end();
  void end_when_started();
  bool all_seen_started() const;
  void rank_ended(int rank, const GuestExited& e);
  void node_lost(int node);
  void maybe_finish();
  void post_credit(int rank, std::uint64_t bytes);
  void start_credit_thread();
  void stop_credit_thread();
  Status open_sockets();
  Expected<int> exit_status();
  std::string node_name(int node) const {
    auto it = node_names_.find(node);
    return it == node_names_.end() ? "node " + std::to_string(node) : it->second;
  }

  // home_job_daemons.cpp: the node daemons.
  Status start_mpirun(OrphanWatcher& watcher);
  Status start_local_daemon(OrphanWatcher& watcher);
  // Ends the node daemons whatever they are doing: a signal to mpirun's
  // group, or Shutdown to our own node daemon (it ends its guests and returns).
  void stop_daemons(int signo);
  // After the event loop: the daemons are gone, or made to go.
  void wind_down_daemons();
  // The node daemons have ended: mpirun (or mosixd --launch) with `status`,
  // or our own node daemon's thread (its exit code as a wait status).
  void daemons_ended(int status);
  std::string daemons_status(int status) const;
  void reap_mpirun();
  void read_mpirun(stream_descriptor& sd, std::array<char, 8192>& buf);
  void write_mpirun_lines(std::string_view more, bool at_end);
  void find_dead_daemon();
  std::string take_launch_events(std::string_view more, bool at_end);
  void daemon_end_reported(const NodeDaemonEnded& ended);
  void arm_start_timer();

  // home_job_control.cpp: mosixctl.
  JobView view() const;
  nlohmann::json control(const nlohmann::json& request);
  void control_async(const nlohmann::json& request, ControlReply reply);
  void migrate(const nlohmann::json& request, ControlReply reply);
  void migration_ended(const MigrateResult& result);
  void suspend(int rank, const GuestExited& e);
  nlohmann::json restart_suspended(const nlohmann::json& request);
  bool end_suspended();

  HomeJobSpec spec_;
  OutputRelay relay_;
  boost::asio::io_context io_;
  JobSignals signals_;
  std::unique_ptr<boost::asio::signal_set> resized_;  // SIGWINCH, with --pty on a terminal
  boost::asio::steady_timer timeout_, grace_, start_timer_;
  std::unique_ptr<ControlServer> control_;
  std::string socket_dir_, socket_path_;

  // The home node's daemon.
  std::unique_ptr<stream_descriptor> listen_sd_, home_sd_;
  std::shared_ptr<FrameSender> home_;  // shared with the stdin pump, which may outlive us
  FrameReader home_reader_;
  bool shutdown_sent_ = false;
  bool pump_stdin_ = true;     // false: rank 0 reads our stdin itself
  bool record_dirty_ = false;  // the job's record changed: written after this batch of frames

  // What the nodes told us.
  std::map<int, Rank> ranks_;
  // The bodies that live: listed by ps, moved by migrate, never copies
  // (no exit rule, signals or end of the job: their deputies answer for them).
  std::map<int, Rank> bodies_;
  std::set<int> body_ranks_;     // every body's rank, ended ones too
  std::map<int, int> mpi_spawn_jobs_;  // MPI_Comm_spawn's first rank -> mpirun's job number (2, 3, ...)
  std::map<int, std::string> node_names_;
  std::map<int, Hello> hellos_;
  std::map<int, LoadEntry> loads_;
  std::vector<RankRestart> restarting_;  // of the node being declared lost
  std::set<std::uint64_t> ended_migrations_;
  std::map<std::uint64_t, PendingMigration> migrations_;
  std::uint64_t next_migration_ = 1;

  // Output credit: written out, not yet credited, per rank. Credits go out
  // from a thread of their own: the event loop must never block on the
  // socket (the home daemon may be blocked writing to us while the stdin
  // pump fills the other direction).
  std::map<int, std::uint64_t> output_done_;
  static constexpr std::uint64_t kCreditBatch = 256u << 10;
  std::mutex credit_mu_;
  std::condition_variable credit_cv_;
  std::map<int, std::uint64_t> credit_pending_;
  bool credit_stop_ = false;
  std::thread credit_thread_;

  // The node daemons: mpirun's (or mosixd --launch's) process, or our thread.
  GuestProcess mpirun_;
  std::unique_ptr<stream_descriptor> mpirun_out_, mpirun_err_;
  std::array<char, 8192> mpirun_out_buf_{}, mpirun_err_buf_{};
  std::string mpirun_messages_;  // what mpirun said, to sum up a failed start and find a dead daemon
  std::string mpirun_partial_;   // the start of a line mpirun has not finished
  std::string launch_partial_;   // the start of a launch event line
  std::thread local_daemon_;
  bool stop_local_ = false;      // our node daemon is to end (told when it connects)
  bool daemons_running_ = false;
  int dead_daemon_ = -1;
  int dead_daemon_signal_ = 0;

  // How the job ends.
  bool end_waits_ = false;     // the job is ending, its signals wait (end_when_started)
  bool end_signaled_ = false;  // signal_end() has run
  std::uint64_t end_cpu_us_ = 0;  // from the failed copy's CPU time: the job's end waits for the others to use as much (catch_up_cpu_us)
  bool ending_ = false, timed_out_ = false, finished_ = false;
  std::string start_failure_;
  std::string fatal_;
};

// Seconds as the steady clock counts them.
inline std::chrono::steady_clock::duration seconds_of(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace mosix
