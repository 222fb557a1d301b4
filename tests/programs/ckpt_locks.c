/* File locks across checkpoint and restart, with a second process to look.
 *
 *   ckpt_locks hold FILE    opens FILE three times and takes a POSIX write
 *                           lock on bytes 0-99 (fd 3), an OFD write lock on
 *                           bytes 200-299 (fd 4) and an exclusive flock
 *                           (fd 5); prints "locked PID" and waits in
 *                           sigsuspend for SIGUSR1 (the test's handshake; it
 *                           is checkpointed and restarted meanwhile), then
 *                           prints "done" and exits 0.
 *   ckpt_locks probe FILE   the second process: for each of the three locks,
 *                           prints "posix held by PID" (F_GETLK), "ofd held"
 *                           (F_OFD_GETLK) and "flock held" (flock LOCK_NB
 *                           fails), or "... free"; exits 0 if all three are
 *                           held, 1 if not.
 *   ckpt_locks grab KIND FILE   takes KIND (posix, ofd or flock) of the same
 *                           lock, prints "grabbed PID" and waits for SIGTERM
 *                           (it holds the lock while it waits). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int open_at(const char* path, int flags, int want) {
  int fd = open(path, flags | O_CREAT, 0600);
  if (fd < 0 || (fd != want && (dup2(fd, want) < 0 || close(fd) != 0))) {
    printf("FAIL open %s: %s\n", path, strerror(errno));
    exit(1);
  }
  return want;
}

static struct flock range(short type, off_t start, off_t len) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fl;
}

static int take(const char* kind, int fd) {
  struct flock fl;
  if (strcmp(kind, "posix") == 0) {
    fl = range(F_WRLCK, 0, 100);
    return fcntl(fd, F_SETLK, &fl);
  }
  if (strcmp(kind, "ofd") == 0) {
    fl = range(F_WRLCK, 200, 100);
    return fcntl(fd, F_OFD_SETLK, &fl);
  }
  return flock(fd, LOCK_EX | LOCK_NB);
}

static void wait_for(int sig) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, sig);
  sigprocmask(SIG_BLOCK, &block, &old);
  int got = 0;
  sigwait(&block, &got);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "hold") == 0) {
    const char* kinds[] = {"posix", "ofd", "flock"};
    for (int i = 0; i < 3; ++i) {
      int fd = open_at(argv[2], O_RDWR, 3 + i);
      if (take(kinds[i], fd) != 0) {
        printf("FAIL %s lock: %s\n", kinds[i], strerror(errno));
        return 1;
      }
    }
    printf("locked %d\n", (int)getpid());
    wait_for(SIGUSR1);
    printf("done\n");
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "probe") == 0) {
    int fd = open_at(argv[2], O_RDWR, 3);
    int held = 0;
    struct flock fl = range(F_WRLCK, 0, 100);
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
      printf("posix held by %d\n", (int)fl.l_pid);
      ++held;
    } else {
      printf("posix free\n");
    }
    fl = range(F_WRLCK, 200, 100);
    if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
      printf("ofd held\n");
      ++held;
    } else {
      printf("ofd free\n");
    }
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      printf("flock held\n");
      ++held;
    } else {
      printf("flock free\n");
    }
    return held == 3 ? 0 : 1;
  }
  if (argc == 4 && strcmp(argv[1], "grab") == 0) {
    int fd = open_at(argv[3], O_RDWR, 3);
    if (take(argv[2], fd) != 0) {
      printf("FAIL grab %s: %s\n", argv[2], strerror(errno));
      return 1;
    }
    printf("grabbed %d\n", (int)getpid());
    wait_for(SIGTERM);
    return 0;
  }
  fprintf(stderr, "usage: ckpt_locks hold FILE | probe FILE | grab posix|ofd|flock FILE\n");
  return 2;
}
