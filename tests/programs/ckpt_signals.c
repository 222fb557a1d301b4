/* ckpt_signals [STEPS]: signal state a checkpoint must carry. Each step does
 * some work and sends itself SIGUSR1 (raise and kill(getpid()) in turn); the
 * handler runs on the alternate stack (SA_ONSTACK) and the count must equal
 * the step. Timers tick all along: ITIMER_REAL (SIGALRM, no SA_RESTART),
 * ITIMER_VIRTUAL (SIGVTALRM) and a POSIX timer (SIGRTMIN with a value). Each
 * tenth of the run it checks that a blocking read is interrupted by SIGALRM
 * (EINTR), that a helper thread's read survives SIGUSR2 (SA_RESTART), that
 * every timer still ticks, and that the dispositions, the mask, the alternate
 * stack and three blocked pending signals (SIGWINCH and three queued
 * SIGRTMIN+1 to the process, SIGPWR to the main thread) are intact. At the
 * end the pending signals are taken with sigtimedwait, values in order. Tick
 * counts vary, so lines only say "ticks>0". A third thread, all signals
 * blocked, sleeps in clock_nanosleep all along. Default 30000 steps. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>

#include "ckpt_common.h"

#define NAME "ckpt_signals"
#define ALT_SIZE (64 * 1024)
#define TIMER_VALUE 4242
#define REAL_US 5000
#define VIRTUAL_US 10000
#define POSIX_NS 7000000L
/* A wait for a timer gives up after this many SIGALRM ticks (20 s). */
#define TICK_LIMIT 4000

static volatile sig_atomic_t usr1_count_ = 0;
static volatile sig_atomic_t usr1_off_stack_ = 0;
static volatile sig_atomic_t usr2_count_ = 0;
static volatile sig_atomic_t alrm_ticks_ = 0;
static volatile sig_atomic_t vt_ticks_ = 0;
static volatile sig_atomic_t posix_ticks_ = 0;
static volatile sig_atomic_t posix_bad_ = 0;
static char* alt_stack_;

static int sig_pending_rt1(void) { return SIGRTMIN + 1; }

static void on_usr1(int sig, siginfo_t* info, void* ctx) {
  (void)sig;
  (void)info;
  (void)ctx;
  char here;
  if (&here < alt_stack_ || &here >= alt_stack_ + ALT_SIZE) usr1_off_stack_ = usr1_off_stack_ + 1;
  usr1_count_ = usr1_count_ + 1;
}

static void on_usr2(int sig) {
  (void)sig;
  usr2_count_ = usr2_count_ + 1;
}

static void on_alrm(int sig) {
  (void)sig;
  alrm_ticks_ = alrm_ticks_ + 1;
}

static void on_vtalrm(int sig) {
  (void)sig;
  vt_ticks_ = vt_ticks_ + 1;
}

static void on_timer(int sig, siginfo_t* info, void* ctx) {
  (void)sig;
  (void)ctx;
  if (info->si_code != SI_TIMER || info->si_value.sival_int != TIMER_VALUE) posix_bad_ = posix_bad_ + 1;
  posix_ticks_ = posix_ticks_ + 1;
}

static void install(int sig, void (*handler)(int), void (*action)(int, siginfo_t*, void*), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  if (action != NULL) {
    sa.sa_sigaction = action;
    flags |= SA_SIGINFO;
  } else {
    sa.sa_handler = handler;
  }
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, NULL) != 0) ckpt_fail(NAME, "sigaction(%d): %s", sig, strerror(errno));
}

static void check_disposition(int sig, void* handler, int want_flags, int unwanted_flags) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0) ckpt_fail(NAME, "sigaction(%d): %s", sig, strerror(errno));
  void* h = (sa.sa_flags & SA_SIGINFO) ? (void*)sa.sa_sigaction : (void*)sa.sa_handler;
  if (h != handler) ckpt_fail(NAME, "the handler of signal %d changed", sig);
  if ((sa.sa_flags & want_flags) != want_flags || (sa.sa_flags & unwanted_flags) != 0)
    ckpt_fail(NAME, "the flags of signal %d changed (0x%x)", sig, (unsigned)sa.sa_flags);
}

/* The helper reads one byte at a time from request_; SIGUSR2 (SA_RESTART)
 * arrives while it waits, so each read must still return the byte. It answers
 * on reply_ with 'k', or 'E' if a read failed. A 'q' ends it. */
static int request_[2], reply_[2];

