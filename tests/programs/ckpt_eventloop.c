/* ckpt_eventloop [STEPS]: an event loop's descriptors, which a checkpoint must
 * carry with their kernel state. One epoll instance watches an eventfd
 * (level-triggered), a semaphore eventfd (edge-triggered), a signalfd for
 * SIGUSR2, the read end of a self-wake pipe (edge-triggered), a timerfd
 * armed an hour ahead, a one-shot eventfd that fired once and is disarmed,
 * one end of a stream socketpair and one of a datagram socketpair; a second
 * epoll instance watches the first (nested). Two more socketpairs hold
 * bytes and datagrams queued in both directions from start to end. Each step
 * makes every one but the timer and the one-shot ready, waits on the outer
 * instance, checks that the inner one reports exactly those, with their data
 * words, drains them, and checks that nothing is left ready. A checkpoint
 * can land anywhere in a step: counts, unread bytes and the pending signal
 * are in the kernel objects. At the end the one-shot watch is armed again
 * and must report. Prints a RESULT line with a checksum of everything read. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "ckpt_common.h"

#define NAME "ckpt_eventloop"

enum { W_COUNT = 0x11, W_SEM = 0x22, W_SIG = 0x33, W_PIPE = 0x44, W_TIMER = 0x55, W_ONESHOT = 0x66,
       W_STREAM = 0x77, W_DGRAM = 0x88 };

static int count_fd, sem_fd, sig_fd, pipe_fd[2], timer_fd, oneshot_fd, inner, outer;
static int stream[2], dgram[2], kept_stream[2], kept_dgram[2];

/* What the kept pairs hold all along: 3000 bytes each way on the stream
 * pair, 5 datagrams of different sizes each way on the datagram pair. */
static void kept_bytes(unsigned char* buf, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) buf[i] = (unsigned char)(i * 7 + seed);
}

static void fill_kept(void) {
  unsigned char buf[3000];
  for (int e = 0; e < 2; ++e) {
    kept_bytes(buf, sizeof buf, 11u + (unsigned)e);
    if (write(kept_stream[e], buf, sizeof buf) != (ssize_t)sizeof buf) ckpt_fail(NAME, "filling the kept stream pair");
    for (int m = 0; m < 5; ++m) {
      kept_bytes(buf, (size_t)(m * 100 + 1), 31u * (unsigned)e + (unsigned)m);
      if (send(kept_dgram[e], buf, (size_t)(m * 100 + 1), 0) != m * 100 + 1) ckpt_fail(NAME, "filling the kept datagram pair");
    }
  }
}

static void check_kept(void) {
  unsigned char buf[4000], want[3000];
  for (int e = 0; e < 2; ++e) {
    kept_bytes(want, sizeof want, 11u + (unsigned)e);
    ssize_t n = recv(kept_stream[1 - e], buf, sizeof buf, MSG_DONTWAIT);
    if (n != 3000 || memcmp(buf, want, 3000) != 0) ckpt_fail(NAME, "the kept stream pair lost or changed bytes (%zd)", n);
    for (int m = 0; m < 5; ++m) {
      kept_bytes(want, (size_t)(m * 100 + 1), 31u * (unsigned)e + (unsigned)m);
      n = recv(kept_dgram[1 - e], buf, sizeof buf, MSG_DONTWAIT);
      if (n != m * 100 + 1 || memcmp(buf, want, (size_t)n) != 0)
        ckpt_fail(NAME, "datagram %d of the kept pair changed (%zd bytes)", m, n);
    }
    if (recv(kept_dgram[1 - e], buf, sizeof buf, MSG_DONTWAIT) >= 0) ckpt_fail(NAME, "the kept datagram pair has one too many");
  }
}

static void watch(int ep, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) ckpt_fail(NAME, "epoll_ctl ADD fd %d: %s", fd, strerror(errno));
}

static void bump(int fd, uint64_t v) {
  if (write(fd, &v, 8) != 8) ckpt_fail(NAME, "write to eventfd %d: %s", fd, strerror(errno));
}

/* The data words epoll_wait(ep, 0) reports, as a bit set of W_* >> 4. */
static unsigned ready_set(int ep) {
  struct epoll_event evs[16];
  int n = epoll_wait(ep, evs, 16, 0);
  if (n < 0) ckpt_fail(NAME, "epoll_wait: %s", strerror(errno));
  unsigned set = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t w = evs[i].data.u64;
    if (w < W_COUNT || w > W_DGRAM || (w & 0xf) != (w >> 4)) ckpt_fail(NAME, "a data word changed: %llx", (unsigned long long)w);
    if (set & (1u << (w >> 4))) ckpt_fail(NAME, "word %llx reported twice", (unsigned long long)w);
    set |= 1u << (w >> 4);
  }
  return set;
}

