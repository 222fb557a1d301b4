/* ckpt_threads [ROUNDS]: eight threads that stay alive for the whole run and
 * meet on mutexes, condition variables and a barrier. Each round, a producer
 * feeds two transformer threads through a bounded queue, they feed a sink
 * through a second queue (the sink's sum does not depend on the order), and
 * four workers run a stencil over an array, one barrier per phase. Every
 * thread checks its __thread variables (values, address, pthread_self) after
 * each round. At the end the sink exits holding a robust mutex (main must get
 * EOWNERDEAD) and every thread is joined: both need the kernel to know each
 * thread's robust list and clear_child_tid. One progress line per round, then
 * "RESULT ckpt_threads <checksum> OK". Default 20 rounds. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "ckpt_common.h"

#define NAME "ckpt_threads"
#define QCAP 16
#define ITEMS 10000
#define TRANSFORMERS 2
#define WORKERS 4
#define CELLS (1 << 16)
#define PHASES 100
#define THREADS (1 + TRANSFORMERS + 1 + WORKERS)
#define SENTINEL UINT32_MAX

struct Item {
  uint32_t index;
  uint64_t value;
};

struct Queue {
  pthread_mutex_t mutex;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  struct Item items[QCAP];
  int head;
  int count;
};

static struct Queue q_raw_ = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0, 0}}, 0, 0};
static struct Queue q_done_ = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0, 0}}, 0, 0};

static void queue_push(struct Queue* q, struct Item it) {
  pthread_mutex_lock(&q->mutex);
  while (q->count == QCAP) pthread_cond_wait(&q->not_full, &q->mutex);
  q->items[(q->head + q->count) % QCAP] = it;
  q->count++;
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->mutex);
}

static struct Item queue_pop(struct Queue* q) {
  pthread_mutex_lock(&q->mutex);
  while (q->count == 0) pthread_cond_wait(&q->not_empty, &q->mutex);
  struct Item it = q->items[q->head];
  q->head = (q->head + 1) % QCAP;
  q->count--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->mutex);
  return it;
}

/* Rounds: main bumps generation_ and broadcasts; each thread reports done. */
static pthread_mutex_t round_mutex_ = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t round_start_ = PTHREAD_COND_INITIALIZER;
static pthread_cond_t round_done_ = PTHREAD_COND_INITIALIZER;
static long generation_ = 0;
static long round_ = 0;
static int stop_ = 0;
static int done_ = 0;

static pthread_barrier_t barrier_;
static uint64_t cells_[2][CELLS];
static uint64_t pipeline_sum_;
static pthread_mutex_t robust_;

static __thread uint64_t tls_acc_;
static __thread long tls_id_ = -1;
static __thread char tls_tag_[24];

/* What a thread knows about itself without TLS, to check TLS against. */
struct Self {
  long id;
  uint64_t acc;
  const void* acc_address;
  pthread_t thread;
};

static void self_init(struct Self* s, long id) {
  tls_id_ = id;
  tls_acc_ = 0x51ed270b27d4eb4fULL * (uint64_t)(id + 1);
  snprintf(tls_tag_, sizeof tls_tag_, "thread-%ld", id);
  s->id = id;
  s->acc = tls_acc_;
  s->acc_address = &tls_acc_;
  s->thread = pthread_self();
}

static void self_mix(struct Self* s, uint64_t v) {
  tls_acc_ = ckpt_mix(tls_acc_, v);
  s->acc = ckpt_mix(s->acc, v);
}

static void self_check(const struct Self* s) {
  char tag[24];
  snprintf(tag, sizeof tag, "thread-%ld", s->id);
  if (tls_id_ != s->id || strcmp(tls_tag_, tag) != 0)
    ckpt_fail(NAME, "thread %ld: __thread id/tag changed (%ld, '%s')", s->id, tls_id_, tls_tag_);
  if ((const void*)&tls_acc_ != s->acc_address) ckpt_fail(NAME, "thread %ld: __thread variable moved", s->id);
  if (tls_acc_ != s->acc) ckpt_fail(NAME, "thread %ld: __thread accumulator differs from its copy", s->id);
  if (!pthread_equal(pthread_self(), s->thread)) ckpt_fail(NAME, "thread %ld: pthread_self() changed", s->id);
}

/* Waits for the next round; returns its number, or -1 when told to stop. */
static long wait_round(long* seen) {
  pthread_mutex_lock(&round_mutex_);
  while (generation_ == *seen) pthread_cond_wait(&round_start_, &round_mutex_);
  *seen = generation_;
  long r = stop_ ? -1 : round_;
  pthread_mutex_unlock(&round_mutex_);
  return r;
}

static void report_done(void) {
  pthread_mutex_lock(&round_mutex_);
  done_++;
  pthread_cond_signal(&round_done_);
  pthread_mutex_unlock(&round_mutex_);
}

static uint64_t transform(uint64_t v) {
  for (int i = 0; i < 3000; ++i) v = ckpt_mix(v, (uint64_t)i);
  return v;
}

static void* producer(void* arg) {
  struct Self self;
  self_init(&self, (long)(intptr_t)arg);
  long seen = 0, r;
  while ((r = wait_round(&seen)) >= 0) {
    for (uint32_t i = 0; i < ITEMS; ++i) {
      struct Item it = {i, ckpt_mix((uint64_t)r, i)};
      self_mix(&self, it.value);
      queue_push(&q_raw_, it);
    }
    for (int t = 0; t < TRANSFORMERS; ++t) queue_push(&q_raw_, (struct Item){SENTINEL, 0});
    self_check(&self);
    report_done();
  }
  return NULL;
}

