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
#include "runtime/daemon/guest_process.h"

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
  if (g_server != nullptr) g_server->client_state(g_server->job_rank(proc->nspace, proc->rank), true);
  return PMIX_OPERATION_SUCCEEDED;
}

pmix_status_t client_finalized(const pmix_proc_t* proc, void*, pmix_op_cbfunc_t, void*) {
  if (g_server != nullptr) g_server->client_state(g_server->job_rank(proc->nspace, proc->rank), false);
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
  if (!g_server->job_ranks(procs, nprocs, ranks)) return PMIX_ERR_NOT_FOUND;
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
  g_server->fence_entered(std::move(ranks), Bytes(bytes, bytes + ndata), reinterpret_cast<void*>(cbfunc), cbdata);
  return PMIX_SUCCESS;
}

// A local client wants a remote rank's data that no fence brought.
pmix_status_t direct_modex(const pmix_proc_t* proc, const pmix_info_t[], size_t, pmix_modex_cbfunc_t cbfunc,
                           void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  const int rank = g_server->job_rank(proc->nspace, proc->rank);
  if (rank < 0) return PMIX_ERR_NOT_FOUND;
  return g_server->modex_wanted(rank, reinterpret_cast<void*>(cbfunc), cbdata);
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
    const int rank = g_server->job_rank(proc->nspace, proc->rank);
    const pmix_value_t& v = info[k].value;
    if (v.type == PMIX_STRING && v.data.string != nullptr) {
      request.names.push_back(PublishedName{info[k].key, v.data.string, rank, false});
    } else if (v.type == PMIX_BYTE_OBJECT) {
      // Open MPI's bridge between two jobs (a new communicator's id) goes
      // through names whose values are bytes.
      const char* b = v.data.bo.bytes;
      request.names.push_back(PublishedName{info[k].key, std::string(b, b == nullptr ? 0 : v.data.bo.size), rank, true});
    } else {
      return PMIX_ERR_NOT_SUPPORTED;
    }
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
  request.rank = g_server->job_rank(proc->nspace, proc->rank);
  for (char** k = keys; k != nullptr && *k != nullptr; ++k) request.keys.emplace_back(*k);
  g_server->names_asked(request, false, reinterpret_cast<void*>(cbfunc), cbdata);
  return PMIX_SUCCESS;
}

// MPI_Comm_spawn: each app becomes an MpiSpawnApp for the home node, which
// places and starts the children (HomeRouter::mpi_spawn). A program that
// cannot be run from here is refused at once: MPI_Comm_spawn returns an
// error instead of a child that fails after its parents went on to wait
// for it (Open MPI 4.1's parents then wait for it to connect, for ever).
pmix_status_t spawn(const pmix_proc_t* proc, const pmix_info_t[], size_t, const pmix_app_t apps[], size_t napps,
                    pmix_spawn_cbfunc_t cbfunc, void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  MpiSpawn request;
  request.parent_rank = g_server->job_rank(proc->nspace, proc->rank);
  if (request.parent_rank < 0 || napps == 0) return PMIX_ERR_BAD_PARAM;
  for (size_t a = 0; a < napps; ++a) {
    const pmix_app_t& app = apps[a];
    if (app.cmd == nullptr || app.maxprocs <= 0) return PMIX_ERR_BAD_PARAM;
    MpiSpawnApp out;
    out.count = static_cast<std::uint32_t>(app.maxprocs);
    out.argv.emplace_back(app.cmd);
    for (char** v = app.argv; v != nullptr && *v != nullptr; ++v) {
      if (v != app.argv) out.argv.emplace_back(*v);  // argv[0] is the command
    }
    for (char** e = app.env; e != nullptr && *e != nullptr; ++e) out.env.emplace_back(*e);
    if (app.cwd != nullptr) out.cwd = app.cwd;
    for (size_t k = 0; k < app.ninfo; ++k) {
      const pmix_info_t& i = app.info[k];
      if (i.value.type != PMIX_STRING || i.value.data.string == nullptr) continue;
      if (std::strcmp(i.key, PMIX_WDIR) == 0) out.cwd = i.value.data.string;
      // One host: the children go there; a list is left to the placement.
      if (std::strcmp(i.key, PMIX_HOST) == 0 && std::strchr(i.value.data.string, ',') == nullptr) {
        out.where = i.value.data.string;
      }
    }
    const char* path = std::getenv("PATH");
    std::string cwd = out.cwd;
    if (cwd.empty()) {
      std::error_code ec;
      cwd = std::filesystem::current_path(ec).string();
    }
    if (auto found = resolve_program(out.argv[0], path != nullptr ? path : "/usr/bin:/bin", cwd); !found) {
      spdlog::error("MPI_Comm_spawn: {}", found.error().message);
      return PMIX_ERR_NOT_FOUND;
    }
    request.apps.push_back(std::move(out));
  }
  g_server->spawn_asked(std::move(request), reinterpret_cast<void*>(cbfunc), cbdata);
  return PMIX_SUCCESS;
}

