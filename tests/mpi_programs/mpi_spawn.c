/* MPI_Comm_spawn: the parents (the world started by mosixrun or mpirun)
 * spawn N children of this same program, every child sends its rank to every
 * parent and every parent its rank + 1 to every child, over the
 * intercommunicator; each side checks the sums it got, then both disconnect.
 *   mpi_spawn [N]       N children (default 2): prints a line per process
 *   mpi_spawn N exit7   the same, then each child exits with status 7 after
 *                       MPI_Finalize (the job's exit rule counts children)
 *   mpi_spawn N wait F  the same, but each child waits until file F exists
 *                       before it disconnects (a handshake for a test that
 *                       looks at the running children)
 *   mpi_spawn missing   spawns a program that does not exist: MPI_Comm_spawn
 *                       must return an error (not hang), and the job go on */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int child(MPI_Comm parent, int code, const char* wait_for) {
  int rank, size, parents, sum = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_remote_size(parent, &parents);
  for (int p = 0; p < parents; ++p) MPI_Send(&rank, 1, MPI_INT, p, 1, parent);
  for (int p = 0; p < parents; ++p) {
    int v = 0;
    MPI_Recv(&v, 1, MPI_INT, p, 2, parent, MPI_STATUS_IGNORE);
    sum += v;
  }
  int want = parents * (parents + 1) / 2;
  printf("child %d of %d: %d parents sent sum %d (%s)\n", rank, size, parents, sum, sum == want ? "ok" : "WRONG");
  fflush(stdout);
  while (wait_for != NULL && access(wait_for, F_OK) != 0) usleep(10000);
  MPI_Comm_disconnect(&parent);
  MPI_Finalize();
  return sum == want ? code : 1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm parent;
  MPI_Comm_get_parent(&parent);
  if (parent != MPI_COMM_NULL) {
    const int exit7 = argc > 1 && strcmp(argv[1], "exit7") == 0;
    return child(parent, exit7 ? 7 : 0, argc > 2 && strcmp(argv[1], "wait") == 0 ? argv[2] : NULL);
  }

  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    perror("readlink /proc/self/exe");
    MPI_Abort(MPI_COMM_WORLD, 3);
  }
  self[n] = '\0';

  if (argc > 1 && strcmp(argv[1], "missing") == 0) {
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm inter = MPI_COMM_NULL;
    int errcodes[2];
    int rc = MPI_Comm_spawn("/nonexistent/mosix-no-such-program", MPI_ARGV_NULL, 2, MPI_INFO_NULL, 0,
                            MPI_COMM_WORLD, &inter, errcodes);
    printf("parent %d of %d: spawn of a missing program %s\n", rank, size,
           rc != MPI_SUCCESS ? "failed, as it should" : "SUCCEEDED");
    MPI_Finalize();
    return rc != MPI_SUCCESS ? 0 : 1;
  }

  int children = argc > 1 ? atoi(argv[1]) : 2;
  MPI_Comm inter;
  int* errcodes = calloc((size_t)children, sizeof(int));
  char* child_argv[] = {argc > 2 ? argv[2] : NULL, argc > 3 ? argv[3] : NULL, NULL};
  MPI_Comm_spawn(self, child_argv[0] != NULL ? child_argv : MPI_ARGV_NULL, children, MPI_INFO_NULL, 0, MPI_COMM_WORLD, &inter, errcodes);
  int remote, sum = 0, mine = rank + 1;
  MPI_Comm_remote_size(inter, &remote);
  for (int c = 0; c < remote; ++c) {
    int v = -1;
    MPI_Recv(&v, 1, MPI_INT, c, 1, inter, MPI_STATUS_IGNORE);
    sum += v;
  }
  for (int c = 0; c < remote; ++c) MPI_Send(&mine, 1, MPI_INT, c, 2, inter);
  int want = children * (children - 1) / 2;
  printf("parent %d of %d: %d children sent sum %d (%s)\n", rank, size, remote, sum,
         remote == children && sum == want ? "ok" : "WRONG");
  MPI_Comm_disconnect(&inter);
  free(errcodes);
  MPI_Finalize();
  return remote == children && sum == want ? 0 : 1;
}
