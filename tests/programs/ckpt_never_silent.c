/* A process in one state that a checkpoint must either restore exactly or
 * refuse (ckpt_never_silent_test.sh drives it). MODE (argv[1]) sets the state
 * up, the program prints "ready" and waits for SIGUSR1; then it checks
 * itself, undoes what it set up and prints "OK MODE" (exit 0) or
 * "FAIL MODE: why" (exit 1). It works in / so that a relative path given to
 * mosixctl is not the program's.
 *
 * Restored exactly (the test checkpoints --kill, restarts, signals):
 *   shm       1 MiB of MAP_SHARED|MAP_ANONYMOUS written only by a child that
 *             has ended: every byte must come back
 *   session   a session leader: it must lead its session and group again
 *   wipeonfork a page with MADV_WIPEONFORK: a child forked after must see it zero
 *   maywrite  a PROT_READ shared mapping of a file opened O_RDWR: mprotect
 *             may still add PROT_WRITE
 * Refused (the test expects the reason, then signals the same process):
 *   child     a live child            zombie    an ended child, not waited for
 *   shm_other shared memory a grandchild (not a child) still maps
 *   guard     a guard page (MADV_GUARD_INSTALL; "SKIP" where the kernel has none)
 *   opath     an O_PATH descriptor    rmdir     a descriptor on a removed directory
 *   dup       two descriptors of one open file
 *   pipe2     two opens of one pipe end, with different flags
 *   lease     a read lease on a file (F_SETLEASE)
 * Without a checkpoint:
 *   clone     a child of clone() without CLONE_VM must see its own pid */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static const char* g_mode = "?";
static volatile sig_atomic_t g_go = 0;

static void on_usr1(int sig) {
  (void)sig;
  g_go = 1;
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char* fmt, ...) {
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  printf("FAIL %s: %s\n", g_mode, why);
  fflush(stdout);
  _exit(1);
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

static void ok(void) {
  printf("OK %s\n", g_mode);
  fflush(stdout);
  exit(0);
}

enum { kShmSize = 1 << 20 };

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131u + (i >> 12) + 7u); }

