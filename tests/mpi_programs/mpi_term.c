/* A program that ends well on SIGTERM: every rank catches it, meets the
 * others in a barrier, calls MPI_Finalize and says so. Each rank prints
 * "ready RANK" once MPI_Init and a first barrier are done, then waits for
 * the signal. mosixrun ends a job on Ctrl-C with SIGTERM to every copy;
 * until the ranks have finalized, their PMIx server must still be there. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t terminated;
static void on_term(int sig) { (void)sig; terminated = 1; }

int main(int argc, char** argv) {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);  /* no SIGTERM lost before the wait */
  signal(SIGTERM, on_term);
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Barrier(MPI_COMM_WORLD);
  printf("ready %d\n", rank);
  fflush(stdout);
  while (!terminated) sigsuspend(&old);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  printf("finalized %d\n", rank);
  fflush(stdout);
  return 0;
}
