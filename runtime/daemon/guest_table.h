// The guests on this node: starting them (a new copy, or the restorer of one
// arriving from another node), relaying their stdout and stderr home within a
// credit window, feeding their stdin, signalling and reaping them, and
// reporting each one's end (GuestExited, always after the last of its
// output). The table alone owns a guest's process and pipes.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/exit_rule.h"
#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/daemon/node_seats_file.h"

namespace mosix {

class CpuCap;
class PmixLink;
class PmiServer;

// kIncoming: a restorer that has not yet become the guest (its output is
// held back); kGone: moved away or a failed restore (nothing reported).
enum class GuestPhase { kIncoming, kLive, kGone };

// Largest piece of output read at once: one GuestOutput frame of 256 KiB
// (transports move frames up to that size with the fewest copies).
inline constexpr std::size_t kOutputChunk = (256u << 10) - kGuestOutputOverhead;
// Output of one guest that may be on its way home, unconfirmed.
inline constexpr std::uint64_t kOutputWindow = 8u << 20;
// ... of a deputy's body, whose deputy writes it into a pipe to a relative:
// as little more than a local pipe holds, so that a writer whose reader has
// gone is stopped by SIGPIPE about where it would have been at home.
inline constexpr std::uint64_t kBodyOutputWindow = 128u << 10;

struct LocalGuest {
  int rank = 0;
  GuestPhase phase = GuestPhase::kLive;
  std::uint32_t flags = 0;  // kSpawn* bits
  bool migrating = false;
  double arrived_at = 0;   // daemon clock, for the balancer's minimum residency
  double ended_at = 0;     // daemon clock, when it was reaped
  double work_before = 0;  // reference-CPU seconds it ran on earlier nodes (its clock restarts at a move)
  std::string cant_move;   // why its last checkpoint was refused
  std::vector<GuestOutput> held;  // kIncoming: its output until it is restored
  GuestProcess proc;
  bool running = true;
  int wait_status = 0;
  std::uint64_t cpu_us = 0;       // when reaped: its CPU time here, its children's too (wait4)
  int open_streams = 2;
  bool exit_sent = false;
  bool runtime_signaled = false;  // SIGTERM/SIGKILL from the home reached it while it ran
  int abort_code = -1;            // it called MPI_Abort (PMI): killed, reported with this status
  // The job's end, held until it has run as far as the copy that failed
  // (GuestSignal::not_before_cpu_us; caught_up() in core/exit_rule.h).
  std::vector<int> held_signals;
  std::uint64_t hold_cpu_us = 0;
  std::optional<CopyProgress> last_look;
  int quiet_looks = 0;
  std::unique_ptr<boost::asio::posix::stream_descriptor> out, err, in;
  std::unique_ptr<std::uint8_t[]> out_buf = std::make_unique_for_overwrite<std::uint8_t[]>(kOutputChunk),
                                  err_buf = std::make_unique_for_overwrite<std::uint8_t[]>(kOutputChunk);
  std::uint64_t unconfirmed = 0;  // output sent home, not yet written out there
  bool out_paused = false, err_paused = false;
  std::deque<Bytes> stdin_queue;
  std::size_t stdin_offset = 0;  // bytes of stdin_queue.front() already in the pipe
  int core = -1;                 // --bind-to core: the core it is bound to here
  bool stdin_eof = false;
  bool stdin_writing = false;    // waiting for room in the pipe
  bool stdin_held = false;       // moving: what is left of its stdin goes with it
};

// What start_local_guest() needs besides the launch itself.
struct GuestStart {
  GuestLaunch launch;        // rank, path, argv, env, cwd (stdin, cpus and cgroup are the table's)
  std::uint32_t flags = 0;   // kSpawnStdin: a pipe for its stdin; kSpawnBindCore: bound to a core
  GuestPhase phase = GuestPhase::kLive;
  double work_before = 0;
  std::vector<GuestStdin> stdin_left;  // an arriving guest: the stdin it had not read at its source
};

// The restorer (mosix-restore) that turns an image into its process:
// $MOSIX_RESTORER, else the one installed next to this program.
std::string restorer_path();

class GuestTable {
 public:
  explicit GuestTable(DaemonContext& context);
  // Kills and reaps any guest still running (a test's, or after an error).
  ~GuestTable();
  GuestTable(const GuestTable&) = delete;
  GuestTable& operator=(const GuestTable&) = delete;

