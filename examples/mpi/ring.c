/* ring.c: a message goes round the ranks. Rank 0 sends a number to rank 1,
 * every rank adds its own rank and passes it on, and rank 0 prints what
 * comes back: 0 + 1 + ... + (size-1). Build with `mpicc -o ring ring.c`,
 * run with `mosixrun -np 4 ./ring` or `mosixrun --vcluster 2 -np 4 ./ring`. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size, value = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size < 2) {
    printf("a ring needs at least 2 ranks: run with -np 2 or more\n");
    MPI_Finalize();
    return 1;
  }
  int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  if (rank == 0) {
    MPI_Send(&value, 1, MPI_INT, next, 0, MPI_COMM_WORLD);
    MPI_Recv(&value, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    printf("the ring of %d ranks went round: %d (expected %d)\n", size, value, size * (size - 1) / 2);
  } else {
    MPI_Recv(&value, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    value += rank;
    MPI_Send(&value, 1, MPI_INT, next, 0, MPI_COMM_WORLD);
  }
  MPI_Finalize();
  return 0;
}
