/* PVM semantics a task relies on, checked by the task itself (run under
   mosixrun --vcluster 3 by pvm_check_test.sh, or under a real pvmd):
   spawn on named hosts, per-sender FIFO order with wildcard receives across
   nodes, every pack type in both encodings, nrecv/trecv/probe, notify of
   task exit, kill, groups, and PVM's error codes for bad arguments.
   Prints "pvm_check: all N checks passed" or the failed checks, exit 1. */
#include <pvm3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGES 500
#define TAG_DATA 11
#define TAG_TYPES 12
#define TAG_EXIT 13
#define TAG_GO 14

static int checks, failures;
static void check(int ok, const char* what) {
  checks++;
  if (!ok) {
    failures++;
    printf("FAIL %s\n", what);
  }
}

/* A worker: MESSAGES numbered messages to its parent, with tags alternating
   between TAG_DATA and TAG_DATA + 100, then every type, then waits to be killed or told to go. */
static int worker(int mode) {
  int parent = pvm_parent();
  int i;
  for (i = 0; i < MESSAGES; i++) {
    pvm_initsend(i % 2 ? PvmDataRaw : PvmDataDefault);
    pvm_pkint(&i, 1, 1);
    pvm_send(parent, TAG_DATA + (i % 2) * 100);
  }
  {
    char b[3] = {'a', 'b', 'c'};
    short s[4] = {-1, 2, -3, 4};
    unsigned short us = 65535;
    int iv[5] = {1, -2, 3, -4, 5};
    unsigned int ui = 4000000000u;
    long l = 123456789L;
    unsigned long ul = 4000000001UL;
    float f = 1.5f, cx[2] = {2.5f, -3.5f};
    double d = -2.25, dcx[2] = {1e300, -1e-300};
    int enc;
    for (enc = 0; enc < 2; enc++) {
      pvm_initsend(enc ? PvmDataRaw : PvmDataDefault);
      pvm_pkbyte(b, 3, 1);
      pvm_pkshort(s, 2, 2); /* -1, -3 */
      pvm_pkushort(&us, 1, 1);
      pvm_pkint(iv, 5, 1);
      pvm_pkuint(&ui, 1, 1);
      pvm_pklong(&l, 1, 1);
      pvm_pkulong(&ul, 1, 1);
      pvm_pkfloat(&f, 1, 1);
      pvm_pkcplx(cx, 1, 1);
      pvm_pkdouble(&d, 1, 1);
      pvm_pkdcplx(dcx, 1, 1);
      pvm_pkstr("a string");
      pvm_send(parent, TAG_TYPES);
    }
  }
  if (mode == 1) { /* wait to be killed */
    pvm_recv(parent, TAG_GO);
  }
  pvm_exit();
  return 0;
}

static void check_types(int bufid) {
  char b[3], str[32];
  short s[2];
  unsigned short us;
  int iv[5];
  unsigned int ui;
  long l;
  unsigned long ul;
  float f, cx[2];
  double d, dcx[2];
  check(bufid > 0, "types message arrives");
  check(pvm_upkbyte(b, 3, 1) == 0 && memcmp(b, "abc", 3) == 0, "bytes");
  check(pvm_upkshort(s, 2, 1) == 0 && s[0] == -1 && s[1] == -3, "shorts with stride");
  check(pvm_upkushort(&us, 1, 1) == 0 && us == 65535, "unsigned short");
  check(pvm_upkint(iv, 5, 1) == 0 && iv[0] == 1 && iv[1] == -2 && iv[4] == 5, "ints");
  check(pvm_upkuint(&ui, 1, 1) == 0 && ui == 4000000000u, "unsigned int");
  check(pvm_upklong(&l, 1, 1) == 0 && l == 123456789L, "long");
  check(pvm_upkulong(&ul, 1, 1) == 0 && ul == 4000000001UL, "unsigned long");
  check(pvm_upkfloat(&f, 1, 1) == 0 && f == 1.5f, "float");
  check(pvm_upkcplx(cx, 1, 1) == 0 && cx[0] == 2.5f && cx[1] == -3.5f, "complex");
  check(pvm_upkdouble(&d, 1, 1) == 0 && d == -2.25, "double");
  check(pvm_upkdcplx(dcx, 1, 1) == 0 && dcx[0] == 1e300 && dcx[1] == -1e-300, "double complex");
  check(pvm_upkstr(str) == 0 && strcmp(str, "a string") == 0, "string");
  check(pvm_upkint(iv, 1, 1) == PvmNoData, "unpacking past the end: PvmNoData");
}

