// PVM 3.4's C API (Debian's pvm3.h) over the guest socket of mosixrun's node
// daemons: tasks are guests of the job, spawned through the spawn service,
// and their messages go through the node daemons and the home node (see
// docs/pvm.md). Every function returns PVM's own error codes; none aborts.
#include <pvm3.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <signal.h>
#include <unistd.h>

#include "compat/pvm/pack.h"
#include "compat/pvm/task.h"

using mosix::pvm::Buffer;
using mosix::pvm::Encoding;
using mosix::pvm::rank_of_tid;
using mosix::pvm::task;
using mosix::pvm::tid_of_rank;

namespace {

int g_autoerr = 1;  // PvmAutoErr: print errors as they happen
int g_route = PvmDontRoute;
// pvm_catchout: spawned tasks show their BEGIN and EOF. -1: as our own
// spawner said (a task's tasks inherit its catchout, as in pvm).
int g_catchout = -1;

const char* const kErrors[] = {
    "Ok", "", "Bad parameter", "Parameter mismatch", "Value too large", "End of buffer", "No such host",
    "No such file", "Permission denied", "", "Malloc failed", "", "Can't decode message", "",
    "Can't contact local daemon", "No current buffer", "No such buffer", "Null group name", "Already in group",
    "No such group", "Not in group", "No such instance", "Host failed", "No parent task", "Not implemented",
    "Pvmd system error", "Version mismatch", "Out of resources", "Duplicate host", "Can't start pvmd",
    "Already in progress", "No such task", "Not Found", "Already exists", "Hoster run on non-master host",
    "Spawning parent set PvmNoSpawnParent", "Master Host's IP is Loopback"};

const char* error_text(int code) {
  int i = -code;
  if (i < 0 || i >= static_cast<int>(sizeof kErrors / sizeof kErrors[0]) || kErrors[i][0] == '\0') {
    return "Unknown error";
  }
  return kErrors[i];
}

// PVM's convention: the error goes back, and with PvmAutoErr on, to stderr.
int fail(const char* function, int code) {
  if (g_autoerr && code < 0) {
    std::fprintf(stderr, "libpvm [t%x]: %s(): %s\n", task().enrolled() ? task().tid() : 0, function, error_text(code));
  }
  return code;
}

int ensure(const char* function) {
  int r = task().enroll();
  return r < 0 ? fail(function, r) : 0;
}

Encoding encoding_of(int code) {
  return code == PvmDataRaw ? Encoding::kRaw : code == PvmDataInPlace ? Encoding::kInPlace : Encoding::kDefault;
}

int pack(const char* function, const void* items, int n, int stride, std::size_t size) {
  if (n < 0 || stride < 1 || (n > 0 && items == nullptr)) return fail(function, PvmBadParam);
  Buffer* b = task().buffer(task().sbuf);
  if (b == nullptr) return fail(function, PvmNoBuf);
  mosix::pvm::pack_items(b->data, b->enc, items, n, stride, size);
  return PvmOk;
}

int unpack(const char* function, void* items, int n, int stride, std::size_t size) {
  if (n < 0 || stride < 1 || (n > 0 && items == nullptr)) return fail(function, PvmBadParam);
  Buffer* b = task().buffer(task().rbuf);
  if (b == nullptr) return fail(function, PvmNoBuf);
  if (!mosix::pvm::unpack_items(b->data, b->pos, b->enc, items, n, stride, size)) return fail(function, PvmNoData);
  return PvmOk;
}

// The arrived message `index` as the new receive buffer (the old one is freed).
int receive_into_buffer(std::size_t index) {
  auto& t = task();
  mosix::pvm::Arrived a = std::move(t.inbox[index]);
  t.inbox.erase(t.inbox.begin() + static_cast<std::ptrdiff_t>(index));
  if (t.rbuf > 0) t.free_buffer(t.rbuf);
  int id = a.bufid > 0 ? a.bufid : t.new_buffer(a.enc);
  Buffer* b = t.buffer(id);
  b->enc = a.enc;
  b->data = std::move(a.bytes);
  b->pos = 0;
  b->src = a.src;
  b->tag = a.tag;
  t.rbuf = id;
  return id;
}

int recv_common(const char* function, int tid, int tag, int timeout_ms) {
  if (int r = ensure(function); r < 0) return r;
  if (tid != -1 && tid <= 0 && tid != static_cast<int>(0x80000000u)) return fail(function, PvmBadParam);
  auto found = task().match(tid, tag, timeout_ms);
  if (!found) {
    if (!task().enrolled()) return fail(function, PvmSysErr);
    return 0;
  }
  return receive_into_buffer(*found);
}

// Can exec find `file` (PATH, or a path with a slash)? Every node sees the
// job's files, so what is not found here is found nowhere.
bool findable(const char* file) {
  if (std::strchr(file, '/') != nullptr) return ::access(file, X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    std::size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string full = (dir.empty() ? std::string(".") : dir) + "/" + file;
    if (::access(full.c_str(), X_OK) == 0) return true;
    if (end == std::string::npos) return false;
    start = end + 1;
  }
}

int send_to(const char* function, int tid, int tag, const Buffer& b) {
  int rank = rank_of_tid(tid);
  if (rank < 0) return fail(function, PvmBadParam);
  if (tag < 0) return fail(function, PvmBadParam);
  if (!task().send(rank, tag, b)) return fail(function, PvmSysErr);
  return PvmOk;
}

// A complex is two floats, a double complex two doubles: each part in the encoding.
template <typename T>
int complexes(const char* function, bool packing, T* p, int n, int s) {
  if (n < 0 || s < 1 || (n > 0 && p == nullptr)) return fail(function, PvmBadParam);
  for (int i = 0; i < n; ++i) {
    T* item = p + 2 * static_cast<std::ptrdiff_t>(i) * s;
    int r = packing ? pack(function, item, 2, 1, sizeof(T)) : unpack(function, item, 2, 1, sizeof(T));
    if (r < 0) return r;
  }
  return PvmOk;
}
}  // namespace

