/* The failure line of the checkpoint probes that run one mode (argv[1]) per
 * state (ckpt_never_silent, ckpt_fifo, ckpt_mappings). */
#ifndef MOSIX_TESTS_MODE_FAIL_H
#define MOSIX_TESTS_MODE_FAIL_H

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* The mode the program runs (argv[1]), and its failure line: "FAIL MODE:
 * why", then exit 1 (after g_fail_cleanup, when set). */
static const char* g_mode = "?";
static void (*g_fail_cleanup)(void) = NULL;

__attribute__((noreturn, format(printf, 1, 2), unused)) static void fail(const char* fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  printf("FAIL %s: %s\n", g_mode, why);
  fflush(stdout);
  if (g_fail_cleanup != NULL) g_fail_cleanup();
  _exit(1);
}

#endif
