// Thread ids of a restored process.
//
// A restore makes every thread anew, and the kernel gives each a new tid (a
// process without privileges cannot choose them). A program that kept a tid
// from before (its own gettid(), to kcmp, tgkill or pin it later) would name
// no thread after a restore, or another process's: a silent wrong answer. So
// the agent shows each thread the tid it had first, as it shows the process
// its first pid (agent.cpp), and translates such a virtual tid back to the
// kernel's where the program hands one to the kernel through an interposed
// call: gettid, tgkill, the libc calls that take a tid or pid (the
// sched_*scheduler/param calls, sched_rr_get_interval, get/setpriority,
// prlimit, process_vm_readv/writev, pidfd_open), and syscall(2) for those,
// tkill, rt_(tg)sigqueueinfo, sched_{set,get}affinity, sched_{set,get}attr,
// get_robust_list, ioprio_{get,set}, migrate_pages, move_pages,
// perf_event_open and kcmp (getpid, getppid,
// kill, getsid, getpgid, getpgrp and setpgid through syscall(2) go to the
// agent's own, as their libc entry points do). Paths /proc/<tid> are
// proc_paths.cpp's business (it asks tid_to_real).
//
// How a thread's kernel tid is found after a restore: every thread's tid
// address (set_tid_address; glibc's field of the thread's tid) is kept with
// its virtual tid in a table, and the restorer writes the new tid there
// (CLONE_CHILD_SETTID, or set_tid_address for the leader). Every thread is
// entered in the table when a checkpoint stops it, so a thread that never
// asked its tid before still gets its old one after. A thread that exited
// has 0 there (CLONE_CHILD_CLEARTID): its virtual tid passes unchanged.
//
// Not covered (docs/mosixctl.md, known limits): tids the kernel hands out
// (a listing of /proc/self/task, si_pid of a signal from a thread, fdinfo),
// and system calls made without libc's syscall(2).
#include <errno.h>
#include <stdarg.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"

namespace mosix::agent {
namespace {

constexpr int kMaxTids = 1024;

struct TidSlot {
  std::atomic<pid_t> vtid{0};
  std::atomic<pid_t*> where{nullptr};  // the thread's tid address
};
TidSlot g_tids[kMaxTids];

// This thread's virtual tid (0 until first asked) and the kernel tid it was
// last seen with. Initial-exec: read in signal handlers, never allocated.
__attribute__((tls_model("initial-exec"))) thread_local pid_t t_vtid = 0;
__attribute__((tls_model("initial-exec"))) thread_local pid_t t_real = 0;

pid_t* tid_address() {
  long where = 0;
  if (sys(SYS_prctl, PR_GET_TID_ADDRESS, &where, 0, 0, 0) != 0) return nullptr;
  return reinterpret_cast<pid_t*>(where);
}

bool is_registered(pid_t vtid, pid_t* where) {
  for (TidSlot& s : g_tids)
    if (s.vtid.load(std::memory_order_relaxed) == vtid && s.where.load(std::memory_order_relaxed) == where)
      return true;
  return false;
}

// The tid at a thread's tid address, read without touching it: the thread
// may have exited and its stack (where glibc keeps the field) been unmapped
// (a threaded server that starts a thread per request did that). 0 when
// the memory is gone.
pid_t tid_at(pid_t* where) {
  pid_t v = 0;
  iovec local{&v, sizeof v}, remote{where, sizeof v};
  if (sys(SYS_process_vm_readv, sys(SYS_getpid), &local, 1, &remote, 1, 0) != sizeof v) return 0;
  return v;
}

// Enters (vtid, where) in the table: in the slot of the same address (a new
// thread on a reused thread descriptor), else a free one, else one whose
// thread has exited.
void enter(pid_t vtid, pid_t* where) {
  TidSlot* free_slot = nullptr;
  for (TidSlot& s : g_tids) {
    pid_t* w = s.where.load(std::memory_order_relaxed);
    if (w == where) {
      s.vtid.store(vtid, std::memory_order_relaxed);
      return;
    }
    if (free_slot == nullptr && w == nullptr) free_slot = &s;
  }
  for (int i = 0; free_slot == nullptr && i < kMaxTids; ++i)
    if (tid_at(g_tids[i].where.load(std::memory_order_relaxed)) == 0) free_slot = &g_tids[i];
  if (free_slot == nullptr) return;  // more than kMaxTids threads: the rest keep their kernel tids
  free_slot->where.store(where, std::memory_order_relaxed);
  free_slot->vtid.store(vtid, std::memory_order_relaxed);
}

// Whether the caller is the process that holds the virtual identity (first
// incarnation or restored), not a child of a raw clone() that shares its
// memory image but not its identity.
bool holds_identity() {
  current_vpid();
  return real_pid() == g_vpid_real;
}

}  // namespace

pid_t virtual_tid() {
  auto real = static_cast<pid_t>(sys(SYS_gettid));
  // Seen before with this kernel tid: the answer stands (a vfork or raw
  // clone child has another tid, and goes on below).
  if (t_vtid != 0 && t_real == real) return t_vtid;
  if (!holds_identity()) return real;
  pid_t* where = tid_address();
  if (t_vtid != 0 && where != nullptr && __atomic_load_n(where, __ATOMIC_RELAXED) == real &&
      is_registered(t_vtid, where)) {
    t_real = real;  // restored: the same thread, a new kernel tid
    return t_vtid;
  }
  // A vfork child runs on its parent's thread and has no tid address.
  if (where == nullptr) return real;
  // The leader's virtual tid is the virtual pid, as the kernel's tid is the pid.
  t_vtid = real == real_pid() ? g_vpid : real;
  t_real = real;
  enter(t_vtid, where);
  return t_vtid;
}

void note_thread_id() { (void)virtual_tid(); }

void forget_thread_ids() {
  for (TidSlot& s : g_tids) {
    s.vtid.store(0, std::memory_order_relaxed);
    s.where.store(nullptr, std::memory_order_relaxed);
  }
  t_vtid = 0;
  t_real = 0;
}

pid_t tid_to_real(pid_t id) {
  if (id <= 0 || !holds_identity()) return id;
  if (id == g_vpid) return real_pid();
  for (TidSlot& s : g_tids) {
    if (s.vtid.load(std::memory_order_relaxed) != id) continue;
    pid_t* where = s.where.load(std::memory_order_relaxed);
    pid_t now = where != nullptr ? tid_at(where) : 0;
    return now > 0 ? now : id;
  }
  return id;
}

}  // namespace mosix::agent

