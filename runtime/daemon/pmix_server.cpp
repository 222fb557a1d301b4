#include "runtime/daemon/pmix_server.h"

#include <pmix.h>
#include <pmix_server.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "runtime/core/environment.h"

namespace mosix {
namespace {

// The library's calls with a completion callback: waited for here (they are
// quick, local bookkeeping).
class OpWait {
 public:
  static void done(pmix_status_t status, void* self) {
    auto* w = static_cast<OpWait*>(self);
    std::lock_guard lock(w->mutex_);
    w->status_ = status;
    w->done_ = true;
    w->cv_.notify_all();
  }
  pmix_status_t wait(pmix_status_t called) {
    if (called != PMIX_SUCCESS) return called == PMIX_OPERATION_SUCCEEDED ? PMIX_SUCCESS : called;
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
    return status_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  pmix_status_t status_ = PMIX_SUCCESS;
};

Error pmix_error(const std::string& what, pmix_status_t status) {
  return make_error(what + ": " + PMIx_Error_string(status));
}

PmixServer* g_server = nullptr;  // the one server of this process, for the library's upcalls

// The library's upcalls run on its own thread. A client's finalize is
// answered after this returns, so the copy cannot exit before it is noted.
pmix_status_t client_connected(const pmix_proc_t* proc, void*, pmix_op_cbfunc_t, void*) {
  if (g_server != nullptr) g_server->client_state(static_cast<int>(proc->rank), true);
  return PMIX_OPERATION_SUCCEEDED;
}

pmix_status_t client_finalized(const pmix_proc_t* proc, void*, pmix_op_cbfunc_t, void*) {
  if (g_server != nullptr) g_server->client_state(static_cast<int>(proc->rank), false);
  return PMIX_OPERATION_SUCCEEDED;
}

// MPI_Abort: Open MPI prints mpirun's message itself, then the copy exits
// with its code, and the job's exit rule takes it from there.
pmix_status_t client_aborted(const pmix_proc_t* proc, void*, int status, const char[], pmix_proc_t[], size_t,
                             pmix_op_cbfunc_t, void*) {
  spdlog::debug("rank {} called MPI_Abort with status {}", proc->rank, status);
  return PMIX_OPERATION_SUCCEEDED;
}

// The library frees nothing of ours: it gets a copy, and the copy's release.
void give_data(pmix_modex_cbfunc_t cbfunc, pmix_status_t status, const Bytes& data, void* cbdata) {
  char* copy = nullptr;
  if (!data.empty()) {
    copy = static_cast<char*>(std::malloc(data.size()));
    if (copy == nullptr) {
      cbfunc(PMIX_ERR_NOMEM, nullptr, 0, cbdata, nullptr, nullptr);
      return;
    }
    std::memcpy(copy, data.data(), data.size());
  }
  cbfunc(status, copy, data.size(), cbdata, [](void* p) { std::free(p); }, copy);
}

// Every local participant entered the fence: this node's part goes home.
pmix_status_t fence(const pmix_proc_t procs[], size_t nprocs, const pmix_info_t[], size_t, char* data, size_t ndata,
                    pmix_modex_cbfunc_t cbfunc, void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  std::vector<std::int32_t> ranks;
  for (size_t k = 0; k < nprocs; ++k) {
    if (procs[k].rank == PMIX_RANK_WILDCARD) {
      ranks.clear();
      break;
    }
    ranks.push_back(static_cast<std::int32_t>(procs[k].rank));
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
  g_server->fence_entered(std::move(ranks), Bytes(bytes, bytes + ndata), reinterpret_cast<void*>(cbfunc), cbdata);
  return PMIX_SUCCESS;
}

// A local client wants a remote rank's data that no fence brought.
pmix_status_t direct_modex(const pmix_proc_t* proc, const pmix_info_t[], size_t, pmix_modex_cbfunc_t cbfunc,
                           void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  return g_server->modex_wanted(static_cast<int>(proc->rank), reinterpret_cast<void*>(cbfunc), cbdata);
}

// MPI_Publish_name and friends: the names live at the home node. A name's
// value must be a string (MPI's port names are); directives ("pmix.*": range,
// persistence, wait) are not names.
bool is_directive(const char* key) { return std::strncmp(key, "pmix.", 5) == 0; }

pmix_status_t publish(const pmix_proc_t* proc, const pmix_info_t info[], size_t ninfo, pmix_op_cbfunc_t cbfunc,
                      void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  NamePublish request;
  for (size_t k = 0; k < ninfo; ++k) {
    if (is_directive(info[k].key)) continue;
    if (info[k].value.type != PMIX_STRING || info[k].value.data.string == nullptr) return PMIX_ERR_NOT_SUPPORTED;
    request.names.push_back(PublishedName{info[k].key, info[k].value.data.string, static_cast<std::int32_t>(proc->rank)});
  }
  g_server->names_asked(request, false, reinterpret_cast<void*>(cbfunc), cbdata);
  return PMIX_SUCCESS;
}

pmix_status_t lookup(const pmix_proc_t*, char** keys, const pmix_info_t info[], size_t ninfo,
                     pmix_lookup_cbfunc_t cbfunc, void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  NameLookup request;
  for (char** k = keys; k != nullptr && *k != nullptr; ++k) request.keys.emplace_back(*k);
  for (size_t k = 0; k < ninfo; ++k) {
    if (std::strcmp(info[k].key, PMIX_WAIT) == 0) request.wait = true;
  }
  g_server->names_asked(request, true, reinterpret_cast<void*>(cbfunc), cbdata);
  return PMIX_SUCCESS;
}

pmix_status_t unpublish(const pmix_proc_t* proc, char** keys, const pmix_info_t[], size_t, pmix_op_cbfunc_t cbfunc,
                        void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  NameUnpublish request;
  request.rank = static_cast<std::int32_t>(proc->rank);
  for (char** k = keys; k != nullptr && *k != nullptr; ++k) request.keys.emplace_back(*k);
  g_server->names_asked(request, false, reinterpret_cast<void*>(cbfunc), cbdata);
  return PMIX_SUCCESS;
}

pmix_server_module_t g_module = [] {
  pmix_server_module_t m{};
  m.client_connected = client_connected;
  m.client_finalized = client_finalized;
  m.abort = client_aborted;
  m.fence_nb = fence;
  m.direct_modex = direct_modex;
  m.publish = publish;
  m.lookup = lookup;
  m.unpublish = unpublish;
  return m;
}();

std::string join_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ",") + std::to_string(r);
  return out;
}

}  // namespace

PmixServer::~PmixServer() {
  if (started_) {
    PMIx_server_finalize();
    g_server = nullptr;
  }
  if (!tmpdir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(tmpdir_, ec);
  }
}

Status PmixServer::start() {
  if (started_) return {};
  const std::vector<std::uint32_t>& rank_nodes = job_.map.rank_nodes;
  // The nodes that run ranks, in transport order: PMIx node ids are their
  // places in this list; each with its ranks, ascending.
  std::map<std::uint32_t, std::vector<int>> node_ranks;
  for (size_t r = 0; r < rank_nodes.size(); ++r) node_ranks[rank_nodes[r]].push_back(static_cast<int>(r));
  const auto here = node_ranks.find(static_cast<std::uint32_t>(job_.this_node));
  if (here == node_ranks.end()) return make_error("no MPI copy of the job runs on this node");
  std::map<std::uint32_t, std::uint32_t> node_id;
  std::string hosts, procs;
  for (const auto& [node, ranks] : node_ranks) {
    if (node >= job_.map.node_names.size()) return make_error("the job's map names no node " + std::to_string(node));
    node_id[node] = static_cast<std::uint32_t>(node_id.size());
    hosts += (hosts.empty() ? "" : ",") + job_.map.node_names[node];
    procs += (procs.empty() ? "" : ";") + join_ranks(ranks);
  }
  const std::vector<int>& local_ranks = here->second;

  // Its rendezvous files (a socket, shared-memory stores) go into a folder
  // of their own in the user's private runtime directory.
  std::string dir = job_.parent_dir + "/pmix-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    return make_error("cannot make a folder for the PMIx server in " + job_.parent_dir + ": " + std::strerror(errno));
  }
  tmpdir_ = dir;
  pmix_info_t init[1];
  PMIX_INFO_CONSTRUCT(&init[0]);
  PMIX_INFO_LOAD(&init[0], PMIX_SERVER_TMPDIR, tmpdir_.c_str(), PMIX_STRING);
  pmix_status_t rc = PMIx_server_init(&g_module, init, 1);
  PMIX_INFO_DESTRUCT(&init[0]);
  if (rc != PMIX_SUCCESS) return pmix_error("cannot start the PMIx server for MPI copies", rc);
  started_ = true;
  g_server = this;

