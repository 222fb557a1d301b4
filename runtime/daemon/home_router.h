// The home node's side of a job, in the node daemon of rank 0 only: its link
// to mosixrun (the job's unix socket: copies to start, stdin, signals, moves
// ordered by mosixctl, and mosixrun's stdout and stderr to write output
// into); the placement of the copies once every node has said hello; which
// rank runs on which node, and what arrives from a rank's next node before
// its move is confirmed (held until then); the liveness of the other nodes,
// and what becomes of a node declared gone (its ranks restarted from their
// periodic images where they have one).
#pragma once

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/fence.h"
#include "runtime/core/guest_groups.h"
#include "runtime/core/node_state.h"
#include "runtime/core/published_names.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/frame_socket.h"
#include "runtime/daemon/guest_table.h"

namespace mosix {

// The start of the Shutdown reason the home sends a node it declared gone
// (it was too slow to answer): the others close without it, so it must not
// wait for them.
inline constexpr std::string_view kDeclaredGone = "the home node declared this node gone";

class HomeRouter {
 public:
  struct Hooks {
    std::function<void(int node)> node_gone;               // liveness declared it gone
    std::function<void(const std::string& why)> shutdown;  // mosixrun spoke garbage
    std::function<void(const MpiJobMap& map)> mpi_job_map; // this node runs MPI copies of the job
    // For a guest of the home node (its guest socket): a reply or a message.
    std::function<void(const Message& message, std::int32_t rank)> to_local_guest;
  };
  // Copies placed on the home node start in `guests` at once.
  HomeRouter(DaemonContext& context, GuestTable& guests, Hooks hooks);
  HomeRouter(const HomeRouter&) = delete;
  HomeRouter& operator=(const HomeRouter&) = delete;

  // Connects to mosixrun's socket (options().home_socket) and starts reading it.
  Status connect();
  // Liveness checks from now on; every node counts as just heard from.
  void start();
  // A frame came from `node`: it is alive.
  void heard_from(int node);

  // A rank's output goes on to mosixrun as it came, unless it is held for a
  // migration (then false: it is decoded and goes through from_node()).
  bool forward_output(const Delivery& delivery);
  // What the nodes report (Hello, GuestStarted, GuestExited, ...): to mosixrun.
  void from_node(int source, const Message& message);
  // A node's own load report goes on to mosixrun (mosixctl mon).
  void node_load(int source, const LoadReport& report);
  // A node's part of a PMIx fence; once every node taking part gave its
  // part, each gets them all.
  void fence(int source, FenceContribution part);
  // MPI_Publish_name and friends: the job's names are kept here.
  void names(int source, const Message& request);
  // The spawn service (home_guests.cpp): a guest asks for new guests of the
  // job; they are placed, announced to mosixrun, started, and the asker's
  // node gets the reply.
  void guest_spawn(int source, const GuestSpawn& request);
  // MPI_Comm_spawn (home_mpi_spawn.cpp): an MPI copy's PMIx server asks for
  // children; they are placed, given a PMIx namespace of their own on every
  // node with MPI copies, announced, started as MPI copies, and the asker's
  // node gets the namespace.
  void mpi_spawn(int source, const MpiSpawn& request);
  // A deputy's stdin, signals and output credit for its body (home_guests.cpp):
  // to the node the body runs on now. From `source`, the deputy's node.
  // False when it is not a deputy's (a moving guest's stdin, sent on by
  // its source node to this node as its target, is not).
  bool from_deputy(int source, const Message& message);
  // The node of rank's deputy, or -1 when it has none or it ended (HomeKill).
  int deputy_node(int rank) const;
  // A message between guests goes to the receiver's node; one for the home
  // itself (dest_rank kFromHome) asks to be told when a rank ends.
  void guest_message(GuestMessage message);
  // The final word on a migration.
  void route_result(const MigrateResult& result);
  // Node `node` is gone (already marked lost): it is told, so are the
  // others and mosixrun, and its ranks restart elsewhere from their images.
  void node_lost(int node);

 private:
  void read_home();
  void from_home(Message message);
  void order_move(const MigrateRequest& move);
  void restore_suspended(SpawnGuest spawn);
  void take_output_fds(const OutputFds& fds);
  void place_if_ready();
  bool hold_for_migration(int source, const Message& message);
  void write_output(std::span<const std::uint8_t> frame);
  void to_mosixrun(const Message& message);
  void check_liveness();
  void release_stdin(int rank);
  void rank_ended(int rank);
  void tell_node_lost(int node, const std::vector<RankRestart>& restarting);
  void to_guest(int rank, const Message& message);
  void deputy_spawn(int source, const GuestSpawn& request);
  // The spawns' common ground (home_guests.cpp): the nodes that are alive
  // (only the one named `where`, if given), with id, cores and speed and no
  // load yet, and `node_of` their transport ranks; the job's guests running
  // on each node; `count` new ranks after every rank in use (the first).
  std::vector<NodeLoad> live_nodes(const std::string& where, std::vector<int>& node_of) const;
  std::map<int, int> running_guests() const;
  // The nodes of `count` new guests (the spawn service, MPI_Comm_spawn), by
  // the placement over the live nodes (or the one named `where`), each
  // loaded with `running` (the job's guests there), which counts them too.
  Expected<std::vector<int>> nodes_for_spawn(const std::string& where, int count, std::map<int, int>& running) const;
  int take_ranks(int count);
  // A deputy's body's start, output or end goes to its deputy (true), not to mosixrun.
  bool to_deputy(const Message& message);
  void deputies_lost_with(int node, const std::vector<RankRestart>& restarting);
  void answer_groups(const std::vector<GroupAnswer>& answers);
  std::string node_names() const;  // "vnode0,vnode1,...": the job's nodes (MOSIX_NODES)
  std::vector<RankRestart> restart_lost_ranks(int node);

