// Waits that a checkpoint must not cut short. The agent stops every thread
// in a signal handler; the kernel then ends a sleep, poll, select,
// epoll_wait, sigsuspend or pause in progress with EINTR whatever SA_RESTART
// says, as if a handler of the program had run: the program would wake
// early (a leave-running checkpoint, a refused one, and a restore alike).
// These wrappers see that the agent did it (g_stops moved: every stopped
// thread bumps it before the image is written, so a restored process sees
// it moved too) and wait again for what was left:
//  - sleeps: the time the kernel says was left when the stop came;
//  - timeouts in milliseconds or a timespec the kernel does not give back:
//    measured on the monotonic clock in the same process, and, in a restored
//    process (another real pid, maybe another boot's clock), what was left at
//    the checkpoint's stop (g_stop_mono_ns, kept in the image).
// A wait that the program's own signal ends still returns EINTR (unless the
// checkpoint's stop and the program's signal ended the same wait: then it
// goes on, and a sigsuspend or pause waits for the next signal). libc's own
// functions do the waiting (dlsym RTLD_NEXT), so cancellation points stay.
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"

namespace mosix::agent {

long g_stop_mono_ns = 0;

namespace {

template <typename Fn>
Fn real_fn(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

unsigned stops() { return __atomic_load_n(&g_stops, __ATOMIC_RELAXED); }

// Through the vDSO: a timed wait costs one system call more (getpid), not two.
long mono_ns() {
  struct timespec t{};
  int saved = errno;
  clock_gettime(CLOCK_MONOTONIC, &t);
  errno = saved;
  return t.tv_sec * 1'000'000'000L + t.tv_nsec;
}

struct timespec to_timespec(long ns) { return {ns / 1'000'000'000L, ns % 1'000'000'000L}; }

long to_ns(const struct timespec& t) { return t.tv_sec * 1'000'000'000L + t.tv_nsec; }

// Runs call(left_ns) (left_ns -1: no timeout), which returns a result or -1
// with errno; again with what is left of timeout_ns while it ends with EINTR
// because of a checkpoint.
template <typename Call>
long with_timeout(long timeout_ns, Call call) {
  long pid = 0, start = 0, left = timeout_ns;
  if (timeout_ns > 0) {
    pid = sys(SYS_getpid);
    start = mono_ns();
  }
  for (;;) {
    unsigned before = stops();
    long r = call(left);
    if (r >= 0 || errno != EINTR || stops() == before) return r;
    if (timeout_ns <= 0) continue;
    bool restored = sys(SYS_getpid) != pid;
    long now = restored ? __atomic_load_n(&g_stop_mono_ns, __ATOMIC_RELAXED) : mono_ns();
    left = timeout_ns - (now - start);
    if (left < 0) left = 0;
    if (restored) {  // from here on, this process's clock
      pid = sys(SYS_getpid);
      start = mono_ns();
      timeout_ns = left;
    }
  }
}

int ms_of(long left_ns) { return left_ns < 0 ? -1 : static_cast<int>((left_ns + 999'999) / 1'000'000); }

// libc's own functions, looked up once in the library's constructor: a
// program may wait inside a signal handler, where dlsym must not run.
struct RealWaits {
  int (*nanosleep)(const struct timespec*, struct timespec*);
  int (*clock_nanosleep)(clockid_t, int, const struct timespec*, struct timespec*);
  int (*poll)(struct pollfd*, nfds_t, int);
  int (*ppoll)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*);
  int (*select)(int, fd_set*, fd_set*, fd_set*, struct timeval*);
  int (*pselect)(int, fd_set*, fd_set*, fd_set*, const struct timespec*, const sigset_t*);
  int (*epoll_wait)(int, struct epoll_event*, int, int);
  int (*epoll_pwait)(int, struct epoll_event*, int, int, const sigset_t*);
  int (*sigsuspend)(const sigset_t*);
  int (*pause)();
};
RealWaits g_real;

__attribute__((constructor)) void resolve_waits() {
  g_real.nanosleep = real_fn<decltype(g_real.nanosleep)>("nanosleep");
  g_real.clock_nanosleep = real_fn<decltype(g_real.clock_nanosleep)>("clock_nanosleep");
  g_real.poll = real_fn<decltype(g_real.poll)>("poll");
  g_real.ppoll = real_fn<decltype(g_real.ppoll)>("ppoll");
  g_real.select = real_fn<decltype(g_real.select)>("select");
  g_real.pselect = real_fn<decltype(g_real.pselect)>("pselect");
  g_real.epoll_wait = real_fn<decltype(g_real.epoll_wait)>("epoll_wait");
  g_real.epoll_pwait = real_fn<decltype(g_real.epoll_pwait)>("epoll_pwait");
  g_real.sigsuspend = real_fn<decltype(g_real.sigsuspend)>("sigsuspend");
  g_real.pause = real_fn<decltype(g_real.pause)>("pause");
}

// The table, resolved now if another library's constructor waits before
// this one ran.
const RealWaits& real() {
  if (__atomic_load_n(&g_real.pause, __ATOMIC_ACQUIRE) == nullptr) resolve_waits();
  return g_real;
}

}  // namespace
}  // namespace mosix::agent

using mosix::agent::real;
using mosix::agent::stops;
using mosix::agent::to_ns;
using mosix::agent::to_timespec;
using mosix::agent::with_timeout;

extern "C" {

__attribute__((visibility("default"))) int nanosleep(const struct timespec* req, struct timespec* rem) {
  struct timespec want = *req, left{};
  for (;;) {
    unsigned before = stops();
    int r = real().nanosleep(&want, &left);
    if (r == 0 || errno != EINTR || stops() == before) {
      if (r != 0 && errno == EINTR && rem != nullptr) *rem = left;
      return r;
    }
    want = left;
  }
}

__attribute__((visibility("default"))) int clock_nanosleep(clockid_t clock, int flags, const struct timespec* req,
                                                           struct timespec* rem) {
  struct timespec want = *req, left{};
  for (;;) {
    unsigned before = stops();
    int r = real().clock_nanosleep(clock, flags, &want, &left);  // an error number, not errno
    if (r != EINTR || stops() == before) {
      if (r == EINTR && rem != nullptr && !(flags & TIMER_ABSTIME)) *rem = left;
      return r;
    }
    if (!(flags & TIMER_ABSTIME)) want = left;
  }
}

__attribute__((visibility("default"))) unsigned int sleep(unsigned int seconds) {
  struct timespec ts = {static_cast<time_t>(seconds), 0};
  if (nanosleep(&ts, &ts) == 0) return 0;
  return static_cast<unsigned>(ts.tv_sec) + (ts.tv_nsec > 0 ? 1 : 0);
}

__attribute__((visibility("default"))) int usleep(useconds_t us) {
  struct timespec ts = {static_cast<time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000) * 1000};
  return nanosleep(&ts, nullptr);
}

__attribute__((visibility("default"))) int poll(struct pollfd* fds, nfds_t n, int timeout) {
  return static_cast<int>(with_timeout(timeout < 0 ? -1 : timeout * 1'000'000L, [&](long left) {
    return real().poll(fds, n, mosix::agent::ms_of(left));
  }));
}

__attribute__((visibility("default"))) int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                                                 const sigset_t* mask) {
  return static_cast<int>(with_timeout(timeout == nullptr ? -1 : to_ns(*timeout), [&](long left) {
    struct timespec t = to_timespec(left);
    return real().ppoll(fds, n, left < 0 ? nullptr : &t, mask);
  }));
}

// _FORTIFY_SOURCE builds call these instead.
[[noreturn]] void __chk_fail();

__attribute__((visibility("default"))) int __poll_chk(struct pollfd* fds, nfds_t n, int timeout, size_t fds_len) {
  if (fds_len / sizeof *fds < n) __chk_fail();
  return poll(fds, n, timeout);
}

__attribute__((visibility("default"))) int __ppoll_chk(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                                                       const sigset_t* mask, size_t fds_len) {
  if (fds_len / sizeof *fds < n) __chk_fail();
  return ppoll(fds, n, timeout, mask);
}

// Linux writes what is left into the timeval and leaves the sets alone on
// EINTR: the call is simply made again.
__attribute__((visibility("default"))) int select(int n, fd_set* r, fd_set* w, fd_set* e, struct timeval* timeout) {
  for (;;) {
    unsigned before = stops();
    int res = real().select(n, r, w, e, timeout);
    if (res >= 0 || errno != EINTR || stops() == before) return res;
  }
}

__attribute__((visibility("default"))) int pselect(int n, fd_set* r, fd_set* w, fd_set* e,
                                                   const struct timespec* timeout, const sigset_t* mask) {
  return static_cast<int>(with_timeout(timeout == nullptr ? -1 : to_ns(*timeout), [&](long left) {
    struct timespec t = to_timespec(left);
    return real().pselect(n, r, w, e, left < 0 ? nullptr : &t, mask);
  }));
}

__attribute__((visibility("default"))) int epoll_wait(int epfd, struct epoll_event* events, int max, int timeout) {
  return static_cast<int>(with_timeout(timeout < 0 ? -1 : timeout * 1'000'000L, [&](long left) {
    return real().epoll_wait(epfd, events, max, mosix::agent::ms_of(left));
  }));
}

__attribute__((visibility("default"))) int epoll_pwait(int epfd, struct epoll_event* events, int max, int timeout,
                                                       const sigset_t* mask) {
  return static_cast<int>(with_timeout(timeout < 0 ? -1 : timeout * 1'000'000L, [&](long left) {
    return real().epoll_pwait(epfd, events, max, mosix::agent::ms_of(left), mask);
  }));
}

// The agent's two signals never stay blocked in a suspend: a checkpoint
// requested meanwhile is taken, and the suspend goes on.
__attribute__((visibility("default"))) int sigsuspend(const sigset_t* mask) {
  sigset_t copy = *mask;
  mosix::agent::strip_agent_only(&copy);
  for (;;) {
    unsigned before = stops();
    int r = real().sigsuspend(&copy);
    if (errno != EINTR || stops() == before) return r;
  }
}

__attribute__((visibility("default"))) int pause(void) {
  for (;;) {
    unsigned before = stops();
    int r = real().pause();
    if (errno != EINTR || stops() == before) return r;
  }
}

}  // extern "C"