namespace {

int errno_result(long r) {
  if (r < 0 && r > -4096) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return static_cast<int>(r);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) pid_t gettid(void) { return mosix::agent::virtual_tid(); }

// A body's of a thread of a home process goes home (home_kill.cpp).
__attribute__((visibility("default"))) int tgkill(pid_t tgid, pid_t tid, int sig) {
  if (tid <= 0) return errno_result(-EINVAL);  // the kernel's answer; tid 0 means "the process" to send_signal
  return errno_result(mosix::agent::send_signal(tgid, tid, sig, nullptr));
}

// The libc calls that take a tid or pid, to the kernel with its own.
namespace {
long real_id(pid_t id) { return static_cast<long>(mosix::agent::tid_to_real(id)); }
}  // namespace

__attribute__((visibility("default"))) int sched_setscheduler(pid_t pid, int policy, const struct sched_param* p) {
  return errno_result(mosix::agent::sys(SYS_sched_setscheduler, real_id(pid), policy, p));
}
__attribute__((visibility("default"))) int sched_getscheduler(pid_t pid) {
  return errno_result(mosix::agent::sys(SYS_sched_getscheduler, real_id(pid)));
}
__attribute__((visibility("default"))) int sched_setparam(pid_t pid, const struct sched_param* p) {
  return errno_result(mosix::agent::sys(SYS_sched_setparam, real_id(pid), p));
}
__attribute__((visibility("default"))) int sched_getparam(pid_t pid, struct sched_param* p) {
  return errno_result(mosix::agent::sys(SYS_sched_getparam, real_id(pid), p));
}
__attribute__((visibility("default"))) int sched_rr_get_interval(pid_t pid, struct timespec* t) {
  return errno_result(mosix::agent::sys(SYS_sched_rr_get_interval, real_id(pid), t));
}
__attribute__((visibility("default"))) int getpriority(int which, id_t who) {
  long r = mosix::agent::sys(SYS_getpriority, which, which == PRIO_PROCESS ? real_id(static_cast<pid_t>(who)) : who);
  return r < 0 ? errno_result(r) : static_cast<int>(20 - r);  // the kernel answers 20 - nice, as glibc undoes
}
__attribute__((visibility("default"))) int setpriority(int which, id_t who, int prio) {
  return errno_result(
      mosix::agent::sys(SYS_setpriority, which, which == PRIO_PROCESS ? real_id(static_cast<pid_t>(who)) : who, prio));
}
__attribute__((visibility("default"))) int prlimit(pid_t pid, enum __rlimit_resource resource, const struct rlimit* next,
                                                   struct rlimit* old) {
  return errno_result(mosix::agent::sys(SYS_prlimit64, real_id(pid), resource, next, old));
}
__attribute__((visibility("default"))) int prlimit64(pid_t pid, enum __rlimit_resource resource,
                                                     const struct rlimit64* next, struct rlimit64* old) {
  return errno_result(mosix::agent::sys(SYS_prlimit64, real_id(pid), resource, next, old));
}
__attribute__((visibility("default"))) ssize_t process_vm_readv(pid_t pid, const struct iovec* local,
                                                                unsigned long nlocal, const struct iovec* remote,
                                                                unsigned long nremote, unsigned long flags) {
  long r = mosix::agent::sys(SYS_process_vm_readv, real_id(pid), local, nlocal, remote, nremote, flags);
  return r < 0 ? errno_result(r) : r;
}
__attribute__((visibility("default"))) ssize_t process_vm_writev(pid_t pid, const struct iovec* local,
                                                                 unsigned long nlocal, const struct iovec* remote,
                                                                 unsigned long nremote, unsigned long flags) {
  long r = mosix::agent::sys(SYS_process_vm_writev, real_id(pid), local, nlocal, remote, nremote, flags);
  return r < 0 ? errno_result(r) : r;
}
// A body's of a home pid is refused (home_kill.cpp).
__attribute__((visibility("default"))) int pidfd_open(pid_t pid, unsigned int flags) {
  if (mosix::agent::pidfd_refused(pid)) return errno_result(-ENOSYS);
  return errno_result(mosix::agent::sys(SYS_pidfd_open, real_id(pid), flags));
}

// syscall(2): the calls above, made by number, get the same treatment, and
// so do the tid arguments of a few more; every other passes through
// unchanged (six arguments, as libc's own passes).
__attribute__((visibility("default"))) long syscall(long n, ...) {
  using namespace mosix::agent;
  va_list ap;
  va_start(ap, n);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  auto id = [](long v) { return static_cast<long>(tid_to_real(static_cast<pid_t>(v))); };
  long r;
  switch (n) {
    case SYS_gettid:
      return virtual_tid();
    case SYS_getpid:
      return current_vpid();
    case SYS_getppid:
      return getppid();
    case SYS_kill:
      return kill(static_cast<pid_t>(a[0]), static_cast<int>(a[1]));
    case SYS_getsid:
      return getsid(static_cast<pid_t>(a[0]));
    case SYS_getpgid:
      return getpgid(static_cast<pid_t>(a[0]));
    case SYS_getpgrp:
      return getpgrp();
    case SYS_setpgid:
      return setpgid(static_cast<pid_t>(a[0]), static_cast<pid_t>(a[1]));
    case SYS_tgkill:
      return tgkill(static_cast<pid_t>(a[0]), static_cast<pid_t>(a[1]), static_cast<int>(a[2]));
    case SYS_rt_sigqueueinfo:
    case SYS_rt_tgsigqueueinfo: {
      const bool thread = n == SYS_rt_tgsigqueueinfo;
      siginfo_t* info = reinterpret_cast<siginfo_t*>(a[thread ? 3 : 2]);
      const auto tid = static_cast<pid_t>(thread ? a[1] : 0);
      if (thread && tid <= 0) {
        r = -EINVAL;  // as tgkill() above
      } else {
        r = send_signal(static_cast<pid_t>(a[0]), tid, static_cast<int>(a[thread ? 2 : 1]), info);
      }
      break;
    }
    case SYS_pidfd_open:
      return pidfd_open(static_cast<pid_t>(a[0]), static_cast<unsigned>(a[1]));
    case SYS_tkill:
      // A body's of a home process's main thread (its tid is its pid) goes
      // home, as tgkill(pid, pid) (home_kill.cpp); another thread of a home
      // process cannot be named from here, and is not found.
      if (static_cast<pid_t>(a[0]) > 0 && kill_goes_home(static_cast<pid_t>(a[0]))) {
        return tgkill(static_cast<pid_t>(a[0]), static_cast<pid_t>(a[0]), static_cast<int>(a[1]));
      }
      r = sys6(n, id(a[0]), a[1], a[2], a[3], a[4], a[5]);
      break;
    case SYS_sched_setaffinity:
    case SYS_sched_getaffinity:
      r = sys6(n, id(a[0]), a[1], a[2], a[3], a[4], a[5]);
      break;
    case SYS_kcmp:
      r = sys6(n, id(a[0]), id(a[1]), a[2], a[3], a[4]);
      break;
    // A tid or pid first: the kernel takes either (0 is the caller).
    case SYS_sched_setscheduler:
    case SYS_sched_getscheduler:
    case SYS_sched_setparam:
    case SYS_sched_getparam:
    case SYS_sched_setattr:
    case SYS_sched_getattr:
    case SYS_sched_rr_get_interval:
    case SYS_get_robust_list:
    case SYS_prlimit64:
    case SYS_process_vm_readv:
    case SYS_process_vm_writev:
    case SYS_migrate_pages:
    case SYS_move_pages:
      r = sys6(n, id(a[0]), a[1], a[2], a[3], a[4], a[5]);
      break;
    // Which kind of id, then the id: a process's (PRIO_PROCESS, and
    // IOPRIO_WHO_PROCESS, both 1) is one of ours.
    case SYS_getpriority:
    case SYS_setpriority:
    case SYS_ioprio_get:
    case SYS_ioprio_set:
      r = sys6(n, a[0], a[0] == 1 ? id(a[1]) : a[1], a[2], a[3], a[4], a[5]);
      break;
    case SYS_perf_event_open:
      r = sys6(n, a[0], a[1] > 0 ? id(a[1]) : a[1], a[2], a[3], a[4], a[5]);
      break;
    default:
      r = sys6(n, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
  if (r < 0 && r > -4096) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

}  // extern "C"
