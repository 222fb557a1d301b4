/* A ring, as a user writes one: rank 0 sends a token and a 1 MiB block to
 * rank 1, each rank adds its rank to the token, checks the block it got and
 * sends on; rank 0 gets the token back. Every rank prints "rank R of N
 * token T" (T as it arrived) and exits 1 if the data was wrong.
 *
 * `mpi_ring wait`: every rank prints "rank R ready" once MPI_Init is done,
 * then rank 0 reads a line from stdin before the ring starts: a test looks
 * at the running job meanwhile (a handshake, no sleeping). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kBlock = 1 << 20 };

static void fill(unsigned char* b, int from) {
  for (int i = 0; i < kBlock; ++i) b[i] = (unsigned char)(i * 31 + from);
}

static int check(const unsigned char* b, int from) {
  for (int i = 0; i < kBlock; ++i) {
    if (b[i] != (unsigned char)(i * 31 + from)) return 0;
  }
  return 1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc > 1 && strcmp(argv[1], "wait") == 0) {
    printf("rank %d ready\n", rank);
    fflush(stdout);
    if (rank == 0) {
      char line[64];
      if (fgets(line, sizeof line, stdin) == NULL) return 2;
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  unsigned char* block = malloc(kBlock);
  int ok = 1, token = 0;
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  if (size == 1) {
    printf("rank 0 of 1 token 0\n");
    MPI_Finalize();
    return 0;
  }
  if (rank == 0) {
    fill(block, 0);
    MPI_Send(&token, 1, MPI_INT, next, 0, MPI_COMM_WORLD);
    MPI_Send(block, kBlock, MPI_BYTE, next, 1, MPI_COMM_WORLD);
    MPI_Recv(&token, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Recv(block, kBlock, MPI_BYTE, prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    ok = check(block, prev);
  } else {
    MPI_Recv(&token, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Recv(block, kBlock, MPI_BYTE, prev, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    ok = check(block, prev);
    int passed = token + rank;
    fill(block, rank);
    MPI_Send(&passed, 1, MPI_INT, next, 0, MPI_COMM_WORLD);
    MPI_Send(block, kBlock, MPI_BYTE, next, 1, MPI_COMM_WORLD);
  }
  printf("rank %d of %d token %d%s\n", rank, size, token, ok ? "" : " BAD DATA");
  free(block);
  MPI_Finalize();
  return ok ? 0 : 1;
}