static void check_flags(void) {
  struct { int fd, fl, fdfl; const char* what; } want[] = {
      {count_fd, O_NONBLOCK, FD_CLOEXEC, "eventfd"}, {sem_fd, O_NONBLOCK, 0, "semaphore eventfd"},
      {sig_fd, O_NONBLOCK, FD_CLOEXEC, "signalfd"},  {pipe_fd[0], O_NONBLOCK, FD_CLOEXEC, "pipe"},
      {inner, 0, FD_CLOEXEC, "epoll"},              {outer, 0, 0, "outer epoll"},
      {stream[0], O_NONBLOCK, FD_CLOEXEC, "stream pair"}, {dgram[1], 0, 0, "datagram pair"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
    int fl = fcntl(want[i].fd, F_GETFL), fdfl = fcntl(want[i].fd, F_GETFD);
    if (fl < 0 || (fl & O_NONBLOCK) != want[i].fl || (fdfl & FD_CLOEXEC) != want[i].fdfl)
      ckpt_fail(NAME, "the %s's flags changed (fd %d: 0x%x, 0x%x)", want[i].what, want[i].fd, fl, fdfl);
  }
  struct itimerspec t;
  if (timerfd_gettime(timer_fd, &t) != 0 || t.it_interval.tv_sec != 3600 || t.it_value.tv_sec > 3600 ||
      (t.it_value.tv_sec == 0 && t.it_value.tv_nsec == 0))
    ckpt_fail(NAME, "the timerfd is no longer armed an hour ahead");
}

int main(int argc, char** argv) {
  long steps = ckpt_steps(NAME, argc, argv, 3000);
  ckpt_print("%s start steps=%ld\n", NAME, steps);
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  sigprocmask(SIG_BLOCK, &usr2, NULL);
  count_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  sem_fd = eventfd(0, EFD_NONBLOCK | EFD_SEMAPHORE);
  sig_fd = signalfd(-1, &usr2, SFD_NONBLOCK | SFD_CLOEXEC);
  timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  oneshot_fd = eventfd(0, EFD_NONBLOCK);
  inner = epoll_create1(EPOLL_CLOEXEC);
  outer = epoll_create1(0);
  if (count_fd < 0 || sem_fd < 0 || sig_fd < 0 || timer_fd < 0 || oneshot_fd < 0 || inner < 0 || outer < 0 ||
      pipe2(pipe_fd, O_NONBLOCK | O_CLOEXEC) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, stream) != 0 ||
      socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, kept_stream) != 0 ||
      socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, kept_dgram) != 0)
    ckpt_fail(NAME, "making the descriptors: %s", strerror(errno));
  struct itimerspec hour = {{3600, 0}, {3600, 0}};
  if (timerfd_settime(timer_fd, 0, &hour, NULL) != 0) ckpt_fail(NAME, "timerfd_settime: %s", strerror(errno));
  watch(inner, count_fd, EPOLLIN, W_COUNT);
  watch(inner, sem_fd, EPOLLIN | EPOLLET, W_SEM);
  watch(inner, sig_fd, EPOLLIN, W_SIG);
  watch(inner, pipe_fd[0], EPOLLIN | EPOLLET, W_PIPE);
  watch(inner, timer_fd, EPOLLIN, W_TIMER);
  watch(inner, oneshot_fd, EPOLLIN | EPOLLONESHOT, W_ONESHOT);
  watch(inner, stream[0], EPOLLIN | EPOLLRDHUP, W_STREAM);
  watch(inner, dgram[1], EPOLLIN, W_DGRAM);
  watch(outer, inner, EPOLLIN, 0x99);
  fill_kept();
  /* The one-shot fires once, then stays disarmed with its count left in. */
  bump(oneshot_fd, 1);
  if (ready_set(inner) != 1u << (W_ONESHOT >> 4)) ckpt_fail(NAME, "the one-shot watch did not fire");

  const unsigned all = 1u << (W_COUNT >> 4) | 1u << (W_SEM >> 4) | 1u << (W_SIG >> 4) | 1u << (W_PIPE >> 4) |
                       1u << (W_STREAM >> 4) | 1u << (W_DGRAM >> 4);
  uint64_t h = 0, rng = 0x9e3779b97f4a7c15ULL;
  for (long step = 1; step <= steps; ++step) {
    for (int i = 0; i < 3000; ++i) h = ckpt_mix(h, (uint64_t)(step * 7 + i));
    uint64_t v = ckpt_next(&rng) % 1000 + 1, sems = (uint64_t)(step % 3 + 1);
    bump(count_fd, v);
    bump(sem_fd, sems);
    kill(getpid(), SIGUSR2);
    char wake[3] = {'a', (char)('a' + step % 26), 'z'};
    if (write(pipe_fd[1], wake, 3) != 3) ckpt_fail(NAME, "write to the pipe: %s", strerror(errno));
    unsigned char msg[64];
    size_t mlen = (size_t)(step % 50 + 5);
    kept_bytes(msg, mlen, (unsigned)step);
    if (write(stream[1], msg, mlen) != (ssize_t)mlen || send(dgram[0], msg, 3, 0) != 3 ||
        send(dgram[0], msg, mlen, 0) != (ssize_t)mlen)
      ckpt_fail(NAME, "step %ld: writing to the socketpairs: %s", step, strerror(errno));

    struct epoll_event ev;
    int n = epoll_wait(outer, &ev, 1, 0);
    if (n != 1 || ev.data.u64 != 0x99) ckpt_fail(NAME, "the outer epoll did not report the inner one (%d)", n);
    unsigned got = ready_set(inner);
    if (got != all) ckpt_fail(NAME, "step %ld: ready set 0x%x, not 0x%x", step, got, all);

    uint64_t c = 0;
    if (read(count_fd, &c, 8) != 8 || c != v) ckpt_fail(NAME, "step %ld: eventfd read %llu, not %llu", step, (unsigned long long)c, (unsigned long long)v);
    uint64_t taken = 0;
    while (read(sem_fd, &c, 8) == 8) taken += c;
    if (errno != EAGAIN || taken != sems) ckpt_fail(NAME, "step %ld: semaphore gave %llu", step, (unsigned long long)taken);
    struct signalfd_siginfo si;
    if (read(sig_fd, &si, sizeof si) != (ssize_t)sizeof si || si.ssi_signo != SIGUSR2)
      ckpt_fail(NAME, "step %ld: no SIGUSR2 from the signalfd", step);
    char buf[8];
    if (read(pipe_fd[0], buf, sizeof buf) != 3 || memcmp(buf, wake, 3) != 0)
      ckpt_fail(NAME, "step %ld: the pipe did not hold the 3 bytes written", step);
    unsigned char got_msg[128];
    if (read(stream[0], got_msg, sizeof got_msg) != (ssize_t)mlen || memcmp(got_msg, msg, mlen) != 0)
      ckpt_fail(NAME, "step %ld: the stream socketpair did not carry the %zu bytes written", step, mlen);
    if (recv(dgram[1], got_msg, sizeof got_msg, 0) != 3 || recv(dgram[1], got_msg + 3, sizeof got_msg - 3, 0) != (ssize_t)mlen ||
        memcmp(got_msg + 3, msg, mlen) != 0)
      ckpt_fail(NAME, "step %ld: the datagram socketpair did not keep its two messages", step);
    h = ckpt_mix_bytes(h, got_msg, mlen + 3);
    h = ckpt_mix(h, v * 31 + taken);
    h = ckpt_mix_bytes(h, buf, 3);
    if ((got = ready_set(inner)) != 0) ckpt_fail(NAME, "step %ld: 0x%x still ready after draining", step, got);
    if (epoll_wait(outer, &ev, 1, 0) != 0) ckpt_fail(NAME, "step %ld: the outer epoll still reports", step);
    if (step % 100 == 0) check_flags();
    if (ckpt_is_tenth(step, steps)) ckpt_print("step %ld %016llx\n", step, (unsigned long long)h);
  }
  check_flags();
  check_kept();
  /* Armed again, the one-shot reports the count it held all along. */
  struct epoll_event re = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = W_ONESHOT};
  if (epoll_ctl(inner, EPOLL_CTL_MOD, oneshot_fd, &re) != 0) ckpt_fail(NAME, "EPOLL_CTL_MOD: %s", strerror(errno));
  uint64_t one = 0;
  if (ready_set(inner) != 1u << (W_ONESHOT >> 4) || read(oneshot_fd, &one, 8) != 8 || one != 1)
    ckpt_fail(NAME, "the one-shot watch did not report its count once armed again");
  ckpt_result(NAME, h);
  return 0;
}
