/* stdin_echo [DELAY_US]: copies its stdin to stdout line by line, sleeping
 * DELAY_US (default 1000) after each line, then prints "RESULT stdin_echo
 * LINES BYTES" and exits 0. Slow on purpose: a test moves it while it reads,
 * and its output must be its input, byte for byte. Plain C, no sockets, so
 * the checkpoint agent can move it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char** argv) {
  long delay_us = argc > 1 ? atol(argv[1]) : 1000;
  if (delay_us < 0) {
    fprintf(stderr, "usage: stdin_echo [DELAY_US >= 0]\n");
    return 2;
  }
  struct timespec pause = {delay_us / 1000000, (delay_us % 1000000) * 1000};
  char line[4096];
  long lines = 0, bytes = 0;
  while (fgets(line, sizeof line, stdin) != NULL) {
    size_t n = strlen(line);
    fwrite(line, 1, n, stdout);
    fflush(stdout);
    lines += line[n - 1] == '\n';
    bytes += (long)n;
    while (nanosleep(&pause, &pause) != 0) {
    }
    pause.tv_sec = delay_us / 1000000;
    pause.tv_nsec = (delay_us % 1000000) * 1000;
  }
  printf("RESULT stdin_echo %ld %ld\n", lines, bytes);
  return 0;
}
