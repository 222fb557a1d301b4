/* agent_counter [STEPS]: the smallest checkpoint subject. Keeps an 8 MiB
 * pattern in malloc'ed memory plus a counter and a checksum on the stack,
 * prints one line per step (the step, a checksum of the whole buffer) and a
 * final RESULT line. Output is identical on every uninterrupted run. Passes
 * the test's gate after each line (ckpt_gate in ckpt_common.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckpt_common.h"

#define WORDS (1u << 20)

int main(int argc, char** argv) {
  long steps = argc > 1 ? atol(argv[1]) : 200;
  uint64_t* buf = malloc(WORDS * sizeof *buf);
  if (buf == NULL) return 1;
  for (uint32_t i = 0; i < WORDS; ++i) buf[i] = i * 0x9e3779b97f4a7c15ULL;
  uint64_t sum = 0;
  for (long step = 0; step < steps; ++step) {
    for (int round = 0; round < 8; ++round)
      for (uint32_t i = 0; i < WORDS; ++i) {
        buf[i] = (buf[i] ^ (buf[i] >> 7)) * 0x2545f4914f6cdd1dULL + (uint64_t)step;
        sum += buf[i];
      }
    ckpt_print("step %ld %016llx\n", step, (unsigned long long)sum);
  }
  ckpt_print("RESULT agent_counter %016llx OK\n", (unsigned long long)sum);
  return 0;
}
