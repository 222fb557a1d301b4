/* The handshake of the checkpoint probes (ckpt_never_silent, ckpt_process_flags):
 * the program prints "ready" once its state is set up, then waits for the
 * test's SIGUSR1, which comes after the checkpoint and the restore. The
 * program installs on_usr1 as SIGUSR1's handler before it calls
 * ready_then_wait. */
#ifndef MOSIX_TESTS_USR1_HANDSHAKE_H
#define MOSIX_TESTS_USR1_HANDSHAKE_H

#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t g_go = 0;

static void on_usr1(int sig) {
  (void)sig;
  g_go = 1;
}

static void ready_then_wait(void) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, &old);
  printf("ready\n");
  fflush(stdout);
  while (!g_go) sigsuspend(&old);
  sigprocmask(SIG_SETMASK, &old, NULL);
}

#endif
