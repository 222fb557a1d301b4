/* Tells whether the agent's two signals (62 and 63: the checkpoint request and
 * thread stop, runtime/ckpt/request_protocol.h) are blocked when it starts.
 * Linked statically, so the agent can never load into it: what it prints is
 * what the exec that started it, or the guest spawner, left it with.
 *   sigmask_probe        prints "blocked B" (B: 1 if both are blocked, else 0)
 *   sigmask_probe wait   prints "blocked B" and "ready", waits for a line on
 *                        stdin (the test's handshake), then prints
 *                        "pending62 P" (1 if a signal 62 is pending) */
#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
  sigset_t mask;
  sigprocmask(SIG_BLOCK, NULL, &mask);
  int blocked = sigismember(&mask, 62) == 1 && sigismember(&mask, 63) == 1;
  printf("blocked %d\n", blocked);
  if (argc > 1 && strcmp(argv[1], "wait") == 0) {
    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 3;
    sigset_t pending;
    sigpending(&pending);
    printf("pending62 %d\n", sigismember(&pending, 62) == 1);
  }
  return 0;
}