  // The job as Open MPI asks for it: its size, its nodes and which ranks
  // each runs, this node's copies, and each rank's place. One application.
  char* node_map = nullptr;
  char* proc_map = nullptr;
  const std::string local = join_ranks(local_ranks);
  PMIx_generate_regex(hosts.c_str(), &node_map);
  PMIx_generate_ppn(procs.c_str(), &proc_map);
  const auto size = static_cast<std::uint32_t>(rank_nodes.size());
  const auto local_size = static_cast<std::uint32_t>(local_ranks.size());
  const auto num_nodes = static_cast<std::uint32_t>(node_ranks.size());
  const std::uint32_t my_id = node_id[here->first], zero = 0;
  const auto leader = static_cast<pmix_rank_t>(local_ranks.front());
  std::vector<pmix_info_t> info(11 + rank_nodes.size());
  for (pmix_info_t& i : info) PMIX_INFO_CONSTRUCT(&i);
  PMIX_INFO_LOAD(&info[0], PMIX_UNIV_SIZE, &size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[1], PMIX_JOB_SIZE, &size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[2], PMIX_MAX_PROCS, &size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[3], PMIX_LOCAL_SIZE, &local_size, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[4], PMIX_NODE_MAP, node_map, PMIX_STRING);
  PMIX_INFO_LOAD(&info[5], PMIX_PROC_MAP, proc_map, PMIX_STRING);
  PMIX_INFO_LOAD(&info[6], PMIX_LOCAL_PEERS, local.c_str(), PMIX_STRING);
  PMIX_INFO_LOAD(&info[7], PMIX_LOCALLDR, &leader, PMIX_PROC_RANK);
  PMIX_INFO_LOAD(&info[8], PMIX_JOBID, job_.nspace.c_str(), PMIX_STRING);
  PMIX_INFO_LOAD(&info[9], PMIX_NUM_NODES, &num_nodes, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[10], PMIX_NODEID, &my_id, PMIX_UINT32);
  std::free(node_map);
  std::free(proc_map);
  for (const auto& [node, ranks] : node_ranks) {
    for (size_t k = 0; k < ranks.size(); ++k) {
      pmix_data_array_t* proc;
      PMIX_DATA_ARRAY_CREATE(proc, 6, PMIX_INFO);
      auto* pi = static_cast<pmix_info_t*>(proc->array);
      const auto rank = static_cast<pmix_rank_t>(ranks[k]);
      const auto local_rank = static_cast<std::uint16_t>(k);
      const std::uint32_t id = node_id[node];
      PMIX_INFO_LOAD(&pi[0], PMIX_RANK, &rank, PMIX_PROC_RANK);
      PMIX_INFO_LOAD(&pi[1], PMIX_LOCAL_RANK, &local_rank, PMIX_UINT16);
      PMIX_INFO_LOAD(&pi[2], PMIX_NODE_RANK, &local_rank, PMIX_UINT16);
      PMIX_INFO_LOAD(&pi[3], PMIX_APPNUM, &zero, PMIX_UINT32);
      PMIX_INFO_LOAD(&pi[4], PMIX_NODEID, &id, PMIX_UINT32);
      PMIX_INFO_LOAD(&pi[5], PMIX_HOSTNAME, job_.map.node_names[node].c_str(), PMIX_STRING);
      PMIX_INFO_LOAD(&info[11 + static_cast<size_t>(rank)], PMIX_PROC_INFO_ARRAY, proc, PMIX_DATA_ARRAY);
      PMIX_DATA_ARRAY_FREE(proc);
    }
  }
  OpWait registered;
  rc = registered.wait(PMIx_server_register_nspace(job_.nspace.c_str(), static_cast<int>(local_ranks.size()),
                                                   info.data(), info.size(), OpWait::done, &registered));
  for (pmix_info_t& i : info) PMIX_INFO_DESTRUCT(&i);
  if (rc != PMIX_SUCCESS) return pmix_error("cannot register the job with the PMIx server", rc);
  return {};
}

