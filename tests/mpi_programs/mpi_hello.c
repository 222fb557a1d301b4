/* An MPI program as a user writes one: MPI_Init, its rank and the world's
 * size, one collective (each rank adds its rank: the sum checks that every
 * rank took part), MPI_Finalize. Prints "rank R of N sum S"; exits 1 if the
 * sum is wrong.
 *
 * `mpi_hello local`: prints "rank R local L" instead, L the size of its
 * node's shared-memory communicator: how many ranks MPI sees on its node. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0, sum = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (argc > 1 && strcmp(argv[1], "local") == 0) {
    MPI_Comm node;
    int local = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    printf("rank %d local %d\n", rank, local);
  } else {
    printf("rank %d of %d sum %d\n", rank, size, sum);
  }
  MPI_Finalize();
  return sum == size * (size - 1) / 2 ? 0 : 1;
}
