/* A task that moves before its first PVM call
 * (tests/integration/pvm_migrate_test.sh, docs/pvm.md).
 *
 *   mosixrun --vcluster 3 -np 1 pvm_late GATE
 *
 * The master spawns a worker on vnode1 that makes no PVM call while the file
 * GATE exists, sends it the numbers 1, 2 and 3 and prints "sent". The test
 * moves the worker, then removes GATE; the worker receives the three
 * numbers, in order, and answers with 123; the master prints "pvm_late: got
 * 123" (anything else: a message was lost or reordered). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <pvm3.h>

int main(int argc, char** argv) {
  const char* gate = getenv("PVM_LATE_GATE");
  if (gate != NULL) {
    while (access(gate, F_OK) == 0) usleep(1000);
    int digits = 0;
    for (int i = 0; i < 3; ++i) {
      int v = 0;
      pvm_recv(-1, 7);
      pvm_upkint(&v, 1, 1);
      digits = digits * 10 + v;
    }
    pvm_initsend(PvmDataDefault);
    pvm_pkint(&digits, 1, 1);
    pvm_send(pvm_parent(), 8);
    pvm_exit();
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: pvm_late GATE\n");
    return 2;
  }
  if (pvm_mytid() < 0) return 2;
  setenv("PVM_LATE_GATE", argv[1], 1);
  int worker = -1;
  if (pvm_spawn("pvm_late", NULL, PvmTaskHost, "vnode1", 1, &worker) != 1) {
    printf("pvm_late: spawn failed (%d)\n", worker);
    pvm_exit();
    return 1;
  }
  for (int i = 1; i <= 3; ++i) {
    pvm_initsend(PvmDataDefault);
    pvm_pkint(&i, 1, 1);
    pvm_send(worker, 7);
  }
  printf("sent\n");
  fflush(stdout);
  int digits = 0;
  pvm_recv(worker, 8);
  pvm_upkint(&digits, 1, 1);
  printf("pvm_late: got %d\n", digits);
  pvm_exit();
  return digits == 123 ? 0 : 1;
}