extern "C" {

int pvm_mytid(void) {
  if (int r = ensure("pvm_mytid"); r < 0) return r;
  return task().tid();
}

int pvm_parent(void) {
  if (int r = ensure("pvm_parent"); r < 0) return r;
  return task().parent() > 0 ? task().parent() : PvmNoParent;  // no error print: a normal answer
}

int pvm_siblings(int** tids) {
  if (int r = ensure("pvm_siblings"); r < 0) return r;
  static std::vector<int> copy;
  copy = task().siblings();
  if (tids) *tids = copy.data();
  return static_cast<int>(copy.size());
}

int pvm_exit(void) {
  task().exit();
  return PvmOk;
}

int pvm_tidtohost(int tid) {
  if (rank_of_tid(tid) < 0) return fail("pvm_tidtohost", PvmBadParam);
  return mosix::pvm::kTidHost;
}

int pvm_perror(char* s) {
  std::fprintf(stderr, "libpvm [t%x]: %s\n", task().enrolled() ? task().tid() : 0, s ? s : "");
  return PvmOk;
}

int pvm_setopt(int what, int val) {
  int old = 0;
  switch (what) {
    case PvmRoute: old = g_route; g_route = val; return old;
    case PvmAutoErr: old = g_autoerr; g_autoerr = val; return old;
    case PvmDebugMask: case PvmFragSize: case PvmResvTids: case PvmShowTids: case PvmPollType:
    case PvmPollTime: case PvmOutputTid: case PvmOutputCode: case PvmTraceTid: case PvmTraceCode:
    case PvmTraceBuffer: case PvmTraceOptions: case PvmSelfOutputTid: case PvmSelfOutputCode:
    case PvmSelfTraceTid: case PvmSelfTraceCode: case PvmSelfTraceBuffer: case PvmSelfTraceOptions:
    case PvmNoReset: case PvmOutputContext: case PvmTraceContext: case PvmSelfOutputContext:
    case PvmSelfTraceContext:
      return 0;
    default: return fail("pvm_setopt", PvmBadParam);
  }
}

int pvm_getopt(int what) {
  if (what == PvmRoute) return g_route;
  if (what == PvmAutoErr) return g_autoerr;
  if (what == PvmFragSize) return 4096;
  if (what >= 1 && what <= 25) return 0;
  return fail("pvm_getopt", PvmBadParam);
}

int pvm_setrbuf(int bufid) {
  int old = task().rbuf;
  if (bufid != 0 && task().buffer(bufid) == nullptr) return fail("pvm_setrbuf", PvmNoSuchBuf);
  task().rbuf = bufid;
  return old;
}

int pvm_setsbuf(int bufid) {
  int old = task().sbuf;
  if (bufid != 0 && task().buffer(bufid) == nullptr) return fail("pvm_setsbuf", PvmNoSuchBuf);
  task().sbuf = bufid;
  return old;
}

int pvm_getrbuf(void) { return task().rbuf; }
int pvm_getsbuf(void) { return task().sbuf; }

int pvm_mkbuf(int encoding) {
  if (encoding != PvmDataDefault && encoding != PvmDataRaw && encoding != PvmDataInPlace) {
    return fail("pvm_mkbuf", PvmBadParam);
  }
  return task().new_buffer(encoding_of(encoding));
}

int pvm_freebuf(int bufid) {
  if (bufid < 0) return fail("pvm_freebuf", PvmBadParam);
  if (!task().free_buffer(bufid)) return fail("pvm_freebuf", PvmNoSuchBuf);
  return PvmOk;
}

int pvm_initsend(int encoding) {
  if (encoding != PvmDataDefault && encoding != PvmDataRaw && encoding != PvmDataInPlace) {
    return fail("pvm_initsend", PvmBadParam);
  }
  if (task().sbuf > 0) task().free_buffer(task().sbuf);
  task().sbuf = task().new_buffer(encoding_of(encoding));
  return task().sbuf;
}

int pvm_bufinfo(int bufid, int* bytes, int* msgtag, int* tid) {
  if (bufid <= 0) return fail("pvm_bufinfo", PvmBadParam);
  Buffer* b = task().buffer(bufid);
  if (b == nullptr) return fail("pvm_bufinfo", PvmNoSuchBuf);
  if (bytes) *bytes = static_cast<int>(b->data.size());
  if (msgtag) *msgtag = b->tag;
  if (tid) *tid = b->src;
  return PvmOk;
}

#define MOSIX_PVM_PACK(NAME, TYPE)                                                             \
  int pvm_pk##NAME(TYPE* p, int n, int s) { return pack("pvm_pk" #NAME, p, n, s, sizeof(TYPE)); } \
  int pvm_upk##NAME(TYPE* p, int n, int s) { return unpack("pvm_upk" #NAME, p, n, s, sizeof(TYPE)); }
MOSIX_PVM_PACK(byte, char)
MOSIX_PVM_PACK(short, short)
MOSIX_PVM_PACK(ushort, unsigned short)
MOSIX_PVM_PACK(int, int)
MOSIX_PVM_PACK(uint, unsigned int)
MOSIX_PVM_PACK(long, long)
MOSIX_PVM_PACK(ulong, unsigned long)
MOSIX_PVM_PACK(float, float)
MOSIX_PVM_PACK(double, double)
#undef MOSIX_PVM_PACK

int pvm_pkcplx(float* p, int n, int s) { return complexes("pvm_pkcplx", true, p, n, s); }
int pvm_upkcplx(float* p, int n, int s) { return complexes("pvm_upkcplx", false, p, n, s); }
int pvm_pkdcplx(double* p, int n, int s) { return complexes("pvm_pkdcplx", true, p, n, s); }
int pvm_upkdcplx(double* p, int n, int s) { return complexes("pvm_upkdcplx", false, p, n, s); }

int pvm_pkstr(char* s) {
  if (s == nullptr) return fail("pvm_pkstr", PvmBadParam);
  Buffer* b = task().buffer(task().sbuf);
  if (b == nullptr) return fail("pvm_pkstr", PvmNoBuf);
  mosix::pvm::pack_string(b->data, b->enc, s);
  return PvmOk;
}

int pvm_upkstr(char* s) {
  if (s == nullptr) return fail("pvm_upkstr", PvmBadParam);
  Buffer* b = task().buffer(task().rbuf);
  if (b == nullptr) return fail("pvm_upkstr", PvmNoBuf);
  if (!mosix::pvm::unpack_string(b->data, b->pos, b->enc, s)) return fail("pvm_upkstr", PvmNoData);
  return PvmOk;
}

int pvm_send(int tid, int msgtag) {
  if (int r = ensure("pvm_send"); r < 0) return r;
  Buffer* b = task().buffer(task().sbuf);
  if (b == nullptr) return fail("pvm_send", PvmNoBuf);
  return send_to("pvm_send", tid, msgtag, *b);
}

int pvm_mcast(int* tids, int ntask, int msgtag) {
  if (int r = ensure("pvm_mcast"); r < 0) return r;
  if (ntask < 0 || (ntask > 0 && tids == nullptr) || msgtag < 0) return fail("pvm_mcast", PvmBadParam);
  Buffer* b = task().buffer(task().sbuf);
  if (b == nullptr) return fail("pvm_mcast", PvmNoBuf);
  for (int i = 0; i < ntask; ++i) {
    if (rank_of_tid(tids[i]) < 0) return fail("pvm_mcast", PvmBadParam);
  }
  for (int i = 0; i < ntask; ++i) {
    if (tids[i] == task().tid()) continue;  // PVM does not send a multicast to its sender
    if (int r = send_to("pvm_mcast", tids[i], msgtag, *b); r < 0) return r;
  }
  return PvmOk;
}

int pvm_recv(int tid, int msgtag) { return recv_common("pvm_recv", tid, msgtag, -1); }
int pvm_nrecv(int tid, int msgtag) { return recv_common("pvm_nrecv", tid, msgtag, 0); }

int pvm_trecv(int tid, int msgtag, struct timeval* tmout) {
  if (tmout == nullptr) return recv_common("pvm_trecv", tid, msgtag, -1);
  if (tmout->tv_sec < 0 || tmout->tv_usec < 0) return fail("pvm_trecv", PvmBadParam);
  long ms = tmout->tv_sec * 1000L + tmout->tv_usec / 1000L;
  if (ms == 0 && (tmout->tv_sec != 0 || tmout->tv_usec != 0)) ms = 1;
  return recv_common("pvm_trecv", tid, msgtag, static_cast<int>(std::min<long>(ms, INT_MAX)));
}

int pvm_probe(int tid, int msgtag) {
  if (int r = ensure("pvm_probe"); r < 0) return r;
  auto found = task().match(tid, msgtag, 0);
  if (!found) return 0;
  auto& a = task().inbox[*found];
  if (a.bufid == 0) {
    a.bufid = task().new_buffer(a.enc);
    Buffer* b = task().buffer(a.bufid);
    b->data = a.bytes;
    b->src = a.src;
    b->tag = a.tag;
  }
  return a.bufid;
}

int pvm_psend(int tid, int msgtag, void* buf, int len, int datatype) {
  if (int r = ensure("pvm_psend"); r < 0) return r;
  const std::size_t size = mosix::pvm::datatype_size(datatype);
  if (size == 0 || len < 0 || (len > 0 && buf == nullptr)) return fail("pvm_psend", PvmBadParam);
  Buffer b;
  b.enc = Encoding::kRaw;
  mosix::pvm::pack_items(b.data, b.enc, buf, len, 1, size);
  return send_to("pvm_psend", tid, msgtag, b);
}

int pvm_precv(int tid, int msgtag, void* buf, int len, int datatype, int* rtid, int* rtag, int* rlen) {
  const std::size_t size = mosix::pvm::datatype_size(datatype);
  if (size == 0 || len < 0 || (len > 0 && buf == nullptr)) return fail("pvm_precv", PvmBadParam);
  int id = recv_common("pvm_precv", tid, msgtag, -1);
  if (id <= 0) return id;
  Buffer* b = task().buffer(id);
  std::size_t items = b->data.size() / size;
  std::size_t take = std::min<std::size_t>(items, static_cast<std::size_t>(len));
  if (take > 0) std::memcpy(buf, b->data.data(), take * size);
  if (rtid) *rtid = b->src;
  if (rtag) *rtag = b->tag;
  if (rlen) *rlen = static_cast<int>(items);
  return items > static_cast<std::size_t>(len) ? fail("pvm_precv", PvmNoMem) : PvmOk;
}

int pvm_spawn(char* file, char** argv, int flag, char* where, int ntask, int* tids) {
  if (int r = ensure("pvm_spawn"); r < 0) return r;
  if (file == nullptr || *file == '\0' || ntask < 1) return fail("pvm_spawn", PvmBadParam);
  mosix::GuestSpawn request;
  request.count = static_cast<std::uint32_t>(ntask);
  request.argv.push_back(file);
  for (char** a = argv; a != nullptr && *a != nullptr; ++a) request.argv.push_back(*a);
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "MOSIX_PVM_OUTPUT=", 17) != 0) request.env.push_back(*e);
  }
  // The home tags the new tasks' lines as pvm does, with BEGIN and EOF under
  // pvm_catchout (runtime/daemon/output_relay.h).
  const char* inherited = std::getenv("MOSIX_PVM_OUTPUT");
  const bool catchout = g_catchout < 0 ? inherited != nullptr && std::strcmp(inherited, "catchout") == 0 : g_catchout == 1;
  request.env.push_back(catchout ? "MOSIX_PVM_OUTPUT=catchout" : "MOSIX_PVM_OUTPUT=tag");
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) != nullptr) request.cwd = cwd;
  if ((flag & PvmTaskHost) && where != nullptr && *where != '\0' && std::strcmp(where, ".") != 0) {
    // A host: one of the job's nodes by name (vnode1), or its pvm_config index.
    if (task().host_of_node(where) < 0) {
      for (int i = 0; i < ntask; ++i) tids[i] = PvmNoHost;
      return 0;
    }
    request.where = where;
  }
  if (!findable(file)) {
    for (int i = 0; i < ntask; ++i) {
      if (tids) tids[i] = PvmNoFile;
    }
    return 0;
  }
  // PvmTaskArch: every node of a job has this machine's architecture.
  // PvmTaskDebug: tasks start without a debugger (no debugger runs on the nodes).
  auto reply = task().spawn(request);
  if (!reply) return fail("pvm_spawn", PvmSysErr);
  if (reply->status != 0) {
    std::fprintf(stderr, "libpvm [t%x]: pvm_spawn(): %s\n", task().tid(), reply->reason.c_str());
    for (int i = 0; i < ntask; ++i) {
      if (tids) tids[i] = PvmNoFile;
    }
    return 0;
  }
  int n = 0;
  for (std::int32_t rank : reply->ranks) {
    if (tids) tids[n] = tid_of_rank(rank);
    ++n;
  }
  return n;
}