static void* helper(void* arg) {
  (void)arg;
  for (;;) {
    char c;
    ssize_t n = read(request_[0], &c, 1);
    char answer = n == 1 ? 'k' : 'E';
    if (write(reply_[1], &answer, 1) != 1) ckpt_fail(NAME, "helper reply: %s", strerror(errno));
    if (n == 1 && c == 'q') return NULL;
  }
}

static void check_restart(pthread_t h) {
  int before = usr2_count_;
  for (int i = 0; i < 3; ++i) {
    pthread_kill(h, SIGUSR2);
    sched_yield();
  }
  char c = 'r', answer = 0;
  if (write(request_[1], &c, 1) != 1) ckpt_fail(NAME, "request: %s", strerror(errno));
  while (read(reply_[0], &answer, 1) != 1) {
    if (errno != EINTR) ckpt_fail(NAME, "reading the helper's reply: %s", strerror(errno));
  }
  if (answer != 'k') ckpt_fail(NAME, "a read in the helper failed after SIGUSR2 despite SA_RESTART");
  if (usr2_count_ == before) ckpt_fail(NAME, "the helper's SIGUSR2 handler did not run");
}

/* A read on a pipe nobody writes must end with EINTR from SIGALRM. */
static void check_eintr(int empty_read_fd) {
  for (;;) {
    int ticks = alrm_ticks_;
    char c;
    ssize_t n = read(empty_read_fd, &c, 1);
    if (n >= 0) ckpt_fail(NAME, "read from an empty pipe returned %zd", n);
    if (errno != EINTR) ckpt_fail(NAME, "read from an empty pipe: %s", strerror(errno));
    if (alrm_ticks_ != ticks) return;
  }
}

/* A lost timer would leave the waits below blocked for ever: check that each
 * is still armed, with its interval, before waiting on it. */
static void check_timers_armed(timer_t timer) {
  struct itimerval it;
  /* The kernel moves a periodic ITIMER_REAL on only when its SIGALRM is
   * taken: a read between the expiry and the delivery sees 0 left (the plain
   * run, without any agent, failed so once). The delivery comes on the way
   * back from the call, so an armed timer shows time left again on a later
   * read; a timer the restore left disarmed shows 0 on every read. */
  int reads = 0;
  do {
    if (getitimer(ITIMER_REAL, &it) != 0 || it.it_interval.tv_sec != 0 || it.it_interval.tv_usec != REAL_US)
      ckpt_fail(NAME, "ITIMER_REAL is no longer armed every %d us", REAL_US);
    if (it.it_value.tv_sec != 0 || it.it_value.tv_usec != 0) break;
    sched_yield();
  } while (++reads < 1000);
  if (reads == 1000) ckpt_fail(NAME, "ITIMER_REAL is no longer armed (0 left in 1000 reads)");
  if (getitimer(ITIMER_VIRTUAL, &it) != 0 || (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0) ||
      it.it_interval.tv_sec != 0 || it.it_interval.tv_usec != VIRTUAL_US)
    ckpt_fail(NAME, "ITIMER_VIRTUAL is no longer armed every %d us", VIRTUAL_US);
  struct itimerspec its;
  if (timer_gettime(timer, &its) != 0)
    ckpt_fail(NAME, "timer_gettime on the POSIX timer: %s", strerror(errno));
  if ((its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) || its.it_interval.tv_sec != 0 ||
      its.it_interval.tv_nsec != POSIX_NS)
    ckpt_fail(NAME, "the POSIX timer is no longer armed every %ld ns", POSIX_NS);
}

/* A thread that only sleeps, all signals blocked, so that a checkpoint often
 * finds it inside clock_nanosleep. Interrupted sleeps go on for the time
 * left, as careful programs do. */
static volatile int sleeper_stop_ = 0;
static long sleeper_naps_ = 0;

static void* sleeper(void* arg) {
  (void)arg;
  while (!__atomic_load_n(&sleeper_stop_, __ATOMIC_ACQUIRE)) {
    struct timespec want = {0, 20 * 1000 * 1000}, left;
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &want, &left)) == EINTR) want = left;
    if (rc != 0) ckpt_fail(NAME, "clock_nanosleep in the sleeper thread: %s", strerror(rc));
    sleeper_naps_++;
  }
  return NULL;
}

static void wait_posix_tick(void) {
  int start = posix_ticks_, alrm = alrm_ticks_;
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, NULL, &mask);
  while (posix_ticks_ == start) {
    if (alrm_ticks_ - alrm > TICK_LIMIT) ckpt_fail(NAME, "the POSIX timer stopped ticking");
    sigsuspend(&mask);
  }
}

