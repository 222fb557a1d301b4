/* Burns CPU for N seconds of wall time (default 2), then prints
 * "cpu_seconds S" with the CPU time it got, so a test can compare the CPU
 * time of capped and uncapped copies run side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  if (!(seconds > 0)) {
    fprintf(stderr, "usage: cpu_burn [SECONDS > 0]\n");
    return 2;
  }
  double start = now(CLOCK_MONOTONIC);
  volatile unsigned long sink = 0;
  while (now(CLOCK_MONOTONIC) - start < seconds) {
    for (int i = 0; i < 10000; ++i) sink += (unsigned long)i * 2654435761u;
  }
  printf("cpu_seconds %.6f\n", now(CLOCK_PROCESS_CPUTIME_ID));
  return 0;
}