int pvm_kill(int tid) {
  if (int r = ensure("pvm_kill"); r < 0) return r;
  int rank = rank_of_tid(tid);
  if (rank < 0) return fail("pvm_kill", PvmBadParam);
  if (tid == task().tid()) return fail("pvm_kill", PvmBadParam);  // pvm_exit, then exit, is the way
  if (!task().ask_home(mosix::kAskSignal, rank, {static_cast<std::uint8_t>(SIGTERM)})) return fail("pvm_kill", PvmSysErr);
  return PvmOk;
}

int pvm_sendsig(int tid, int signum) {
  if (int r = ensure("pvm_sendsig"); r < 0) return r;
  int rank = rank_of_tid(tid);
  if (rank < 0 || signum <= 0 || signum >= NSIG) return fail("pvm_sendsig", PvmBadParam);
  if (!task().ask_home(mosix::kAskSignal, rank, {static_cast<std::uint8_t>(signum)})) {
    return fail("pvm_sendsig", PvmSysErr);
  }
  return PvmOk;
}

int pvm_notify(int what, int msgtag, int cnt, int* tids) {
  if (int r = ensure("pvm_notify"); r < 0) return r;
  int kind = what & ~PvmNotifyCancel;
  if (kind == PvmTaskExit) {
    if (cnt < 0 || (cnt > 0 && tids == nullptr)) return fail("pvm_notify", PvmBadParam);
    if (what & PvmNotifyCancel) return PvmOk;
    for (int i = 0; i < cnt; ++i) {
      if (rank_of_tid(tids[i]) < 0) return fail("pvm_notify", PvmBadParam);
    }
    for (int i = 0; i < cnt; ++i) task().watch_exit(rank_of_tid(tids[i]), msgtag);
    return PvmOk;
  }
  if (kind == PvmHostDelete) {
    // Hosts by their pvmd tids (pvm_config's): the job's nodes. A lost node
    // ends the job unless it runs with --keep-going (docs/pvm.md).
    if (cnt < 0 || (cnt > 0 && tids == nullptr)) return fail("pvm_notify", PvmBadParam);
    if (what & PvmNotifyCancel) return PvmOk;
    const int hosts = static_cast<int>(task().hosts().size());
    for (int i = 0; i < cnt; ++i) {
      const int node = (tids[i] >> 18) - 1;
      if ((tids[i] & ((1 << 18) - 1)) != 0 || node < 0 || node >= std::max(hosts, 1)) return fail("pvm_notify", PvmBadParam);
    }
    for (int i = 0; i < cnt; ++i) task().watch_node((tids[i] >> 18) - 1, msgtag);
    return PvmOk;
  }
  // No host is added during a job: this never fires.
  if (kind == PvmHostAdd) return PvmOk;
  return fail("pvm_notify", PvmBadParam);
}

