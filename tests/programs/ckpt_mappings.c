/* Kinds of memory mapping a restore must give back (driven by
 * ckpt_never_silent_test.sh like ckpt_never_silent: MODE in argv[1], "ready",
 * SIGUSR1, then "OK MODE" or "FAIL MODE: why"):
 *   droppable  MAP_DROPPABLE memory (Linux 6.11): droppable again (VmFlags
 *              "dp"), each page as written or zero (the kernel may drop it);
 *              on a kernel without it, nothing to check
 *   locked     two pages locked with mlock() between unlocked ones: locked
 *              again (VmFlags "lo" on them alone), contents kept */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mode_fail.h"
#include "usr1_handshake.h"

#define MAP_DROPPABLE_FLAG 0x08 /* MAP_DROPPABLE */

/* Whether the VmFlags of the mapping that starts at `at` hold `flag`. */
static int vm_flag(const void* at, const char* flag) {
  static char text[1 << 20];
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) fail("fopen smaps: %s", strerror(errno));
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  char head[32];
  snprintf(head, sizeof head, "%lx-", (unsigned long)(uintptr_t)at);
  char* p = strstr(text, head);
  if (p == NULL || (p != text && p[-1] != '\n')) fail("no mapping at %p in smaps", at);
  char* flags = strstr(p, "VmFlags:");
  if (flags == NULL) fail("no VmFlags for %p", at);
  char* end = strchr(flags, '\n');
  if (end != NULL) *end = '\0';
  char want[8];
  snprintf(want, sizeof want, " %s", flag);
  for (char* q = flags; (q = strstr(q, want)) != NULL; q += 3)
    if (q[3] == ' ' || q[3] == '\0') return 1;
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2 || (strcmp(argv[1], "droppable") != 0 && strcmp(argv[1], "locked") != 0)) {
    fprintf(stderr, "usage: ckpt_mappings droppable|locked\n");
    return 2;
  }
  g_mode = argv[1];
  signal(SIGUSR1, on_usr1);
  long page = sysconf(_SC_PAGESIZE);
  if (strcmp(g_mode, "droppable") == 0) {
    unsigned char* m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_DROPPABLE_FLAG | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) memset(m, 0x5a, 4 * page);
    ready_then_wait();
    if (m != MAP_FAILED) {
      if (!vm_flag(m, "dp")) fail("the mapping at %p is no longer droppable", (void*)m);
      for (long i = 0; i < 4 * page; i += page)
        for (long k = 0; k < page; ++k)
          if (m[i + k] != m[i] || (m[i] != 0 && m[i] != 0x5a)) fail("page %ld came back as neither written nor zero", i / page);
    }
  } else {
    unsigned char* m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
    memset(m, 0x3c, 4 * page);
    if (mlock(m + page, 2 * page) != 0) fail("mlock: %s", strerror(errno));
    ready_then_wait();
    if (vm_flag(m, "lo") || !vm_flag(m + page, "lo") || vm_flag(m + 3 * page, "lo"))
      fail("the locked pages are not the two in the middle any more");
    for (long i = 0; i < 4 * page; ++i)
      if (m[i] != 0x3c) fail("byte %ld changed", i);
  }
  printf("OK %s\n", g_mode);
  return 0;
}
