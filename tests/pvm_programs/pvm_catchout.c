/* pvm_catchout: what a spawned task prints reaches its spawner's terminal
 * as pvm shows it, `[t40002] line`, with BEGIN and EOF lines under
 * pvm_catchout. Run with no argument it is the parent: it collects its
 * children's output and spawns itself as the child, which writes lines,
 * a partial line finished after a write to stderr (the pvmd gives a task
 * one pipe for both), and a last line without a newline. The parent ends
 * once the child's exit is notified, so every line came before. */
#include <stdio.h>
#include <pvm3.h>

static int child(int parent) {
  printf("line one\n");
  printf("partial");
  fflush(stdout);
  fprintf(stderr, "to stderr\n");
  printf(" rest\nlast without a newline");
  fflush(stdout);
  pvm_initsend(PvmDataDefault);
  pvm_send(parent, 1);
  pvm_exit();
  return 0;
}

int main(void) {
  int tid, parent;
  pvm_mytid();
  parent = pvm_parent();
  if (parent > 0) return child(parent);
  pvm_catchout(stdout);
  if (pvm_spawn("pvm_catchout", NULL, PvmTaskDefault, "", 1, &tid) != 1) {
    printf("pvm_catchout: the spawn failed (%d)\n", tid);
    pvm_exit();
    return 1;
  }
  pvm_notify(PvmTaskExit, 2, 1, &tid);
  pvm_recv(tid, 1);
  pvm_recv(-1, 2);
  pvm_exit();
  return 0;
}
