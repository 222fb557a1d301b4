/* cpu_work: a FIXED amount of CPU work (not wall time), for bench_balance's
 * real mode: a copy takes as long as the CPU it is given needs to finish it.
 *
 *   cpu_work UNITS            UNITS units of work
 *   cpu_work --table TOTAL    this copy's part of TOTAL units: rank r (from
 *                             MOSIX_RANK, else 0) does TOTAL * kTable[r % 12]
 *                             / sum(kTable), uneven on purpose
 *   cpu_work --calibrate      one unit, uncapped: how long a unit takes here
 *
 * A unit is kChunksPerUnit chunks of a fixed integer loop (xorshift64), about
 * one CPU second on the machine it was calibrated on (Xeon, 2.6 GHz KVM
 * guest); bench_balance measures it again with --calibrate. A plain C
 * program: no sockets, no threads, a few KiB of memory, so that the
 * checkpoint agent (libmosix.so) can move it at any time.
 *
 * Its CPU time is summed chunk by chunk: a copy that was moved is a new
 * process whose CPU clock starts again, so a chunk whose clock went backwards
 * or jumped (the move happened in it) counts as the mean chunk so far.
 * Prints one line and exits 0:
 *   cpu_work rank R units U cpu_seconds C start_realtime S end_realtime E
 * (S and E: CLOCK_REALTIME seconds, comparable between copies of a job that
 * ran on the same machine). Exit 2 on a usage error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define kChunksPerUnit 1000
#define kIterationsPerChunk 635000

/* Twelve uneven lengths (ratio 8 between the longest and the shortest),
 * in no particular order of rank. */
static const double kTable[12] = {240, 30, 160, 45, 110, 60, 200, 35, 80, 130, 50, 95};

static double clock_seconds(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t chunk(uint64_t x) {
  for (int i = 0; i < kIterationsPerChunk; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

static int usage(void) {
  fprintf(stderr, "usage: cpu_work UNITS | cpu_work --table TOTAL | cpu_work --calibrate\n");
  return 2;
}

static double positive(const char* text) {
  char* end = NULL;
  double v = strtod(text, &end);
  return end != text && *end == '\0' && v > 0 ? v : -1;
}

int main(int argc, char** argv) {
  const char* env = getenv("MOSIX_RANK");
  int rank = env != NULL ? atoi(env) : 0;
  if (rank < 0) rank = 0;
  double units;
  if (argc == 2 && strcmp(argv[1], "--calibrate") == 0) {
    units = 1;
  } else if (argc == 3 && strcmp(argv[1], "--table") == 0) {
    double total = positive(argv[2]);
    if (total < 0) return usage();
    double sum = 0;
    for (int i = 0; i < 12; ++i) sum += kTable[i];
    units = total * kTable[rank % 12] / sum;
  } else if (argc == 2) {
    units = positive(argv[1]);
    if (units < 0) return usage();
  } else {
    return usage();
  }

  double start = clock_seconds(CLOCK_REALTIME);
  long chunks = (long)(units * kChunksPerUnit + 0.5);
  if (chunks < 1) chunks = 1;
  uint64_t x = 88172645463325252ULL;
  double cpu = 0;
  long counted = 0;  // chunks whose clock reading was trusted
  for (long c = 0; c < chunks; ++c) {
    double t0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    x = chunk(x);
    double dt = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - t0;
    double mean = counted > 0 ? cpu / (double)counted : -1;
    if (dt >= 0 && (mean < 0 || dt < 5 * mean + 0.01)) {
      cpu += dt;
      ++counted;
    } else if (mean > 0) {
      cpu += mean;  // moved during this chunk: its own clock cannot tell
      ++counted;
    }
  }
  double end = clock_seconds(CLOCK_REALTIME);
  printf("cpu_work rank %d units %.3f cpu_seconds %.3f start_realtime %.3f end_realtime %.3f%s\n", rank,
         units, cpu, start, end, x == 0 ? " (x 0)" : "");
  return 0;
}
