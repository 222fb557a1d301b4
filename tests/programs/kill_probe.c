// kill() as a program placed away sees it (netns_kill_test, issue 15):
//   kill_probe wait READY       takes USR1 and USR2, creates READY once it
//                               can, waits for USR2, and exits 0 after
//                               "got USR1" if USR1 came first, then "got USR2"
//   kill_probe group            forks a child that takes USR1 and USR2, calls
//                               kill(0, USR2) (ignoring it itself), prints
//                               "kill: ok" or "kill: ENAME", then sends the
//                               child USR1; the child prints what it got
//   kill_probe kill PID SIG [READY]
//                               ignores SIG (a kill of its own group reaches
//                               it too), waits until READY exists if given,
//                               calls kill(PID, SIG) and prints "kill: ok" or
//                               "kill: ENAME"
//   kill_probe waitinfo READY   as wait, but prints for each of USR1 and USR2
//                               "got USRn CODE [value V] from PID" (CODE
//                               SI_QUEUE, SI_TKILL, SI_USER or a number)
//   kill_probe sigqueue PID SIG VALUE [READY]     sigqueue(PID, SIG, VALUE)
//   kill_probe tgkill PID TID SIG [READY]         tgkill(PID, TID, SIG)
//   kill_probe tkill TID SIG [READY]              syscall(SYS_tkill, TID, SIG)
//   kill_probe tgsigqueue PID TID SIG VALUE [READY]
//                               syscall(SYS_rt_tgsigqueueinfo) with SI_QUEUE
//                               and VALUE; each prints "NAME: ok" or
//                               "NAME: ENAME", as kill
//   kill_probe pidfd PID        pidfd_open(PID) and pidfd_send_signal(fd, 0):
//                               "pidfd: ok" or "pidfd_open: ENAME"; the same
//                               of its own pid first, as "self ..."
// Both first print "where NODE PIDNS": MOSIX_NODE and the pid namespace.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_signal(int s) { got |= s == SIGUSR1 ? 1 : 2; }
static siginfo_t infos[2];
static void on_info(int s, siginfo_t* info, void* ctx) {
  (void)ctx;
  infos[s == SIGUSR1 ? 0 : 1] = *info;
  on_signal(s);
}
static int with_info;

static int signal_named(const char* name) {
  if (strcmp(name, "0") == 0) return 0;
  if (strcmp(name, "USR1") == 0) return SIGUSR1;
  if (strcmp(name, "USR2") == 0) return SIGUSR2;
  if (strcmp(name, "TERM") == 0) return SIGTERM;
  return -1;
}

// Takes USR1 and USR2, says it does (creates `ready_path`, or writes a byte
// to `ready_fd`), and waits for `last`; prints "got USR1" and "got USR2"
// for each that came.
static int wait_for(int last, const char* ready_path, int ready_fd) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGUSR2);
  sigprocmask(SIG_BLOCK, &block, &old);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  if (with_info) {
    sa.sa_sigaction = on_info;
    sa.sa_flags = SA_SIGINFO;
  } else {
    sa.sa_handler = on_signal;
  }
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);
  if (ready_path != NULL) {
    int fd = open(ready_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 1;
    close(fd);
  } else if (write(ready_fd, "r", 1) != 1) {
    return 1;
  }
  sigdelset(&old, SIGUSR1);
  sigdelset(&old, SIGUSR2);
  const int bit = last == SIGUSR1 ? 1 : 2;
  while (!(got & bit)) sigsuspend(&old);
  for (int i = 0; i < 2; ++i) {
    if (!(got & (1 << i))) continue;
    printf("got USR%d", i + 1);
    const siginfo_t* in = &infos[i];
    if (with_info && in->si_code == SI_QUEUE) printf(" SI_QUEUE value %d", in->si_value.sival_int);
    if (with_info && in->si_code != SI_QUEUE)
      printf(in->si_code == SI_TKILL ? " SI_TKILL" : in->si_code == SI_USER ? " SI_USER" : " %d", in->si_code);
    if (with_info) printf(" from %ld", (long)in->si_pid);
    printf("\n");
  }
  fflush(stdout);
  return 0;
}
static int wait_for_usr2(const char* ready_path, int ready_fd) { return wait_for(SIGUSR2, ready_path, ready_fd); }
static int wait_for_usr1(int ready_fd) { return wait_for(SIGUSR1, NULL, ready_fd); }

// Waits until `path` exists: the waiter's handshake.
static void await_file(const char* path) {
  const struct timespec tick = {0, 10 * 1000 * 1000};
  while (access(path, F_OK) != 0) nanosleep(&tick, NULL);
}