int pvm_config(int* nhost, int* narch, struct pvmhostinfo** hostp) {
  if (int r = ensure("pvm_config"); r < 0) return r;
  static std::vector<pvmhostinfo> hosts;
  static std::vector<std::string> names;
  static char arch[] = "LINUX64";
  names = task().hosts();
  if (names.empty()) names.push_back("localhost");
  hosts.clear();
  for (std::size_t i = 0; i < names.size(); ++i) {
    hosts.push_back(pvmhostinfo{mosix::pvm::host_tid(static_cast<int>(i)), names[i].data(), arch, 1000, 0x408841});
  }
  if (nhost) *nhost = static_cast<int>(hosts.size());
  if (narch) *narch = 1;
  if (hostp) *hostp = hosts.data();
  return PvmOk;
}

int pvm_tasks(int where, int* ntask, struct pvmtaskinfo** taskp) {
  if (int r = ensure("pvm_tasks"); r < 0) return r;
  // The job's tasks are known at the home node: where = 0 all of them, a
  // host's pvmd tid those on that node, a task's tid that task.
  static std::vector<pvmtaskinfo> tasks;
  static std::vector<mosix::pvm::Task::Info> known;
  auto answer = task().tasks();
  if (!answer) return fail("pvm_tasks", PvmSysErr);
  known = std::move(*answer);
  tasks.clear();
  for (mosix::pvm::Task::Info& t : known) {
    const int tid = mosix::pvm::tid_of_rank(t.rank);
    const int host = mosix::pvm::host_tid(t.node);
    if (where != 0 && where != tid && where != host) continue;
    tasks.push_back(pvmtaskinfo{tid, t.parent >= 0 ? mosix::pvm::tid_of_rank(t.parent) : 0, host, 4, t.name.data(),
                                t.pid});
  }
  if (where != 0 && tasks.empty() && mosix::pvm::rank_of_tid(where) >= 0) return fail("pvm_tasks", PvmNoTask);
  if (ntask) *ntask = static_cast<int>(tasks.size());
  if (taskp) *taskp = tasks.data();
  return PvmOk;
}

