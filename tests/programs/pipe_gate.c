/* pipe_gate GATE: copies stdin to stdout, but no more bytes in all than the
 * file GATE is long (polled with stat every millisecond); once GATE is gone
 * it copies freely to the end of its input. The test's handshake with a
 * program that prints no progress lines of its own (bc, gzip, ...; see
 * tests/integration/lib/ckpt_rounds.sh): the program writes into the pipe in
 * front of pipe_gate, which is made one page long (F_SETPIPE_SZ), so the
 * program cannot end before the test has let its whole output through.
 * Exit 0 at the end of the input, 1 on an error (said on stderr). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How many bytes GATE allows in all; -1 when there is no gate any more. */
static long long allowed(const char* gate) {
  struct stat st;
  if (stat(gate, &st) != 0) return -1;
  return (long long)st.st_size;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pipe_gate GATE_FILE < INPUT > OUTPUT\n");
    return 2;
  }
  const char* gate = argv[1];
  /* A pipe in front: the smallest it can be. Not a pipe: no harm done. */
  (void)fcntl(STDIN_FILENO, F_SETPIPE_SZ, 4096);
  static char buf[1 << 16];
  long long copied = 0;
  for (;;) {
    long long limit = allowed(gate);
    size_t want = sizeof buf;
    if (limit >= 0) {
      if (copied >= limit) {
        struct timespec pause = {0, 1000 * 1000};
        nanosleep(&pause, NULL);
        continue;
      }
      if ((long long)want > limit - copied) want = (size_t)(limit - copied);
    }
    ssize_t n = read(STDIN_FILENO, buf, want);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "pipe_gate: read: %s\n", strerror(errno));
      return 1;
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(STDOUT_FILENO, buf + done, (size_t)(n - done));
      if (w < 0) {
        if (errno == EINTR) continue;
        fprintf(stderr, "pipe_gate: write: %s\n", strerror(errno));
        return 1;
      }
      done += w;
    }
    copied += n;
  }
}
