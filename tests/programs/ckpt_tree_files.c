/* Deleted-but-open files, memfds and named pipes that two processes of a
 * tree hold (ckpt_tree_test.sh, `mosixctl checkpoint --tree`): a restore
 * must make each once for the tree, not a copy per process.
 * The root opens a file, writes to it, moves its offset to 100 and removes
 * it; it makes a memfd, writes to it, moves its offset to 50. Then it forks
 * A, which inherits both open files and opens each again through
 * /proc/self/fd (a separate open of its own: the file read-write at offset
 * 300, the memfd read-only). The root also makes a named pipe, opens it
 * for reading and writing and writes "fifo1" into it; A opens it again for
 * reading, O_NONBLOCK. A tells the root (SIGUSR2), which makes the
 * file mode 0400, prints "ready" and waits for SIGUSR1 (usr1_handshake.h),
 * which the test sends after the checkpoint and the restore; the root then
 * lets A go (SIGUSR1). After it:
 *  - A finds the offsets as they were (100, 300, 50) and the data before the
 *    checkpoint through its own opens;
 *  - A writes through its own open of the file and through the memfd it
 *    inherited, and moves the inherited file's offset to 777;
 *  - A reads "fifo1" through its own open of the named pipe (still
 *    O_NONBLOCK), and writes "fifo2" through the one it inherited;
 *  - the root reads A's writes through its own descriptors (one file, one
 *    memfd, one named pipe still), sees offset 777 (one open file still),
 *    finds the file still removed (no link) with mode 0400, and the named
 *    pipe's path still naming the pipe it holds;
 *  - a removed named pipe only the root holds keeps its unread "gone1" and
 *    stays removed.
 * The root prints "PASS" and exits 0, or "FAIL: <what>" and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usr1_handshake.h"

static volatile sig_atomic_t g_usr2 = 0;
static int g_file, g_memfd, g_fifo, g_removed_fifo;

static void on_usr2(int sig) {
  (void)sig;
  g_usr2 = 1;
}

static void fail(const char* who, const char* what, long got, long want) {
  printf("FAIL: %s: %s is %ld, not %ld\n", who, what, got, want);
  fflush(stdout);
  exit(1);
}

static void expect_bytes(const char* who, const char* what, int fd, off_t at, const char* want) {
  char buf[32] = {0};
  size_t n = strlen(want);
  ssize_t got = pread(fd, buf, n, at);
  if (got != (ssize_t)n || memcmp(buf, want, n) != 0) {
    printf("FAIL: %s: %s reads '%s' (%ld bytes) at %ld, not '%s'\n", who, what, buf, (long)got, (long)at, want);
    fflush(stdout);
    exit(1);
  }
}

static void child_a(pid_t root, const sigset_t* unblocked) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", g_file);
  int own = open(path, O_RDWR);
  snprintf(path, sizeof path, "/proc/self/fd/%d", g_memfd);
  int own_memfd = open(path, O_RDONLY);
  if (own < 0 || own_memfd < 0 || lseek(own, 300, SEEK_SET) != 300) _exit(80);
  snprintf(path, sizeof path, "/proc/self/fd/%d", g_fifo);
  int own_fifo = open(path, O_RDONLY | O_NONBLOCK);
  if (own_fifo < 0) _exit(81);
  kill(root, SIGUSR2);
  while (!g_go) sigsuspend(unblocked);
  if (lseek(g_file, 0, SEEK_CUR) != 100) fail("A", "the inherited file's offset", lseek(g_file, 0, SEEK_CUR), 100);
  if (lseek(own, 0, SEEK_CUR) != 300) fail("A", "its own open's offset", lseek(own, 0, SEEK_CUR), 300);
  if (lseek(g_memfd, 0, SEEK_CUR) != 50) fail("A", "the memfd's offset", lseek(g_memfd, 0, SEEK_CUR), 50);
  expect_bytes("A", "its own open of the file", own, 0, "file-data");
  expect_bytes("A", "its own open of the memfd", own_memfd, 0, "memfd-data");
  if (fcntl(own_memfd, F_GETFL) & O_ACCMODE) fail("A", "its memfd open's access mode", fcntl(own_memfd, F_GETFL) & O_ACCMODE, O_RDONLY);
  if (pwrite(own, "AAAA", 4, 1000) != 4) fail("A", "a write through its own open: errno", errno, 0);
  if (pwrite(g_memfd, "BBBB", 4, 2000) != 4) fail("A", "a write to the memfd: errno", errno, 0);
  if (lseek(g_file, 777, SEEK_SET) != 777) fail("A", "lseek errno", errno, 0);
  if (!(fcntl(own_fifo, F_GETFL) & O_NONBLOCK)) fail("A", "O_NONBLOCK of its named pipe open", fcntl(own_fifo, F_GETFL), O_NONBLOCK);
  char buf[8] = {0};
  if (read(own_fifo, buf, 5) != 5 || memcmp(buf, "fifo1", 5) != 0) {
    printf("FAIL: A: read '%s' from the named pipe, not 'fifo1'\n", buf);
    exit(1);
  }
  if (write(g_fifo, "fifo2", 5) != 5) fail("A", "a named pipe write: errno", errno, 0);
  _exit(3);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  sigset_t open_mask;
  hold_usr1_usr2(on_usr2, &open_mask);
  pid_t root = getpid();
  char path[512];
  const char* dir = getenv("CKPT_TMPDIR");
  snprintf(path, sizeof path, "%s/ckpt_tree_files.%d", dir ? dir : "/tmp", (int)root);
  static char fill[4096];
  memset(fill, '.', sizeof fill);
  memcpy(fill, "file-data", 9);
  g_file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (g_file < 0 || write(g_file, fill, sizeof fill) != (ssize_t)sizeof fill || lseek(g_file, 100, SEEK_SET) != 100 ||
      unlink(path) != 0)
    return 90;
  memcpy(fill, "memfd-data", 10);
  g_memfd = (int)syscall(SYS_memfd_create, "tree-memfd", 0);
  if (g_memfd < 0 || write(g_memfd, fill, sizeof fill) != (ssize_t)sizeof fill || lseek(g_memfd, 50, SEEK_SET) != 50)
    return 91;
  char fifo_path[512];
  snprintf(fifo_path, sizeof fifo_path, "%s/ckpt_tree_files.%d.fifo", dir ? dir : "/tmp", (int)root);
  if (mkfifo(fifo_path, 0600) != 0 || (g_fifo = open(fifo_path, O_RDWR)) < 0 || write(g_fifo, "fifo1", 5) != 5) return 94;
  pid_t a = fork();
  if (a < 0) return 92;
  if (a == 0) child_a(root, &open_mask);
  while (!g_usr2) sigsuspend(&open_mask);
  /* A removed named pipe only the root holds, with bytes in it (O_NONBLOCK:
   * a read of it empty fails rather than waits). */
  char gone_path[600];
  snprintf(gone_path, sizeof gone_path, "%s.removed", fifo_path);
  if (mkfifo(gone_path, 0600) != 0 || (g_removed_fifo = open(gone_path, O_RDWR | O_NONBLOCK)) < 0 ||
      write(g_removed_fifo, "gone1", 5) != 5 || unlink(gone_path) != 0)
    return 95;
  /* Read-only once A opened it read-write: a restore must open every
   * descriptor before it gives the file its mode. */
  if (fchmod(g_file, 0400) != 0) return 93;
  sigprocmask(SIG_SETMASK, &open_mask, NULL);
  ready_then_wait();
  if (kill(a, SIGUSR1) != 0) fail("root", "kill(A) errno", errno, 0);
  int st = 0;
  pid_t w = waitpid(a, &st, 0);
  if (w != a) fail("root", "waitpid(A)", w, a);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 3) fail("root", "A's status", st, 3 << 8);
  expect_bytes("root", "the file (A's write through its own open)", g_file, 1000, "AAAA");
  expect_bytes("root", "the memfd (A's write)", g_memfd, 2000, "BBBB");
  if (lseek(g_file, 0, SEEK_CUR) != 777) fail("root", "the file's offset after A's lseek", lseek(g_file, 0, SEEK_CUR), 777);
  if (lseek(g_memfd, 0, SEEK_CUR) != 50) fail("root", "the memfd's offset", lseek(g_memfd, 0, SEEK_CUR), 50);
  struct stat fs;
  if (fstat(g_file, &fs) != 0) fail("root", "fstat errno", errno, 0);
  if (fs.st_nlink != 0) fail("root", "the removed file's link count", (long)fs.st_nlink, 0);
  if ((fs.st_mode & 07777) != 0400) fail("root", "the removed file's mode", (long)(fs.st_mode & 07777), 0400);
  if (fs.st_size != (off_t)sizeof fill) fail("root", "the removed file's size", (long)fs.st_size, (long)sizeof fill);
  char buf[8] = {0};
  if (read(g_fifo, buf, 5) != 5 || memcmp(buf, "fifo2", 5) != 0) {
    printf("FAIL: root: read '%s' from the named pipe, not 'fifo2'\n", buf);
    exit(1);
  }
  struct stat named;
  if (fstat(g_fifo, &fs) != 0 || stat(fifo_path, &named) != 0 || fs.st_ino != named.st_ino || !S_ISFIFO(fs.st_mode))
    fail("root", "the named pipe's inode, by its path", (long)named.st_ino, (long)fs.st_ino);
  unlink(fifo_path);
  memset(buf, 0, sizeof buf);
  if (read(g_removed_fifo, buf, 5) != 5 || memcmp(buf, "gone1", 5) != 0) {
    printf("FAIL: root: read '%s' from the removed named pipe, not 'gone1'\n", buf);
    exit(1);
  }
  if (fstat(g_removed_fifo, &fs) != 0 || fs.st_nlink != 0 || !S_ISFIFO(fs.st_mode))
    fail("root", "the removed named pipe's link count", (long)fs.st_nlink, 0);
  printf("PASS\n");
  return 0;
}
