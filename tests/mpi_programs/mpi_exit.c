/* A rank that leaves without MPI_Finalize: every rank reaches a barrier,
 * then rank 1 calls exit(CODE) (CODE from argv[1], default 3) while the
 * others wait in a second barrier that never completes. mpirun ends the
 * job: with CODE if it is not 0, with 1 if it is (exiting improperly). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 1) exit(argc > 1 ? atoi(argv[1]) : 3);
  MPI_Barrier(MPI_COMM_WORLD);
  printf("rank %d passed a barrier rank 1 never entered\n", rank);
  MPI_Finalize();
  return 0;
}
