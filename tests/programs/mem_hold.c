/* mem_hold MIB DONE_FILE [MAX_SECONDS]: holds MIB MiB of written memory, a
 * pseudo-random pattern (incompressible, no zero word) in one anonymous
 * mapping, prints "mem_hold ready MIB", then waits, looking for DONE_FILE
 * every 20 ms, so that it can be checkpointed or migrated meanwhile. When
 * DONE_FILE exists it checks every byte of the mapping against the pattern
 * and prints "RESULT mem_hold MIB OK" (exit 0), or "FAIL mem_hold: ..." with
 * the first wrong offset and the count of wrong words (exit 1). After
 * MAX_SECONDS (default 900) without DONE_FILE it fails too, so that a
 * forgotten copy ends by itself. For bench_migrate. */
#define _GNU_SOURCE
#include <errno.h>
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

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: mem_hold MIB DONE_FILE [MAX_SECONDS]\n");
    return 2;
  }
  long mib = positive(argv[1], "MIB");
  const char* done = argv[2];
  long max_seconds = argc > 3 ? positive(argv[3], "MAX_SECONDS") : 900;
  size_t words = (size_t)mib << 17;
  uint64_t* w = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (w == MAP_FAILED) ckpt_fail(NAME, "mmap %ld MiB: %s", mib, strerror(errno));
  for (size_t i = 0; i < words; ++i) w[i] = pattern(i);
  ckpt_print("%s ready %ld\n", NAME, mib);

  double start = now();
  struct stat st;
  while (stat(done, &st) != 0) {
    if (now() - start > (double)max_seconds) ckpt_fail(NAME, "no %s after %ld s", done, max_seconds);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL); /* EINTR (a checkpoint's signal) only shortens the wait */
  }

  size_t wrong = 0, first = 0;
  for (size_t i = 0; i < words; ++i) {
    if (w[i] != pattern(i)) {
      if (wrong++ == 0) first = i;
    }
  }
  if (wrong != 0)
    ckpt_fail(NAME, "%zu of %zu words wrong, the first at byte offset %zu (0x%016llx, expected 0x%016llx)", wrong,
              words, first * 8, (unsigned long long)w[first], (unsigned long long)pattern(first));
  ckpt_print("RESULT %s %ld OK\n", NAME, mib);
  return 0;
}
