// libmosix.so entry points: the constructor and the libc functions the agent
// interposes (virtual pids, and keeping the agent's signals deliverable).
#include "compat/agent/agent.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "compat/agent/raw.h"
#include "runtime/ckpt/request_protocol.h"

namespace mosix::agent {

pid_t g_vpid = 0;
pid_t g_vppid = 0;
pid_t g_vpid_real = 0;
pid_t g_image_real = 0;
pid_t g_ppid_real = 0;
unsigned g_stops = 0;

pid_t real_pid() { return static_cast<pid_t>(sys(SYS_getpid)); }

namespace {

void ensure_ids() {
  if (g_vpid == 0) {
    g_vpid = real_pid();
    g_vpid_real = g_vpid;
    g_vppid = static_cast<pid_t>(sys(SYS_getppid));
    g_ppid_real = g_vppid;
  }
}

// The virtual pid of a new process's parent: the caller's virtual pid when
// the caller is that parent, else the real one.
pid_t parent_vpid() {
  auto parent = static_cast<pid_t>(sys(SYS_getppid));
  return parent == g_vpid_real ? g_vpid : parent;
}

// fork() holds the agent's two signals from here (the last prepare handler
// to run, as the agent's is the first registered) until the handlers below
// have run, in the parent and, with the mask it inherits, in the child. A
// checkpoint that caught the child before after_fork_in_child took its
// identity then (current_vpid(true)), and the handler, run later, in the
// restored process, took it again from the kernel's new pids: the restored
// child saw its new real pid and parent (zdtm's file_locks00 in tree mode,
// whose child may not have run yet when the test is checkpointed). One that
// caught the parent between this handler and the clone would have left the
// restore unnoticed in the child's copy of the parent.
void before_fork() {
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &kAgentSignals, nullptr, 8);
  current_vpid();
}

void after_fork_in_parent() { release_agent_signals(); }

// A forked child is a new process: its own pid, its parent's virtual pid.
void after_fork_in_child() {
  home_kill_after_fork(static_cast<pid_t>(sys(SYS_getppid)));
  g_vppid = parent_vpid();
  g_ppid_real = static_cast<pid_t>(sys(SYS_getppid));
  g_vpid = real_pid();
  g_vpid_real = g_vpid;
  forget_thread_ids();
  release_agent_signals();
}

// Runs send() (a system call that uses this incarnation's real pid or tid)
// with the agent's signals blocked, and `sig` too when it is a valid signal
// number, so that no checkpoint falls between reading the pid and using it.
// `sig` is then delivered when the program's mask comes back, with the
// agent's signals deliverable again.
template <typename F>
long guarded(int sig, F send) {
  std::uint64_t block = (1ULL << (mosix::ckpt::kRequestSignal - 1)) | (1ULL << (mosix::ckpt::kStopSignal - 1));
  if (sig >= 1 && sig <= 64) block |= 1ULL << (sig - 1);
  std::uint64_t old = 0;
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &block, &old, 8);
  long r = send();
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  return r;
}

int libc_result(long r) {
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return 0;
}

using PthreadKillFn = int (*)(pthread_t, int);
std::atomic<PthreadKillFn> g_real_pthread_kill{nullptr};

PthreadKillFn real_pthread_kill() {
  PthreadKillFn f = g_real_pthread_kill.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<PthreadKillFn>(dlsym(RTLD_NEXT, "pthread_kill"));
    g_real_pthread_kill.store(f, std::memory_order_release);
  }
  return f;
}

bool is_agent_signal(int sig) {
  return sig == mosix::ckpt::kRequestSignal || sig == mosix::ckpt::kStopSignal;
}

std::atomic<SigactionFn> g_real_sigaction{nullptr};

}  // namespace

long send_signal(pid_t pid, pid_t tid, int sig, siginfo_t* info) {
  return guarded(0, [&] {
    bool local = true;
    const bool home = tid == 0 && info == nullptr ? kill_goes_home(pid) : pid > 0 && kill_goes_home(pid);
    const long answer = home ? home_kill(pid, sig, &local, tid, info) : 0;
    if (!local) return answer;
    const pid_t target = to_real_pid(pid);
    if (tid != 0) {
      const long t = static_cast<long>(tid_to_real(tid));
      return info != nullptr ? sys(SYS_rt_tgsigqueueinfo, target, t, sig, info) : sys(SYS_tgkill, target, t, sig);
    }
    return info != nullptr ? sys(SYS_rt_sigqueueinfo, target, sig, info) : sys(SYS_kill, to_real_target(pid), sig);
  });
}