  DaemonContext& context_;
  GuestTable& guests_;
  Hooks hooks_;

  std::unique_ptr<boost::asio::posix::stream_descriptor> mosixrun_sd_;
  std::unique_ptr<FrameSender> mosixrun_;
  FrameReader mosixrun_reader_;
  std::array<char, 1 << 16> mosixrun_buf_{};
  std::vector<int> mosixrun_fds_;              // received from mosixrun, not yet claimed
  int out_fd_ = -1, err_fd_ = -1;              // mosixrun's stdout and stderr (OutputFds)
  std::map<int, std::uint64_t> output_written_;  // per rank, not yet credited

  std::vector<std::optional<Hello>> hellos_;  // per node, once it said hello
  std::vector<SpawnGuest> pending_spawns_;    // until every node said hello
  std::vector<GuestStdin> early_stdin_;       // for ranks not yet placed
  bool placed_ = false;
  std::map<int, int> rank_node_;               // where each rank runs
  std::set<int> started_;                      // ranks whose node said they started (or ended)
  std::set<int> tagged_;                       // PVM tasks: mosixrun tags their lines, even with OutputFds
  std::vector<std::uint32_t> mpi_rank_nodes_;  // an MPI job: where each rank runs (they do not move)
  std::size_t mpi_job_size_ = 0;               // of them, the first copies (the rest: spawned)
  std::optional<MpiJobMap> mpi_map_;           // as the first copies' nodes got it
  std::set<int> mpi_nodes_;                    // nodes that got mpi_map_ (they run a PMIx server)
  std::optional<SpawnGuest> mpi_first_copy_;   // rank 0 as mosixrun asked: spawned copies' environment
  int mpi_spawns_ = 0;                         // namespaces made by MPI_Comm_spawn
  int next_rank_ = -1;                         // the spawn service's next new rank
  std::set<int> ended_;                        // ranks whose end was reported
  std::map<int, std::set<int>> exit_watchers_; // rank -> ranks to tell when it ends
  std::map<int, std::set<int>> node_watchers_; // node -> ranks to tell when it is lost
  struct TaskInfo {
    int parent = -1;  // the spawner's rank; -1 for a copy
    std::string name;  // a spawned guest's program, without the directory
    std::int32_t pid = 0;  // on its node, once started
  };
  std::map<int, TaskInfo> tasks_;  // the copies and spawned guests (not bodies, not MPI): pvm_tasks
  Bytes tasks_answer() const;
  // pvm_tasks asks answered once every task listed has started (its pid is
  // known, as a pvmd knows it when its spawn returns).
  void answer_task_asks();
  std::vector<int> task_asks_;  // ranks waiting for kTasksAnswer
  // Placement at exec: each node's last load report, the children placed on
  // it since that report and since the one before (a report taken as a child
  // starts may not count it yet), and the node of each body's deputy.
  std::map<int, LoadEntry> exec_loads_;
  std::map<int, std::array<int, 2>> placed_since_report_;
  // A body placed away no longer counts among its node's recent placements
  // once it ended: each body's node and that node's reports so far when it
  // was placed (a compiler ends long before the node's next report, and the
  // node it leaves is free for the next one).
  std::map<int, std::uint64_t> reports_seen_;
  std::map<int, std::pair<int, std::uint64_t>> body_placed_;
  void body_ended(int rank);
  std::map<int, int> deputy_node_;  // kNoDeputy once the deputy's node died
  static constexpr int kNoDeputy = -1;
  GuestGroups groups_;                         // compat/pvm's groups
  FenceCollector fences_;
  PublishedNames names_;

  // Ranks on the move: their stdin from mosixrun waits in held_stdin_, then
  // goes to where the rank runs when the move is over.
  std::set<int> moving_;
  std::set<std::uint64_t> ended_moves_;
  std::map<int, std::vector<GuestStdin>> held_stdin_;
  std::map<int, std::vector<Message>> held_;  // messages from a rank's next node

  boost::asio::steady_timer liveness_timer_;
  std::vector<double> last_heard_;  // when each node was last heard from (daemon clock)
  double liveness_checked_at_ = 0;
};

}  // namespace mosix
