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
 *   ghost     a file deleted while open on two descriptors, with a hole: its
 *             contents, size, mode, mtime, offsets, no name, one file for both
 *   memfd     a sealed memfd: name, contents, size, seals, mode, offset
 *   opath     O_PATH descriptors on a file and (O_NOFOLLOW) on a symlink
 *   signalfd  a non-blocking signalfd for SIGUSR2 with one queued: it reads it
 *   eventfd   a semaphore eventfd with count 7: seven reads of 1, then EAGAIN
 *   timerfd   an hourly timer (time left, interval) and an hourly one that
 *             fired once, not read yet: it reads 1 and stays armed
 *   auxv      /proc/self/auxv must read as it did before
 *   procpid   an OFD lock, and /proc/<getpid()>/ (fdinfo with the lock, status,
 *             exe, the directory itself, fd) must be this process's
 *   nnp       PR_SET_NO_NEW_PRIVS must still be set
 *   sigqueue  blocked signals queued with payloads, to the process and to a
 *             second thread, must be taken where they were sent, in order
 *   rlimit    the hard limit of open files must come back (the test restarts
 *             it under a lower one: refused unless the restorer may raise it)
 *   dup       descriptors sharing one open file: a file dup()ed and
 *             F_DUPFD_CLOEXEC-ed, a non-blocking eventfd dup()ed: one offset,
 *             one set of status flags, one count, each its own FD_CLOEXEC
 *   inotify   watches on a directory (added by a relative path), on a file
 *             (IN_ONESHOT) and one removed: no events come back, new ones
 *             come with their watch's number, the next number is the next
 *   pipe2     a pipe's write end opened again through /proc/self/fd (flags
 *             of its own: only the first is non-blocking), its read end
 *             dup()ed, a byte unread, its capacity set to 8 KiB: two opens,
 *             one shared, the byte there, the capacity kept
 *   pipefull  three pipes full of unread bytes, past what two fd records
 *             hold: 1 MiB in a 1 MiB pipe, 100,003 bytes in a 256 KiB one
 *             whose write end has the lower number, exactly 64 KiB in a
 *             default one: every byte back in order, capacities kept
 *   tids      a second thread's tid kept from before (gettid() and
 *             syscall(SYS_gettid)): each thread's gettid() is what it was,
 *             the leader's is getpid(), and the kept tid still names the
 *             thread for kcmp (KCMP_FS, as zdtm clone_fs), tgkill (libc and
 *             syscall), sched_setaffinity and /proc/<tid>/comm
 *   exe       readlink of /proc/self/exe, /proc/thread-self/exe and
 *             /proc/<getpid()>/exe names the program, not the restorer (as
 *             zdtm selfexe00), also into a buffer too short for it
 *   sockets   a non-blocking TCP listener on 127.0.0.1 (backlog 7,
 *             SO_REUSEADDR, TCP_NODELAY, SO_RCVBUF), an unbound TCP socket
 *             (SO_KEEPALIVE, TCP_KEEPIDLE), a UDP socket connected to a
 *             second bound one, a unix datagram socket bound to a path and a
 *             unix stream listener on an abstract name: each keeps its
 *             address, options and flags, and takes new traffic
 *   lockpid   a flock and a POSIX lock: their lines in /proc/self/fdinfo/N
 *             and in /proc/locks name getpid() as owner (zdtm file_locks01)
 *   ghost_wronly a deleted file open only for writing (70000 bytes): its
 *             contents, flags and offset
 *   epoll_reused an epoll watch on an eventfd whose descriptor number was closed
 *             and taken by another file (the eventfd lives on under a dup):
 *             it still reports the eventfd, with its data word
 *   rmdir, cwdgone a descriptor on a removed directory, a removed working
 *             directory: each on a removed directory of that name and mode
 *   waits     a thread in poll (1 h timeout, on a pipe) and one in nanosleep
 *             (10 s) when checkpointed: neither may end with EINTR; the poll
 *             must see the byte written after the restore
 * Refused (the test expects the reason, then signals the same process):
 *   child     a live child            zombie    an ended child, not waited for
 *   shm_other shared memory a grandchild (not a child) still maps
 *   guard     a guard page (MADV_GUARD_INSTALL; "SKIP" where the kernel has none)
 *   opath_gone an O_PATH descriptor on a removed file
 *   lease     a read lease on a file (F_SETLEASE)
 *   seccomp   a seccomp filter    semundo   a semop with SEM_UNDO
 *   sysvshm   System V shared memory attached
 *   memfd_map a shared mapping of a memfd
 *   signalfd_other a signalfd another process (not a child) holds too
 *   inotify_raw an inotify watch added with syscall(2) (its path unknown)
 *   inotify_unread an inotify instance with an event not read yet
 *   fanotify, pidfd (of its parent), io_uring:
 *             a descriptor of that kind ("SKIP" where it cannot be made)
 *   aio       an AIO context (io_setup)   pty   a pseudo-terminal master
 *   cwd_taken a working directory that was removed, its name taken by a new one
 *   thread_files a thread made by clone() without CLONE_FILES (a descriptor
 *             table of its own)
 *   procfd    a file in /proc open    ghostmap  a private mapping of a deleted
 *             file that a descriptor has open for writing
 *   ghost_other a deleted file that another process (not a child) holds too
 *   tcp_conn  a connected TCP socket     udp_unread a datagram not read yet
 *   ghost_wronly_locked the same, with a POSIX lock on it (reading it
 *             through a new open would release the lock): the lock stays
 *   epoll_reused_pipe the same on a pipe (pipes are made after the point
 *             where a restore could still juggle numbers)
 *   socketpair a unix socketpair holding a descriptor in flight (SCM_RIGHTS):
 *             after the refusal the descriptor and the bytes still arrive
 * Without a checkpoint:
 *   clone     a child of clone() without CLONE_VM must see its own pid */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mode_fail.h"
#include "usr1_handshake.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif


/* A system call straight to the kernel, past libc and the agent's
 * syscall(2) (which shows the virtual pid and tids): the kernel's own view. */
static long kernel_syscall1(long n, long a) {
#if defined(__x86_64__)
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a) : "rcx", "r11", "memory");
  return ret;
#else
  return syscall(n, a);
#endif
}

static void skip(const char* why) {
  printf("SKIP %s: %s\n", g_mode, why);
  fflush(stdout);
  exit(0);
}

static void ok(void) {
  printf("OK %s\n", g_mode);
  fflush(stdout);
  exit(0);
}

/* tids: the second thread reports its tid, then, each time it is asked
 * (a byte on g_tid_ask), its gettid() and the last SIGUSR2 it took. */
static int g_tid_ask[2], g_tid_tell[2];
static volatile pid_t g_usr2_tid = 0;

static void on_usr2_tid(int sig) {
  (void)sig;
  g_usr2_tid = gettid();
}

static void* tid_thread(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "kept-tid");
  sigset_t usr1; /* SIGUSR1 is the main thread's */
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  pid_t both[2] = {gettid(), (pid_t)syscall(SYS_gettid)};
  if (write(g_tid_tell[1], both, sizeof both) != sizeof both) return NULL;
  char c;
  for (;;) {
    ssize_t n = read(g_tid_ask[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) break;
    pid_t now[2] = {gettid(), g_usr2_tid};
    if (write(g_tid_tell[1], now, sizeof now) != sizeof now) break;
  }
  return NULL;
}

