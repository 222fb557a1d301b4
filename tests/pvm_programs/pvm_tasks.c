/* pvm_tasks: the job's tasks as pvm_tasks lists them. The parent spawns two
 * copies of itself (which wait for a message), then prints what pvm_tasks(0)
 * says of every task (whose child it is, its program; sorted by the caller)
 * and how many tasks pvm_tasks of the first child's tid finds, then ends the
 * children with pvm_kill. */
#include <stdio.h>
#include <pvm3.h>

int main(void) {
  int tids[2], n, i, one, me = pvm_mytid();
  struct pvmtaskinfo* ti;
  if (pvm_parent() > 0) {
    pvm_recv(-1, -1);
    pvm_exit();
    return 0;
  }
  if (pvm_spawn("pvm_tasks", NULL, PvmTaskDefault, "", 2, tids) != 2) {
    printf("pvm_tasks: the spawn failed\n");
    pvm_exit();
    return 1;
  }
  if (pvm_tasks(0, &n, &ti) < 0) {
    printf("pvm_tasks: pvm_tasks failed\n");
    pvm_exit();
    return 1;
  }
  for (i = 0; i < n; ++i) {
    const char* who = ti[i].ti_tid == me ? "me" : ti[i].ti_tid == tids[0] || ti[i].ti_tid == tids[1] ? "child" : "other";
    const char* parent = ti[i].ti_ptid == me ? "me" : ti[i].ti_ptid == 0 ? "none" : "other";
    printf("task %s, parent %s, program '%s', pid %s\n", who, parent, ti[i].ti_a_out, ti[i].ti_pid > 0 ? "set" : "unset");
  }
  pvm_tasks(tids[0], &one, &ti);
  printf("pvm_tasks of one child: %d task(s)\n", one);
  pvm_kill(tids[0]);
  pvm_kill(tids[1]);
  pvm_exit();
  return 0;
}
