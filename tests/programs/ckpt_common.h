/* Helpers shared by the ckpt_* test programs: the step count (argv[1], else
 * $CKPT_STEPS, else the program's default), a deterministic 64-bit checksum,
 * and the progress, RESULT and FAIL lines. Every line printed through these
 * helpers is flushed at once and holds nothing that differs between runs.
 * Header-only and valid C and C++, so each program stays one source file. */
#ifndef MOSIX_TESTS_PROGRAMS_CKPT_COMMON_H
#define MOSIX_TESTS_PROGRAMS_CKPT_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Folds v into the running checksum h (FNV-style multiply, then a
 * splitmix finaliser so that nearby inputs spread). */
static inline uint64_t ckpt_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h *= 0x100000001b3ULL;
  h ^= h >> 29;
  return h;
}

/* A small deterministic generator: xorshift64*. The state must not be 0. */
static inline uint64_t ckpt_next(uint64_t* state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1dULL;
}

static inline uint64_t ckpt_mix_bytes(uint64_t h, const void* data, size_t size) {
  const unsigned char* p = (const unsigned char*)data;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = ckpt_mix(h, w);
  }
  for (; i < size; ++i) h = ckpt_mix(h, p[i]);
  return h;
}

/* Prints "FAIL <name>: <reason>" and exits 1 at once, from any thread. */
__attribute__((noreturn, format(printf, 2, 3))) static inline void ckpt_fail(const char* name,
                                                                             const char* fmt, ...) {
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  fflush(stdout);
  char line[640];
  int n = snprintf(line, sizeof line, "FAIL %s: %s\n", name, reason);
  if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
  ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
  (void)w;
  _exit(1);
}

/* The number of steps: argv[1] if given, else $CKPT_STEPS, else dflt. A value
 * that is not a positive integer is refused with a FAIL line. */
static inline long ckpt_steps(const char* name, int argc, char** argv, long dflt) {
  const char* text = argc > 1 ? argv[1] : getenv("CKPT_STEPS");
  if (text == NULL || *text == '\0') return dflt;
  char* end = NULL;
  long v = strtol(text, &end, 10);
  if (*end != '\0' || v <= 0) ckpt_fail(name, "steps must be a positive integer, got '%s'", text);
  return v;
}

/* The directory for the program's scratch files: $CKPT_TMPDIR, else $TMPDIR,
 * else /tmp. It must be visible at the same path wherever the program is
 * restored. */
static inline const char* ckpt_tmpdir(void) {
  const char* d = getenv("CKPT_TMPDIR");
  if (d == NULL || *d == '\0') d = getenv("TMPDIR");
  if (d == NULL || *d == '\0') d = "/tmp";
  return d;
}

/* The test's handshake (tests/integration/lib/ckpt_rounds.sh): when
 * $CKPT_GATE names a file, the program waits after its LINE-th line until
 * that file is at least LINE bytes long, or is gone. The test lets it run
 * up to the point where it checkpoints it, so a fast machine cannot end
 * the program first. Polls with stat every millisecond: no descriptor is
 * held, and a checkpoint may land in the wait. */
static inline void ckpt_gate(long line) {
  const char* gate = getenv("CKPT_GATE");
  if (gate == NULL || *gate == '\0') return;
  struct stat st;
  while (stat(gate, &st) == 0 && st.st_size < line) {
    struct timespec pause = {0, 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

/* Prints one line, flushes it, then passes the test's gate (ckpt_gate). */
__attribute__((format(printf, 1, 2))) static inline void ckpt_print(const char* fmt, ...) {
  static long lines = 0;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
  ckpt_gate(++lines);
}

/* True when step (1-based) ends one tenth of the run: progress is printed
 * ten times whatever the step count. */
static inline int ckpt_is_tenth(long step, long steps) {
  return step == steps || (step * 10 / steps) != ((step - 1) * 10 / steps);
}

static inline void ckpt_result(const char* name, uint64_t checksum) {
  ckpt_print("RESULT %s %016llx OK\n", name, (unsigned long long)checksum);
}

#endif
