/* A ring over MPI: every rank sends BYTES (default 4 MiB) to the next rank
 * and receives BYTES from the previous one, checking every byte. Each rank
 * prints the network namespace it runs in, so a test can tell where the
 * ranks ran; rank 0 ends with "netns_ping: ok, N ranks, BYTES bytes each".
 * Usage: netns_ping [BYTES]. Any failure prints "FAIL" and exits 1. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char pattern(long i, int sender) { return (unsigned char)(i * 131 + sender * 17 + (i >> 12)); }

// Under AddressSanitizer: Open MPI's plugins leak at MPI_Finalize and are
// unloaded by then, so LeakSanitizer can neither blame nor suppress them.
const char* __asan_default_options(void);
const char* __asan_default_options(void) { return "detect_leaks=0"; }


int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long bytes = argc > 1 ? atol(argv[1]) : 4L << 20;
  if (size < 2 || bytes <= 0 || bytes > (1L << 30)) {
    if (rank == 0) fprintf(stderr, "FAIL: netns_ping needs 2 or more ranks and 0 < BYTES <= 1 GiB\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  char ns[64] = "";
  ssize_t n = readlink("/proc/self/ns/net", ns, sizeof ns - 1);
  if (n > 0) ns[n] = '\0';
  printf("netns_ping: rank %d in %s\n", rank, ns);
  fflush(stdout);

  unsigned char* out = malloc((size_t)bytes);
  unsigned char* in = malloc((size_t)bytes);
  if (!out || !in) {
    fprintf(stderr, "FAIL: rank %d: out of memory for %ld bytes\n", rank, bytes);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (long i = 0; i < bytes; ++i) out[i] = pattern(i, rank);
  int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  /* In pieces below INT_MAX; MPI counts are ints. */
  const long piece = 1L << 20;
  for (long off = 0; off < bytes; off += piece) {
    int count = (int)(bytes - off < piece ? bytes - off : piece);
    MPI_Sendrecv(out + off, count, MPI_BYTE, next, 0, in + off, count, MPI_BYTE, prev, 0, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
  }
  int bad = 0;
  for (long i = 0; i < bytes; ++i) {
    if (in[i] != pattern(i, prev)) {
      fprintf(stderr, "FAIL: rank %d: byte %ld from rank %d is %u, expected %u\n", rank, i, prev, in[i],
              pattern(i, prev));
      bad = 1;
      break;
    }
  }
  int any_bad = 0;
  MPI_Reduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
  if (rank == 0 && !any_bad) printf("netns_ping: ok, %d ranks, %ld bytes each\n", size, bytes);
  free(out);
  free(in);
  MPI_Finalize();
  return bad;
}
