/* MPI_Abort as a program calls it when it gives up: every rank reaches a
 * barrier, then the last rank (rank 2 of 3) aborts with code 7 while the
 * others wait in a second barrier that never completes. mpirun ends the job
 * with status 7 and says which rank aborted. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == size - 1) MPI_Abort(MPI_COMM_WORLD, 7);
  MPI_Barrier(MPI_COMM_WORLD);
  printf("rank %d passed a barrier the aborting rank never entered\n", rank);
  MPI_Finalize();
  return 0;
}
