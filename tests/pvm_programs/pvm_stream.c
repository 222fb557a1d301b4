/* Numbered messages streaming between three PVM tasks while the test moves
 * one of them (tests/integration/pvm_migrate_test.sh, docs/pvm.md).
 *
 *   mosixrun --vcluster 3 -np 1 pvm_stream STOPFILE [NODE_A NODE_B]
 *
 * The master (this copy) spawns A on vnode1 and B on vnode2 (or on the
 * nodes given: on the master's node vnode0 all three talk over direct links). The master and
 * B each stream DATA messages to A, numbered from 0, of several sizes (0 to
 * 300,000 bytes, each byte a function of the number and its place); A takes
 * them with wildcards (any sender, any tag), checks that each sender's come
 * in order, none missing, none twice, every byte right, and answers each
 * with an ECHO carrying its number and bytes, which the sender checks the
 * same way. A sender is at most WINDOW messages ahead of its echoes, so
 * messages are always on their way in both directions.
 *
 * A stops reading while the file STOPFILE.hold exists, and says so by
 * creating STOPFILE.held (removed when it reads again): what is sent to it
 * meanwhile stays queued on its link and in its node daemon, for a test that
 * writes its image or moves it then.
 *
 * Handshake: the master prints "streaming" once the stream runs, and
 * "progress N" every 200 echoes; it streams until STOPFILE exists, then
 * tells B to stop, and both tell A how many they sent (END). A, then B,
 * report their counts to the master, which prints one line:
 *   pvm_stream: ok, master->A N, B->A M, every message and echo checked
 * or a line starting "pvm_stream: MISMATCH" and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pvm3.h>

enum { DATA = 1, ECHO = 2, END = 3, STOP = 4, RESULT = 5 };
enum { WINDOW = 48, MAXLEN = 300000 };

static const int sizes[] = {0, 8, 1000, 65539, MAXLEN, 17, 4096, 123457};
static unsigned char buf[MAXLEN], got[MAXLEN];

static int size_of(int n) { return sizes[n % (int)(sizeof sizes / sizeof sizes[0])]; }
static unsigned char byte_of(int n, int j) { return (unsigned char)(n * 31 + j * 7 + (j >> 8)); }

static void mismatch(const char* who, const char* what, int a, int b) {
  printf("pvm_stream: MISMATCH in %s: %s (%d, expected %d)\n", who, what, a, b);
  fflush(stdout);
  pvm_exit();
  exit(1);
}

static void send_numbered(int to, int tag, int n) {
  int len = size_of(n);
  for (int j = 0; j < len; ++j) buf[j] = byte_of(n, j);
  pvm_initsend(PvmDataDefault);
  pvm_pkint(&n, 1, 1);
  pvm_pkint(&len, 1, 1);
  if (len > 0) pvm_pkbyte((char*)buf, len, 1);
  pvm_send(to, tag);
}

/* Unpacks a numbered message (the active receive buffer), checks it is
 * number `want` with its bytes. */
static void check_numbered(const char* who, int want) {
  int n = -1, len = -1;
  pvm_upkint(&n, 1, 1);
  pvm_upkint(&len, 1, 1);
  if (n != want) mismatch(who, "number", n, want);
  if (len != size_of(n)) mismatch(who, "length", len, size_of(n));
  if (len > 0) pvm_upkbyte((char*)got, len, 1);
  for (int j = 0; j < len; ++j)
    if (got[j] != byte_of(n, j)) mismatch(who, "byte", j, n);
}

/* A sender (the master or B): streams to A until `stop` says so, keeping at
 * most WINDOW messages ahead of their echoes. Returns how many it sent. */
static int stream(int a, int (*stop)(void), int progress) {
  int sent = 0, echoed = 0;
  while (!stop()) {
    send_numbered(a, DATA, sent++);
    while (sent - echoed >= WINDOW || pvm_probe(a, ECHO) > 0) {
      pvm_recv(a, ECHO);
      check_numbered("an echo", echoed++);
      if (progress && echoed == WINDOW) {
        printf("streaming\n");
        fflush(stdout);
      }
      if (progress && echoed % 200 == 0) {
        printf("progress %d\n", echoed);
        fflush(stdout);
      }
      if (sent - echoed < WINDOW / 2) break;
    }
  }
  int end = sent;
  pvm_initsend(PvmDataDefault);
  pvm_pkint(&end, 1, 1);
  pvm_send(a, END);
  while (echoed < sent) {
    pvm_recv(a, ECHO);
    check_numbered("an echo", echoed++);
  }
  return sent;
}

