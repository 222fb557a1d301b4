// Virtual pids of a restored process tree (runtime/ckpt/tree_protocol.h):
// the restorer fills g_tree_pids with each member's virtual and new real
// pid, and the program keeps seeing the pids it saw before. wait, waitpid,
// wait3, wait4 and waitid take and give virtual pids, and fcntl(F_GETLK)
// names a lock's owner by its virtual pid (kill, sigqueue and the group and
// session calls translate through to_real_pid, agent.cpp).
// Outside a restored tree the table is empty and every pid is its own.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "runtime/ckpt/tree_protocol.h"

namespace mosix::agent {

ckpt::TreePids g_tree_pids;

void tree_note_restored() {
  if (__atomic_exchange_n(&g_tree_pids.fresh, 0u, __ATOMIC_ACQ_REL) == 0) {
    __atomic_store_n(&g_tree_pids.count, 0u, __ATOMIC_RELEASE);
  } else if (g_tree_pids.parent_real > 0) {
    g_ppid_real = g_tree_pids.parent_real;
  }
}

unsigned tree_pid_count() { return __atomic_load_n(&g_tree_pids.count, __ATOMIC_ACQUIRE); }

pid_t to_real_pid(pid_t vpid) {
  pid_t self = current_vpid();
  if (vpid == self) return real_pid();
  std::uint32_t n = __atomic_load_n(&g_tree_pids.count, __ATOMIC_ACQUIRE);
  for (std::uint32_t i = 0; i < n && i < ckpt::kMaxTreePids; ++i)
    if (g_tree_pids.pids[i][0] == vpid) return g_tree_pids.pids[i][1];
  return vpid;
}

pid_t to_virtual_pid(pid_t real) {
  pid_t self = current_vpid();  // first: a restore drops a stale table
  if (real == real_pid()) return self;
  std::uint32_t n = __atomic_load_n(&g_tree_pids.count, __ATOMIC_ACQUIRE);
  for (std::uint32_t i = 0; i < n && i < ckpt::kMaxTreePids; ++i)
    if (g_tree_pids.pids[i][1] == real) return g_tree_pids.pids[i][0];
  return real;
}

// A kill()-style target: a pid, -1, 0, or minus a process group.
pid_t to_real_target(pid_t pid) {
  current_vpid();
  if (pid > 0) return to_real_pid(pid);
  if (pid < -1) return -to_real_pid(-pid);
  return pid;
}

namespace {

template <typename Fn>
Fn real_fn(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

struct RealWaits {
  pid_t (*wait4)(pid_t, int*, int, struct rusage*);
  int (*waitid)(idtype_t, id_t, siginfo_t*, int);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);
};
RealWaits g_real;

__attribute__((constructor)) void resolve_tree_waits() {
  g_real.wait4 = real_fn<decltype(g_real.wait4)>("wait4");
  g_real.fcntl = real_fn<decltype(g_real.fcntl)>("fcntl");
  g_real.fcntl64 = real_fn<decltype(g_real.fcntl64)>("fcntl64");
  g_real.waitid = real_fn<decltype(g_real.waitid)>("waitid");
}

const RealWaits& real() {
  if (__atomic_load_n(&g_real.waitid, __ATOMIC_ACQUIRE) == nullptr) resolve_tree_waits();
  return g_real;
}

unsigned stops() { return __atomic_load_n(&g_stops, __ATOMIC_RELAXED); }

// A wait for one child or group cut by a checkpoint and restarted by the
// kernel in the restored process still names the old real pid (ECHILD):
// it is made again with the new one.
bool again(long r, pid_t asked, unsigned before) {
  return r < 0 && errno == ECHILD && asked != -1 && asked != 0 && stops() != before;
}

}  // namespace

pid_t tree_wait4(pid_t pid, int* status, int options, struct rusage* usage) {
  for (;;) {
    unsigned before = stops();
    pid_t r = real().wait4(to_real_target(pid), status, options, usage);
    if (again(r, pid, before)) continue;
    return r > 0 ? to_virtual_pid(r) : r;
  }
}

int tree_waitid(idtype_t type, id_t id, siginfo_t* info, int options) {
  for (;;) {
    unsigned before = stops();
    id_t real_id = (type == P_PID || type == P_PGID) && id != 0 ? static_cast<id_t>(to_real_pid(static_cast<pid_t>(id))) : id;
    int r = real().waitid(type, real_id, info, options);
    if (again(r, type == P_ALL ? -1 : static_cast<pid_t>(id), before)) continue;
    if (r == 0 && info != nullptr && info->si_pid != 0) info->si_pid = to_virtual_pid(info->si_pid);
    return r;
  }
}

// fcntl's argument is an int or a pointer, one register either way. A
// lock F_GETLK reports names its owner by the kernel's pid: the virtual one
// is given back. (Open file description locks report -1.)
int tree_fcntl(bool wide, int fd, int cmd, void* arg) {
  auto fn = wide && real().fcntl64 != nullptr ? real().fcntl64 : real().fcntl;
  int r = fn(fd, cmd, arg);
  if (r == 0 && cmd == F_GETLK && arg != nullptr) {
    auto* lock = static_cast<struct flock*>(arg);
    if (lock->l_type != F_UNLCK && lock->l_pid > 0) lock->l_pid = to_virtual_pid(lock->l_pid);
  }
  return r;
}

}  // namespace mosix::agent

extern "C" {

__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return mosix::agent::tree_fcntl(false, fd, cmd, arg);
}

__attribute__((visibility("default"))) int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return mosix::agent::tree_fcntl(true, fd, cmd, arg);
}

__attribute__((visibility("default"))) pid_t wait4(pid_t pid, int* status, int options, struct rusage* usage) {
  return mosix::agent::tree_wait4(pid, status, options, usage);
}

__attribute__((visibility("default"))) pid_t wait3(int* status, int options, struct rusage* usage) {
  return mosix::agent::tree_wait4(-1, status, options, usage);
}

__attribute__((visibility("default"))) pid_t waitpid(pid_t pid, int* status, int options) {
  return mosix::agent::tree_wait4(pid, status, options, nullptr);
}

__attribute__((visibility("default"))) pid_t wait(int* status) {
  return mosix::agent::tree_wait4(-1, status, 0, nullptr);
}

__attribute__((visibility("default"))) int waitid(idtype_t type, id_t id, siginfo_t* info, int options) {
  return mosix::agent::tree_waitid(type, id, info, options);
}

}  // extern "C"