Status PmixServer::add_client(int rank, std::vector<std::string>& env) {
  if (Status s = start(); !s) return s;
  pmix_proc_t proc;
  PMIX_LOAD_PROCID(&proc, job_.nspace.c_str(), static_cast<pmix_rank_t>(rank));
  OpWait registered;
  pmix_status_t rc =
      registered.wait(PMIx_server_register_client(&proc, ::getuid(), ::getgid(), nullptr, OpWait::done, &registered));
  if (rc != PMIX_SUCCESS) return pmix_error("cannot register rank " + std::to_string(rank) + " with PMIx", rc);
  char** added = nullptr;
  rc = PMIx_server_setup_fork(&proc, &added);
  if (rc != PMIX_SUCCESS) return pmix_error("cannot set up rank " + std::to_string(rank) + " for PMIx", rc);
  for (char** e = added; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::size_t eq = entry.find('=');
    if (eq != std::string::npos) set_env(env, entry.substr(0, eq), entry.substr(eq + 1));
    std::free(*e);
  }
  std::free(added);
  // Open MPI 4.1 takes a start that no launcher of its own knows (neither
  // its mpirun nor Slurm, Flux or JSM) for a singleton: its `ompi`
  // personality with the `pmi` start uses the server instead.
  set_env(env, "OMPI_MCA_orte_schizo", "ompi");
  set_env(env, "OMPI_MCA_ess", "pmi");
  if (job_.shared_host && !get_env(env, "OMPI_MCA_btl_vader_backing_directory")) {
    set_env(env, "OMPI_MCA_btl_vader_backing_directory", tmpdir_);
  }
  // Nodes on one host reach each other over its loopback, which Open MPI's
  // TCP transport leaves out by default: it would take whatever other
  // interface there is (or fail without one), and an interface that goes
  // away meanwhile breaks the job.
  if (job_.shared_host && !get_env(env, "OMPI_MCA_btl_tcp_if_include") && !get_env(env, "OMPI_MCA_btl_tcp_if_exclude")) {
    set_env(env, "OMPI_MCA_btl_tcp_if_include", "lo");
  }
  return {};
}

