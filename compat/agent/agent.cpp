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

#include "compat/agent/raw.h"
#include "runtime/ckpt/restorer/protocol.h"

namespace mosix::agent {

pid_t g_vpid = 0;
pid_t g_vppid = 0;

pid_t real_pid() { return static_cast<pid_t>(sys(SYS_getpid)); }

namespace {

void ensure_ids() {
  if (g_vpid == 0) {
    g_vpid = real_pid();
    g_vppid = static_cast<pid_t>(sys(SYS_getppid));
  }
}

// A forked child is a new process: its own pid, its parent's virtual pid.
void after_fork_in_child() {
  g_vppid = g_vpid;
  g_vpid = real_pid();
}

bool is_agent_signal(int sig) {
  return sig == mosix::ckpt::kRequestSignal || sig == mosix::ckpt::kStopSignal;
}

std::atomic<SigactionFn> g_real_sigaction{nullptr};

}  // namespace

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

__attribute__((constructor)) void agent_init() {
  ensure_ids();
  pthread_atfork(nullptr, nullptr, after_fork_in_child);
  install_checkpoint_handlers();
}

}  // namespace

void strip_agent_signals(sigset_t* set) {
  sigdelset(set, mosix::ckpt::kRequestSignal);
  sigdelset(set, mosix::ckpt::kStopSignal);
  // What glibc's own pthread_sigmask does for its internal signals.
  sigdelset(set, 32);
  sigdelset(set, 33);
}

}  // namespace mosix::agent

using mosix::agent::g_vpid;
using mosix::agent::g_vppid;

extern "C" {

__attribute__((visibility("default"))) pid_t getpid(void) {
  mosix::agent::ensure_ids();
  return g_vpid;
}

__attribute__((visibility("default"))) pid_t getppid(void) {
  mosix::agent::ensure_ids();
  return g_vppid;
}

// kill(getpid(), sig) must reach this process, whose real pid may differ.
__attribute__((visibility("default"))) int kill(pid_t pid, int sig) {
  mosix::agent::ensure_ids();
  pid_t real = mosix::agent::real_pid();
  if (pid == g_vpid) pid = real;
  else if (pid == -g_vpid) pid = -real;
  long r = mosix::agent::sys(SYS_kill, pid, sig);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return 0;
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
