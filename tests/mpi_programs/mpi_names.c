/* MPI's name service, as a client-server program uses it: rank 0 publishes
 * a service name with its port, the others look it up; a name nobody
 * published is not found; after rank 0 unpublishes it, it is not found
 * either. Prints one line per finding, "rank R: NAME -> PORT" or "rank R:
 * NAME not found". */
#include <mpi.h>
#include <stdio.h>

static void look(int rank, const char* name) {
  char port[MPI_MAX_PORT_NAME];
  if (MPI_Lookup_name(name, MPI_INFO_NULL, port) == MPI_SUCCESS) {
    printf("rank %d: %s -> %s\n", rank, name, port);
  } else {
    printf("rank %d: %s not found\n", rank, name);
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  char port[] = "port-of-rank-0";
  if (rank == 0 && MPI_Publish_name("mosix-ocean", MPI_INFO_NULL, port) != MPI_SUCCESS) {
    printf("rank 0: publish failed\n");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank != 0) {
    look(rank, "mosix-ocean");
    look(rank, "mosix-sky");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0 && MPI_Unpublish_name("mosix-ocean", MPI_INFO_NULL, port) != MPI_SUCCESS) {
    printf("rank 0: unpublish failed\n");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 1) look(rank, "mosix-ocean");
  MPI_Finalize();
  return 0;
}