void PmixServer::client_state(int rank, bool in_mpi) {
  std::lock_guard lock(mutex_);
  if (in_mpi) {
    in_mpi_.insert(rank);
  } else {
    in_mpi_.erase(rank);
  }
}

bool PmixServer::in_mpi(int rank) {
  std::lock_guard lock(mutex_);
  return in_mpi_.count(rank) != 0;
}

void PmixServer::fence_entered(std::vector<std::int32_t> ranks, Bytes data, void* cbfunc, void* cbdata) {
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = fences_entered_[ranks]++;
    fences_waiting_[{ranks, id}] = Callback{cbfunc, cbdata};
  }
  hooks_.contribute(FenceContribution{id, std::move(ranks), std::move(data)});
}

void PmixServer::fence_released(const FenceRelease& release) {
  Callback cb;
  {
    std::lock_guard lock(mutex_);
    auto it = fences_waiting_.find({release.ranks, release.fence_id});
    if (it == fences_waiting_.end()) {
      spdlog::warn("the home node released fence {} that no copy here entered", release.fence_id);
      return;
    }
    cb = it->second;
    fences_waiting_.erase(it);
  }
  if (release.status != PMIX_SUCCESS) {
    spdlog::error("an MPI fence failed: {} (a node with copies of the job was lost)",
                  PMIx_Error_string(release.status));
  }
  give_data(reinterpret_cast<pmix_modex_cbfunc_t>(cb.cbfunc), release.status, release.data, cb.cbdata);
}