// No agent code runs when a restored process resumes (every thread goes back
// to where the program was), so a restore is noticed here, the first time
// the pid is asked for, and before any fork() (before_fork). A process that
// calls raw clone() before it ever asked its pid after a restore would see
// its child take the restored identity; nothing cheaper tells the two apart.
pid_t current_vpid(bool adopt) {
  ensure_ids();
  pid_t real = real_pid();
  if (real == g_vpid_real) return g_vpid;
  if (g_image_real != 0 && g_image_real == g_vpid_real) {
    g_vpid_real = real;
    g_image_real = 0;
    // A process restored alone keeps the parent pid it saw: its real parent
    // is whatever restarted it, and that one's end is no reparenting of the
    // program's. A tree's member (not its root) has its parent as the
    // restorer made it, and follows a reparenting from there.
    g_ppid_real = -1;
    tree_note_restored();
    return g_vpid;
  }
  // A child of clone() without CLONE_VM|CLONE_THREAD (or a vfork child,
  // which shares the parent's memory: nothing is written unless adopt).
  if (adopt) {
    g_vppid = parent_vpid();
    g_ppid_real = static_cast<pid_t>(sys(SYS_getppid));
    g_vpid = real;
    g_vpid_real = real;
  }
  return real;
}

SigactionFn real_sigaction() {
  SigactionFn f = g_real_sigaction.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
    g_real_sigaction.store(f, std::memory_order_release);
  }
  return f;
}

namespace {

long set_mask(int how, const sigset_t* set, sigset_t* old) {
  sigset_t copy;
  const sigset_t* use = set;
  if (set != nullptr) {
    copy = *set;
    strip_agent_signals(&copy);
    use = &copy;
  }
  return sys(SYS_rt_sigprocmask, how, use, old, 8);
}

// glibc calls a library's constructors with the program's argc and argv.
__attribute__((constructor)) void agent_init(int argc, char** argv) {
  note_runtime_dir();
  place_at_exec(argc, argv);  // returns unless this process stays here
  ensure_ids();
  adopt_home_identity();
  pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
  install_checkpoint_handlers();
  release_agent_signals();
}

}  // namespace

void strip_agent_only(sigset_t* set) {
  sigdelset(set, mosix::ckpt::kRequestSignal);
  sigdelset(set, mosix::ckpt::kStopSignal);
}

void strip_agent_signals(sigset_t* set) {
  strip_agent_only(set);
  // What glibc's own pthread_sigmask does for its internal signals.
  sigdelset(set, 32);
  sigdelset(set, 33);
}

}  // namespace mosix::agent

using mosix::agent::g_vpid;
using mosix::agent::g_vppid;