// PMIx_Connect and _Disconnect (MPI_Comm_spawn's parents and children, after
// they exchanged their names): every node with participants must be in.
pmix_status_t connect_or_disconnect(const pmix_proc_t procs[], size_t nprocs, const pmix_info_t[], size_t, pmix_op_cbfunc_t cbfunc,
                      void* cbdata) {
  if (g_server == nullptr) return PMIX_ERR_INIT;
  std::vector<std::int32_t> ranks;
  if (!g_server->job_ranks(procs, nprocs, ranks)) return PMIX_ERR_NOT_FOUND;
  g_server->connect_entered(std::move(ranks), reinterpret_cast<void*>(cbfunc), cbdata);
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
  m.spawn = spawn;
  m.connect = connect_or_disconnect;
  m.disconnect = connect_or_disconnect;
  return m;
}();

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
  // The first copies: one application, ranks 0.. of the job. A node that
  // runs none of them (only spawned ranks) registers it too.
  PmixSpace first;
  first.nspace = job_.nspace;
  first.rank_nodes = job_.map.rank_nodes;
  {
    std::lock_guard lock(mutex_);
    spaces_.push_back(first);
  }
  return register_pmix_space(first, job_.map.node_names, job_.this_node);
}

Status PmixServer::add_namespace(const MpiNamespace& m) {
  if (Status s = start(); !s) return s;
  PmixSpace space;
  space.nspace = m.nspace;
  space.first_rank = m.first_rank;
  space.rank_nodes = m.rank_nodes;
  space.app_sizes = m.app_sizes;
  space.parent_rank = m.parent_rank;
  {
    std::lock_guard lock(mutex_);
    for (const PmixSpace& known : spaces_) {
      if (known.nspace == m.nspace) return {};
    }
    if (const PmixSpace* parent = space_of(m.parent_rank)) {
      space.parent_nspace = parent->nspace;
      space.parent_rank = m.parent_rank - parent->first_rank;
    }
    if (space.parent_nspace.empty()) space.parent_nspace = job_.nspace;  // an unknown parent: the job
  }
  if (Status s = register_pmix_space(space, job_.map.node_names, job_.this_node); !s) return s;
  std::lock_guard lock(mutex_);
  spaces_.push_back(std::move(space));
  return {};
}

const PmixSpace* PmixServer::space_of(int rank) const {
  for (const PmixSpace& s : spaces_) {
    if (rank >= s.first_rank && static_cast<size_t>(rank - s.first_rank) < s.rank_nodes.size()) return &s;
  }
  return nullptr;
}

int PmixServer::job_rank(const char* nspace, std::uint32_t rank) {
  std::lock_guard lock(mutex_);
  for (const PmixSpace& s : spaces_) {
    if (s.nspace == nspace) return s.first_rank + static_cast<int>(rank);
  }
  return -1;
}

bool PmixServer::pmix_proc(int rank, std::string& nspace, std::uint32_t& local) {
  std::lock_guard lock(mutex_);
  const PmixSpace* s = space_of(rank);
  if (s == nullptr) return false;
  nspace = s->nspace;
  local = static_cast<std::uint32_t>(rank - s->first_rank);
  return true;
}