int PmixServer::modex_wanted(int rank, void* cbfunc, void* cbdata) {
  const auto& nodes = job_.map.rank_nodes;
  if (rank < 0 || static_cast<size_t>(rank) >= nodes.size()) return PMIX_ERR_NOT_FOUND;
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = next_request_++;
    modex_waiting_[id] = Callback{cbfunc, cbdata};
  }
  hooks_.ask(static_cast<int>(nodes[static_cast<size_t>(rank)]), ModexRequest{id, rank});
  return PMIX_SUCCESS;
}

namespace {
struct ModexAsked {
  PmixServer::Hooks* hooks;
  int source;
  std::uint64_t request_id;
};
}  // namespace

void PmixServer::modex_asked(int source, const ModexRequest& request) {
  if (Status s = start(); !s) {
    hooks_.answer(source, ModexReply{request.request_id, PMIX_ERR_NOT_FOUND, {}});
    return;
  }
  pmix_proc_t proc;
  PMIX_LOAD_PROCID(&proc, job_.nspace.c_str(), static_cast<pmix_rank_t>(request.rank));
  auto* asked = new ModexAsked{&hooks_, source, request.request_id};
  // The library answers once the rank has put its data (maybe at once).
  pmix_status_t rc = PMIx_server_dmodex_request(
      &proc,
      [](pmix_status_t status, char* data, size_t size, void* cbdata) {
        auto* a = static_cast<ModexAsked*>(cbdata);
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
        a->hooks->answer(a->source, ModexReply{a->request_id, status, Bytes(bytes, bytes + size)});
        delete a;
      },
      asked);
  if (rc != PMIX_SUCCESS) {
    delete asked;
    hooks_.answer(source, ModexReply{request.request_id, rc, {}});
  }
}

void PmixServer::modex_answered(const ModexReply& reply) {
  Callback cb;
  {
    std::lock_guard lock(mutex_);
    auto it = modex_waiting_.find(reply.request_id);
    if (it == modex_waiting_.end()) return;
    cb = it->second;
    modex_waiting_.erase(it);
  }
  give_data(reinterpret_cast<pmix_modex_cbfunc_t>(cb.cbfunc), reply.status, reply.data, cb.cbdata);
}

void PmixServer::names_asked(Message message, bool lookup, void* cbfunc, void* cbdata) {
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = next_request_++;
    names_waiting_[id] = {lookup, Callback{cbfunc, cbdata}};
  }
  std::visit([id](auto& m) {
    if constexpr (requires { m.request_id; }) m.request_id = id;
  }, message);
  hooks_.names(std::move(message));
}

void PmixServer::names_answered(const NameReply& reply) {
  std::pair<bool, Callback> cb;
  {
    std::lock_guard lock(mutex_);
    auto it = names_waiting_.find(reply.request_id);
    if (it == names_waiting_.end()) return;
    cb = it->second;
    names_waiting_.erase(it);
  }
  if (!cb.first) {
    reinterpret_cast<pmix_op_cbfunc_t>(cb.second.cbfunc)(reply.status, cb.second.cbdata);
    return;
  }
  // The library copies what it is given before this returns.
  pmix_pdata_t* found = nullptr;
  const size_t n = reply.names.size();
  if (n > 0) PMIX_PDATA_CREATE(found, n);
  for (size_t k = 0; k < n; ++k) {
    const PublishedName& name = reply.names[k];
    PMIX_LOAD_PROCID(&found[k].proc, job_.nspace.c_str(), static_cast<pmix_rank_t>(name.rank));
    PMIX_LOAD_KEY(found[k].key, name.key.c_str());
    PMIX_VALUE_LOAD(&found[k].value, name.value.c_str(), PMIX_STRING);
  }
  reinterpret_cast<pmix_lookup_cbfunc_t>(cb.second.cbfunc)(reply.status, found, n, cb.second.cbdata);
  if (found != nullptr) PMIX_PDATA_FREE(found, n);
}

}  // namespace mosix
