/* mem_hold MIB DONE_FILE [MAX_SECONDS [DIRTY_MB_S]]: holds MIB MiB of written
 * memory, a pseudo-random pattern (incompressible, no zero word) in one
 * anonymous mapping, prints "mem_hold ready MIB", then waits, looking for
 * DONE_FILE every 20 ms, so that it can be checkpointed or migrated
 * meanwhile. When DONE_FILE exists it checks every byte of the mapping
 * against the pattern and prints "RESULT mem_hold MIB OK" (exit 0), or "FAIL
 * mem_hold: ..." with the first wrong offset and the count of wrong words
 * (exit 1). After MAX_SECONDS (default 900) without DONE_FILE it fails too,
 * so that a forgotten copy ends by itself. For bench_migrate.
 *
 * With DIRTY_MB_S > 0 a second thread keeps writing the mapping, page after
 * page in rounds, about DIRTY_MB_S * 10^6 bytes of pages a second (a batch
 * of 64 pages, then a pause of the batch's share of a second: a stopped
 * process does not catch up later). The first word of each page holds the
 * pattern XOR the round that last wrote it, so at any moment the pages
 * before the writer's cursor hold its round and the others the round
 * before: the final check finds a page that a move brought back stale.
 * Every 50 ms the main thread prints "mem_hold tick <CLOCK_MONOTONIC ns>
 * <pages written>", the progress the bench compares during and outside a
 * move. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt_common.h"

#define NAME "mem_hold"

/* splitmix64 of the word's index: every word differs, none is zero. */
static uint64_t pattern(uint64_t i) {
  uint64_t x = i + 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x | 1;
}

static long positive(const char* text, const char* what) {
  char* end = NULL;
  long v = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v <= 0) ckpt_fail(NAME, "%s must be a positive integer, got '%s'", what, text);
  return v;
}

#define PAGE_WORDS 512
#define BATCH_PAGES 64

static uint64_t* g_words;
static size_t g_pages;
static long g_dirty_mb_s;
static atomic_int g_stop;
/* The writer's round and the next page it writes; pages written in all. */
static atomic_ullong g_round, g_cursor, g_written;

static void* dirty_pages(void* unused) {
  (void)unused;
  double batch_s = (double)(BATCH_PAGES * PAGE_WORDS * 8) / ((double)g_dirty_mb_s * 1e6);
  struct timespec pause = {(time_t)batch_s, (long)((batch_s - (double)(time_t)batch_s) * 1e9)};
  uint64_t round = 1, cursor = 0;
  atomic_store(&g_round, round);
  while (!atomic_load(&g_stop)) {
    for (int i = 0; i < BATCH_PAGES; ++i) {
      size_t w = cursor * PAGE_WORDS;
      g_words[w] = pattern(w) ^ round;
      if (++cursor == g_pages) {
        cursor = 0;
        ++round;
      }
      atomic_store(&g_round, round);
      atomic_store(&g_cursor, cursor);
    }
    atomic_fetch_add(&g_written, BATCH_PAGES);
    nanosleep(&pause, NULL);
  }
  return NULL;
}

/* What word i holds now: the pattern, in the dirty mode XOR the round that
 * last wrote its page. */
static uint64_t expected(size_t i, uint64_t round, uint64_t cursor) {
  if (g_dirty_mb_s == 0 || i % PAGE_WORDS != 0) return pattern(i);
  return pattern(i) ^ (i / PAGE_WORDS < cursor ? round : round - 1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: mem_hold MIB DONE_FILE [MAX_SECONDS [DIRTY_MB_S]]\n");
    return 2;
  }
  long mib = positive(argv[1], "MIB");
  const char* done = argv[2];
  long max_seconds = argc > 3 ? positive(argv[3], "MAX_SECONDS") : 900;
  g_dirty_mb_s = argc > 4 && strcmp(argv[4], "0") != 0 ? positive(argv[4], "DIRTY_MB_S") : 0;
  size_t words = (size_t)mib << 17;
  uint64_t* w = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (w == MAP_FAILED) ckpt_fail(NAME, "mmap %ld MiB: %s", mib, strerror(errno));
  for (size_t i = 0; i < words; ++i) w[i] = pattern(i);
  g_words = w;
  g_pages = words / PAGE_WORDS;
  pthread_t writer;
  if (g_dirty_mb_s > 0 && pthread_create(&writer, NULL, dirty_pages, NULL) != 0)
    ckpt_fail(NAME, "cannot start the writing thread");
  ckpt_print("%s ready %ld\n", NAME, mib);

  double start = now();
  struct stat st;
  while (stat(done, &st) != 0) {
    if (now() - start > (double)max_seconds) ckpt_fail(NAME, "no %s after %ld s", done, max_seconds);
    struct timespec pause = {0, (g_dirty_mb_s > 0 ? 50 : 20) * 1000 * 1000};
    nanosleep(&pause, NULL); /* EINTR (a checkpoint's signal) only shortens the wait */
    if (g_dirty_mb_s > 0) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ckpt_print("%s tick %lld %llu\n", NAME, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
                 (unsigned long long)atomic_load(&g_written));
    }
  }
  uint64_t round = 0, cursor = 0;
  if (g_dirty_mb_s > 0) {
    atomic_store(&g_stop, 1);
    pthread_join(writer, NULL);
    round = atomic_load(&g_round);
    cursor = atomic_load(&g_cursor);
  }

  size_t wrong = 0, first = 0;
  for (size_t i = 0; i < words; ++i) {
    if (w[i] != expected(i, round, cursor)) {
      if (wrong++ == 0) first = i;
    }
  }
  if (wrong != 0)
    ckpt_fail(NAME, "%zu of %zu words wrong, the first at byte offset %zu (0x%016llx, expected 0x%016llx)", wrong,
              words, first * 8, (unsigned long long)w[first], (unsigned long long)expected(first, round, cursor));
  ckpt_print("RESULT %s %ld OK\n", NAME, mib);
  return 0;
}