bool PmixServer::job_ranks(const void* procs_in, size_t nprocs, std::vector<std::int32_t>& ranks) {
  const auto* procs = static_cast<const pmix_proc_t*>(procs_in);
  std::lock_guard lock(mutex_);
  ranks.clear();
  // The first copies' namespace whole, alone: the job as before spawns
  // ({}: the home node knows its ranks).
  bool whole_first = nprocs > 0;
  for (size_t k = 0; k < nprocs; ++k) {
    if (job_.nspace != procs[k].nspace || procs[k].rank != PMIX_RANK_WILDCARD) whole_first = false;
  }
  if (whole_first) return true;
  for (size_t k = 0; k < nprocs; ++k) {
    const PmixSpace* space = nullptr;
    for (const PmixSpace& s : spaces_) {
      if (s.nspace == procs[k].nspace) space = &s;
    }
    if (space == nullptr) return false;
    if (procs[k].rank == PMIX_RANK_WILDCARD) {
      for (size_t r = 0; r < space->rank_nodes.size(); ++r) ranks.push_back(space->first_rank + static_cast<int>(r));
    } else {
      ranks.push_back(space->first_rank + static_cast<int>(procs[k].rank));
    }
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  return true;
}

Status PmixServer::add_client(int rank, std::vector<std::string>& env) {
  if (Status s = start(); !s) return s;
  std::string nspace;
  std::uint32_t local = 0;
  if (!pmix_proc(rank, nspace, local)) return make_error("rank " + std::to_string(rank) + " is in no PMIx namespace");
  pmix_proc_t proc;
  PMIX_LOAD_PROCID(&proc, nspace.c_str(), local);
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
  fence_or_connect(std::move(ranks), std::move(data), false, Callback{cbfunc, cbdata});
}

void PmixServer::connect_entered(std::vector<std::int32_t> ranks, void* cbfunc, void* cbdata) {
  fence_or_connect(std::move(ranks), {}, true, Callback{cbfunc, cbdata});
}

// Every node counts the fences (and apart from them the connects) over one
// set of ranks the same way: the n-th of them is the same operation on all.
void PmixServer::fence_or_connect(std::vector<std::int32_t> ranks, Bytes data, bool connect, Callback cb) {
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = connect ? (connects_entered_[ranks]++ | kConnectFenceBit) : fences_entered_[ranks]++;
    fences_waiting_[{ranks, id}] = cb;
  }
  hooks_.contribute(FenceContribution{id, std::move(ranks), std::move(data)});
}

void PmixServer::spawn_asked(MpiSpawn request, void* cbfunc, void* cbdata) {
  {
    std::lock_guard lock(mutex_);
    request.request_id = next_request_++;
    spawns_waiting_[request.request_id] = Callback{cbfunc, cbdata};
  }
  hooks_.spawn(std::move(request));
}

void PmixServer::spawn_answered(const MpiSpawnReply& reply) {
  Callback cb;
  {
    std::lock_guard lock(mutex_);
    auto it = spawns_waiting_.find(reply.request_id);
    if (it == spawns_waiting_.end()) return;
    cb = it->second;
    spawns_waiting_.erase(it);
  }
  if (reply.status != 0) spdlog::error("MPI_Comm_spawn: {}", reply.reason);
  pmix_nspace_t nspace;
  PMIX_LOAD_NSPACE(nspace, reply.nspace.c_str());
  reinterpret_cast<pmix_spawn_cbfunc_t>(cb.cbfunc)(reply.status, nspace, cb.cbdata);
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
  if (release.fence_id & kConnectFenceBit) {
    reinterpret_cast<pmix_op_cbfunc_t>(cb.cbfunc)(release.status, cb.cbdata);
    return;
  }
  give_data(reinterpret_cast<pmix_modex_cbfunc_t>(cb.cbfunc), release.status, release.data, cb.cbdata);
}

int PmixServer::modex_wanted(int rank, void* cbfunc, void* cbdata) {
  std::uint64_t id;
  int node;
  {
    std::lock_guard lock(mutex_);
    const PmixSpace* space = space_of(rank);
    if (space == nullptr) return PMIX_ERR_NOT_FOUND;
    node = static_cast<int>(space->rank_nodes[static_cast<size_t>(rank - space->first_rank)]);
    id = next_request_++;
    modex_waiting_[id] = Callback{cbfunc, cbdata};
  }
  hooks_.ask(node, ModexRequest{id, rank});
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
  std::string nspace;
  std::uint32_t local = 0;
  if (!pmix_proc(request.rank, nspace, local)) {
    hooks_.answer(source, ModexReply{request.request_id, PMIX_ERR_NOT_FOUND, {}});
    return;
  }
  pmix_proc_t proc;
  PMIX_LOAD_PROCID(&proc, nspace.c_str(), local);
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
    std::string nspace = job_.nspace;
    std::uint32_t local = static_cast<std::uint32_t>(name.rank);
    pmix_proc(name.rank, nspace, local);
    PMIX_LOAD_PROCID(&found[k].proc, nspace.c_str(), local);
    PMIX_LOAD_KEY(found[k].key, name.key.c_str());
    if (name.bytes) {
      pmix_byte_object_t bo;
      bo.bytes = const_cast<char*>(name.value.data());
      bo.size = name.value.size();
      PMIX_VALUE_LOAD(&found[k].value, &bo, PMIX_BYTE_OBJECT);
    } else {
      PMIX_VALUE_LOAD(&found[k].value, name.value.c_str(), PMIX_STRING);
    }
  }
  reinterpret_cast<pmix_lookup_cbfunc_t>(cb.second.cbfunc)(reply.status, found, n, cb.second.cbdata);
  if (found != nullptr) PMIX_PDATA_FREE(found, n);
}

}  // namespace mosix
