/* The handshake of the checkpoint probes (ckpt_never_silent, ckpt_process_flags):
 * the program prints "ready" once its state is set up, then waits for the
 * test's SIGUSR1, which comes after the checkpoint and the restore. The
 * program installs on_usr1 as SIGUSR1's handler before it calls
 * ready_then_wait. */
#ifndef MOSIX_TESTS_USR1_HANDSHAKE_H
#define MOSIX_TESTS_USR1_HANDSHAKE_H

#include <signal.h>
#include <stdio.h>
#include <string.h>

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

/* The tree programs' two signals (ckpt_tree, ckpt_tree_files): on_usr1 for
 * SIGUSR1 and on_usr2 for SIGUSR2, both blocked until the program waits for
 * them with *open_mask, the mask it had before. */
static inline void hold_usr1_usr2(void (*on_usr2)(int), sigset_t* open_mask) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGUSR2);
  sigprocmask(SIG_BLOCK, &block, open_mask);
}

#endif
