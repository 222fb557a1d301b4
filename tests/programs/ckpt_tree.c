/* A process tree for `mosixctl checkpoint --tree` (ckpt_tree_test.sh):
 * the root forks A (live), which forks G (live), and B and C, which end
 * before the checkpoint (B exits 7, C is killed by SIGTERM) and are not
 * waited for. Once all are set up the root prints "ready" and waits for
 * SIGUSR1 (usr1_handshake.h), which the test sends after the checkpoint (and
 * the restore). Then every check is made inside the tree:
 *  - getpid() and getppid() in each process are what they were before, and
 *    G leads a process group of its own again (getpgrp(), and getpgid(G)
 *    in A);
 *  - kill(A, SIGUSR1) from the root and kill(G, SIGUSR1) from A reach them;
 *  - waitpid(B) gives B's pid and exit 7, waitid(P_PID, C) C's pid and
 *    SIGTERM (CLD_KILLED), wait() A's pid and A's status, A's waitpid(G)
 *    G's pid and status;
 *  - a SIGCHLD reaches the root when A ends;
 *  - two pages of shared anonymous memory, mapped before the forks, are one
 *    memory still: what A writes after the go, the root reads, and G's and
 *    A's writes before the checkpoint are there;
 *  - pipes between them keep their unread bytes: A wrote "hello" to the
 *    root and the root "down" to G before the checkpoint, each read after
 *    the go, and A's "world" written after it reaches the root;
 *  - sessions: A calls setsid() after it forked G, so G stays in the root's
 *    session and A leads its own; D, ended and not waited for, had led a
 *    session of its own (getsid() of each, after the restore);
 *  - a socketpair (SOCK_SEQPACKET) between the root and A keeps its
 *    messages queued both ways, one by one ("ab", "cde" to the root, "pong"
 *    to A), and A's "after", sent after the go, reaches the root;
 *  - G closed its fd 0 before the checkpoint: it has none after it;
 *  - open files the root opened before the forks stay one with A's: the
 *    offsets they had (one at 100, another open of the same file at 200),
 *    and A's lseek to 1234 and its fcntl(F_SETFL, O_APPEND) after the go
 *    show in the root's dup() of the first one, the second keeping 200;
 *  - pidfds the root opened of A (PIDFD_NONBLOCK) and of itself name them
 *    (fdinfo's Pid), A's is not readable while A runs, A gets its SIGUSR1
 *    through it (pidfd_send_signal), and it is readable once A has ended.
 * The root prints "PASS" and exits 0, or "FAIL: <what>" and exits 1.
 * With the argument "refuse", G holds a file in /proc open, which a
 * checkpoint refuses: the whole tree must then run on unchanged. */
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usr1_handshake.h"

static volatile sig_atomic_t g_usr2 = 0, g_chld = 0;
/* Shared by the root, A and G: [0] root's mark, [1] A's, [2] G's, [1024] A's after the go. */
static volatile int* g_shared;
static int g_up[2], g_down[2]; /* A -> root, root -> G */
static int g_file, g_file_dup, g_file2;
static pid_t g_root;
static int g_pair[2]; /* root's end, A's end */

static void expect_message(const char* who, int fd, const char* want) {
  char buf[16] = {0};
  ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
    printf("FAIL: %s: received '%s' (%ld bytes) from the socketpair, not '%s'\n", who, buf, (long)n, want);
    exit(1);
  }
} /* one open file (and a dup), and another open of it */

static void fail(const char* who, const char* what, long got, long want);

static void expect_read(const char* who, int fd, const char* want) {
  char buf[16] = {0};
  size_t n = strlen(want), got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) fail(who, "a pipe read", (long)r, (long)n);
    got += (size_t)r;
  }
  if (memcmp(buf, want, n) != 0) {
    printf("FAIL: %s: read '%s' from a pipe, not '%s'\n", who, buf, want);
    exit(1);
  }
}

/* The pid a pidfd's fdinfo names ("Pid:"), or -2. */
static long pidfd_pid(int fd) {
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int f = open(path, O_RDONLY);
  ssize_t n = f < 0 ? -1 : read(f, text, sizeof text - 1);
  if (f >= 0) close(f);
  text[n > 0 ? n : 0] = '\0';
  const char* p = strstr(text, "\nPid:");
  return p == NULL ? -2 : strtol(p + 6, NULL, 10);
}

static void on_usr2(int sig) {
  (void)sig;
  g_usr2 = 1;
}

static void on_chld(int sig) {
  (void)sig;
  g_chld++;
}

/* Waits for SIGUSR2 (a child set up), with SIGUSR2 blocked outside. */
static void wait_usr2(const sigset_t* open) {
  while (!g_usr2) sigsuspend(open);
  g_usr2 = 0;
}

static void fail(const char* who, const char* what, long got, long want) {
  printf("FAIL: %s: %s is %ld, not %ld\n", who, what, got, want);
  fflush(stdout);
  exit(1);
}