static void* transformer(void* arg) {
  struct Self self;
  self_init(&self, (long)(intptr_t)arg);
  long seen = 0;
  while (wait_round(&seen) >= 0) {
    for (;;) {
      struct Item it = queue_pop(&q_raw_);
      if (it.index == SENTINEL) break;
      it.value = transform(it.value);
      self_mix(&self, it.value);
      queue_push(&q_done_, it);
    }
    queue_push(&q_done_, (struct Item){SENTINEL, 0});
    self_check(&self);
    report_done();
  }
  return NULL;
}

static void* sink(void* arg) {
  struct Self self;
  self_init(&self, (long)(intptr_t)arg);
  if (pthread_mutex_lock(&robust_) != 0) ckpt_fail(NAME, "sink could not take the robust mutex");
  long seen = 0;
  while (wait_round(&seen) >= 0) {
    uint64_t sum = 0;
    int sentinels = 0, count = 0;
    while (sentinels < TRANSFORMERS) {
      struct Item it = queue_pop(&q_done_);
      if (it.index == SENTINEL) {
        sentinels++;
        continue;
      }
      sum += ckpt_mix(it.index, it.value);
      count++;
      self_mix(&self, it.index);
    }
    if (count != ITEMS) ckpt_fail(NAME, "sink got %d items, expected %d", count, ITEMS);
    pipeline_sum_ = sum;
    self_check(&self);
    report_done();
  }
  /* Exits holding robust_: the kernel marks it owner-dead via the robust list. */
  return NULL;
}

static void* worker(void* arg) {
  struct Self self;
  self_init(&self, (long)(intptr_t)arg);
  long w = self.id - (1 + TRANSFORMERS + 1);
  long lo = w * CELLS / WORKERS, hi = (w + 1) * CELLS / WORKERS;
  long seen = 0;
  while (wait_round(&seen) >= 0) {
    for (int p = 0; p < PHASES; ++p) {
      const uint64_t* src = cells_[p % 2];
      uint64_t* dst = cells_[(p + 1) % 2];
      for (long i = lo; i < hi; ++i) {
        uint64_t left = src[(i + CELLS - 1) % CELLS], right = src[(i + 1) % CELLS];
        dst[i] = ckpt_mix(ckpt_mix(left, src[i]), right);
      }
      self_mix(&self, dst[lo]);
      int rc = pthread_barrier_wait(&barrier_);
      if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) ckpt_fail(NAME, "pthread_barrier_wait: %d", rc);
    }
    self_check(&self);
    report_done();
  }
  return NULL;
}

static void start_round(long r, int stop) {
  pthread_mutex_lock(&round_mutex_);
  round_ = r;
  stop_ = stop;
  done_ = 0;
  generation_++;
  pthread_cond_broadcast(&round_start_);
  pthread_mutex_unlock(&round_mutex_);
}

static void wait_round_done(void) {
  pthread_mutex_lock(&round_mutex_);
  while (done_ < THREADS) pthread_cond_wait(&round_done_, &round_mutex_);
  pthread_mutex_unlock(&round_mutex_);
}

static struct timespec deadline(int seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += seconds;
  return ts;
}

int main(int argc, char** argv) {
  long rounds = ckpt_steps(NAME, argc, argv, 20);
  ckpt_print("%s start rounds=%ld threads=%d\n", NAME, rounds, THREADS);

  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  if (pthread_mutex_init(&robust_, &ma) != 0) ckpt_fail(NAME, "robust mutex init failed");
  if (pthread_barrier_init(&barrier_, NULL, WORKERS) != 0) ckpt_fail(NAME, "barrier init failed");
  for (long i = 0; i < CELLS; ++i) cells_[0][i] = ckpt_mix(0, (uint64_t)i);

  struct Self self;
  self_init(&self, 100);

  pthread_t threads[THREADS];
  void* (*bodies[THREADS])(void*);
  bodies[0] = producer;
  for (int t = 0; t < TRANSFORMERS; ++t) bodies[1 + t] = transformer;
  bodies[1 + TRANSFORMERS] = sink;
  for (int t = 0; t < WORKERS; ++t) bodies[2 + TRANSFORMERS + t] = worker;
  for (long t = 0; t < THREADS; ++t) {
    int rc = pthread_create(&threads[t], NULL, bodies[t], (void*)(intptr_t)t);
    if (rc != 0) ckpt_fail(NAME, "pthread_create: %s", strerror(rc));
  }

  uint64_t total = 0;
  for (long r = 1; r <= rounds; ++r) {
    start_round(r, 0);
    wait_round_done();
    /* PHASES is even: the stencil's result is back in cells_[0]. */
    uint64_t stencil = ckpt_mix_bytes(0, cells_[0], sizeof cells_[0]);
    total = ckpt_mix(ckpt_mix(total, pipeline_sum_), stencil);
    self_mix(&self, total);
    self_check(&self);
    ckpt_print("%s round %ld/%ld pipeline=%016llx stencil=%016llx\n", NAME, r, rounds,
               (unsigned long long)pipeline_sum_, (unsigned long long)stencil);
  }
  start_round(0, 1);

  for (int t = 0; t < THREADS; ++t) {
    struct timespec ts = deadline(30);
    int rc = pthread_timedjoin_np(threads[t], NULL, &ts);
    if (rc != 0)
      ckpt_fail(NAME, "joining thread %d: %s (its clear_child_tid lost?)", t, strerror(rc));
  }
  struct timespec ts = deadline(30);
  int rc = pthread_mutex_timedlock(&robust_, &ts);
  if (rc != EOWNERDEAD)
    ckpt_fail(NAME, "locking the mutex the sink died holding gave '%s', expected EOWNERDEAD "
              "(its robust list lost?)", strerror(rc));
  pthread_mutex_consistent(&robust_);
  pthread_mutex_unlock(&robust_);

  ckpt_result(NAME, total);
  return 0;
}