int pvm_catchout(FILE* out) {
  // A spawned task's lines reach mosixrun's stdout tagged in any case; under
  // catchout also its BEGIN and EOF lines, as pvm prints them. Tasks spawned
  // from now on are told (pvm_spawn); `out` itself is not written.
  g_catchout = out != nullptr ? 1 : 0;
  return PvmOk;
}

int pvm_mstat(char* host) {
  if (host == nullptr) return fail("pvm_mstat", PvmBadParam);
  return task().host_of_node(host) >= 0 || std::strcmp(host, "localhost") == 0 ? PvmOk : PvmNoHost;
}

int pvm_pstat(int tid) {
  if (rank_of_tid(tid) < 0) return fail("pvm_pstat", PvmBadParam);
  return PvmOk;
}

int pvm_archcode(char* arch) { return arch != nullptr && std::strcmp(arch, "LINUX64") == 0 ? 1 : fail("pvm_archcode", PvmNotFound); }
int pvm_getfds(int** fds) {
  static int fd = -1;
  if (fds) *fds = &fd;
  return 0;
}
int pvm_start_pvmd(int, char**, int) { return PvmDupHost; }  // the job is the virtual machine already
int pvm_addhosts(char**, int count, int* infos) {
  for (int i = 0; infos != nullptr && i < count; ++i) infos[i] = PvmNotImpl;
  return fail("pvm_addhosts", PvmNotImpl);
}
int pvm_delhosts(char**, int count, int* infos) {
  for (int i = 0; infos != nullptr && i < count; ++i) infos[i] = PvmNotImpl;
  return fail("pvm_delhosts", PvmNotImpl);
}
int pvm_halt(void) { return fail("pvm_halt", PvmNotImpl); }
char* pvm_version(void) {
  static char version[] = PVM_VER;
  return version;
}

}  // extern "C"