extern "C" {

__attribute__((visibility("default"))) pid_t getpid(void) { return mosix::agent::current_vpid(); }

// The kernel's parent pid and what the agent knows of it must come from one
// incarnation: a checkpoint that stops this thread in between (g_stops
// moves) and a restore after it would pair the old parent with the new
// process's notion of it. Then the answer is worked out again.
__attribute__((visibility("default"))) pid_t getppid(void) {
  using mosix::agent::g_stops;
  for (;;) {
    unsigned stops = __atomic_load_n(&g_stops, __ATOMIC_ACQUIRE);
    pid_t self = mosix::agent::current_vpid();
    auto real = static_cast<pid_t>(mosix::agent::sys(SYS_getppid));
    pid_t answer;
    if (self != g_vpid) {
      answer = mosix::agent::parent_vpid();  // a child of clone() that did not adopt its own identity
    } else if (mosix::agent::g_ppid_real < 0 || real == mosix::agent::g_ppid_real) {
      answer = g_vppid;
    } else {
      answer = mosix::agent::to_virtual_pid(real);  // reparented (an orphan's subreaper or init)
    }
    if (__atomic_load_n(&g_stops, __ATOMIC_ACQUIRE) == stops) return answer;
  }
}

// kill(getpid(), sig) must reach this process, whose real pid may differ,
// kill(child, sig) a member of a restored tree (tree.cpp), and a body's
// kill of its home's pids that home (home_kill.cpp).
// Only the agent's signals are held off (the kernel still picks the thread
// that takes sig, as without the agent).
__attribute__((visibility("default"))) int kill(pid_t pid, int sig) {
  return mosix::agent::libc_result(mosix::agent::send_signal(pid, 0, sig, nullptr));
}

// glibc's raise, and pthread_kill on the calling thread, read the thread's
// tid and then signal it without blocking anything: a checkpoint between
// the two would send the restored process's signal to a tid that no longer
// exists. Here that window is closed.
__attribute__((visibility("default"))) int raise(int sig) {
  long r = mosix::agent::guarded(sig, [&] {
    return mosix::agent::sys(SYS_tgkill, mosix::agent::real_pid(), mosix::agent::sys(SYS_gettid), sig);
  });
  return mosix::agent::libc_result(r);
}

__attribute__((visibility("default"))) int pthread_kill(pthread_t thread, int sig) {
  if (!pthread_equal(thread, pthread_self())) {
    auto real = mosix::agent::real_pthread_kill();
    return real != nullptr ? real(thread, sig) : ENOSYS;
  }
  long r = mosix::agent::guarded(sig, [&] {
    return mosix::agent::sys(SYS_tgkill, mosix::agent::real_pid(), mosix::agent::sys(SYS_gettid), sig);
  });
  return r < 0 ? static_cast<int>(-r) : 0;
}

// sigqueue(getpid(), ...) must reach this process too; the siginfo is the
// one glibc builds (si_pid: send_signal's). A body's of a home pid goes home,
// as kill().
__attribute__((visibility("default"))) int sigqueue(pid_t pid, int sig, const union sigval value) {
  siginfo_t info{};
  info.si_signo = sig;
  info.si_code = SI_QUEUE;
  info.si_pid = mosix::agent::real_pid();
  info.si_uid = static_cast<uid_t>(mosix::agent::sys(SYS_getuid));
  info.si_value = value;
  return mosix::agent::libc_result(mosix::agent::send_signal(pid, 0, sig, &info));
}

__attribute__((visibility("default"))) int sigprocmask(int how, const sigset_t* set,
                                                       sigset_t* old) {
  long r = mosix::agent::set_mask(how, set, old);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return 0;
}

__attribute__((visibility("default"))) int pthread_sigmask(int how, const sigset_t* set,
                                                           sigset_t* old) {
  long r = mosix::agent::set_mask(how, set, old);
  return r < 0 ? static_cast<int>(-r) : 0;
}

// sigwait and friends never take the agent's signals: a thread waiting for
// "all signals" would swallow the one that stops it for a checkpoint. A wait
// the agent interrupted (EINTR, g_stops moved) is resumed; sigtimedwait's
// then waits its whole timeout again.
static long wait_for_signal(const sigset_t* set, siginfo_t* info, const struct timespec* timeout) {
  sigset_t copy = *set;
  mosix::agent::strip_agent_only(&copy);
  for (;;) {
    unsigned before = __atomic_load_n(&mosix::agent::g_stops, __ATOMIC_RELAXED);
    long r = mosix::agent::sys(SYS_rt_sigtimedwait, &copy, info, timeout, 8);
    if (r != -EINTR || __atomic_load_n(&mosix::agent::g_stops, __ATOMIC_RELAXED) == before) return r;
  }
}

__attribute__((visibility("default"))) int sigwait(const sigset_t* set, int* sig) {
  long r;
  do r = wait_for_signal(set, nullptr, nullptr);
  while (r == -EINTR);
  if (r < 0) return static_cast<int>(-r);
  *sig = static_cast<int>(r);
  return 0;
}

__attribute__((visibility("default"))) int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  long r = wait_for_signal(set, info, nullptr);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return static_cast<int>(r);
}

__attribute__((visibility("default"))) int sigtimedwait(const sigset_t* set, siginfo_t* info,
                                                        const struct timespec* timeout) {
  long r = wait_for_signal(set, info, timeout);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return static_cast<int>(r);
}

// The agent's signals stay the agent's: a program that sets them is told it
// did (as with a signal it never receives), and its handler is not installed.
__attribute__((visibility("default"))) int sigaction(int sig, const struct sigaction* act,
                                                     struct sigaction* old) {
  if (mosix::agent::is_agent_signal(sig)) {
    if (old != nullptr) {
      *old = {};
      old->sa_handler = SIG_DFL;
    }
    return 0;
  }
  auto real = mosix::agent::real_sigaction();
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return real(sig, act, old);
}

}  // extern "C"

namespace {

// Session and group ids are real pids: the process's own shows as its
// virtual pid (a restored leader leads under its new real pid), and the
// virtual pid names the process's own group or session.
pid_t id_to_virtual(pid_t id) { return mosix::agent::to_virtual_pid(id); }

pid_t id_to_real(pid_t id) { return id > 0 ? mosix::agent::to_real_pid(id) : id; }

pid_t id_result(long r) {
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return id_to_virtual(static_cast<pid_t>(r));
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) pid_t getsid(pid_t pid) {
  return id_result(mosix::agent::sys(SYS_getsid, id_to_real(pid)));
}

__attribute__((visibility("default"))) pid_t getpgid(pid_t pid) {
  return id_result(mosix::agent::sys(SYS_getpgid, id_to_real(pid)));
}

__attribute__((visibility("default"))) pid_t getpgrp(void) {
  return id_result(mosix::agent::sys(SYS_getpgid, 0));
}

__attribute__((visibility("default"))) int setpgid(pid_t pid, pid_t pgid) {
  return mosix::agent::libc_result(mosix::agent::sys(SYS_setpgid, id_to_real(pid), id_to_real(pgid)));
}

}  // extern "C"