/* G: tells A it is ready, waits for A's SIGUSR1, checks its pids, exits 5. */
static int g_refuse = 0;

static void grandchild(pid_t self, pid_t parent) {
  if (g_refuse && open("/proc/self/stat", O_RDONLY) < 0) _exit(94);
  if (setpgid(0, 0) != 0) _exit(96);
  close(0);
  close(g_pair[1]); /* A's end of the socketpair: one holder of an end (a tree checkpoint refuses two) */
  g_shared[2] = 0x6767;
  kill(parent, SIGUSR2);
  while (!g_go) {
    sigset_t open;
    sigprocmask(SIG_BLOCK, NULL, &open);
    sigdelset(&open, SIGUSR1);
    sigsuspend(&open);
  }
  if (getpid() != self) fail("G", "getpid()", getpid(), self);
  if (getppid() != parent) fail("G", "getppid()", getppid(), parent);
  if (getpgrp() != self) fail("G", "getpgrp()", getpgrp(), self);
  if (getsid(0) != getsid(g_root)) fail("G", "getsid(0), not the root's,", getsid(0), getsid(g_root));
  expect_read("G", g_down[0], "down");
  if (fcntl(0, F_GETFD) != -1 || errno != EBADF) fail("G", "fcntl(0, F_GETFD) on its closed fd 0", fcntl(0, F_GETFD), -1);
  _exit(5);
}

/* A: forks G, tells the root it is ready, waits for the root's SIGUSR1,
 * then signals G and waits for it; exits 3. */
static void child_a(pid_t self, pid_t root, const sigset_t* open) {
  g_shared[1] = 0xaaaa;
  close(g_pair[0]);
  if (send(g_pair[1], "ab", 2, 0) != 2 || send(g_pair[1], "cde", 3, 0) != 3) _exit(85);
  pid_t g = fork();
  if (g < 0) _exit(90);
  if (g == 0) grandchild(getpid(), self);
  wait_usr2(open);
  if (setsid() != self) _exit(88);
  if (write(g_up[1], "hello", 5) != 5) _exit(97);
  kill(root, SIGUSR2);
  while (!g_go) sigsuspend(open);
  if (getpid() != self) fail("A", "getpid()", getpid(), self);
  if (getppid() != root) fail("A", "getppid()", getppid(), root);
  if (getpgid(g) != g) fail("A", "getpgid(G)", getpgid(g), g);
  if (getsid(0) != self) fail("A", "getsid(0)", getsid(0), self);
  expect_message("A", g_pair[1], "pong");
  if (send(g_pair[1], "after", 5, 0) != 5) fail("A", "a send's errno", errno, 0);
  if (lseek(g_file, 0, SEEK_CUR) != 100) fail("A", "the shared file's offset", lseek(g_file, 0, SEEK_CUR), 100);
  if (lseek(g_file2, 0, SEEK_CUR) != 200) fail("A", "the second open's offset", lseek(g_file2, 0, SEEK_CUR), 200);
  if (lseek(g_file, 1234, SEEK_SET) != 1234 || fcntl(g_file, F_SETFL, O_APPEND) != 0) fail("A", "lseek/fcntl errno", errno, 0);
  if (kill(g, SIGUSR1) != 0) fail("A", "kill(G) errno", errno, 0);
  int st = 0;
  pid_t w = waitpid(g, &st, 0);
  if (w != g) fail("A", "waitpid(G)", w, g);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 5) fail("A", "G's status", st, 5 << 8);
  g_shared[1024] = 42;
  if (write(g_up[1], "world", 5) != 5) fail("A", "a pipe write", 0, 5);
  _exit(3);
}

