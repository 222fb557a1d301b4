// The home router's part of MPI_Comm_spawn (PMIx spawn) of Open MPI
// programs: the spawn service's way (home_guests.cpp: placed by load, the
// next free ranks, announced to mosixrun before anything else of them), plus
// what PRRTE does for a child job: a PMIx namespace of its own, registered
// on every node whose server takes part (its parents' and its own nodes).
#include <algorithm>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "runtime/core/environment.h"
#include "runtime/core/node_state.h"
#include "runtime/core/placement.h"
#include "runtime/daemon/home_router.h"

namespace mosix {

namespace {
constexpr std::uint32_t kMaxMpiSpawnCount = 4096;
constexpr std::int32_t kPmixErrBadParam = -27;  // PMIX_ERR_BAD_PARAM
constexpr std::int32_t kPmixErrOutOfResource = -29;  // PMIX_ERR_OUT_OF_RESOURCE

// What the node of an MPI copy sets in its environment for that node (the
// PMIx link: its shared-memory folder; the home: the oversubscription
// hint). Open MPI hands every OMPI_MCA_* of the parent to its children: from
// the parent's node these would be wrong for a child elsewhere (children on
// two vnodes shared one folder, and their shared-memory segments, of the
// same name: they crashed). The user's own setting is kept.
bool set_for_its_node(const std::string& name) {
  return name == "OMPI_MCA_btl_vader_backing_directory" || name == "OMPI_MCA_mpi_oversubscribe" ||
         name == "OMPI_MCA_btl_tcp_if_include";
}

}  // namespace

void HomeRouter::mpi_spawn(int source, const MpiSpawn& request) {
  MpiSpawnReply reply;
  reply.request_id = request.request_id;
  auto refuse = [&](std::int32_t status, std::string why) {
    reply.status = status;
    reply.reason = std::move(why);
    context_.send(source, reply);
  };
  if (!mpi_map_ || !mpi_first_copy_) return refuse(kPmixErrBadParam, "the job is not an MPI job");
  // From an MPICH copy's PMI server: MPICH children, and PMI's preput pairs
  // start their key-value space.
  const bool pmi = (request.request_id & kPmiRequestBit) != 0;
  std::uint32_t total = 0;
  for (const MpiSpawnApp& app : request.apps) {
    if (app.count == 0 || app.argv.empty() || app.argv[0].empty()) {
      return refuse(kPmixErrBadParam, "an app of the spawn names no program or no copies");
    }
    total += app.count;
  }
  if (request.apps.empty() || total > kMaxMpiSpawnCount) {
    return refuse(kPmixErrBadParam, "a spawn asks for 1 to " + std::to_string(kMaxMpiSpawnCount) + " copies, not " +
                                        std::to_string(total));
  }

  // Where: each app as the spawn service places, by load (the job's running
  // guests count as load), on its named node if it has one.
  std::map<int, int> running = running_guests();
  std::vector<std::uint32_t> child_nodes;
  for (const MpiSpawnApp& app : request.apps) {
    auto where = nodes_for_spawn(app.where, static_cast<int>(app.count), running);
    if (!where) return refuse(kPmixErrOutOfResource, where.error().message);
    for (int node : *where) child_nodes.push_back(static_cast<std::uint32_t>(node));
  }

  MpiNamespace space;
  space.nspace = "mosix." + (context_.options().job_id.empty() ? std::to_string(::getpid()) : context_.options().job_id) +
                 ".spawn" + std::to_string(++mpi_spawns_);
  space.first_rank = take_ranks(static_cast<int>(total));
  space.rank_nodes = child_nodes;
  space.parent_rank = request.parent_rank;
  for (const MpiSpawnApp& app : request.apps) space.app_sizes.push_back(app.count);
  space.flags = pmi ? kSpawnPmi : kSpawnPmix;
  space.kvs = request.kvs;
  if (mpi_rank_nodes_.size() < static_cast<size_t>(space.first_rank)) {
    mpi_rank_nodes_.resize(static_cast<size_t>(space.first_rank), 0);  // ranks of other spawns: never in a fence
  }
  mpi_rank_nodes_.insert(mpi_rank_nodes_.end(), child_nodes.begin(), child_nodes.end());

  // Every node with a PMIx server (the parents') and every node of a child
  // learns the namespace; a node new to MPI gets the job's map first. All
  // through the transport, to itself too, so each node has them before the
  // children's SpawnGuest.
  std::set<int> told = mpi_nodes_;
  told.insert(child_nodes.begin(), child_nodes.end());
  for (int node : told) {
    if (!mpi_nodes_.count(node)) context_.send(node, *mpi_map_);
    context_.send(node, space);
  }
  mpi_nodes_ = told;

  std::map<std::uint32_t, int> per_node, local_rank;
  for (std::uint32_t node : child_nodes) per_node[node]++;
  const SpawnGuest& first = *mpi_first_copy_;
  std::int32_t index = 0;
  for (size_t a = 0; a < request.apps.size(); ++a) {
    const MpiSpawnApp& app = request.apps[a];
    for (std::uint32_t k = 0; k < app.count; ++k, ++index) {
      const std::uint32_t node = child_nodes[static_cast<size_t>(index)];
      SpawnGuest s;
      s.rank = space.first_rank + index;
      s.argv = app.argv;
      s.env = first.env;
      s.cwd = app.cwd.empty() ? first.cwd : app.cwd;
      s.flags = space.flags;
      const std::string lr = std::to_string(local_rank[node]++);
      set_env(s.env, "MOSIX_RANK", std::to_string(s.rank));
      set_env(s.env, "MOSIX_PARENT_RANK", std::to_string(request.parent_rank));
      set_env(s.env, "MOSIX_SPAWN_RANKS", std::to_string(space.first_rank) + "," + std::to_string(total));
      set_env(s.env, "MOSIX_NODES", node_names());
      set_env(s.env, "OMPI_COMM_WORLD_RANK", std::to_string(index));
      for (const char* name : {"MOSIX_SIZE", "OMPI_COMM_WORLD_SIZE"}) set_env(s.env, name, std::to_string(total));
      for (const char* name : {"MOSIX_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_NODE_RANK"}) {
        set_env(s.env, name, lr);
      }
      set_env(s.env, "OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(per_node[node]));
      // As for the first copies: more MPI copies than cores there, Open MPI
      // is told to yield when it waits.
      if (!pmi && running[static_cast<int>(node)] > static_cast<int>(hellos_[node]->cores) &&
          !get_env(s.env, "OMPI_MCA_mpi_oversubscribe")) {
        set_env(s.env, "OMPI_MCA_mpi_oversubscribe", "1");
      }
      for (const std::string& e : app.env) {
        const auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0) continue;
        const std::string name = e.substr(0, eq);
        if (set_for_its_node(name) && !get_env(first.env, name)) continue;
        set_env(s.env, name, e.substr(eq + 1));
      }
      rank_node_[s.rank] = static_cast<int>(node);
      spdlog::debug("rank {} spawns MPI rank {} ({} rank {}) -> node {}", request.parent_rank, s.rank, space.nspace,
                    index, node);
      mosixrun_->send(s);  // before anything of the new rank, or its parents' end, can reach mosixrun
      context_.send(static_cast<int>(node), s);
    }
  }
  reply.nspace = space.nspace;
  context_.send(source, reply);
}

}  // namespace mosix
