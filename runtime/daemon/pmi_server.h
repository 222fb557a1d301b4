// The PMI-1 server of a node daemon, for MPICH programs: each MPICH copy
// gets one end of a socket pair as PMI_FD (with PMI_RANK and PMI_SIZE), as
// Hydra's proxy and Slurm's pmi plugins give it, and speaks core/pmi_wire.h
// over it: its rank, the job's key-value space, barriers, its finalize. A
// client that asks for PMI-2 at its init (MPICH built for it, as Slurm's pmi2
// plugin serves it) speaks PMI-2's frames from then on, over the same state
// (kvs-put/get/fence, job attributes, node attributes, names, spawn:
// pmi_server_v2.cpp).
//
// Served by the node daemon itself, on its loop, not by the PMIx helper:
// the protocol is a few text lines, needs no library (so an MPICH job starts
// no helper and loads no libpmix), and the descriptor must be made where the
// copy is started. Across nodes a barrier is a fence through the home node,
// as the PMIx servers' are (FenceContribution with kPmiFenceBit in its id):
// each node sends the pairs its copies put since the last barrier, and each
// gets every node's back. Gets are answered from this node's copy of the
// space. Names (publish, lookup, unpublish) live at the home node, as for
// PMIx. A spawn (PMI-1's mcmd=spawn, MPI_Comm_spawn) goes to the home node
// as Open MPI's does (MpiSpawn, home_mpi_spawn.cpp), and so does PMI-2's
// cmd=spawn, read into the same shape (core/pmi_spawn.h) and sent by the
// same code (pmi_server_home.cpp); the children are a world of their own
// here: their own kvsname, ranks, size, key-value space (which starts with
// the parent's preput PARENT_ROOT_PORT_NAME) and barriers, PMI_SPAWNED=1,
// and their parent's kvsname as PMI-2's spawner-jobid.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/pmi_spawn.h"
#include "runtime/core/pmi_wire.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"

namespace mosix {

class PmiServer {
 public:
  // `map`: where every rank of the job runs; `kvsname`: the job's name.
  // `on_abort(rank, code)`: a copy called MPI_Abort and waits to be ended.
  PmiServer(DaemonContext& context, MpiJobMap map, std::string kvsname, std::function<void(int, int)> on_abort);
  ~PmiServer();
  PmiServer(const PmiServer&) = delete;
  PmiServer& operator=(const PmiServer&) = delete;

  // A new local copy `rank`: the descriptor to give it (close-on-exec here;
  // the caller lets the copy inherit it and closes it once the copy runs),
  // and `env` gets PMI_FD, PMI_RANK, PMI_SIZE and MPICH's local rank and size.
  Expected<int> add_client(int rank, std::vector<std::string>& env);
  // Copy `rank` said init and not finalize yet.
  bool in_mpi(int rank) const { return in_mpi_.count(rank) != 0; }

  // The home node's word on a barrier of this node (fence_id has kPmiFenceBit).
  void fence_released(const FenceRelease& release);
  // The home node's answer to a publish, lookup or unpublish (request_id has
  // kPmiRequestBit).
  void names_answered(const NameReply& reply);
  // The home node made a world of spawned MPICH copies (some may run here),
  // before any of them starts; and its answer to a spawn of ours.
  void add_world(const MpiNamespace& space);
  void spawn_answered(const MpiSpawnReply& reply);

 private:
  // One MPI world: the job's first copies, or the children of one spawn
  // (job ranks first_rank.. are its ranks 0..).
  struct World {
    std::string kvsname;
    std::string spawner;                     // spawned: its parent's world's kvsname
    std::int32_t first_rank = 0;
    std::vector<std::uint32_t> rank_nodes;  // per rank of the world
    std::vector<std::uint32_t> app_sizes;   // ranks of each app; empty: one
    bool spawned = false;
    int local_ranks = 0;                     // of its ranks, on this node
    std::vector<std::int32_t> fence_ranks;   // its barriers' participants: {} for the first copies
    std::map<std::string, std::string> kvs;  // every pair known here
    pmi::KeyValues puts;                     // this node's since the last barrier
    std::uint64_t barriers = 0;              // this node's barriers so far
  };
  struct Client {
    int rank = 0;        // in the job
    World* world = nullptr;
    int wrank = 0;       // in its world
    std::unique_ptr<boost::asio::posix::stream_descriptor> socket;
    std::string inbox;  // bytes not yet a whole line
    std::vector<char> buf = std::vector<char>(4096);
    bool in_barrier = false;
    bool in_mcmd = false;  // inside a multi-line command (spawn), until "endcmd"
    std::map<std::string, std::string> mcmd;  // the fields of the spawn's current app
    pmi::Spawn spawn;                         // its apps so far
    std::string spawn_error;                  // why an app so far cannot be spawned
    bool v2 = false;       // it said init pmi_version=2: PMI-2 frames from now on
    std::string fence_thrid;  // PMI-2: its kvs-fence's thrid, for the answer
  };
  // A request of a copy that the home node answers (a spawn, or one of
  // the name service's), until its answer.
  struct Waiting {
    enum Kind { kSpawn, kPublish, kLookup, kUnpublish } kind = kSpawn;
    int rank = 0;
    bool v2 = false;
    std::string thrid;  // PMI-2: the request's, sent back
    std::string name;   // a name request's name
    std::string reply() const;  // the answer's command, in the copy's protocol
  };
  struct NodeWait {  // PMI-2 info-getnodeattr with wait=TRUE, until the key is put
    int rank;
    std::string key, thrid;
  };
  void read(Client& c);
  void take_lines(Client& c);
  void serve(Client& c, const pmi::Command& command);
  void serve_v2(Client& c, const pmi::Command& command);
  void send(Client& c, const std::string& line);
  // A reply to a request, in the client's protocol (PMI-2: with its thrid).
  void answer(Client& c, const Waiting& w, pmi::KeyValues fields);
  void maybe_contribute(World& w);
  void drop(Client& c);
  int appnum(const Client& c) const;
  // Names and spawns, which the home node answers (pmi_server_home.cpp).
  void ask_names(Client& c, Waiting w, const std::string& port);
  static Waiting waiting(const Client& c, Waiting::Kind kind, const pmi::Command& request);
  void spawn_app_ended(Client& c);
  void spawn_v2(Client& c, const pmi::Command& command);
  void request_spawn(Client& c, pmi::Spawn spawn, Waiting w);
  void refuse_spawn(Client& c, const Waiting& w, const std::string& why);
  World* world_of(int rank);

  DaemonContext& context_;
  std::function<void(int, int)> on_abort_;
  MpiJobMap map_;
  std::vector<std::unique_ptr<World>> worlds_;  // [0]: the job's first copies
  std::map<int, std::unique_ptr<Client>> clients_;
  std::set<int> in_mpi_;
  std::map<std::string, std::string> node_attrs_;  // PMI-2's node attributes (this node's copies)
  std::vector<NodeWait> node_waits_;
  std::uint64_t next_request_ = 0;
  std::map<std::uint64_t, Waiting> names_waiting_;
  std::map<std::uint64_t, Waiting> spawns_waiting_;  // the parent's
};

}  // namespace mosix
