/* Named pipes (FIFOs) through a checkpoint (driven by ckpt_never_silent_test.sh
 * like ckpt_never_silent: MODE in argv[1], "ready", SIGUSR1, then "OK MODE"
 * or "FAIL MODE: why"):
 *   fifo        a named pipe opened three times (read and write, read-only
 *               non-blocking with a dup, write-only) holding 70000 unread
 *               bytes in a 128 KiB pipe, and a removed one (mode 0640)
 *               holding a few: after the restore each descriptor is on the
 *               named pipe again (a new opener by its path reaches it), with
 *               its flags, the dup still one open file, the bytes in order,
 *               the removed one still removed, with its mode and bytes
 *   fifo_other  the named pipe is held by another process too (a grandchild,
 *               not a child): refused, and the pipe unharmed */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mode_fail.h"
#include "usr1_handshake.h"

enum { kBytes = 70000, kCapacity = 128 << 10 };

static char g_dir[64], g_named[96], g_removed[96];

static void cleanup(void) {
  unlink(g_named);
  unlink(g_removed);
  rmdir(g_dir);
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + i / 251); }

static void read_exactly(int fd, unsigned char* buf, size_t len, const char* what) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n <= 0) fail("%s: read %zu of %zu bytes: %s", what, got, len, n < 0 ? strerror(errno) : "end of file");
    got += (size_t)n;
  }
}

static void write_exactly(int fd, const unsigned char* buf, size_t len, const char* what) {
  size_t put = 0;
  while (put < len) {
    ssize_t n = write(fd, buf + put, len - put);
    if (n <= 0) fail("%s: wrote %zu of %zu bytes: %s", what, put, len, strerror(errno));
    put += (size_t)n;
  }
}