int main(int argc, char** argv) {
  g_refuse = argc > 1 && strcmp(argv[1], "refuse") == 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  sigset_t open_mask;
  hold_usr1_usr2(on_usr2, &open_mask);
  pid_t root = getpid();
  g_root = root;
  g_shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (g_shared == MAP_FAILED) return 95;
  g_shared[0] = 0x1111;
  if (pipe(g_up) != 0 || pipe(g_down) != 0) return 98;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, g_pair) != 0) return 84;
  char path[512];
  const char* dir = getenv("CKPT_TMPDIR");
  snprintf(path, sizeof path, "%s/ckpt_tree.%d.shared", dir ? dir : "/tmp", (int)root);
  g_file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  g_file2 = open(path, O_RDWR);
  g_file_dup = dup(g_file);
  static const char zeros[2048];
  if (g_file < 0 || g_file2 < 0 || g_file_dup < 0 || write(g_file, zeros, sizeof zeros) != (ssize_t)sizeof zeros ||
      lseek(g_file, 100, SEEK_SET) != 100 ||
      lseek(g_file2, 200, SEEK_SET) != 200)
    return 89;

  pid_t a = fork();
  if (a < 0) return 90;
  if (a == 0) child_a(getpid(), root, &open_mask);
  wait_usr2(&open_mask);
  int pidfd_a = (int)syscall(SYS_pidfd_open, a, O_NONBLOCK /* PIDFD_NONBLOCK */);
  int pidfd_root = (int)syscall(SYS_pidfd_open, root, 0);
  if (pidfd_a < 0 || pidfd_root < 0) return 82;
  close(g_pair[1]);
  if (send(g_pair[0], "pong", 4, 0) != 4) return 83;
  pid_t b = fork();
  if (b == 0) _exit(7);
  pid_t c = fork();
  if (c == 0) {
    signal(SIGTERM, SIG_DFL);
    kill(getpid(), SIGTERM);
    _exit(91);
  }
  pid_t d = fork();
  if (d == 0) {
    if (setsid() < 0) _exit(87);
    _exit(4);
  }
  /* All three ended, none reaped: zombies at the checkpoint. */
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)b, &info, WEXITED | WNOWAIT) != 0) return 92;
  if (waitid(P_PID, (id_t)c, &info, WEXITED | WNOWAIT) != 0) return 93;
  if (waitid(P_PID, (id_t)d, &info, WEXITED | WNOWAIT) != 0) return 86;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);

  if (write(g_down[1], "down", 4) != 4) return 99;
  sigprocmask(SIG_SETMASK, &open_mask, NULL);
  ready_then_wait();
  expect_read("root", g_up[0], "hello");
  if (getpid() != root) fail("root", "getpid()", getpid(), root);

  int st = 0;
  pid_t w = waitpid(b, &st, 0);
  if (w != b) fail("root", "waitpid(B)", w, b);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) fail("root", "B's status", st, 7 << 8);
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)c, &info, WEXITED) != 0) fail("root", "waitid(C) errno", errno, 0);
  if (info.si_pid != c) fail("root", "waitid(C)'s si_pid", info.si_pid, c);
  if (info.si_code != CLD_KILLED || info.si_status != SIGTERM) fail("root", "C's signal", info.si_status, SIGTERM);
  if (getsid(d) != d) fail("root", "getsid(D)", getsid(d), d);
  w = waitpid(d, &st, 0);
  if (w != d || !WIFEXITED(st) || WEXITSTATUS(st) != 4) fail("root", "D's status", st, 4 << 8);
  int chld_before = g_chld;
  if (pidfd_pid(pidfd_a) != a) fail("root", "the Pid of A's pidfd", pidfd_pid(pidfd_a), a);
  if (pidfd_pid(pidfd_root) != root) fail("root", "the Pid of its own pidfd", pidfd_pid(pidfd_root), root);
  if (!(fcntl(pidfd_a, F_GETFL) & O_NONBLOCK)) fail("root", "PIDFD_NONBLOCK of A's pidfd", fcntl(pidfd_a, F_GETFL), O_NONBLOCK);
  struct pollfd ended = {pidfd_a, POLLIN, 0};
  if (poll(&ended, 1, 0) != 0) fail("root", "poll() of A's pidfd while A runs", ended.revents, 0);
  if (syscall(SYS_pidfd_send_signal, pidfd_a, SIGUSR1, NULL, 0) != 0) fail("root", "pidfd_send_signal(A) errno", errno, 0);
  w = wait(&st);
  if (w != a) fail("root", "wait()", w, a);
  if (poll(&ended, 1, 0) != 1) fail("root", "poll() of A's pidfd once A ended", ended.revents, POLLIN);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 3) fail("root", "A's status", st, 3 << 8);
  if (g_shared[0] != 0x1111 || g_shared[1] != 0xaaaa || g_shared[2] != 0x6767)
    fail("root", "the shared marks (root's)", g_shared[0], 0x1111);
  if (g_shared[1024] != 42) fail("root", "A's write to shared memory after the go", g_shared[1024], 42);
  if (lseek(g_file_dup, 0, SEEK_CUR) != 1234) fail("root", "the shared file's offset after A's lseek", lseek(g_file_dup, 0, SEEK_CUR), 1234);
  if (!(fcntl(g_file_dup, F_GETFL) & O_APPEND)) fail("root", "O_APPEND set by A", fcntl(g_file_dup, F_GETFL), O_APPEND);
  if (lseek(g_file2, 0, SEEK_CUR) != 200) fail("root", "the second open's offset", lseek(g_file2, 0, SEEK_CUR), 200);
  expect_read("root", g_up[0], "world");
  expect_message("root", g_pair[0], "ab");
  expect_message("root", g_pair[0], "cde");
  expect_message("root", g_pair[0], "after");
  /* SIGCHLD for A: delivered by now, or pending until the mask opens. */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (g_chld == chld_before) fail("root", "SIGCHLDs after A ended", g_chld - chld_before, 1);
  if (wait(&st) != -1 || errno != ECHILD) fail("root", "a further wait()'s errno", errno, ECHILD);
  printf("PASS\n");
  return 0;
}
