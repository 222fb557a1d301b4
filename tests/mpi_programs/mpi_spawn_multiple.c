/* MPI_Comm_spawn_multiple, twice, and a spawn from a spawned child: the
 * parent spawns two apps of this program (1 copy "first", 2 copies "second"
 * then "nest"); each child sends its rank to the parent and prints its app
 * number; in the second round child 1 spawns a grandchild, which sends its
 * rank to it. Every line is the same under mpirun. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int child(MPI_Comm parent, int argc, char** argv, const char* self) {
  int rank, size, appnum = -1, flag = 0, *attr = NULL;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_APPNUM, &attr, &flag);
  if (flag) appnum = *attr;
  MPI_Send(&rank, 1, MPI_INT, 0, 1, parent);
  if (argc > 1 && strcmp(argv[1], "nest") == 0 && rank == 1) {
    MPI_Comm grandchild;
    MPI_Comm_spawn(self, MPI_ARGV_NULL, 1, MPI_INFO_NULL, 0, MPI_COMM_SELF, &grandchild, MPI_ERRCODES_IGNORE);
    int v = -1;
    MPI_Recv(&v, 1, MPI_INT, 0, 1, grandchild, MPI_STATUS_IGNORE);
    printf("child 1 got %d from its grandchild\n", v);
    MPI_Comm_disconnect(&grandchild);
  }
  printf("child %d of %d: app %d %s\n", rank, size, appnum, argc > 1 ? argv[1] : "(grandchild)");
  MPI_Comm_disconnect(&parent);
  MPI_Finalize();
  return 0;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) MPI_Abort(MPI_COMM_WORLD, 3);
  self[n] = '\0';
  MPI_Comm parent;
  MPI_Comm_get_parent(&parent);
  if (parent != MPI_COMM_NULL) return child(parent, argc, argv, self);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int ok = 1;
  for (int round = 0; round < 2; ++round) {
    char* commands[2] = {self, self};
    int counts[2] = {1, 2};
    char* first[] = {"first", NULL};
    char* second[] = {round == 0 ? "second" : "nest", NULL};
    char** argvs[2] = {first, second};
    MPI_Info infos[2] = {MPI_INFO_NULL, MPI_INFO_NULL};
    MPI_Comm inter;
    MPI_Comm_spawn_multiple(2, commands, argvs, counts, infos, 0, MPI_COMM_WORLD, &inter, MPI_ERRCODES_IGNORE);
    int remote, sum = 0;
    MPI_Comm_remote_size(inter, &remote);
    if (rank == 0) {
      for (int c = 0; c < remote; ++c) {
        int v = -1;
        MPI_Recv(&v, 1, MPI_INT, c, 1, inter, MPI_STATUS_IGNORE);
        sum += v;
      }
      printf("round %d: the parent got sum %d from %d children (%s)\n", round, sum, remote,
             sum == 3 && remote == 3 ? "ok" : "WRONG");
      ok = ok && sum == 3 && remote == 3;
    }
    MPI_Comm_disconnect(&inter);
  }
  MPI_Finalize();
  return ok ? 0 : 1;
}
