/* Settings of a whole process that a restore must give back (driven by
 * ckpt_never_silent_test.sh like ckpt_never_silent: MODE in argv[1], "ready",
 * SIGUSR1, then "OK MODE" or "FAIL MODE: why"):
 *   prctls      transparent huge pages disabled (PR_SET_THP_DISABLE) and a
 *               child subreaper (PR_SET_CHILD_SUBREAPER), as zdtm's
 *               thp_disable and child_subreaper set them
 *   membarrier  registered for MEMBARRIER_CMD_PRIVATE_EXPEDITED (the command
 *               must still succeed: unregistered, it answers EPERM) and for
 *               GLOBAL_EXPEDITED: where the kernel lists registrations
 *               (GET_REGISTRATIONS, Linux 6.3), the list must be the same, as
 *               zdtm's membarrier checks */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "usr1_handshake.h"

enum { kRegisterGlobalExpedited = 4, kRegisterPrivateExpedited = 16, kPrivateExpedited = 8, kGetRegistrations = 512 };

static const char* g_mode = "?";
static void fail(const char* what) {
  printf("FAIL %s: %s (%s)\n", g_mode, what, strerror(errno));
  fflush(stdout);
  exit(1);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: ckpt_process_flags prctls|membarrier\n");
    return 2;
  }
  g_mode = argv[1];
  signal(SIGUSR1, on_usr1);
  if (strcmp(g_mode, "prctls") == 0) {
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) fail("PR_SET_THP_DISABLE");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) fail("PR_SET_CHILD_SUBREAPER");
    ready_then_wait();
    if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1) fail("transparent huge pages are enabled again");
    int subreaper = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) != 0 || subreaper != 1) fail("no longer a child subreaper");
  } else if (strcmp(g_mode, "membarrier") == 0) {
    if (syscall(SYS_membarrier, kRegisterPrivateExpedited, 0, 0) != 0) fail("membarrier(REGISTER_PRIVATE_EXPEDITED)");
    if (syscall(SYS_membarrier, kRegisterGlobalExpedited, 0, 0) != 0) fail("membarrier(REGISTER_GLOBAL_EXPEDITED)");
    if (syscall(SYS_membarrier, kPrivateExpedited, 0, 0) != 0) fail("membarrier(PRIVATE_EXPEDITED) before");
    const long before = syscall(SYS_membarrier, kGetRegistrations, 0, 0);
    ready_then_wait();
    if (syscall(SYS_membarrier, kPrivateExpedited, 0, 0) != 0) fail("membarrier(PRIVATE_EXPEDITED) is refused again");
    const long after = syscall(SYS_membarrier, kGetRegistrations, 0, 0);
    if (before >= 0 && after != before) {
      errno = 0;
      printf("FAIL %s: registrations 0x%lx, before 0x%lx\n", g_mode, after, before);
      fflush(stdout);
      exit(1);
    }
  } else {
    fprintf(stderr, "ckpt_process_flags: unknown mode %s\n", g_mode);
    return 2;
  }
  printf("OK %s\n", g_mode);
  fflush(stdout);
  return 0;
}
