// Registering one namespace of the job with this node's PMIx server: what
// Open MPI asks of it (its size, its nodes and which ranks each runs, this
// node's copies of it, each rank's place), as PRRTE registers a job on every
// daemon, those without a copy of it too (a spawned job's parents connect to
// it, and PMIx completes a connect only among namespaces it knows).
#include <pmix.h>
#include <pmix_server.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>

#include "runtime/daemon/pmix_server.h"

namespace mosix {
namespace {

struct Registered {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  pmix_status_t status = PMIX_SUCCESS;
};

std::string join_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ",") + std::to_string(r);
  return out;
}

}  // namespace

Status register_pmix_space(const PmixSpace& space, const std::vector<std::string>& node_names, int this_node) {
  const std::vector<std::uint32_t>& rank_nodes = space.rank_nodes;
  // The nodes that run ranks of it, in transport order, each with its
  // ranks ascending. A node's PMIx node id is its transport rank, the same
  // in every namespace of the job.
  std::map<std::uint32_t, std::vector<int>> node_ranks;
  for (size_t r = 0; r < rank_nodes.size(); ++r) node_ranks[rank_nodes[r]].push_back(static_cast<int>(r));
  std::string hosts, procs;
  for (const auto& [node, ranks] : node_ranks) {
    if (node >= node_names.size()) return make_error("the job's map names no node " + std::to_string(node));
    hosts += (hosts.empty() ? "" : ",") + node_names[node];
    procs += (procs.empty() ? "" : ";") + join_ranks(ranks);
  }
  const auto here = node_ranks.find(static_cast<std::uint32_t>(this_node));
  const std::vector<int> none;
  const std::vector<int>& local_ranks = here == node_ranks.end() ? none : here->second;
  std::vector<std::uint32_t> appnum(rank_nodes.size(), 0);
  {
    size_t r = 0;
    for (size_t a = 0; a < space.app_sizes.size(); ++a) {
      for (std::uint32_t k = 0; k < space.app_sizes[a] && r < appnum.size(); ++k) appnum[r++] = static_cast<std::uint32_t>(a);
    }
  }

  char* node_map = nullptr;
  char* proc_map = nullptr;
  const std::string local = join_ranks(local_ranks);
  PMIx_generate_regex(hosts.c_str(), &node_map);
  PMIx_generate_ppn(procs.c_str(), &proc_map);
  const auto size = static_cast<std::uint32_t>(rank_nodes.size());
  const auto local_size = static_cast<std::uint32_t>(local_ranks.size());
  const auto num_nodes = static_cast<std::uint32_t>(node_ranks.size());
  const auto my_id = static_cast<std::uint32_t>(this_node);
  const auto num_apps = static_cast<std::uint32_t>(std::max<size_t>(1, space.app_sizes.size()));
  std::vector<pmix_info_t> info(10);
  for (pmix_info_t& i : info) PMIX_INFO_CONSTRUCT(&i);
  PMIX_INFO_LOAD(&info[0], PMIX_UNIV_SIZE, &size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[1], PMIX_JOB_SIZE, &size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[2], PMIX_MAX_PROCS, &size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[3], PMIX_LOCAL_SIZE, &local_size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[4], PMIX_NODE_MAP, node_map, PMIX_STRING);
  PMIX_INFO_LOAD(&info[5], PMIX_PROC_MAP, proc_map, PMIX_STRING);
  PMIX_INFO_LOAD(&info[6], PMIX_JOBID, space.nspace.c_str(), PMIX_STRING);
  PMIX_INFO_LOAD(&info[7], PMIX_NUM_NODES, &num_nodes, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[8], PMIX_NODEID, &my_id, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[9], PMIX_JOB_NUM_APPS, &num_apps, PMIX_UINT32);
  std::free(node_map);
  std::free(proc_map);
  if (!local_ranks.empty()) {
    const auto leader = static_cast<pmix_rank_t>(local_ranks.front());
    info.emplace_back();
    PMIX_INFO_CONSTRUCT(&info.back());
    PMIX_INFO_LOAD(&info.back(), PMIX_LOCAL_PEERS, local.c_str(), PMIX_STRING);
    info.emplace_back();
    PMIX_INFO_CONSTRUCT(&info.back());
    PMIX_INFO_LOAD(&info.back(), PMIX_LOCALLDR, &leader, PMIX_PROC_RANK);
  }
  if (!space.parent_nspace.empty()) {
    // Which process spawned this namespace (PRRTE gives it to a child job).
    pmix_proc_t parent;
    PMIX_LOAD_PROCID(&parent, space.parent_nspace.c_str(), static_cast<pmix_rank_t>(space.parent_rank));
    info.emplace_back();
    PMIX_INFO_CONSTRUCT(&info.back());
    PMIX_INFO_LOAD(&info.back(), PMIX_PARENT_ID, &parent, PMIX_PROC);
  }
  for (const auto& [node, ranks] : node_ranks) {
    for (size_t k = 0; k < ranks.size(); ++k) {
      pmix_data_array_t* proc;
      PMIX_DATA_ARRAY_CREATE(proc, 7, PMIX_INFO);
      auto* pi = static_cast<pmix_info_t*>(proc->array);
      const auto rank = static_cast<pmix_rank_t>(ranks[k]);
      const auto local_rank = static_cast<std::uint16_t>(k);
      const std::uint32_t id = node;
      const std::uint32_t app = appnum[static_cast<size_t>(ranks[k])];
      const bool spawned = !space.parent_nspace.empty();
      PMIX_INFO_LOAD(&pi[0], PMIX_RANK, &rank, PMIX_PROC_RANK);
      PMIX_INFO_LOAD(&pi[1], PMIX_LOCAL_RANK, &local_rank, PMIX_UINT16);
      PMIX_INFO_LOAD(&pi[2], PMIX_NODE_RANK, &local_rank, PMIX_UINT16);
      PMIX_INFO_LOAD(&pi[3], PMIX_APPNUM, &app, PMIX_UINT32);
      PMIX_INFO_LOAD(&pi[4], PMIX_NODEID, &id, PMIX_UINT32);
      PMIX_INFO_LOAD(&pi[5], PMIX_HOSTNAME, node_names[node].c_str(), PMIX_STRING);
      PMIX_INFO_LOAD(&pi[6], PMIX_SPAWNED, &spawned, PMIX_BOOL);
      info.emplace_back();
      PMIX_INFO_CONSTRUCT(&info.back());
      PMIX_INFO_LOAD(&info.back(), PMIX_PROC_INFO_ARRAY, proc, PMIX_DATA_ARRAY);
      PMIX_DATA_ARRAY_FREE(proc);
    }
  }
  Registered done;
  auto finished = [](pmix_status_t status, void* self) {
    auto* d = static_cast<Registered*>(self);
    std::lock_guard lock(d->mutex);
    d->status = status;
    d->done = true;
    d->cv.notify_all();
  };
  pmix_status_t rc = PMIx_server_register_nspace(space.nspace.c_str(), static_cast<int>(local_ranks.size()),
                                                 info.data(), info.size(), finished, &done);
  if (rc == PMIX_SUCCESS) {
    std::unique_lock lock(done.mutex);
    done.cv.wait(lock, [&] { return done.done; });
    rc = done.status;
  } else if (rc == PMIX_OPERATION_SUCCEEDED) {
    rc = PMIX_SUCCESS;
  }
  for (pmix_info_t& i : info) PMIX_INFO_DESTRUCT(&i);
  if (rc != PMIX_SUCCESS) {
    return make_error("cannot register PMIx namespace " + space.nspace + ": " + PMIx_Error_string(rc));
  }
  return {};
}

}  // namespace mosix