  // Reaps guests from now on (SIGCHLD).
  void start();
  // This node's cores (hwloc order) with their PUs, for --bind-to core.
  void set_cores(std::vector<std::vector<int>> core_pus);
  // A virtual node: guests start in its cgroup.
  void set_cap(CpuCap* cap) { cap_ = cap; }
  // MPI copies register with this node's PMIx server (made by the node
  // daemon once it knows where the job's ranks run).
  void set_pmix(PmixLink* pmix) { pmix_ = pmix; }
  // MPICH copies (kSpawnPmi) get a PMI_FD of this node daemon's PMI server.
  void set_pmi(PmiServer* pmi) { pmi_ = pmi; }
  // What one CPU second of a guest here is worth in reference-CPU seconds.
  void set_machine_speed(double speed) { machine_speed_ = speed; }
  // The node's guest socket (guest_service.h): guests find it in MOSIX_GUEST_SOCKET.
  void set_guest_socket(std::string path) { guest_socket_ = std::move(path); }
  // Placement at exec: the deputy program guests' children run through
  // (MOSIX_DEPUTY), or "" when children stay where they start.
  void set_deputy(std::string path) { deputy_path_ = std::move(path); }
  // The seats page its guests' children read (MOSIX_SEATS); each guest
  // started gets a seat.
  void set_seats(NodeSeatsFile* seats) { seats_ = seats; }
  // The node's values every guest started here gets in its environment
  // ("NAME=value"; an empty value: unset), also in its node file
  // (node_env_file.h) for guests restored here.
  std::vector<std::string> node_env() const;
  // A guest's terminal (--pty) takes mosixrun's terminal's new size.
  void resize_pty(const PtyResize& size);

  // SpawnGuest: a new copy (kSpawnRestore: one from its image). Reports
  // GuestStarted, or GuestExited with 127 (the reason in the log).
  void spawn(SpawnGuest spawn);
  // The one way a guest starts on this node: the process, its pipes, its
  // core and cgroup, its stdin and output relay.
  Expected<LocalGuest*> start_local_guest(GuestStart start);

  LocalGuest* find(int rank);
  const std::map<int, std::unique_ptr<LocalGuest>>& guests() const { return guests_; }

  // False when no guest of that rank is here.
  bool deliver_stdin(const GuestStdin& in);
  void output_credit(const OutputCredit& credit);
  // To one rank, or kAllRanks; see to_whole_group() in the source for who
  // gets it. With `not_before_cpu_us`, each guest gets it once it has used
  // that much CPU time or waits for something; without, at once. Signal 0
  // and SIGKILL first deliver what was held (0 sends nothing else).
  void signal(int rank, int signo, std::uint64_t not_before_cpu_us = 0);
  // GuestExited, once the guest is reaped and its output has gone home.
  void maybe_report_exit(LocalGuest& g);
  // Called with a guest's rank just before its end is reported (after: the
  // home's word on its end comes after what `ended` sent).
  void set_ended_hook(std::function<void(int rank)> ended) { ended_ = std::move(ended); }

  // A stopped guest on its way out: all it wrote goes home now, before its image.
  void drain_output(LocalGuest& g);
  // ... and what it has not read of its stdin comes out of its pipe and our
  // queue, to go with its image; give_back_stdin() puts it back if the move fails.
  GuestStdin take_stdin(LocalGuest& g);
  void give_back_stdin(LocalGuest& g, GuestStdin left);
  // Moved away or failed to restore: out of the table, its end never reported.
  void retire(int rank);
  // Reference-CPU seconds the guest has run, on this node and those before.
  double work_done(const LocalGuest& g) const;

  // An MPICH copy called MPI_Abort(comm, code): its PMI client waits to be
  // ended (as Hydra ends it), so it is killed and reported as exiting with
  // `code`, and the job ends by the exit rule.
  void abort_guest(int rank, int code);

  // SIGKILL to every guest's process group.
  void kill_all();
  // The same, then waits for each still running, retired ones too.
  void end_all();

 private:
  void wait_children();
  Status add_pmix_client(SpawnGuest& s);
  bool in_mpi(const LocalGuest& g);
  void deliver(LocalGuest& g, int signo);
  bool has_caught_up(LocalGuest& g, std::uint64_t target_cpu_us);
  std::uint64_t cpu_before_us(const LocalGuest& g) const;
  void release_held(LocalGuest& g);
  void watch_holds();
  void read_output(LocalGuest& g, bool is_stderr);
  void write_stdin(LocalGuest& g);
  int pick_core(int rank);
  void release_core(int& core);

  DaemonContext& context_;
  boost::asio::signal_set child_signal_;
  boost::asio::steady_timer hold_timer_;
  bool hold_watched_ = false;
  PmixLink* pmix_ = nullptr;  // the node daemon's, for MPI copies (kSpawnPmix)
  PmiServer* pmi_ = nullptr;  // the node daemon's, for MPICH copies (kSpawnPmi)
  CpuCap* cap_ = nullptr;
  double machine_speed_ = 1.0;
  std::string guest_socket_;
  std::string deputy_path_;
  NodeSeatsFile* seats_ = nullptr;
  std::vector<std::vector<int>> core_pus_;  // this node's cores (hwloc order): their PUs
  std::vector<int> core_users_;             // guests bound to each
  std::map<int, std::unique_ptr<LocalGuest>> guests_;
  std::function<void(int rank)> ended_;
  std::vector<std::unique_ptr<LocalGuest>> retired_;  // kGone: kept until the end (reads may be pending)
};

}  // namespace mosix