static int child_stack_fn(void* arg) {
  pid_t parent = *(pid_t*)arg;
  pid_t real = (pid_t)syscall(SYS_getpid);
  if (getpid() != real) return 2;
  if (getppid() != parent) return 3;
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: ckpt_never_silent MODE\n");
    return 2;
  }
  g_mode = argv[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  char tmpdir[256];
  const char* base = getenv("CKPT_TMPDIR") ? getenv("CKPT_TMPDIR") : "/tmp";
  snprintf(tmpdir, sizeof tmpdir, "%s/never_silent.%d", base, (int)getpid());
  if (chdir("/") != 0) fail("chdir /: %s", strerror(errno));

  if (strcmp(g_mode, "clone") == 0) {
    static char stack[64 << 10];
    pid_t self = getpid();
    pid_t c = clone(child_stack_fn, stack + sizeof stack, SIGCHLD, &self);
    if (c < 0) fail("clone: %s", strerror(errno));
    int st = 0;
    if (waitpid(c, &st, 0) != c) fail("waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail("the clone() child saw the wrong %s", WEXITSTATUS(st) == 2 ? "pid" : "parent pid");
    ok();
  }
  if (strcmp(g_mode, "child") == 0 || strcmp(g_mode, "zombie") == 0) {
    int live = strcmp(g_mode, "child") == 0;
    pid_t c = fork();
    if (c == 0) {
      if (live) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);  /* not left behind if the parent is killed */
        pause();
      }
      _exit(0);
    }
    if (!live) {
      siginfo_t si;  /* until it has ended, without reaping it */
      if (waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT) != 0) fail("waitid: %s", strerror(errno));
    }
    ready_then_wait();
    if (live) kill(c, SIGKILL);
    if (waitpid(c, NULL, 0) != c) fail("the child is lost: %s", strerror(errno));
    ok();
  }
  if (strcmp(g_mode, "shm") == 0 || strcmp(g_mode, "shm_other") == 0) {
    unsigned char* m = mmap(NULL, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
    int other = strcmp(g_mode, "shm_other") == 0;
    int gate[2];
    if (pipe(gate) != 0) fail("pipe: %s", strerror(errno));
    pid_t main_pid = getpid();
    pid_t c = fork();
    if (c == 0) {
      for (size_t i = 0; i < kShmSize; ++i) m[i] = pattern(i);
      if (other && fork() == 0) {
        pid_t me = getpid();
        memcpy(m, &me, sizeof me);
        close(gate[0]);
        if (write(gate[1], "x", 1) != 1) _exit(1);
        close(gate[1]);
        /* Not a child of the main process: it ends when that one has
         * (killed, or done and reaped), or when the main process kills it. */
        while (kill(main_pid, 0) == 0) usleep(10000);
        _exit(0);
      }
      _exit(0);
    }
    close(gate[1]);
    if (waitpid(c, NULL, 0) != c) fail("waitpid: %s", strerror(errno));
    char x;
    if (other && read(gate[0], &x, 1) != 1) fail("the grandchild did not start");
    close(gate[0]);
    ready_then_wait();
    if (other) {
      pid_t g;
      memcpy(&g, m, sizeof g);
      kill(g, SIGKILL);
      ok();
    }
    for (size_t i = 0; i < kShmSize; ++i)
      if (m[i] != pattern(i)) fail("byte %zu of the shared mapping is %u, not %u", i, m[i], pattern(i));
    ok();
  }
  if (strcmp(g_mode, "session") == 0) {
    if (setsid() < 0) fail("setsid: %s", strerror(errno));
    ready_then_wait();
    if (getsid(0) != getpid()) fail("session %d, not its own (%d)", (int)getsid(0), (int)getpid());
    if (getpgrp() != getpid()) fail("process group %d, not its own (%d)", (int)getpgrp(), (int)getpid());
    if ((pid_t)syscall(SYS_getsid, 0) != (pid_t)syscall(SYS_getpid)) fail("the kernel's session is not its own");
    ok();
  }
  if (strcmp(g_mode, "guard") == 0 || strcmp(g_mode, "wipeonfork") == 0) {
    long page = sysconf(_SC_PAGESIZE);
    char* m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
    memset(m, 0x5a, 4 * page);
    int guard = strcmp(g_mode, "guard") == 0;
    if (madvise(m + page, page, guard ? MADV_GUARD_INSTALL : MADV_WIPEONFORK) != 0) {
      if (errno == EINVAL) {
        printf("SKIP %s: this kernel has no %s\n", g_mode, guard ? "MADV_GUARD_INSTALL" : "MADV_WIPEONFORK");
        return 0;
      }
      fail("madvise: %s", strerror(errno));
    }
    ready_then_wait();
    if (m[0] != 0x5a || m[2 * page] != 0x5a) fail("the memory around the page changed");
    if (!guard) {
      if (m[page] != 0x5a) fail("the page lost its contents");
      pid_t c = fork();  /* the advice holds: the child sees the page wiped */
      if (c == 0) _exit(m[page] == 0 && m[0] == 0x5a ? 0 : 1);
      int st = 0;
      if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("a child forked after the restore did not see the page wiped (MADV_WIPEONFORK lost)");
    }
    ok();
  }
  if (strcmp(g_mode, "opath") == 0 || strcmp(g_mode, "rmdir") == 0 || strcmp(g_mode, "dup") == 0 ||
      strcmp(g_mode, "pipe2") == 0 || strcmp(g_mode, "lease") == 0) {
    if (mkdir(tmpdir, 0700) != 0) fail("mkdir %s: %s", tmpdir, strerror(errno));
    char file[300];
    snprintf(file, sizeof file, "%s/f", tmpdir);
    int fd = open(file, O_RDWR | O_CREAT, 0600);
    if (fd < 0) fail("open %s: %s", file, strerror(errno));
    int extra = -1;
    if (strcmp(g_mode, "opath") == 0) {
      extra = open(file, O_PATH);
    } else if (strcmp(g_mode, "dup") == 0) {
      extra = dup(fd);
    } else if (strcmp(g_mode, "lease") == 0) {
      extra = open(file, O_RDONLY);
      close(fd);
      fd = -1;
      if (extra >= 0 && fcntl(extra, F_SETLEASE, F_RDLCK) != 0) fail("F_SETLEASE: %s", strerror(errno));
    } else if (strcmp(g_mode, "pipe2") == 0) {
      int p[2];
      if (pipe(p) != 0) fail("pipe: %s", strerror(errno));
      char path[64];
      snprintf(path, sizeof path, "/proc/self/fd/%d", p[1]);
      extra = open(path, O_WRONLY);
      fcntl(p[1], F_SETFL, O_NONBLOCK);
    }
    int keep = strcmp(g_mode, "dup") == 0 || strcmp(g_mode, "opath") == 0 || strcmp(g_mode, "lease") == 0;
    if (!keep) {
      close(fd);
      unlink(file);
    }
    if (strcmp(g_mode, "rmdir") == 0) extra = open(tmpdir, O_RDONLY | O_DIRECTORY);
    if (!keep) rmdir(tmpdir);
    if (extra < 0) fail("setting up: %s", strerror(errno));
    ready_then_wait();
    if (keep) {
      unlink(file);
      rmdir(tmpdir);
    }
    ok();
  }
  if (strcmp(g_mode, "maywrite") == 0) {
    long page = sysconf(_SC_PAGESIZE);
    char file[300];
    snprintf(file, sizeof file, "%s.map", tmpdir);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, page) != 0) fail("creating %s: %s", file, strerror(errno));
    char* m = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
    close(fd);
    ready_then_wait();
    if (mprotect(m, (size_t)page, PROT_READ | PROT_WRITE) != 0)
      fail("mprotect(PROT_WRITE) of the shared mapping of a file opened O_RDWR: %s", strerror(errno));
    m[0] = 'w';
    unlink(file);
    ok();
  }
  fail("unknown mode");
}