static const char* g_stopfile;
static int stop_file(void) { return access(g_stopfile, F_OK) == 0; }
static int g_master;
static int stop_message(void) { return pvm_nrecv(g_master, STOP) > 0; }

/* While HOLD exists A reads nothing; HOLD.held says it has stopped. */
static void hold_while(const char* hold) {
  if (hold == NULL || access(hold, F_OK) != 0) return;
  char held[4096];
  snprintf(held, sizeof held, "%s.held", hold);
  FILE* f = fopen(held, "w");
  if (f != NULL) fclose(f);
  while (access(hold, F_OK) == 0) usleep(1000);
  unlink(held);
}

static int run_a(void) {
  int senders[2] = {pvm_parent(), -1}, next[2] = {0, 0}, ends[2] = {-1, -1};
  const char* hold = getenv("PVM_STREAM_HOLD");
  while (ends[0] < 0 || ends[1] < 0 || next[0] < ends[0] || next[1] < ends[1]) {
    hold_while(hold);
    int id = pvm_recv(-1, -1), bytes, tag, src;
    pvm_bufinfo(id, &bytes, &tag, &src);
    int k = src == senders[0] ? 0 : src == senders[1] ? 1 : senders[1] < 0 ? (senders[1] = src, 1) : -1;
    if (k < 0) mismatch("A", "a message from an unknown task", src, senders[0]);
    if (tag == END) {
      pvm_upkint(&ends[k], 1, 1);
      continue;
    }
    if (tag != DATA) mismatch("A", "tag", tag, DATA);
    check_numbered(k == 0 ? "A, from the master" : "A, from B", next[k]);
    send_numbered(src, ECHO, next[k]++);
  }
  if (next[0] != ends[0] || next[1] != ends[1]) mismatch("A", "count", next[0], ends[0]);
  pvm_initsend(PvmDataDefault);
  pvm_pkint(next, 2, 1);
  pvm_send(pvm_parent(), RESULT);
  return 0;
}

int main(int argc, char** argv) {
  if (pvm_mytid() < 0) return 2;
  const char* role = getenv("PVM_STREAM_ROLE");
  if (role != NULL && strcmp(role, "A") == 0) {
    run_a();
  } else if (role != NULL && strcmp(role, "B") == 0) {
    int a = -1;
    g_master = pvm_parent();
    pvm_recv(g_master, DATA);
    pvm_upkint(&a, 1, 1);
    int sent = stream(a, stop_message, 0);
    pvm_initsend(PvmDataDefault);
    pvm_pkint(&sent, 1, 1);
    pvm_send(g_master, RESULT);
  } else {
    if (argc != 2 && argc != 4) {
      fprintf(stderr, "usage: pvm_stream STOPFILE [NODE_A NODE_B]\n");
      pvm_exit();
      return 2;
    }
    g_stopfile = argv[1];
    char* node_a = argc == 4 ? argv[2] : "vnode1";
    char* node_b = argc == 4 ? argv[3] : "vnode2";
    int a = -1, b = -1;
    char hold[4096];
    snprintf(hold, sizeof hold, "%s.hold", g_stopfile);
    setenv("PVM_STREAM_HOLD", hold, 1);
    setenv("PVM_STREAM_ROLE", "A", 1);
    if (pvm_spawn("pvm_stream", NULL, PvmTaskHost, node_a, 1, &a) != 1) mismatch("master", "spawn A", a, 0);
    setenv("PVM_STREAM_ROLE", "B", 1);
    if (pvm_spawn("pvm_stream", NULL, PvmTaskHost, node_b, 1, &b) != 1) mismatch("master", "spawn B", b, 0);
    unsetenv("PVM_STREAM_ROLE");
    unsetenv("PVM_STREAM_HOLD");
    pvm_initsend(PvmDataDefault);
    pvm_pkint(&a, 1, 1);
    pvm_send(b, DATA);
    int sent = stream(a, stop_file, 1);
    pvm_initsend(PvmDataDefault);
    pvm_send(b, STOP);
    int counts[2] = {-1, -1}, b_sent = -1;
    pvm_recv(a, RESULT);
    pvm_upkint(counts, 2, 1);
    pvm_recv(b, RESULT);
    pvm_upkint(&b_sent, 1, 1);
    if (counts[0] != sent) mismatch("master", "A's count of the master's messages", counts[0], sent);
    if (counts[1] != b_sent) mismatch("master", "A's count of B's messages", counts[1], b_sent);
    printf("pvm_stream: ok, master->A %d, B->A %d, every message and echo checked\n", sent, b_sent);
    fflush(stdout);
  }
  pvm_exit();
  return 0;
}