static uint64_t wait_virtual_tick(uint64_t h) {
  int start = vt_ticks_, alrm = alrm_ticks_;
  while (vt_ticks_ == start) {
    if (alrm_ticks_ - alrm > TICK_LIMIT) ckpt_fail(NAME, "ITIMER_VIRTUAL stopped ticking");
    for (int i = 0; i < 1000; ++i) h = ckpt_mix(h, (uint64_t)i);
  }
  return h;
}

static void check_state(const sigset_t* blocked) {
  check_disposition(SIGUSR1, (void*)on_usr1, SA_RESTART | SA_ONSTACK | SA_SIGINFO, 0);
  check_disposition(SIGUSR2, (void*)on_usr2, SA_RESTART, SA_SIGINFO);
  check_disposition(SIGALRM, (void*)on_alrm, 0, SA_RESTART | SA_SIGINFO);
  check_disposition(SIGVTALRM, (void*)on_vtalrm, SA_RESTART, 0);
  check_disposition(SIGRTMIN, (void*)on_timer, SA_RESTART | SA_SIGINFO, 0);

  sigset_t mask, pending;
  pthread_sigmask(SIG_SETMASK, NULL, &mask);
  sigpending(&pending);
  const int sigs[] = {SIGWINCH, sig_pending_rt1(), SIGPWR};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; ++i) {
    if (!sigismember(&mask, sigs[i])) ckpt_fail(NAME, "signal %d is no longer blocked", sigs[i]);
    if (!sigismember(&pending, sigs[i])) ckpt_fail(NAME, "pending signal %d was lost", sigs[i]);
  }
  for (int s = 1; s < SIGRTMIN; ++s)
    if (s != SIGKILL && s != SIGSTOP && sigismember(&mask, s) != sigismember(blocked, s))
      ckpt_fail(NAME, "the signal mask changed at signal %d", s);

  stack_t ss;
  if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != alt_stack_ || ss.ss_size != ALT_SIZE || (ss.ss_flags & SS_DISABLE))
    ckpt_fail(NAME, "the alternate signal stack changed");
}

