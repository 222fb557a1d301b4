// The PMIx server of a node daemon, for MPI programs: Open MPI's MPI_Init
// connects to it (as under `srun --mpi=pmix`) and learns its rank, the job's
// size and where its peers run, and exchanges its wire-up data (fence).
// Built on the PMIx library that Debian's Open MPI uses (libpmix 4.2).
//
// Across nodes the servers meet through the node daemons: a fence goes to
// the home node, which sends every node's data back once all have entered
// it (core/fence.h); a rank's data asked for before it was exchanged
// (direct modex) is asked of its node. The library calls up on a thread of
// its own: the hooks must only queue their message for the daemon's loop.
// MPI_Comm_spawn (spawn) goes to the home node, which places the children
// and gives them a namespace of their own, registered on every server that
// takes part (add_namespace); PMIx_Connect/Disconnect are fences without
// data. Among themselves the servers name a process by its job rank.
//
// Made when a node learns it runs MPI copies (MpiJobMap); its start costs
// tens of ms (the library loads its plugins and a topology), which a job
// that is not MPI never pays. One per process: the library holds one server.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"

namespace mosix {

// One PMIx namespace of the job: the first copies' (ranks 0..N-1 of the
// job), or the children of an MPI_Comm_spawn (ranks first_rank.. of the
// job are its ranks 0..). The servers speak job ranks among themselves.
struct PmixSpace {
  std::string nspace;
  std::int32_t first_rank = 0;
  std::vector<std::uint32_t> rank_nodes;  // per rank of the namespace: its node
  std::vector<std::uint32_t> app_sizes;   // ranks of each app (PMIX_APPNUM); empty: one app
  std::string parent_nspace;              // the parent's (PMIX_PARENT_ID), "" for the first copies
  std::int32_t parent_rank = -1;
};

// Registers `space` with the started server: its size, nodes, the ranks
// this node runs and each rank's place (pmix_namespace.cpp). Node ids are
// the nodes' places among `node_names` (transport ranks).
Status register_pmix_space(const PmixSpace& space, const std::vector<std::string>& node_names, int this_node);

struct PmixJob {
  std::string nspace;     // the job's PMIx namespace
  MpiJobMap map;          // where every rank runs
  int this_node = 0;      // transport rank of this node
  std::string parent_dir; // private: the library's rendezvous files go into a folder made here
  // Several nodes of the job share this host (a virtual cluster): Open MPI
  // names its shared-memory files by host, job and local rank, which ranks
  // of two nodes would share; each node's go into its server's folder. And
  // their TCP traffic goes over the loopback.
  bool shared_host = false;
};

class PmixServer {
 public:
  struct Hooks {
    std::function<void(FenceContribution)> contribute;     // to the home node
    std::function<void(int node, ModexRequest)> ask;       // to the node of the rank asked for
    std::function<void(int node, ModexReply)> answer;      // to the node that asked
    std::function<void(Message)> names;                    // NamePublish, NameLookup, NameUnpublish: to the home node
    std::function<void(MpiSpawn)> spawn;                   // MPI_Comm_spawn: to the home node
  };
  PmixServer(PmixJob job, Hooks hooks) : job_(std::move(job)), hooks_(std::move(hooks)) {}
  ~PmixServer();
  PmixServer(const PmixServer&) = delete;
  PmixServer& operator=(const PmixServer&) = delete;

  // Starts the server and registers the job (its map, each rank's place).
  Status start();

  // Registers local copy `rank` and adds to `env` what its PMIx client needs
  // to reach the server (and Open MPI's choice of PMIx over a singleton start).
  Status add_client(int rank, std::vector<std::string>& env);

  // The home node's word on a fence this node entered.
  void fence_released(const FenceRelease& release);
  // Node `source` asks for the data of a rank of this node; answered
  // (hooks.answer) once that rank has put it.
  void modex_asked(int source, const ModexRequest& request);
  // The answer to a question of ours.
  void modex_answered(const ModexReply& reply);
  // The home node's answer to a publish, lookup or unpublish of ours.
  void names_answered(const NameReply& reply);

  // Local copy `rank` called MPI_Init (PMIx_Init) and not yet MPI_Finalize.
  bool in_mpi(int rank);

  // The home node made a namespace of spawned ranks (some may run here).
  Status add_namespace(const MpiNamespace& space);
  // The home node's answer to an MPI_Comm_spawn of a copy of this node.
  void spawn_answered(const MpiSpawnReply& reply);

  // Called by the library (on its thread).
  void client_state(int rank, bool in_mpi);
  void fence_entered(std::vector<std::int32_t> ranks, Bytes data, void* cbfunc, void* cbdata);
  int modex_wanted(int rank, void* cbfunc, void* cbdata);
  // A publish, lookup or unpublish (`message`, its request_id still 0): the
  // library's callback gets the home node's answer.
  void names_asked(Message message, bool lookup, void* cbfunc, void* cbdata);
  // MPI_Comm_spawn of local copy `parent_rank` (request_id still 0).
  void spawn_asked(MpiSpawn request, void* cbfunc, void* cbdata);
  // PMIx_Connect or _Disconnect: every local participant is in; done once
  // all nodes with participants are (a fence without data).
  void connect_entered(std::vector<std::int32_t> ranks, void* cbfunc, void* cbdata);
  const std::string& nspace() const { return job_.nspace; }

  // Job ranks of PMIx procs (a wildcard: every rank of its namespace); the
  // first copies' namespace alone, whole, is {} (the whole job, as before
  // spawns). False if a namespace is unknown.
  bool job_ranks(const void* procs, size_t nprocs, std::vector<std::int32_t>& ranks);
  // A proc's job rank, -1 if its namespace is unknown.
  int job_rank(const char* nspace, std::uint32_t rank);
  // The namespace and rank in it of job rank `rank` (false if unknown).
  bool pmix_proc(int rank, std::string& nspace, std::uint32_t& local);

 private:
  using FenceKey = std::pair<std::vector<std::int32_t>, std::uint64_t>;
  struct Callback {
    void* cbfunc = nullptr;  // a pmix_modex_cbfunc_t (a pmix_op_cbfunc_t for a connect)
    void* cbdata = nullptr;
  };
  const PmixSpace* space_of(int rank) const;  // mutex_ held
  void fence_or_connect(std::vector<std::int32_t> ranks, Bytes data, bool connect, Callback cb);

  PmixJob job_;
  Hooks hooks_;
  std::string tmpdir_;  // made by start(), removed with the server
  bool started_ = false;

  std::mutex mutex_;  // the library's thread and the daemon's
  std::set<int> in_mpi_;
  std::map<std::vector<std::int32_t>, std::uint64_t> fences_entered_;  // per set of ranks
  std::map<FenceKey, Callback> fences_waiting_;
  std::uint64_t next_request_ = 1;
  std::map<std::uint64_t, Callback> modex_waiting_;
  std::map<std::uint64_t, std::pair<bool, Callback>> names_waiting_;  // lookup?, its callback
  std::vector<PmixSpace> spaces_;  // [0]: the first copies'; then each spawn's
  std::map<std::vector<std::int32_t>, std::uint64_t> connects_entered_;
  std::map<std::uint64_t, Callback> spawns_waiting_;
};

}  // namespace mosix