static int said(const char* name, long r) {
  if (r == 0) {
    printf("%s: ok\n", name);
  } else {
    printf("%s: %s\n", name, strerrorname_np(errno));
  }
  return 0;
}

static int pidfd_of(const char* who, pid_t pid) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    printf("%spidfd_open: %s\n", who, strerrorname_np(errno));
    return 0;
  }
  said(*who != '\0' ? "self pidfd" : "pidfd", syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0));
  close(fd);
  return 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: kill_probe wait READY | waitinfo READY | group | kill PID SIG [READY] |\n"
          "       sigqueue PID SIG VALUE [READY] | tgkill PID TID SIG [READY] | tkill TID SIG [READY] |\n"
          "       tgsigqueue PID TID SIG VALUE [READY] | pidfd PID  (SIG: 0 USR1 USR2 TERM)\n");
  return 2;
}

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const char* mode = argv[1];
  // Arguments after the mode, and which of them is a signal.
  int need = -1, sig_at = 0;
  if (strcmp(mode, "wait") == 0 || strcmp(mode, "waitinfo") == 0 || strcmp(mode, "pidfd") == 0) need = 1;
  if (strcmp(mode, "group") == 0) need = 0;
  if (strcmp(mode, "kill") == 0 || strcmp(mode, "tkill") == 0) need = 2, sig_at = 3;
  if (strcmp(mode, "sigqueue") == 0 || strcmp(mode, "tgkill") == 0) need = 3, sig_at = mode[0] == 's' ? 3 : 4;
  if (strcmp(mode, "tgsigqueue") == 0) need = 4, sig_at = 4;
  if (need < 0 || argc < 2 + need || argc > 3 + need || (need <= 1 && argc != 2 + need) ||
      (sig_at > 0 && signal_named(argv[sig_at]) < 0)) {
    return usage();
  }
  char ns[64] = "?";
  ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
  if (n > 0) ns[n] = '\0';
  const char* node = getenv("MOSIX_NODE");
  printf("where %s %s\n", node != NULL ? node : "-", ns);
  fflush(stdout);
  if (strcmp(mode, "wait") == 0) return wait_for_usr2(argv[2], -1);
  if (strcmp(mode, "waitinfo") == 0) {
    with_info = 1;
    return wait_for_usr2(argv[2], -1);
  }
  if (strcmp(mode, "pidfd") == 0) {
    pidfd_of("self ", getpid());
    return pidfd_of("", (pid_t)atol(argv[2]));
  }
  if (strcmp(mode, "group") == 0) {
    // A child of ours here (fork, no exec: not placed), then kill(0, USR2),
    // then USR1 to the child by its own pid: did USR2 reach it first?
    int ready[2];
    if (pipe(ready) != 0) return 1;
    signal(SIGUSR2, SIG_IGN);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
      close(ready[0]);
      signal(SIGUSR2, SIG_DFL);
      _exit(wait_for_usr1(ready[1]));
    }
    close(ready[1]);
    char c;
    if (child < 0 || read(ready[0], &c, 1) != 1) return 1;
    said("kill", kill(0, SIGUSR2));
    fflush(stdout);
    kill(child, SIGUSR1);
    int status;
    waitpid(child, &status, 0);
    return 0;
  }
  const int sig = signal_named(argv[sig_at]);
  if (sig > 0) signal(sig, SIG_IGN);  // a kill of its own group reaches it too
  if (argc == 3 + need) await_file(argv[2 + need]);
  const pid_t pid = (pid_t)atol(argv[2]);
  if (strcmp(mode, "kill") == 0) return said("kill", kill(pid, sig));
  if (strcmp(mode, "tkill") == 0) return said("tkill", (int)syscall(SYS_tkill, pid, sig));
  if (strcmp(mode, "sigqueue") == 0) {
    union sigval value = {.sival_int = atoi(argv[4])};
    return said("sigqueue", sigqueue(pid, sig, value));
  }
  const pid_t tid = (pid_t)atol(argv[3]);
  if (strcmp(mode, "tgkill") == 0) return said("tgkill", tgkill(pid, tid, sig));
  siginfo_t info;
  memset(&info, 0, sizeof info);
  info.si_signo = sig;
  info.si_code = SI_QUEUE;
  info.si_pid = getpid();
  info.si_uid = getuid();
  info.si_value.sival_int = atoi(argv[5]);
  return said("tgsigqueue", syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &info));
}