int main(int argc, char** argv) {
  int me = pvm_mytid(), tids[2], n, i, next[2] = {0, 0}, from, tag, len, bufid, value;
  struct timeval zero = {0, 0}, short_wait = {0, 20000};
  if (me < 0) return 2;
  if (pvm_parent() > 0) return worker(argc > 1 ? atoi(argv[1]) : 0);
  pvm_setopt(PvmAutoErr, 0);

  /* Bad arguments: PVM's codes, no abort. */
  check(pvm_send(-5, 1) == PvmBadParam || pvm_send(-5, 1) == PvmNoBuf, "send to a bad tid");
  check(pvm_initsend(99) == PvmBadParam, "initsend with a bad encoding");
  check(pvm_freebuf(98765) == PvmNoSuchBuf, "freebuf of no buffer");
  check(pvm_setrbuf(98765) == PvmNoSuchBuf, "setrbuf of no buffer");
  check(pvm_initsend(PvmDataDefault) > 0 && pvm_send(0x7fffffff, 1) < 0, "send to no task");
  check(pvm_send(me, -1) == PvmBadParam, "send with a negative tag");
  check(pvm_joingroup("") == PvmNullGroup, "join a group without a name");
  check(pvm_lvgroup("no such group") == PvmNoGroup, "leave a group that does not exist");
  check(pvm_getinst("no such group", me) == PvmNoGroup, "getinst in no group");
  check(pvm_spawn("pvm_check", NULL, PvmTaskHost, "no-such-node", 1, tids) == 0 && tids[0] == PvmNoHost,
        "spawn on a host that does not exist");
  check(pvm_spawn("no-such-program-here", NULL, PvmTaskDefault, "", 1, tids) == 0 && tids[0] == PvmNoFile,
        "spawn of a program that does not exist");
  check(pvm_nrecv(-1, 77) == 0, "nrecv with nothing there");
  check(pvm_trecv(-1, 77, &zero) == 0, "trecv with a zero timeout");
  check(pvm_trecv(-1, 77, &short_wait) == 0, "trecv times out");

  /* Two workers on two other nodes; notify on their exit. */
  n = pvm_spawn("pvm_check", NULL, PvmTaskHost, "vnode1", 1, &tids[0]);
  n += pvm_spawn("pvm_check", NULL, PvmTaskHost, "vnode2", 1, &tids[1]);
  if (n != 2) { /* under a pvmd there are no vnodes: any host */
    n = pvm_spawn("pvm_check", NULL, PvmTaskDefault, "", 2, tids);
  }
  check(n == 2, "two workers spawned");
  if (n != 2) goto out;
  check(pvm_notify(PvmTaskExit, TAG_EXIT, 2, tids) == 0, "notify of their exit");

  /* Every message, any sender, any tag: data in order per sender; what else
     comes meanwhile (the types, the exit notices) is checked as it comes. */
  {
    int data = 0, types = 0, exits = 0, dead[2] = {0, 0}, order_ok = 1;
    while (data < 2 * MESSAGES || types < 4 || exits < 2) {
      int w;
      if (data == MESSAGES && types == 0) { /* once: a probe, then its buffer comes back from recv */
        bufid = pvm_probe(-1, TAG_TYPES);
        if (bufid > 0) {
          check(pvm_recv(-1, TAG_TYPES) == bufid, "probe's buffer is what recv gets");
          check_types(bufid);
          types++;
          continue;
        }
      }
      bufid = pvm_recv(-1, -1);
      if (bufid <= 0) {
        check(0, "recv of any message");
        break;
      }
      pvm_bufinfo(bufid, &len, &tag, &from);
      if (tag == TAG_TYPES) {
        check_types(bufid);
        types++;
        continue;
      }
      if (tag == TAG_EXIT) {
        check(from == (int)0x80000000, "an exit notice comes from the pvmd");
        if (exits < 2) pvm_upkint(&dead[exits], 1, 1);
        exits++;
        continue;
      }
      pvm_upkint(&value, 1, 1);
      w = from == tids[0] ? 0 : from == tids[1] ? 1 : -1;
      if (w < 0 || value != next[w] || tag != TAG_DATA + (value % 2) * 100) order_ok = 0;
      if (w >= 0) next[w]++;
      data++;
    }
    check(order_ok, "per-sender order and tags");
    check(next[0] == MESSAGES && next[1] == MESSAGES, "every data message came");
    check(types == 4, "every types message came");
    check(exits == 2 && dead[0] != dead[1] && (dead[0] == tids[0] || dead[0] == tids[1]) &&
              (dead[1] == tids[0] || dead[1] == tids[1]),
          "both workers' exits were noticed");
  }
  check(pvm_nrecv(-1, -1) == 0, "nothing more");

  /* Source and tag select: a worker's messages of one tag, skipping the others. */
  {
    int t, odd_ok = 1;
    check(pvm_spawn("pvm_check", NULL, PvmTaskDefault, "", 1, &t) == 1, "a worker for selection");
    for (i = 1; i < MESSAGES; i += 2) {
      pvm_recv(t, TAG_DATA + 100);
      pvm_upkint(&value, 1, 1);
      if (value != i) odd_ok = 0;
    }
    check(odd_ok, "the odd messages alone, in order");
    for (i = 0; i < MESSAGES; i += 2) {
      bufid = pvm_nrecv(t, TAG_DATA);
      if (bufid <= 0) bufid = pvm_recv(t, TAG_DATA);
      pvm_upkint(&value, 1, 1);
      if (value != i) odd_ok = 0;
    }
    check(odd_ok, "then the even ones, in order");
    pvm_recv(t, TAG_TYPES);
    pvm_recv(t, TAG_TYPES);
  }

  /* A worker that waits is killed; its exit is noticed. */
  {
    char* args[] = {"1", NULL};
    int t;
    check(pvm_spawn("pvm_check", args, PvmTaskDefault, "", 1, &t) == 1, "a third worker");
    pvm_notify(PvmTaskExit, TAG_EXIT, 1, &t);
    for (i = 0; i < MESSAGES + 2; i++) pvm_recv(t, -1); /* it is waiting now */
    check(pvm_kill(t) == 0, "kill it");
    bufid = pvm_recv(-1, TAG_EXIT);
    pvm_upkint(&value, 1, 1);
    check(value == t, "its exit is noticed");
  }

  /* Groups: one member, so barrier and reduce come back at once. */
  check(pvm_joingroup("solo") == 0, "join: instance 0");
  check(pvm_joingroup("solo") == PvmDupGroup, "join twice");
  check(pvm_gsize("solo") == 1 && pvm_getinst("solo", me) == 0 && pvm_gettid("solo", 0) == me, "size, inst, tid");
  check(pvm_gettid("solo", 5) == PvmNoInst, "no instance 5");
  check(pvm_barrier("solo", -1) == 0, "barrier of one");
  value = 7;
  check(pvm_reduce(PvmMax, &value, 1, PVM_INT, 20, "solo", 0) == 0 && value == 7, "reduce of one");
  check(pvm_lvgroup("solo") == 0 && pvm_gsize("solo") == PvmNoGroup, "leave: the group is gone");
out:
  if (failures == 0) printf("pvm_check: all %d checks passed\n", checks);
  else printf("pvm_check: %d of %d checks failed\n", failures, checks);
  pvm_exit();
  return failures == 0 ? 0 : 1;
}