/* Asks the tid thread; its answer: its gettid() and the last SIGUSR2's. */
static void ask_tid_thread(pid_t out[2]) {
  if (write(g_tid_ask[1], "?", 1) != 1 || read(g_tid_tell[0], out, 2 * sizeof(pid_t)) != 2 * sizeof(pid_t))
    fail("the tid thread does not answer: %s", strerror(errno));
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

static int is_mode(const char* m) { return strcmp(g_mode, m) == 0; }

/* A descriptor of one of the kinds a restore cannot give back yet; -1 and a
 * SKIP line where this kernel or user cannot make one. */
static int own_table_thread(void* arg) {
  (void)arg;
  for (;;) syscall(SYS_pause);
  return 0;
}

/* fd is on the directory `name` was, removed (restored: an empty one made
 * again and removed), with its mode. */
static void expect_removed_dir(int fd, const char* name) {
  struct stat st;
  char link[300], path[64], want[300];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  link[n < 0 ? 0 : n] = '\0';
  snprintf(want, sizeof want, "%s (deleted)", name);
  if (strcmp(link, want) != 0) fail("fd %d is on %s, not %s", fd, link, want);
  if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_nlink != 0 || (st.st_mode & 07777) != 0700)
    fail("fd %d: mode 0%o, %lu links: not the removed directory", fd, st.st_mode, (unsigned long)st.st_nlink);
  if (access(name, F_OK) == 0) fail("%s exists again", name);
}

static int make_unrestorable_fd(void) {
  if (is_mode("inotify_raw") || is_mode("inotify_unread")) {
    int fd = inotify_init1(0);
    if (fd < 0) return fd;
    if (is_mode("inotify_raw")) {  /* past libc: the agent never sees its path */
      if (syscall(SYS_inotify_add_watch, fd, "/", IN_ACCESS) < 0) return -1;
    } else {  /* an event queued, not read */
      if (inotify_add_watch(fd, "/", IN_OPEN) < 0) return -1;
      close(open("/", O_RDONLY | O_DIRECTORY));
    }
    return fd;
  }
  if (is_mode("fanotify")) {
    int fd = (int)syscall(SYS_fanotify_init, 0 /* FAN_CLASS_NOTIF */, O_RDONLY);
    if (fd < 0) skip("fanotify_init is not allowed here");
    return fd;
  }
  if (is_mode("pidfd")) return (int)syscall(SYS_pidfd_open, getppid(), 0); /* not in the checkpoint */
  if (is_mode("io_uring")) {
    unsigned char params[120];
    memset(params, 0, sizeof params);
    int fd = (int)syscall(SYS_io_uring_setup, 4, params);
    if (fd < 0) skip("io_uring_setup is not allowed here");
    return fd;
  }
  if (is_mode("pty")) return posix_openpt(O_RDWR | O_NOCTTY);
  if (is_mode("procfd")) return open("/proc/self/status", O_RDONLY);
  return -2;
}

enum { kQueued = 3 };
static pthread_barrier_t g_barrier;

/* sigqueue's second thread: waits for its own queued signals after the
 * restore, in order and with their payloads. */
static void* sigqueue_thread(void* arg) {
  int* bad = arg;
  sigset_t set;
  sigemptyset(&set);
  /* The test's SIGUSR1 is the main thread's (ready_then_wait): taken here
   * while the main thread was between two sigsuspend calls, it left that
   * one asleep (seen once under load, after a restore). */
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  sigemptyset(&set);
  sigaddset(&set, SIGRTMIN + 3);
  pthread_barrier_wait(&g_barrier); /* its signals are queued */
  pthread_barrier_wait(&g_barrier); /* after the restore */
  struct timespec none = {0, 0};
  for (int i = 0; i < kQueued; ++i) {
    siginfo_t si;
    if (sigtimedwait(&set, &si, &none) != SIGRTMIN + 3 || si.si_value.sival_int != 200 + i ||
        si.si_code != SI_QUEUE || si.si_pid != getpid())
      *bad = 1 + i;
  }
  if (sigtimedwait(&set, NULL, &none) >= 0) *bad = 9;
  return NULL;
}


/* A process that holds everything this one has open, but is not its child
 * (a grandchild whose parent has ended); it ends once this one has. */
static pid_t start_holder(void) {
  int gate[2];
  pid_t holder = 0;
  if (pipe(gate) != 0) fail("pipe: %s", strerror(errno));
  pid_t main_pid = getpid(), c = fork();
  if (c == 0) {
    pid_t g = fork();
    if (g == 0) {
      while (kill(main_pid, 0) == 0) usleep(10000);
      _exit(0);
    }
    _exit(write(gate[1], &g, sizeof g) == sizeof g ? 0 : 1);
  }
  if (waitpid(c, NULL, 0) != c || read(gate[0], &holder, sizeof holder) != sizeof holder)
    fail("the holder did not start");
  close(gate[0]);
  close(gate[1]);
  return holder;
}

static int g_wait_pipe[2];
static volatile long g_waiter_tid[2];

/* waits: the poll thread (0) and the sleep thread (1); each returns what
 * its wait returned, or -errno. */
static void* waiter(void* arg) {
  long which = (long)arg;
  /* SIGUSR1 is the main thread's: taken here, it would set g_go while the
   * main thread goes back into sigsuspend for good (a restored main thread
   * re-checks g_go, then waits, in any order with this thread's handler). */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  g_waiter_tid[which] = syscall(SYS_gettid);
  if (which == 0) {
    struct pollfd p = {g_wait_pipe[0], POLLIN, 0};
    int r = poll(&p, 1, 3600 * 1000);
    return (void*)(long)(r < 0 ? -errno : (p.revents & POLLIN) ? r : 100);
  }
  struct timespec ten = {10, 0};
  int r = nanosleep(&ten, NULL);
  return (void*)(long)(r < 0 ? -errno : r);
}

