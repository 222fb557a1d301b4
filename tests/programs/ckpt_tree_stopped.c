/* A tree with a stopped child for `mosixctl checkpoint --tree`
 * (ckpt_tree_test.sh): the root stops its child S with SIGSTOP and looks
 * at the stop without taking it (waitid WNOWAIT), prints "ready" and waits
 * for SIGUSR1 (usr1_handshake.h), which comes after the checkpoint (and the
 * restore). Then its wait must still report S stopped by SIGSTOP (not
 * continued, not running), and S, continued, reads the root's byte and
 * exits 0. The root prints "PASS" and exits 0, or "FAIL: <what>" and 1. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usr1_handshake.h"

static int fail(const char* what, long got, long want) {
  printf("FAIL: %s is %ld, not %ld\n", what, got, want);
  return 1;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  int p[2];
  if (pipe(p) != 0) return 2;
  pid_t s = fork();
  if (s < 0) return 2;
  if (s == 0) {
    char c = 0;
    close(p[1]);
    _exit(read(p[0], &c, 1) == 1 && c == 's' ? 0 : 3);
  }
  close(p[0]);
  if (kill(s, SIGSTOP) != 0) return 2;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)s, &info, WSTOPPED | WNOWAIT) != 0) return 2;
  ready_then_wait();
  int st = 0;
  pid_t w = waitpid(s, &st, WUNTRACED | WCONTINUED);
  if (w != s) return fail("waitpid(S, WUNTRACED | WCONTINUED)", w, s);
  if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP) return fail("S's status (stopped by SIGSTOP)", st, 0x137f);
  if (write(p[1], "s", 1) != 1 || kill(s, SIGCONT) != 0) return fail("errno", errno, 0);
  w = waitpid(s, &st, 0);
  if (w != s || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return fail("S's exit status", st, 0);
  printf("PASS\n");
  return 0;
}
