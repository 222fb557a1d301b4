/* pvm_hostdel: pvm_notify(PvmHostDelete) and (PvmTaskExit) when a node is
 * lost (node_loss_test kills its node daemon; the job runs with
 * --keep-going). The parent spawns one task on vnode2 (PvmTaskHost), which
 * waits for a message that never comes, asks to be told when vnode2 goes and
 * when the task ends, prints "watching", and prints what it is told: the
 * deleted host's pvmd tid, then the ended task's tid. */
#include <stdio.h>
#include <string.h>
#include <pvm3.h>

int main(void) {
  int tid, nhost, narch, i, host = 0, got;
  struct pvmhostinfo* hosts;
  pvm_mytid();
  if (pvm_parent() > 0) {  /* the task on vnode2: waits */
    pvm_recv(-1, -1);
    pvm_exit();
    return 0;
  }
  pvm_config(&nhost, &narch, &hosts);
  for (i = 0; i < nhost; ++i) {
    if (strcmp(hosts[i].hi_name, "vnode2") == 0) host = hosts[i].hi_tid;
  }
  if (host == 0 || pvm_spawn("pvm_hostdel", NULL, PvmTaskHost, "vnode2", 1, &tid) != 1) {
    printf("pvm_hostdel: no task on vnode2\n");
    pvm_exit();
    return 1;
  }
  if (pvm_notify(PvmHostDelete, 77, 1, &host) < 0 || pvm_notify(PvmTaskExit, 78, 1, &tid) < 0) {
    printf("pvm_hostdel: pvm_notify failed\n");
    pvm_exit();
    return 1;
  }
  printf("watching host %x and task t%x\n", host, tid);
  fflush(stdout);
  pvm_recv(-1, 77);
  pvm_upkint(&got, 1, 1);
  printf("host %x deleted\n", got);
  pvm_recv(-1, 78);
  pvm_upkint(&got, 1, 1);
  printf("task t%x exited\n", got);
  fflush(stdout);
  pvm_exit();
  return 0;
}
