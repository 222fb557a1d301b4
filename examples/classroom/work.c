/* work: the classroom demo's copy. It does UNITS units of CPU work (a fixed
 * integer loop, about a tenth of a CPU second each on a 2.6 GHz core), then,
 * if END_FILE is given, waits until that file exists (the end of the class),
 * and prints one line:
 *   rank R: UNITS units, sum 0x...
 * The sum depends on UNITS alone, so a copy that was migrated, or restored
 * from its checkpoint after its node died, must print the same sum as a run
 * that was never interrupted (`work UNITS` on its own). A plain C program: no
 * sockets, no threads, a few KiB of memory, so it can be moved at any time.
 *
 *   classroom_work UNITS [END_FILE]
 *   classroom_work --uneven SIZE [END_FILE]   SIZE x (6 2 1 5 3 2)[r] units,
 *                                             r = MOSIX_RANK mod 6
 * Exit 2 on a usage error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define kIterationsPerUnit 63500000ULL

static const long kWeights[6] = {6, 2, 1, 5, 3, 2};

int main(int argc, char** argv) {
  const char* rank = getenv("MOSIX_RANK");
  int uneven = argc >= 2 && strcmp(argv[1], "--uneven") == 0;
  if (uneven) {
    --argc;
    ++argv;
  }
  char* end = NULL;
  long units = argc >= 2 ? strtol(argv[1], &end, 10) : -1;
  if (argc < 2 || argc > 3 || *end != '\0' || units < 0) {
    fprintf(stderr, "usage: classroom_work [--uneven] UNITS [END_FILE]\n");
    return 2;
  }
  if (uneven) units *= kWeights[(rank ? atoi(rank) : 0) % 6];
  uint64_t x = 0x9e3779b97f4a7c15ULL, sum = 0;
  for (long u = 0; u < units; ++u) {
    for (uint64_t i = 0; i < kIterationsPerUnit; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      sum += x >> 32;
    }
  }
  if (argc == 3) {
    const struct timespec tick = {0, 100 * 1000 * 1000};
    while (access(argv[2], F_OK) != 0) nanosleep(&tick, NULL);
  }
  printf("rank %s: %ld units, sum 0x%016llx\n", rank ? rank : "-", units, (unsigned long long)sum);
  return 0;
}