int main(int argc, char** argv) {
  if (argc != 2 || (strcmp(argv[1], "fifo") != 0 && strcmp(argv[1], "fifo_other") != 0)) {
    fprintf(stderr, "usage: ckpt_fifo fifo|fifo_other\n");
    return 2;
  }
  g_mode = argv[1];
  g_fail_cleanup = cleanup;
  signal(SIGUSR1, on_usr1);
  snprintf(g_dir, sizeof g_dir, "/tmp/ckpt_fifo.XXXXXX");
  if (mkdtemp(g_dir) == NULL) fail("mkdtemp: %s", strerror(errno));
  snprintf(g_named, sizeof g_named, "%s/named", g_dir);
  snprintf(g_removed, sizeof g_removed, "%s/removed", g_dir);
  if (mkfifo(g_named, 0600) != 0 || mkfifo(g_removed, 0600) != 0) fail("mkfifo: %s", strerror(errno));

  int rw = open(g_named, O_RDWR);
  int ro = open(g_named, O_RDONLY | O_NONBLOCK);
  int wo = open(g_named, O_WRONLY);
  if (rw < 0 || ro < 0 || wo < 0) fail("open %s: %s", g_named, strerror(errno));
  int ro_dup = dup(ro);
  if (fcntl(rw, F_SETPIPE_SZ, kCapacity) < kCapacity) fail("F_SETPIPE_SZ: %s", strerror(errno));
  static unsigned char data[kBytes], back[kBytes];
  for (size_t i = 0; i < kBytes; ++i) data[i] = pattern(i);
  write_exactly(wo, data, 40000, "named pipe");
  write_exactly(rw, data + 40000, kBytes - 40000, "named pipe");

  static const char kGhost[] = "bytes of a removed named pipe";
  int gone = open(g_removed, O_RDWR);
  if (gone < 0) fail("open %s: %s", g_removed, strerror(errno));
  write_exactly(gone, (const unsigned char*)kGhost, sizeof kGhost, "removed named pipe");
  if (fchmod(gone, 0640) != 0 || unlink(g_removed) != 0) fail("fchmod/unlink: %s", strerror(errno));

  pid_t main_pid = getpid();
  if (strcmp(g_mode, "fifo_other") == 0) {
    int gate[2];
    if (pipe(gate) != 0) fail("pipe: %s", strerror(errno));
    pid_t c = fork();
    if (c == 0) {
      if (fork() == 0) {
        /* Not a child of the main process: it holds the named pipe until
         * that one has ended. */
        close(gate[0]);
        int mine = open(g_named, O_RDONLY | O_NONBLOCK);
        if (mine < 0 || write(gate[1], "x", 1) != 1) _exit(1);
        close(gate[1]);
        while (kill(main_pid, 0) == 0) usleep(10000);
        _exit(0);
      }
      _exit(0);
    }
    close(gate[1]);
    char x;
    if (read(gate[0], &x, 1) != 1) fail("the grandchild did not open the named pipe");
    close(gate[0]);
    waitpid(c, NULL, 0);
  }

  ready_then_wait();

  struct stat named, st;
  if (stat(g_named, &named) != 0) fail("stat %s: %s", g_named, strerror(errno));
  int fds[] = {rw, ro, wo, ro_dup};
  for (int i = 0; i < 4; ++i) {
    if (fstat(fds[i], &st) != 0 || !S_ISFIFO(st.st_mode) || st.st_ino != named.st_ino || st.st_dev != named.st_dev)
      fail("fd %d is no longer on the named pipe %s", fds[i], g_named);
  }
  if (fcntl(rw, F_GETPIPE_SZ) != kCapacity) fail("capacity %d, not %d", fcntl(rw, F_GETPIPE_SZ), kCapacity);
  int want[] = {O_RDWR, O_RDONLY | O_NONBLOCK, O_WRONLY, O_RDONLY | O_NONBLOCK};
  for (int i = 0; i < 4; ++i) {
    int fl = fcntl(fds[i], F_GETFL) & (O_ACCMODE | O_NONBLOCK);
    if (fl != want[i]) fail("fd %d has flags 0%o, not 0%o", fds[i], fl, want[i]);
  }
  /* The dup is one open file with ro: a flag set on one shows on the other. */
  fcntl(ro_dup, F_SETFL, O_NONBLOCK | O_APPEND);
  if (!(fcntl(ro, F_GETFL) & O_APPEND)) fail("the dup of fd %d is no longer one open file with it", ro);
  fcntl(ro_dup, F_SETFL, O_NONBLOCK);
  read_exactly(ro, back, kBytes, "named pipe");
  if (memcmp(back, data, kBytes) != 0) fail("the named pipe's bytes came back wrong");
  if (read(ro, back, 1) != -1 || errno != EAGAIN) fail("the named pipe holds more than was written");
  /* A new opener by the path reaches the same pipe. */
  int late = open(g_named, O_WRONLY | O_NONBLOCK);
  if (late < 0 || write(late, "z", 1) != 1) fail("a new opener of %s: %s", g_named, strerror(errno));
  close(late);
  if (read(rw, back, 1) != 1 || back[0] != 'z') fail("a new opener's byte did not arrive");

  char link[128], path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", gone);
  ssize_t n = readlink(path, link, sizeof link - 1);
  link[n < 0 ? 0 : n] = '\0';
  char expect[128];
  snprintf(expect, sizeof expect, "%s (deleted)", g_removed);
  if (strcmp(link, expect) != 0) fail("the removed named pipe is %s, not %s", link, expect);
  if (fstat(gone, &st) != 0 || !S_ISFIFO(st.st_mode) || st.st_nlink != 0 || (st.st_mode & 07777) != 0640)
    fail("the removed named pipe: mode 0%o, %lu links", st.st_mode, (unsigned long)st.st_nlink);
  if (access(g_removed, F_OK) == 0) fail("%s exists again", g_removed);
  char ghost[sizeof kGhost];
  read_exactly(gone, (unsigned char*)ghost, sizeof kGhost, "removed named pipe");
  if (memcmp(ghost, kGhost, sizeof kGhost) != 0) fail("the removed named pipe's bytes came back wrong");
  cleanup();
  printf("OK %s\n", g_mode);
  return 0;
}
