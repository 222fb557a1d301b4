/* hello.c: the first MPI program. Build it with `mpicc -o hello hello.c` and
 * run it with `mosixrun -np 4 ./hello`, as you would with mpirun. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size, len;
  char node[MPI_MAX_PROCESSOR_NAME];
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Get_processor_name(node, &len);
  printf("hello from rank %d of %d on %s\n", rank, size, node);
  MPI_Finalize();
  return 0;
}
