#include "runtime/daemon/pmix_server.h"

#include <pmix.h>
#include <pmix_server.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

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

// The library's upcalls run on its own thread.
pmix_status_t client_connected(const pmix_proc_t*, void*, pmix_op_cbfunc_t, void*) {
  return PMIX_OPERATION_SUCCEEDED;
}

pmix_status_t client_finalized(const pmix_proc_t*, void*, pmix_op_cbfunc_t, void*) {
  return PMIX_OPERATION_SUCCEEDED;
}

// MPI_Abort: the copy exits with its code right after, and the job's exit
// rule takes it from there; here it is only said.
pmix_status_t client_aborted(const pmix_proc_t* proc, void*, int status, const char message[], pmix_proc_t[],
                             size_t, pmix_op_cbfunc_t, void*) {
  spdlog::error("rank {} called MPI_Abort with status {}{}{}", proc->rank, status, message ? ": " : "",
                message ? message : "");
  return PMIX_OPERATION_SUCCEEDED;
}

// Every copy is on this node: what its copies gave is the whole exchange.
// The library frees nothing of ours, so it gets a copy and its release.
pmix_status_t fence(const pmix_proc_t[], size_t, const pmix_info_t[], size_t, char* data, size_t ndata,
                    pmix_modex_cbfunc_t cbfunc, void* cbdata) {
  char* copy = nullptr;
  if (ndata > 0) {
    copy = static_cast<char*>(std::malloc(ndata));
    if (copy == nullptr) return PMIX_ERR_NOMEM;
    std::memcpy(copy, data, ndata);
  }
  cbfunc(PMIX_SUCCESS, copy, ndata, cbdata, [](void* p) { std::free(p); }, copy);
  return PMIX_SUCCESS;
}

pmix_server_module_t g_module = [] {
  pmix_server_module_t m{};
  m.client_connected = client_connected;
  m.client_finalized = client_finalized;
  m.abort = client_aborted;
  m.fence_nb = fence;
  return m;
}();

std::string join_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ",") + std::to_string(r);
  return out;
}

}  // namespace

PmixServer::~PmixServer() {
  if (started_) PMIx_server_finalize();
  if (!tmpdir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(tmpdir_, ec);
  }
}

Status PmixServer::start() {
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

  // The job as Open MPI asks for it: its size and map, and each local
  // copy's ranks. One node, one application.
  char* node_map = nullptr;
  char* proc_map = nullptr;
  const std::string local = join_ranks(job_.local_ranks);
  PMIx_generate_regex(job_.hostname.c_str(), &node_map);
  PMIx_generate_ppn(local.c_str(), &proc_map);
  const auto size = static_cast<std::uint32_t>(job_.size);
  const auto local_size = static_cast<std::uint32_t>(job_.local_ranks.size());
  const std::uint32_t one = 1, zero = 0;
  const pmix_rank_t leader = job_.local_ranks.empty() ? 0 : static_cast<pmix_rank_t>(job_.local_ranks.front());
  std::vector<pmix_info_t> info(11 + job_.local_ranks.size());
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
  PMIX_INFO_LOAD(&info[9], PMIX_NUM_NODES, &one, PMIX_UINT32);
  PMIX_INFO_LOAD(&info[10], PMIX_NODEID, &zero, PMIX_UINT32);
  std::free(node_map);
  std::free(proc_map);
  for (std::size_t k = 0; k < job_.local_ranks.size(); ++k) {
    pmix_data_array_t* proc;
    PMIX_DATA_ARRAY_CREATE(proc, 6, PMIX_INFO);
    auto* pi = static_cast<pmix_info_t*>(proc->array);
    const auto rank = static_cast<pmix_rank_t>(job_.local_ranks[k]);
    const auto local_rank = static_cast<std::uint16_t>(k);
    PMIX_INFO_LOAD(&pi[0], PMIX_RANK, &rank, PMIX_PROC_RANK);
    PMIX_INFO_LOAD(&pi[1], PMIX_LOCAL_RANK, &local_rank, PMIX_UINT16);
    PMIX_INFO_LOAD(&pi[2], PMIX_NODE_RANK, &local_rank, PMIX_UINT16);
    PMIX_INFO_LOAD(&pi[3], PMIX_APPNUM, &zero, PMIX_UINT32);
    PMIX_INFO_LOAD(&pi[4], PMIX_NODEID, &zero, PMIX_UINT32);
    PMIX_INFO_LOAD(&pi[5], PMIX_HOSTNAME, job_.hostname.c_str(), PMIX_STRING);
    PMIX_INFO_LOAD(&info[11 + k], PMIX_PROC_INFO_ARRAY, proc, PMIX_DATA_ARRAY);
    PMIX_DATA_ARRAY_FREE(proc);
  }
  OpWait registered;
  rc = registered.wait(PMIx_server_register_nspace(job_.nspace.c_str(), static_cast<int>(job_.local_ranks.size()),
                                                   info.data(), info.size(), OpWait::done, &registered));
  for (pmix_info_t& i : info) PMIX_INFO_DESTRUCT(&i);
  if (rc != PMIX_SUCCESS) return pmix_error("cannot register the job with the PMIx server", rc);
  return {};
}

Status PmixServer::add_client(int rank, std::vector<std::string>& env) {
  if (!started_) {
    if (Status s = start(); !s) return s;
  }
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
  return {};
}

}  // namespace mosix
