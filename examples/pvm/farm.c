/* A master/worker farm in PVM 3.4: the master spawns one worker per node of
   the virtual machine (pvm_config), hands out chunks of a sum of integers as
   the workers ask for them, and checks the total (exact in a double). Built with Debian's
   pvm-dev as any PVM program is; under mosixrun it needs no pvmd.
     cc -o farm farm.c -lpvm3
     mosixrun --vcluster 3 -np 1 ./farm */
#include <pvm3.h>
#include <stdio.h>
#include <string.h>

#define CHUNKS 60
#define CHUNK 100000L
#define TAG_ASK 1
#define TAG_WORK 2
#define TAG_DONE 3

static int worker(void) {
  int master = pvm_parent(), chunk = 0, done = 0;
  double sum;
  long i;
  for (;;) {
    pvm_initsend(PvmDataDefault);
    pvm_pkint(&done, 1, 1);
    pvm_send(master, TAG_ASK);
    pvm_recv(master, TAG_WORK);
    pvm_upkint(&chunk, 1, 1);
    if (chunk < 0) break;
    sum = 0;
    for (i = chunk * CHUNK; i < (chunk + 1) * CHUNK; i++) sum += (double)i;
    pvm_initsend(PvmDataDefault);
    pvm_pkint(&chunk, 1, 1);
    pvm_pkdouble(&sum, 1, 1);
    pvm_send(master, TAG_DONE);
    done++;
  }
  pvm_exit();
  return 0;
}

int main(int argc, char** argv) {
  int nhost, narch, nworkers, tids[32], next = 0, finished = 0, stopped = 0, chunk, from, i;
  struct pvmhostinfo* hosts;
  double sum, total = 0, n = CHUNKS * CHUNK, expected = (n - 1) * n / 2;
  (void)argc;
  (void)argv;
  if (pvm_mytid() < 0) return 1;
  if (pvm_parent() > 0) return worker();
  pvm_config(&nhost, &narch, &hosts);
  nworkers = nhost < 32 ? nhost : 32;
  if (pvm_spawn("farm", NULL, PvmTaskDefault, "", nworkers, tids) != nworkers) {
    printf("farm: could not spawn %d workers\n", nworkers);
    pvm_exit();
    return 1;
  }
  printf("farm: %d workers on %d nodes\n", nworkers, nhost);
  while (stopped < nworkers) {
    int bufid = pvm_recv(-1, -1), tag;
    pvm_bufinfo(bufid, NULL, &tag, &from);
    if (tag == TAG_DONE) {
      pvm_upkint(&chunk, 1, 1);
      pvm_upkdouble(&sum, 1, 1);
      total += sum;
      finished++;
      continue;
    }
    chunk = next < CHUNKS ? next++ : -1;
    if (chunk < 0) stopped++;
    pvm_initsend(PvmDataDefault);
    pvm_pkint(&chunk, 1, 1);
    pvm_send(from, TAG_WORK);
  }
  printf("farm: %d chunks, sum of the integers below %.0f: %.0f (%s)\n", finished, n, total,
         total == expected ? "right" : "WRONG");
  pvm_exit();
  return total == expected ? 0 : 1;
}