/* Until thread tid is blocked in one of the two system calls. */
static void wait_in_syscall(long tid, long a, long b) {
  for (;;) {
    char path[64], text[64] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
      if (read(fd, text, sizeof text - 1) < 0) text[0] = 0;
      close(fd);
    }
    long nr = strtol(text, NULL, 10);
    if (text[0] >= '0' && text[0] <= '9' && (nr == a || nr == b)) return;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
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
    if (kernel_syscall1(SYS_getsid, 0) != kernel_syscall1(SYS_getpid, 0)) fail("the kernel's session is not its own");
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
  if (is_mode("dup")) {
    if (mkdir(tmpdir, 0700) != 0) fail("mkdir %s: %s", tmpdir, strerror(errno));
    char file[300];
    snprintf(file, sizeof file, "%s/f", tmpdir);
    int fd = open(file, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || write(fd, "abc", 3) != 3) fail("creating %s: %s", file, strerror(errno));
    int twin = dup(fd), high = fcntl(fd, F_DUPFD_CLOEXEC, 20);
    int ev = eventfd(5, EFD_NONBLOCK), ev_twin = dup(ev);
    if (twin < 0 || high < 0 || ev < 0 || ev_twin < 0) fail("setting up: %s", strerror(errno));
    ready_then_wait();
    unlink(file);
    rmdir(tmpdir);
    long self = syscall(SYS_getpid);  /* the kernel's pid: kcmp takes those */
    for (int k = 0; k < 3; ++k) {
      int a = k == 0 ? twin : k == 1 ? high : ev_twin, b = k == 2 ? ev : fd;
      if (syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, a, b) != 0)
        fail("fds %d and %d no longer share one open file", a, b);
    }
    if (lseek(twin, 0, SEEK_CUR) != 3 || lseek(high, 0, SEEK_CUR) != 3) fail("the offsets are not 3");
    if (write(fd, "d", 1) != 1) fail("write: %s", strerror(errno));
    if (lseek(twin, 0, SEEK_CUR) != 4 || lseek(high, 0, SEEK_CUR) != 4)
      fail("a write through one descriptor did not move the others' offset");
    if (fcntl(twin, F_SETFL, O_APPEND) != 0 || !(fcntl(high, F_GETFL) & O_APPEND))
      fail("O_APPEND set through one descriptor is not seen through another");
    if (fcntl(fd, F_GETFD) != 0 || fcntl(twin, F_GETFD) != 0 || fcntl(high, F_GETFD) != FD_CLOEXEC)
      fail("FD_CLOEXEC changed (%d %d %d)", fcntl(fd, F_GETFD), fcntl(twin, F_GETFD), fcntl(high, F_GETFD));
    uint64_t count = 0;
    if (read(ev, &count, 8) != 8 || count != 5) fail("the eventfd's count is not 5");
    if (read(ev_twin, &count, 8) != -1 || errno != EAGAIN) fail("the dup of the eventfd has a count of its own");
    ok();
  }
  if (is_mode("inotify")) {
    /* Watches on a directory (by a relative path: the process is in / again
     * when checkpointed), on a file, on one removed (its number is not given
     * again), all before an IN_ONESHOT one; the IN_IGNORED of the removal read. */
    char dir[260], file[300], gone[300];
    snprintf(dir, sizeof dir, "%s", tmpdir);
    snprintf(file, sizeof file, "%s/a", tmpdir);
    snprintf(gone, sizeof gone, "%s/gone", tmpdir);
    if (mkdir(dir, 0700) != 0) fail("mkdir %s: %s", dir, strerror(errno));
    int a = open(file, O_RDWR | O_CREAT, 0600), g = open(gone, O_RDWR | O_CREAT, 0600);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (a < 0 || g < 0 || in < 0 || chdir(dir) != 0) fail("setting up: %s", strerror(errno));
    int wd_dir = inotify_add_watch(in, ".", IN_CREATE);
    if (chdir("/") != 0) fail("chdir /: %s", strerror(errno));
    int wd_gone = inotify_add_watch(in, gone, IN_ATTRIB);
    int wd_file = inotify_add_watch(in, file, IN_MODIFY | IN_ONESHOT);
    if (wd_dir < 0 || wd_gone < 0 || wd_file < 0 || inotify_rm_watch(in, wd_gone) != 0)
      fail("watching: %s", strerror(errno));
    char buf[4096] __attribute__((aligned(8)));
    while (read(in, buf, sizeof buf) > 0) {
    }
    ready_then_wait();
    if (read(in, buf, sizeof buf) != -1 || errno != EAGAIN) fail("events came back that were not there");
    if (fcntl(in, F_GETFD) != FD_CLOEXEC || !(fcntl(in, F_GETFL) & O_NONBLOCK)) fail("the flags changed");
    char made[320];
    snprintf(made, sizeof made, "%s/made", dir);
    int m = open(made, O_RDWR | O_CREAT, 0600);
    if (m < 0 || write(a, "x", 1) != 1 || write(a, "y", 1) != 1) fail("touching: %s", strerror(errno));
    ssize_t n = read(in, buf, sizeof buf);
    int seen_create = 0, seen_modify = 0;
    for (ssize_t at = 0; n > 0 && at < n;) {
      const struct inotify_event* e = (const struct inotify_event*)(buf + at);
      if (e->wd == wd_dir && (e->mask & IN_CREATE) && strcmp(e->name, "made") == 0) ++seen_create;
      else if (e->wd == wd_file && (e->mask & IN_MODIFY)) ++seen_modify;
      else if (e->wd == wd_file && (e->mask & IN_IGNORED)) {
      } /* the end of the one-shot watch */
      else fail("an event of watch %d, mask %x", e->wd, e->mask);
      at += (ssize_t)sizeof *e + e->len;
    }
    if (seen_create != 1 || seen_modify != 1)
      fail("events after the restore: %d creates in the directory, %d modifies of the one-shot file (want 1, 1)",
           seen_create, seen_modify);
    int next = inotify_add_watch(in, made, IN_ATTRIB);
    if (next != wd_file + 1) fail("a new watch is number %d, not %d", next, wd_file + 1);
    close(m);
    unlink(made);
    unlink(file);
    unlink(gone);
    rmdir(dir);
    ok();
  }
  if (is_mode("tcp_conn") || is_mode("udp_unread") || is_mode("socketpair")) {
    int a = -1, b = -1;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    if (is_mode("socketpair")) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) fail("socketpair: %s", strerror(errno));
      a = sv[0];
      /* "ab", then "cd" with a descriptor on /dev/null, then "ef". */
      int devnull = open("/dev/null", O_WRONLY);
      char control[CMSG_SPACE(sizeof(int))];
      struct iovec iov = {"cd", 2};
      struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
      struct cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &devnull, sizeof(int));
      if (devnull < 0 || write(sv[1], "ab", 2) != 2 || sendmsg(sv[1], &m, 0) != 2 || write(sv[1], "ef", 2) != 2)
        fail("setting up: %s", strerror(errno));
      close(devnull);
      ready_then_wait();
      char got[8];
      int passed = -1;
      m.msg_controllen = sizeof control;
      iov.iov_base = got;
      iov.iov_len = sizeof got;
      ssize_t n1 = read(a, got, 2);
      ssize_t n2 = recvmsg(a, &m, 0);
      c = CMSG_FIRSTHDR(&m);
      if (c != NULL && c->cmsg_type == SCM_RIGHTS) memcpy(&passed, CMSG_DATA(c), sizeof(int));
      struct stat st;
      if (n1 != 2 || n2 != 2 || memcmp(got, "cd", 2) != 0 || passed < 0 || fstat(passed, &st) != 0 ||
          !S_ISCHR(st.st_mode) || read(a, got, 8) != 2 || memcmp(got, "ef", 2) != 0)
        fail("after the refusal the queue is not as it was (%zd, %zd, fd %d)", n1, n2, passed);
      ok();
    } else if (is_mode("udp_unread")) {
      a = socket(AF_INET, SOCK_DGRAM, 0);
      b = socket(AF_INET, SOCK_DGRAM, 0);
      if (bind(a, (struct sockaddr*)&in, sizeof in) != 0 || getsockname(a, (struct sockaddr*)&in, &len) != 0 ||
          sendto(b, "x", 1, 0, (struct sockaddr*)&in, sizeof in) != 1)
        fail("setting up: %s", strerror(errno));
      close(b);
      struct pollfd p = {a, POLLIN, 0};
      if (poll(&p, 1, -1) != 1) fail("poll: %s", strerror(errno));
    } else {
      int l = socket(AF_INET, SOCK_STREAM, 0);
      a = socket(AF_INET, SOCK_STREAM, 0);
      if (bind(l, (struct sockaddr*)&in, sizeof in) != 0 || listen(l, 1) != 0 ||
          getsockname(l, (struct sockaddr*)&in, &len) != 0 || connect(a, (struct sockaddr*)&in, sizeof in) != 0 ||
          (b = accept(l, NULL, NULL)) < 0)
        fail("setting up: %s", strerror(errno));
      close(l);
    }
    ready_then_wait();
    int kept = 0;
    socklen_t klen = sizeof kept;
    if (getsockopt(a, SOL_SOCKET, SO_TYPE, &kept, &klen) != 0) fail("fd %d is gone after the refusal", a);
    ok();
  }
  if (is_mode("epoll_reused") || is_mode("epoll_reused_pipe")) {
    /* The watched file (an eventfd; a pipe's read end) lives on under a
     * dup, its first number taken by /dev/null. */
    int ep = epoll_create1(0), e[2] = {-1, -1};
    int on_pipe = is_mode("epoll_reused_pipe");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    if (on_pipe ? pipe(e) != 0 : (e[0] = eventfd(0, 0)) < 0) fail("setting up: %s", strerror(errno));
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e[0], &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
    int kept = dup(e[0]);
    close(e[0]);
    if (open("/dev/null", O_RDONLY) != e[0]) fail("/dev/null did not take the watched number");
    ready_then_wait();
    uint64_t one = 1;
    if ((on_pipe ? write(e[1], "x", 1) != 1 : write(kept, &one, 8) != 8) || epoll_wait(ep, &ev, 1, -1) != 1 ||
        ev.data.u64 != 7)
      fail("the watch no longer reports its file");
    ok();
  }
  if (is_mode("sockets")) {
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, idle = 77, rcvbuf = 12345;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int idle_tcp = socket(AF_INET, SOCK_STREAM, 0);
    int udp = socket(AF_INET, SOCK_DGRAM, 0), udp_peer = socket(AF_INET, SOCK_DGRAM, 0);
    int named = socket(AF_UNIX, SOCK_DGRAM, 0), abstract = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || idle_tcp < 0 || udp < 0 || udp_peer < 0 || named < 0 || abstract < 0)
      fail("socket: %s", strerror(errno));
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0 ||
        bind(listener, (struct sockaddr*)&lo, sizeof lo) != 0 || listen(listener, 7) != 0 ||
        setsockopt(idle_tcp, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0 ||
        setsockopt(idle_tcp, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
        bind(udp, (struct sockaddr*)&lo, sizeof lo) != 0 || bind(udp_peer, (struct sockaddr*)&lo, sizeof lo) != 0)
      fail("setting up the inet sockets: %s", strerror(errno));
    struct sockaddr_in at[3];
    socklen_t len = sizeof at[0];
    int inet[3] = {listener, udp, udp_peer};
    for (int i = 0; i < 3; ++i) {
      len = sizeof at[i];
      if (getsockname(inet[i], (struct sockaddr*)&at[i], &len) != 0) fail("getsockname: %s", strerror(errno));
    }
    if (connect(udp, (struct sockaddr*)&at[2], sizeof at[2]) != 0) fail("connect udp: %s", strerror(errno));
    if (mkdir(tmpdir, 0700) != 0) fail("mkdir %s: %s", tmpdir, strerror(errno));
    struct sockaddr_un path = {.sun_family = AF_UNIX}, abs = {.sun_family = AF_UNIX};
    if (strlen(tmpdir) + sizeof "/dgram" > sizeof path.sun_path) fail("%s is too long for a socket path", tmpdir);
    memcpy(path.sun_path, tmpdir, strlen(tmpdir));
    memcpy(path.sun_path + strlen(tmpdir), "/dgram", sizeof "/dgram");
    snprintf(abs.sun_path + 1, sizeof abs.sun_path - 1, "never_silent.%d", (int)getpid());
    socklen_t abs_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abs.sun_path + 1));
    if (bind(named, (struct sockaddr*)&path, sizeof path) != 0 || bind(abstract, (struct sockaddr*)&abs, abs_len) != 0 ||
        listen(abstract, 3) != 0)
      fail("setting up the unix sockets: %s", strerror(errno));
    int got_rcvbuf = 0;
    len = sizeof got_rcvbuf;
    getsockopt(listener, SOL_SOCKET, SO_RCVBUF, &got_rcvbuf, &len);
    ready_then_wait();
    struct sockaddr_in now;
    for (int i = 0; i < 3; ++i) {
      len = sizeof now;
      if (getsockname(inet[i], (struct sockaddr*)&now, &len) != 0 || memcmp(&now, &at[i], sizeof now) != 0)
        fail("inet socket %d lost its address (port %d, was %d)", i, ntohs(now.sin_port), ntohs(at[i].sin_port));
    }
    int v = 0;
    len = sizeof v;
    if (getsockopt(listener, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v != 1) fail("the listener does not listen");
    if (getsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &v, &len) != 0 || v != 1) fail("SO_REUSEADDR is gone");
    if (getsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0 || v != 1) fail("TCP_NODELAY is gone");
    if (getsockopt(listener, SOL_SOCKET, SO_RCVBUF, &v, &len) != 0 || v != got_rcvbuf)
      fail("SO_RCVBUF is %d, not %d", v, got_rcvbuf);
    if (!(fcntl(listener, F_GETFL) & O_NONBLOCK) || (fcntl(udp, F_GETFL) & O_NONBLOCK)) fail("O_NONBLOCK moved");
    if (getsockopt(idle_tcp, SOL_SOCKET, SO_KEEPALIVE, &v, &len) != 0 || v != 1) fail("SO_KEEPALIVE is gone");
    if (getsockopt(idle_tcp, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len) != 0 || v != idle) fail("TCP_KEEPIDLE is %d", v);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr*)&at[0], sizeof at[0]) != 0) fail("connect to the listener: %s", strerror(errno));
    struct pollfd p = {listener, POLLIN, 0};
    if (poll(&p, 1, -1) != 1) fail("poll the listener: %s", strerror(errno));
    int conn = accept(listener, NULL, NULL);
    if (conn < 0 || write(client, "t", 1) != 1) fail("accept: %s", strerror(errno));
    char c = 0;
    if (read(conn, &c, 1) != 1 || c != 't') fail("the accepted connection does not carry data");
    if (send(udp, "u", 1, 0) != 1 || recv(udp_peer, &c, 1, 0) != 1 || c != 'u')
      fail("the connected UDP socket does not reach its peer: %s", strerror(errno));
    int sender = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (sendto(sender, "n", 1, 0, (struct sockaddr*)&path, sizeof path) != 1 || recv(named, &c, 1, 0) != 1 || c != 'n')
      fail("the unix datagram socket at %s does not receive: %s", path.sun_path, strerror(errno));
    int uclient = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(uclient, (struct sockaddr*)&abs, abs_len) != 0) fail("connect to the abstract name: %s", strerror(errno));
    int uconn = accept(abstract, NULL, NULL);
    if (uconn < 0) fail("accept on the abstract listener: %s", strerror(errno));
    unlink(path.sun_path);
    rmdir(tmpdir);
    ok();
  }
  if (is_mode("lockpid")) {
    if (mkdir(tmpdir, 0700) != 0) fail("mkdir %s: %s", tmpdir, strerror(errno));
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/flock", tmpdir);
    snprintf(b, sizeof b, "%s/posix", tmpdir);
    int fa = open(a, O_RDWR | O_CREAT, 0600), fb = open(b, O_RDWR | O_CREAT, 0600);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    if (fa < 0 || fb < 0 || flock(fa, LOCK_EX) != 0 || fcntl(fb, F_SETLK, &fl) != 0)
      fail("setting up: %s", strerror(errno));
    ready_then_wait();
    int fds[2] = {fa, fb};
    for (int i = 0; i < 2; ++i) {
      char path[64], line[256];
      snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fds[i]);
      FILE* f = fopen(path, "r");
      int owner = 0, found = 0;
      while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "lock:\t%*d: %*s %*s %*s %d", &owner) == 1) found = 1;
      if (f != NULL) fclose(f);
      if (!found || owner != getpid()) fail("%s names lock owner %d, not getpid() %d", path, owner, getpid());
    }
    FILE* locks = fopen("/proc/locks", "r");
    char line[256];
    int mine = 0, owner = 0;
    while (locks != NULL && fgets(line, sizeof line, locks) != NULL)
      if (sscanf(line, "%*d: %*s %*s %*s %d", &owner) == 1 && owner == getpid()) ++mine;
    if (locks != NULL) fclose(locks);
    if (mine != 2) fail("/proc/locks has %d locks of getpid() %d, not 2", mine, getpid());
    unlink(a);
    unlink(b);
    rmdir(tmpdir);
    ok();
  }
  if (is_mode("exe")) {
    char before[PATH_MAX], after[PATH_MAX], own[64];
    ssize_t n = readlink("/proc/self/exe", before, sizeof before - 1);
    if (n <= 0) fail("readlink /proc/self/exe: %s", strerror(errno));
    before[n] = '\0';
    snprintf(own, sizeof own, "/proc/%d/exe", getpid());
    ready_then_wait();
    const char* links[] = {"/proc/self/exe", "/proc/thread-self/exe", own};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; ++i) {
      ssize_t m = readlink(links[i], after, sizeof after - 1);
      if (m <= 0) fail("readlink %s: %s", links[i], strerror(errno));
      after[m] = '\0';
      if (strcmp(before, after) != 0) fail("%s names %s, not %s as before", links[i], after, before);
    }
    char cut[4];
    if (readlink("/proc/self/exe", cut, sizeof cut) != (ssize_t)sizeof cut || memcmp(cut, before, sizeof cut) != 0)
      fail("readlink into 4 bytes gave '%.4s', not the first 4 of %s", cut, before);
    ok();
  }
  if (is_mode("tids")) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2_tid;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    pthread_t th;
    pid_t kept[2];
    if (pipe(g_tid_ask) != 0 || pipe(g_tid_tell) != 0 || pthread_create(&th, NULL, tid_thread, NULL) != 0 ||
        read(g_tid_tell[0], kept, sizeof kept) != sizeof kept)
      fail("setting up: %s", strerror(errno));
    if (kept[0] != kept[1]) fail("gettid() %d and syscall(SYS_gettid) %d differ before", kept[0], kept[1]);
    const pid_t main_tid = gettid(), pid = getpid();
    if (main_tid != pid) fail("the leader's tid %d is not the pid %d before", main_tid, pid);
    /* The robust futex list and nice value read by the leader's own tid
     * (CRIU's zdtm futex-rl): another process's after a restore, were the
     * kept tid not the leader's again. */
    void* robust_before = NULL;
    size_t robust_len_before = 0;
    if (syscall(SYS_get_robust_list, main_tid, &robust_before, &robust_len_before) != 0)
      fail("get_robust_list: %s", strerror(errno));
    /* Each thread's nice value and policy come back (the second thread at
     * nice 3 and SCHED_BATCH, the leader one above where it started). */
    errno = 0;
    const int leader_nice = getpriority(PRIO_PROCESS, 0) + 1;
    struct sched_param none = {0};
    if (errno != 0 || setpriority(PRIO_PROCESS, (id_t)kept[0], 3) != 0 ||
        sched_setscheduler(kept[0], SCHED_BATCH, &none) != 0 || setpriority(PRIO_PROCESS, 0, leader_nice) != 0)
      fail("setting nice values and SCHED_BATCH: %s", strerror(errno));
    ready_then_wait();
    void* robust_after = NULL;
    size_t robust_len_after = 0;
    if (syscall(SYS_get_robust_list, main_tid, &robust_after, &robust_len_after) != 0 ||
        robust_after != robust_before || robust_len_after != robust_len_before)
      fail("get_robust_list of the kept leader tid: %p/%zu, not %p/%zu", robust_after, robust_len_after,
           robust_before, robust_len_before);
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, (id_t)kept[0]), leader_now = getpriority(PRIO_PROCESS, 0);
    int policy_now = sched_getscheduler(kept[0]);
    if (errno != 0 || nice_now != 3 || policy_now != SCHED_BATCH || leader_now != leader_nice)
      fail("nice %d and policy %d of the kept tid %d, leader nice %d (want 3, %d, %d): %s", nice_now, policy_now,
           kept[0], leader_now, SCHED_BATCH, leader_nice, strerror(errno));
    if (gettid() != main_tid || syscall(SYS_gettid) != main_tid)
      fail("the leader's tid is %d (syscall %ld), not %d as before", gettid(), syscall(SYS_gettid), main_tid);
    if (getpid() != pid) fail("getpid() is %d, not %d", getpid(), pid);
    pid_t now[2];
    ask_tid_thread(now);
    if (now[0] != kept[0]) fail("the second thread's gettid() is %d, not %d as before", now[0], kept[0]);
    long same_fs = syscall(SYS_kcmp, (pid_t)syscall(SYS_gettid), kept[0], 3 /* KCMP_FS */, 0, 0);
    if (same_fs != 0)
      fail("kcmp(KCMP_FS) of the two threads: %ld (%s)", same_fs, same_fs < 0 ? strerror(errno) : "differ");
    if (tgkill(pid, kept[0], SIGUSR2) != 0) fail("tgkill of the kept tid %d: %s", kept[0], strerror(errno));
    ask_tid_thread(now);
    if (now[1] != kept[0]) fail("tgkill's SIGUSR2 reached tid %d, not the kept %d", now[1], kept[0]);
    g_usr2_tid = 0;
    if (syscall(SYS_tgkill, pid, kept[0], SIGUSR2) != 0) fail("syscall(SYS_tgkill): %s", strerror(errno));
    ask_tid_thread(now);
    if (now[1] != kept[0]) fail("syscall(SYS_tgkill)'s SIGUSR2 reached tid %d, not %d", now[1], kept[0]);
    cpu_set_t cpus;
    if (syscall(SYS_sched_getaffinity, kept[0], sizeof cpus, &cpus) < 0 ||
        syscall(SYS_sched_setaffinity, kept[0], sizeof cpus, &cpus) != 0)
      fail("sched_{get,set}affinity of the kept tid: %s", strerror(errno));
    char path[64], name[32] = {0};
    snprintf(path, sizeof path, "/proc/%d/comm", kept[0]);
    FILE* f = fopen(path, "r");
    if (f == NULL || fgets(name, sizeof name, f) == NULL || strcmp(name, "kept-tid\n") != 0)
      fail("%s reads '%s', not the thread's name (%s)", path, name, f == NULL ? strerror(errno) : "read");
    fclose(f);
    close(g_tid_ask[1]);
    pthread_join(th, NULL);
    ok();
  }
  if (is_mode("pipefull")) {
    enum { kPipes = 3 };
    const int capacity[kPipes] = {1 << 20, 256 << 10, 0}, fill[kPipes] = {1 << 20, 100003, 65536};
    int p[kPipes][2];
    for (int i = 0; i < kPipes; ++i) {
      if (pipe2(p[i], O_NONBLOCK) != 0) fail("pipe2: %s", strerror(errno));
      if (capacity[i] != 0 && fcntl(p[i][1], F_SETPIPE_SZ, capacity[i]) < 0)
        fail("setting up: F_SETPIPE_SZ %d: %s (see /proc/sys/fs/pipe-max-size)", capacity[i], strerror(errno));
    }
    /* The second pipe's write end below its read end: its record comes first. */
    int low = dup(p[1][1]), high = dup(p[1][0]);
    if (low < 0 || high < 0 || dup2(low, p[1][0]) < 0 || dup2(high, p[1][1]) < 0) fail("dup: %s", strerror(errno));
    close(low);
    close(high);
    int swap = p[1][0];
    p[1][0] = p[1][1];
    p[1][1] = swap;
    unsigned char chunk[4096];
    for (int i = 0; i < kPipes; ++i) {
      for (int at = 0; at < fill[i];) {
        int n = fill[i] - at < (int)sizeof chunk ? fill[i] - at : (int)sizeof chunk;
        for (int k = 0; k < n; ++k) chunk[k] = (unsigned char)((at + k) * 7 + i + (at + k) / 251);
        ssize_t w = write(p[i][1], chunk, (size_t)n);
        if (w <= 0) fail("filling pipe %d at %d: %s", i, at, w < 0 ? strerror(errno) : "wrote 0");
        at += (int)w;
      }
    }
    int size[kPipes];
    for (int i = 0; i < kPipes; ++i) size[i] = fcntl(p[i][0], F_GETPIPE_SZ);
    ready_then_wait();
    for (int i = 0; i < kPipes; ++i) {
      if (fcntl(p[i][0], F_GETPIPE_SZ) != size[i])
        fail("pipe %d holds %d bytes, not %d (F_SETPIPE_SZ)", i, fcntl(p[i][0], F_GETPIPE_SZ), size[i]);
      if (!(fcntl(p[i][0], F_GETFL) & O_NONBLOCK)) fail("pipe %d's read end lost O_NONBLOCK", i);
      int at = 0;
      for (;;) {
        ssize_t n = read(p[i][0], chunk, sizeof chunk);
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) fail("reading pipe %d at %d: %s", i, at, n < 0 ? strerror(errno) : "end of file");
        for (ssize_t k = 0; k < n; ++k)
          if (chunk[k] != (unsigned char)((at + k) * 7 + i + (at + k) / 251))
            fail("pipe %d: byte %ld is %u, not %u", i, (long)(at + k), chunk[k],
                 (unsigned char)((at + k) * 7 + i + (at + k) / 251));
        at += (int)n;
      }
      if (at != fill[i]) fail("pipe %d gave back %d bytes, not %d", i, at, fill[i]);
    }
    ok();
  }
  if (is_mode("pipe2")) {
    int p[2];
    if (pipe(p) != 0) fail("pipe: %s", strerror(errno));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[1]);
    int again = open(path, O_WRONLY), twin = dup(p[0]);
    if (again < 0 || twin < 0 || fcntl(p[1], F_SETFL, O_NONBLOCK) != 0 || write(again, "x", 1) != 1 ||
        fcntl(p[1], F_SETPIPE_SZ, 8192) < 0)
      fail("setting up: %s", strerror(errno));
    int capacity = fcntl(p[0], F_GETPIPE_SZ);
    ready_then_wait();
    long self = syscall(SYS_getpid);
    if (syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, p[1], again) == 0)
      fail("the two opens of the write end are one open file now");
    if (syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, p[0], twin) != 0)
      fail("the dup of the read end is an open file of its own now");
    if (fcntl(p[0], F_GETPIPE_SZ) != capacity)
      fail("the pipe holds %d bytes, not %d (F_SETPIPE_SZ)", fcntl(p[0], F_GETPIPE_SZ), capacity);
    if (!(fcntl(p[1], F_GETFL) & O_NONBLOCK) || (fcntl(again, F_GETFL) & O_NONBLOCK))
      fail("O_NONBLOCK moved between the two opens of the write end");
    char got[3] = {0};
    if (read(twin, got, 1) != 1 || got[0] != 'x') fail("the unread byte is gone");
    if (write(again, "y", 1) != 1 || write(p[1], "z", 1) != 1 || read(p[0], got, 2) != 2 || strcmp(got, "yz") != 0)
      fail("the opens do not reach the read end (read '%s')", got);
    ok();
  }
  if (strcmp(g_mode, "opath_gone") == 0 || strcmp(g_mode, "rmdir") == 0 || strcmp(g_mode, "lease") == 0) {
    if (mkdir(tmpdir, 0700) != 0) fail("mkdir %s: %s", tmpdir, strerror(errno));
    char file[300];
    snprintf(file, sizeof file, "%s/f", tmpdir);
    int fd = open(file, O_RDWR | O_CREAT, 0600);
    if (fd < 0) fail("open %s: %s", file, strerror(errno));
    int extra = -1;
    if (strcmp(g_mode, "opath_gone") == 0) {
      extra = open(file, O_PATH);
    } else if (strcmp(g_mode, "lease") == 0) {
      extra = open(file, O_RDONLY);
      close(fd);
      fd = -1;
      if (extra >= 0 && fcntl(extra, F_SETLEASE, F_RDLCK) != 0) fail("F_SETLEASE: %s", strerror(errno));
    }
    int keep = strcmp(g_mode, "lease") == 0;
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
    if (strcmp(g_mode, "rmdir") == 0) expect_removed_dir(extra, tmpdir);
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
  if (is_mode("ghost_wronly") || is_mode("ghost_wronly_locked")) {
    /* A deleted file only open for writing: carried (read through a new
     * open), unless the process holds a POSIX lock on it. */
    if (mkdir(tmpdir, 0700) != 0) fail("mkdir %s: %s", tmpdir, strerror(errno));
    char file[300];
    snprintf(file, sizeof file, "%s/wronly", tmpdir);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    static char data[70000];
    for (size_t i = 0; i < sizeof data; ++i) data[i] = (char)pattern(i);
    if (fd < 0 || write(fd, data, sizeof data) != (ssize_t)sizeof data) fail("writing %s: %s", file, strerror(errno));
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    if (is_mode("ghost_wronly_locked") && fcntl(fd, F_SETLK, &lk) != 0) fail("F_SETLK: %s", strerror(errno));
    if (unlink(file) != 0) fail("unlink: %s", strerror(errno));
    ready_then_wait();
    rmdir(tmpdir);
    if (is_mode("ghost_wronly_locked")) {
      /* Still held: fdinfo lists it (F_GETLK cannot see the process's own). */
      char info[64], text[4096] = {0};
      snprintf(info, sizeof info, "/proc/self/fdinfo/%d", fd);
      int i = open(info, O_RDONLY);
      ssize_t n = i < 0 ? -1 : read(i, text, sizeof text - 1);
      if (n <= 0 || strstr(text, "POSIX") == NULL) fail("the POSIX lock is gone after the refusal");
      ok();
    }
    if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_WRONLY || lseek(fd, 0, SEEK_CUR) != (off_t)sizeof data)
      fail("the open flags or the offset changed");
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int r = open(link, O_RDONLY);
    static char back[sizeof data];
    if (r < 0 || read(r, back, sizeof back) != (ssize_t)sizeof back || memcmp(back, data, sizeof data) != 0)
      fail("the deleted file's contents changed");
    ok();
  }
  if (is_mode("ghost") || is_mode("ghostmap") || is_mode("ghost_other")) {
    if (mkdir(tmpdir, 0700) != 0) fail("mkdir %s: %s", tmpdir, strerror(errno));
    char file[300];
    snprintf(file, sizeof file, "%s/ghost", tmpdir);
    int fd = open(file, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) fail("open %s: %s", file, strerror(errno));
    static char data[10000];
    for (size_t i = 0; i < sizeof data; ++i) data[i] = (char)pattern(i);
    if (pwrite(fd, data, sizeof data, 0) != (ssize_t)sizeof data || pwrite(fd, "end", 3, 1 << 20) != 3)
      fail("writing %s: %s", file, strerror(errno));
    if (fchmod(fd, 0640) != 0) fail("fchmod: %s", strerror(errno));
    int second = open(file, O_RDONLY);
    if (second < 0) fail("open again: %s", strerror(errno));
    if (is_mode("ghostmap") && mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, second, 0) == MAP_FAILED)
      fail("mmap: %s", strerror(errno));
    pid_t holder = is_mode("ghost_other") ? start_holder() : 0;
    if (unlink(file) != 0) fail("unlink: %s", strerror(errno));
    if (lseek(fd, 5000, SEEK_SET) != 5000) fail("lseek: %s", strerror(errno));
    struct stat before;
    if (fstat(fd, &before) != 0) fail("fstat: %s", strerror(errno));
    ready_then_wait();
    if (holder > 0) kill(holder, SIGKILL);
    rmdir(tmpdir); /* the restore made the file again in it, for a moment */
    if (!is_mode("ghost")) ok();
    struct stat a, b;
    if (fstat(fd, &a) != 0 || fstat(second, &b) != 0) fail("fstat: %s", strerror(errno));
    if (a.st_nlink != 0) fail("the deleted file has %lu names", (unsigned long)a.st_nlink);
    if (a.st_ino != b.st_ino || a.st_dev != b.st_dev) fail("the two descriptors are on different files");
    if (a.st_size != (1 << 20) + 3) fail("size %ld", (long)a.st_size);
    if (a.st_mode != (S_IFREG | 0640)) fail("mode %o", (unsigned)a.st_mode);
    if (a.st_uid != before.st_uid || a.st_gid != before.st_gid) fail("owner %d:%d", (int)a.st_uid, (int)a.st_gid);
    if (a.st_mtim.tv_sec != before.st_mtim.tv_sec || a.st_mtim.tv_nsec != before.st_mtim.tv_nsec)
      fail("the modification time changed");
    if (lseek(fd, 0, SEEK_CUR) != 5000 || lseek(second, 0, SEEK_CUR) != 0) fail("the offsets changed");
    if ((fcntl(second, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR)
      fail("the open flags changed");
    char link[64], target[400], want[400];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = '\0';
    snprintf(want, sizeof want, "%s (deleted)", file);
    if (strcmp(target, want) != 0) fail("the descriptor shows %s, not %s", target, want);
    static char back[10000];
    if (pread(second, back, sizeof back, 0) != (ssize_t)sizeof back || memcmp(back, data, sizeof back) != 0)
      fail("the contents changed");
    char end[3], hole[1];
    if (pread(second, end, 3, 1 << 20) != 3 || memcmp(end, "end", 3) != 0) fail("the data after the hole changed");
    if (pread(second, hole, 1, 500000) != 1 || hole[0] != 0) fail("the hole is not zero");
    if (pwrite(fd, "X", 1, 0) != 1 || pread(second, hole, 1, 0) != 1 || hole[0] != 'X')
      fail("a write through one descriptor does not show through the other");
    ok();
  }
  if (is_mode("memfd") || is_mode("memfd_map")) {
    int fd = (int)syscall(SYS_memfd_create, "never_silent", 2 /* MFD_ALLOW_SEALING */);
    if (fd < 0) fail("memfd_create: %s", strerror(errno));
    if (write(fd, "memfd contents", 14) != 14 || fchmod(fd, 0640) != 0 || lseek(fd, 3, SEEK_SET) != 3)
      fail("setting up the memfd: %s", strerror(errno));
    if (is_mode("memfd_map") && mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED)
      fail("mmap: %s", strerror(errno));
    int script = (int)syscall(SYS_memfd_create, "never_silent_script", 0);
    if (script < 0 || write(script, "#!/bin/true\n", 12) != 12) fail("memfd script: %s", strerror(errno));
    int seals = F_SEAL_SHRINK | F_SEAL_GROW;
    if (fcntl(fd, F_ADD_SEALS, seals) != 0) fail("F_ADD_SEALS: %s", strerror(errno));
    ready_then_wait();
    if (is_mode("memfd_map")) ok();
    char link[64], target[128], back[14];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = '\0';
    if (strcmp(target, "/memfd:never_silent (deleted)") != 0) fail("the memfd shows as %s", target);
    if (fcntl(fd, F_GET_SEALS) != seals) fail("seals %d, not %d", fcntl(fd, F_GET_SEALS), seals);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size != 14 || (st.st_mode & 07777) != 0640) fail("size or mode changed");
    if (lseek(fd, 0, SEEK_CUR) != 3) fail("the offset changed");
    if (pread(fd, back, 14, 0) != 14 || memcmp(back, "memfd contents", 14) != 0) fail("the contents changed");
    if (ftruncate(fd, 100) == 0) fail("F_SEAL_GROW no longer holds");
    pid_t c = fork();  /* a memfd holding a script can still be executed */
    if (c == 0) {
      char* const args[] = {"true", NULL};
      char* const env[] = {NULL};
      syscall(SYS_execveat, script, "", args, env, AT_EMPTY_PATH);
      _exit(errno);
    }
    int status = 0;
    if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail("executing the memfd failed (errno %d)", WEXITSTATUS(status));
    ok();
  }
  if (is_mode("waits")) {
    if (pipe(g_wait_pipe) != 0) fail("pipe: %s", strerror(errno));
    pthread_t t[2];
    for (long i = 0; i < 2; ++i)
      if (pthread_create(&t[i], NULL, waiter, (void*)i) != 0) fail("pthread_create");
    while (g_waiter_tid[0] == 0 || g_waiter_tid[1] == 0) sched_yield();
    wait_in_syscall(g_waiter_tid[0], SYS_poll, SYS_ppoll);
    wait_in_syscall(g_waiter_tid[1], SYS_nanosleep, SYS_clock_nanosleep);
    ready_then_wait();
    if (write(g_wait_pipe[1], "x", 1) != 1) fail("write: %s", strerror(errno));
    void* r[2];
    pthread_join(t[0], &r[0]);
    pthread_join(t[1], &r[1]);
    if ((long)r[0] != 1) fail("poll ended with %ld (-4: EINTR), not the byte", (long)r[0]);
    if ((long)r[1] != 0) fail("nanosleep ended with %ld (-4: EINTR), not after its time", (long)r[1]);
    ok();
  }
  if (is_mode("rlimit")) {
    struct rlimit before, after;
    if (getrlimit(RLIMIT_NOFILE, &before) != 0) fail("getrlimit: %s", strerror(errno));
    ready_then_wait();
    if (getrlimit(RLIMIT_NOFILE, &after) != 0) fail("getrlimit: %s", strerror(errno));
    if (after.rlim_max != before.rlim_max || after.rlim_cur != before.rlim_cur)
      fail("RLIMIT_NOFILE is %lu/%lu, was %lu/%lu", (unsigned long)after.rlim_cur, (unsigned long)after.rlim_max,
           (unsigned long)before.rlim_cur, (unsigned long)before.rlim_max);
    ok();
  }
  if (is_mode("opath")) {
    char file[300], link[300];
    snprintf(file, sizeof file, "%s/f", tmpdir);
    snprintf(link, sizeof link, "%s/l", tmpdir);
    int fd = -1;
    if (mkdir(tmpdir, 0700) != 0 || (fd = open(file, O_RDWR | O_CREAT, 0600)) < 0 || symlink("f", link) != 0)
      fail("setting up %s: %s", tmpdir, strerror(errno));
    close(fd);
    int pf = open(file, O_PATH), pl = open(link, O_PATH | O_NOFOLLOW);
    struct stat f0, l0, f1, l1;
    if (pf < 0 || pl < 0 || fstat(pf, &f0) != 0 || fstatat(pl, "", &l0, AT_EMPTY_PATH) != 0)
      fail("O_PATH: %s", strerror(errno));
    ready_then_wait();
    if (!(fcntl(pf, F_GETFL) & O_PATH) || !(fcntl(pl, F_GETFL) & O_PATH)) fail("a descriptor is no longer O_PATH");
    if (fstat(pf, &f1) != 0 || f1.st_ino != f0.st_ino || f1.st_dev != f0.st_dev)
      fail("the O_PATH descriptor names another file");
    if (fstatat(pl, "", &l1, AT_EMPTY_PATH) != 0 || !S_ISLNK(l1.st_mode) || l1.st_ino != l0.st_ino)
      fail("the O_PATH|O_NOFOLLOW descriptor no longer names the symlink");
    char target[16];
    if (readlinkat(pl, "", target, sizeof target) != 1 || target[0] != 'f') fail("readlinkat of the symlink");
    unlink(link);
    unlink(file);
    rmdir(tmpdir);
    ok();
  }
  if (is_mode("signalfd") || is_mode("signalfd_other")) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_NONBLOCK);
    if (fd < 0) fail("signalfd: %s", strerror(errno));
    pid_t holder = is_mode("signalfd_other") ? start_holder() : 0;
    union sigval v = {.sival_int = 77};
    if (sigqueue(getpid(), SIGUSR2, v) != 0) fail("sigqueue: %s", strerror(errno));
    ready_then_wait();
    if (holder > 0) {
      kill(holder, SIGKILL);
      ok();
    }
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) != (ssize_t)sizeof si || si.ssi_signo != SIGUSR2 || si.ssi_int != 77)
      fail("the signalfd did not give the queued SIGUSR2 back");
    if (read(fd, &si, sizeof si) >= 0 || errno != EAGAIN) fail("the signalfd is no longer non-blocking");
    raise(SIGUSR1); /* not in its mask: handled, not read */
    if (read(fd, &si, sizeof si) >= 0) fail("the signalfd reads a signal outside its mask");
    ok();
  }
  if (is_mode("eventfd")) {
    int fd = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK);
    uint64_t two = 2, one = 0;
    if (fd < 0 || write(fd, &two, 8) != 8) fail("eventfd: %s", strerror(errno));
    ready_then_wait();
    for (int i = 0; i < 7; ++i)
      if (read(fd, &one, 8) != 8 || one != 1) fail("read %d of the semaphore eventfd gave %d", i, (int)one);
    if (read(fd, &one, 8) >= 0 || errno != EAGAIN) fail("the eventfd counts more than 7, or blocks");
    ok();
  }
  if (is_mode("timerfd")) {
    int hourly = timerfd_create(CLOCK_MONOTONIC, 0), expired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec hour = {{3600, 0}, {3600, 0}}, soon = {{3600, 0}, {0, 1}}, now;
    if (hourly < 0 || expired < 0 || timerfd_settime(hourly, 0, &hour, NULL) != 0 ||
        timerfd_settime(expired, 0, &soon, NULL) != 0)
      fail("timerfd: %s", strerror(errno));
    /* Until it has fired, without reading it: then its state shows 0 left
     * (the kernel moves a periodic timer on only when it is read). */
    struct pollfd p = {expired, POLLIN, 0};
    if (poll(&p, 1, -1) != 1) fail("poll of the timerfd: %s", strerror(errno));
    ready_then_wait();
    if (timerfd_gettime(hourly, &now) != 0 || now.it_interval.tv_sec != 3600 || now.it_interval.tv_nsec != 0 ||
        now.it_value.tv_sec > 3600 || (now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0))
      fail("the hourly timer is not armed as it was");
    uint64_t ticks = 0;
    if (read(expired, &ticks, 8) != 8 || ticks != 1) fail("the fired timer's expiration was lost");
    if (read(expired, &ticks, 8) >= 0 || errno != EAGAIN) fail("the fired timer is not non-blocking");
    if (timerfd_gettime(expired, &now) != 0 || now.it_interval.tv_sec != 3600 ||
        (now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0))
      fail("the fired periodic timer is no longer armed (interval %ld)", (long)now.it_interval.tv_sec);
    ok();
  }
  if (is_mode("procpid")) {
    /* What CRIU's file_locks06 checks: its own lock, read through
     * /proc/<getpid()>/fdinfo. After the restore getpid() is still the old
     * pid while /proc knows the process by its new one. */
    char file[300], path[128], line[256], exe[4096], self_exe[4096];
    snprintf(file, sizeof file, "%s.lock", tmpdir);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct flock lck = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd < 0 || fcntl(fd, F_OFD_SETLK, &lck) != 0) fail("OFD lock on %s: %s", file, strerror(errno));
    ready_then_wait();
    unlink(file);
    snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)getpid(), fd);
    FILE* f = fopen(path, "r");
    if (f == NULL) fail("fopen %s: %s", path, strerror(errno));
    int locked = 0;
    while (fgets(line, sizeof line, f) != NULL)
      if (strncmp(line, "lock:", 5) == 0 && strstr(line, "OFDLCK") && strstr(line, "WRITE")) locked = 1;
    fclose(f);
    if (!locked) fail("%s shows no OFD write lock", path);
    snprintf(path, sizeof path, "/proc/%d/status", (int)getpid());
    int sfd = open(path, O_RDONLY);
    if (sfd < 0 || read(sfd, line, sizeof line) <= 0) fail("open/read %s: %s", path, strerror(errno));
    close(sfd);
    snprintf(path, sizeof path, "/proc/%d/exe", (int)getpid());
    ssize_t n = readlink(path, exe, sizeof exe), m = readlink("/proc/self/exe", self_exe, sizeof self_exe);
    if (n <= 0 || n != m || memcmp(exe, self_exe, (size_t)n) != 0) fail("readlink %s is not /proc/self/exe", path);
    struct stat a, b;
    snprintf(path, sizeof path, "/proc/%d", (int)getpid());
    if (stat(path, &a) != 0 || stat("/proc/self", &b) != 0 || a.st_ino != b.st_ino)
      fail("stat %s is not /proc/self", path);
    snprintf(path, sizeof path, "/proc/%d/fd", (int)getpid());
    DIR* d = opendir(path);
    if (d == NULL) fail("opendir %s: %s", path, strerror(errno));
    int listed = 0;
    for (struct dirent* e; (e = readdir(d)) != NULL;)
      if (atoi(e->d_name) == fd) listed = 1;
    closedir(d);
    if (!listed) fail("%s does not list descriptor %d", path, fd);
    ok();
  }
  if (is_mode("auxv")) {
    static char before[4096], after[4096];
    int fd = open("/proc/self/auxv", O_RDONLY);
    ssize_t n = read(fd, before, sizeof before);
    close(fd);
    ready_then_wait();
    fd = open("/proc/self/auxv", O_RDONLY);
    ssize_t m = read(fd, after, sizeof after);
    close(fd);
    if (n <= 0 || n != m || memcmp(before, after, (size_t)n) != 0)
      fail("/proc/self/auxv differs after the restore (%zd bytes, was %zd)", m, n);
    ok();
  }
  if (is_mode("nnp") || is_mode("seccomp")) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (is_mode("seccomp")) {
      struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
      struct sock_fprog prog = {1, allow};
      if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) fail("seccomp: %s", strerror(errno));
    }
    ready_then_wait();
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) fail("no_new_privs is no longer set");
    ok();
  }
  if (is_mode("sigqueue")) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 2);
    sigaddset(&set, SIGRTMIN + 3);
    sigprocmask(SIG_BLOCK, &set, NULL); /* the thread inherits the mask */
    int bad = 0;
    pthread_t t;
    pthread_barrier_init(&g_barrier, NULL, 2);
    if (pthread_create(&t, NULL, sigqueue_thread, &bad) != 0) fail("pthread_create");
    for (int i = 0; i < kQueued; ++i) {
      union sigval v = {.sival_int = 100 + i};
      if (sigqueue(getpid(), SIGRTMIN + 2, v) != 0) fail("sigqueue: %s", strerror(errno));
      v.sival_int = 200 + i;
      if (pthread_sigqueue(t, SIGRTMIN + 3, v) != 0) fail("pthread_sigqueue");
    }
    pthread_barrier_wait(&g_barrier);
    ready_then_wait();
    pthread_barrier_wait(&g_barrier);
    pthread_join(t, NULL);
    if (bad != 0) fail("the thread's queued signal %d came back wrong", bad);
    sigdelset(&set, SIGRTMIN + 3);
    struct timespec none = {0, 0};
    for (int i = 0; i < kQueued; ++i) {
      siginfo_t si;
      if (sigtimedwait(&set, &si, &none) != SIGRTMIN + 2 || si.si_value.sival_int != 100 + i ||
          si.si_code != SI_QUEUE || si.si_pid != getpid())
        fail("process-directed queued signal %d came back wrong", i);
    }
    ok();
  }
  if (is_mode("semundo") || is_mode("sysvshm")) {
    int shm = -1, sem = -1;
    if (is_mode("semundo")) {
      sem = semget(IPC_PRIVATE, 1, 0600);
      struct sembuf up = {0, 1, SEM_UNDO};
      if (sem < 0 || semop(sem, &up, 1) != 0) fail("semaphore: %s", strerror(errno));
    } else {
      shm = shmget(IPC_PRIVATE, 4096, 0600);
      if (shm < 0 || shmat(shm, NULL, 0) == (void*)-1) fail("shm: %s", strerror(errno));
    }
    ready_then_wait();
    if (sem >= 0) semctl(sem, 0, IPC_RMID);
    if (shm >= 0) shmctl(shm, IPC_RMID, NULL);
    ok();
  }
  if (is_mode("aio")) {
    unsigned long ctx = 0;
    if (syscall(SYS_io_setup, 8, &ctx) != 0) skip("io_setup is not allowed here");
    ready_then_wait();
    syscall(SYS_io_destroy, ctx);
    ok();
  }
  if (is_mode("thread_files")) {
    /* A thread made by clone() without CLONE_FILES: a table of its own. */
    static char stack[64 * 1024] __attribute__((aligned(16)));
    int flags = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;
    if (clone(own_table_thread, stack + sizeof stack, flags, NULL) == -1) fail("clone: %s", strerror(errno));
    ready_then_wait();
    ok();
  }
  if (is_mode("cwdgone") || is_mode("cwd_taken")) {
    if (mkdir(tmpdir, 0700) != 0 || chdir(tmpdir) != 0 || rmdir(tmpdir) != 0)
      fail("setting up %s: %s", tmpdir, strerror(errno));
    /* cwd_taken: the name is taken again by another directory. */
    if (is_mode("cwd_taken") && mkdir(tmpdir, 0700) != 0) fail("mkdir %s again: %s", tmpdir, strerror(errno));
    ready_then_wait();
    if (is_mode("cwd_taken")) rmdir(tmpdir);
    int here = open(".", O_RDONLY | O_DIRECTORY);
    if (is_mode("cwdgone")) expect_removed_dir(here, tmpdir);
    char cwd[300];
    ssize_t n = readlink("/proc/self/cwd", cwd, sizeof cwd - 1);
    cwd[n < 0 ? 0 : n] = '\0';
    if (strncmp(cwd, tmpdir, strlen(tmpdir)) != 0 || strcmp(cwd + strlen(tmpdir), " (deleted)") != 0)
      fail("the working directory is %s, not %s (deleted)", cwd, tmpdir);
    ok();
  }
  int fd = make_unrestorable_fd();
  if (fd != -2) {
    if (fd < 0) fail("making the descriptor: %s", strerror(errno));
    ready_then_wait();
    ok();
  }
  fail("unknown mode");
}