int main(int argc, char** argv) {
  long steps = ckpt_steps(NAME, argc, argv, 30000);
  ckpt_print("%s start steps=%ld\n", NAME, steps);

  alt_stack_ = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (alt_stack_ == MAP_FAILED) ckpt_fail(NAME, "mmap: %s", strerror(errno));
  stack_t ss = {.ss_sp = alt_stack_, .ss_flags = 0, .ss_size = ALT_SIZE};
  if (sigaltstack(&ss, NULL) != 0) ckpt_fail(NAME, "sigaltstack: %s", strerror(errno));

  install(SIGUSR1, NULL, on_usr1, SA_RESTART | SA_ONSTACK);
  install(SIGUSR2, on_usr2, NULL, SA_RESTART);
  install(SIGALRM, on_alrm, NULL, 0);
  install(SIGVTALRM, on_vtalrm, NULL, SA_RESTART);
  install(SIGRTMIN, NULL, on_timer, SA_RESTART);

  /* Blocked before the helper starts, so that it inherits the mask and the
   * pending signals stay pending for the process. */
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGWINCH);
  sigaddset(&blocked, sig_pending_rt1());
  sigaddset(&blocked, SIGPWR);
  pthread_sigmask(SIG_BLOCK, &blocked, NULL);

  int empty[2];
  if (pipe(empty) != 0 || pipe(request_) != 0 || pipe(reply_) != 0) ckpt_fail(NAME, "pipe: %s", strerror(errno));

  /* The helper blocks everything but SIGUSR2: timer signals go to main. */
  sigset_t all, old;
  sigfillset(&all);
  sigdelset(&all, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_t h;
  int rc = pthread_create(&h, NULL, helper, NULL);
  if (rc != 0) ckpt_fail(NAME, "pthread_create: %s", strerror(rc));
  sigaddset(&all, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_t sleeper_thread;
  rc = pthread_create(&sleeper_thread, NULL, sleeper, NULL);
  if (rc != 0) ckpt_fail(NAME, "pthread_create: %s", strerror(rc));
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  kill(getpid(), SIGWINCH);
  for (int v = 1; v <= 3; ++v) {
    union sigval sv = {.sival_int = v};
    if (sigqueue(getpid(), sig_pending_rt1(), sv) != 0) ckpt_fail(NAME, "sigqueue: %s", strerror(errno));
  }
  pthread_kill(pthread_self(), SIGPWR);

  timer_t timer;
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = SIGRTMIN;
  sev.sigev_value.sival_int = TIMER_VALUE;
  if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) ckpt_fail(NAME, "timer_create: %s", strerror(errno));
  struct itimerspec its = {{0, POSIX_NS}, {0, POSIX_NS}};
  if (timer_settime(timer, 0, &its, NULL) != 0) ckpt_fail(NAME, "timer_settime: %s", strerror(errno));
  struct itimerval real = {{0, REAL_US}, {0, REAL_US}}, virt = {{0, VIRTUAL_US}, {0, VIRTUAL_US}};
  if (setitimer(ITIMER_REAL, &real, NULL) != 0 || setitimer(ITIMER_VIRTUAL, &virt, NULL) != 0)
    ckpt_fail(NAME, "setitimer: %s", strerror(errno));

  uint64_t work = 0, spin = 0;
  long eintr = 0;
  for (long step = 1; step <= steps; ++step) {
    for (int i = 0; i < 12000; ++i) work = ckpt_mix(work, (uint64_t)(step + i));
    if (step % 2) {
      raise(SIGUSR1);
    } else if (kill(getpid(), SIGUSR1) != 0) {
      ckpt_fail(NAME, "kill(getpid(), SIGUSR1): %s", strerror(errno));
    }
    if (usr1_count_ != step) ckpt_fail(NAME, "SIGUSR1 handled %d times after %ld sends", (int)usr1_count_, step);
    if (ckpt_is_tenth(step, steps)) {
      check_timers_armed(timer);
      check_eintr(empty[0]);
      eintr++;
      check_restart(h);
      wait_posix_tick();
      spin = wait_virtual_tick(spin);
      check_state(&blocked);
      if (usr1_off_stack_ != 0) ckpt_fail(NAME, "the SIGUSR1 handler ran off the alternate stack");
      if (posix_bad_ != 0) ckpt_fail(NAME, "a POSIX timer signal came without SI_TIMER and its value");
      ckpt_print("%s step %ld/%ld work=%016llx usr1=%d eintr=%ld ticks>0\n", NAME, step, steps,
                 (unsigned long long)work, (int)usr1_count_, eintr);
    }
  }

  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  setitimer(ITIMER_VIRTUAL, &off, NULL);
  timer_delete(timer);

  uint64_t sum = ckpt_mix(ckpt_mix(work, (uint64_t)usr1_count_), (uint64_t)eintr);
  struct timespec now = {0, 0};
  siginfo_t info;
  for (int v = 1; v <= 3; ++v) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig_pending_rt1());
    if (sigtimedwait(&one, &info, &now) != sig_pending_rt1()) ckpt_fail(NAME, "queued SIGRTMIN+1 number %d was lost", v);
    if (info.si_value.sival_int != v || info.si_code != SI_QUEUE)
      ckpt_fail(NAME, "queued SIGRTMIN+1 number %d came with value %d", v, info.si_value.sival_int);
    sum = ckpt_mix(sum, (uint64_t)info.si_value.sival_int);
  }
  const int others[] = {SIGWINCH, SIGPWR};
  for (size_t i = 0; i < 2; ++i) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, others[i]);
    if (sigtimedwait(&one, &info, &now) != others[i]) ckpt_fail(NAME, "pending signal %d was lost", others[i]);
    sum = ckpt_mix(sum, (uint64_t)others[i]);
  }
  sigset_t pending;
  sigpending(&pending);
  if (sigismember(&pending, sig_pending_rt1())) ckpt_fail(NAME, "more SIGRTMIN+1 pending than were queued");

  char q = 'q', answer;
  if (write(request_[1], &q, 1) != 1) ckpt_fail(NAME, "stopping the helper: %s", strerror(errno));
  while (read(reply_[0], &answer, 1) != 1) {
    if (errno != EINTR) ckpt_fail(NAME, "stopping the helper: %s", strerror(errno));
  }
  pthread_join(h, NULL);
  __atomic_store_n(&sleeper_stop_, 1, __ATOMIC_RELEASE);
  pthread_join(sleeper_thread, NULL);
  if (sleeper_naps_ == 0) ckpt_fail(NAME, "the sleeper thread never woke up");
  ckpt_result(NAME, sum);
  return 0;
}
