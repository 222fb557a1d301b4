/* start_probe: how long a child takes to start and how long its end takes
 * to reach its parent, under fork and forget (bench/farm/bench_start.sh).
 *
 *   start_probe parent N LOG   forks N children one after the other; each
 *                              execs "start_probe child LOG" with /dev/null
 *                              as stdin, and is waited for before the next
 *   start_probe child LOG      appends "main NS" when main runs and
 *                              "exit NS" just before it exits
 *
 * The parent appends "fork NS" before each fork and "reaped NS" once
 * waitpid returned. NS is CLOCK_REALTIME in nanoseconds, which every
 * virtual node of one machine shares. The child's start is main - fork, its
 * end notice reaped - exit. At the end the parent appends "home_cpu US":
 * the CPU time its children used in their own processes (for a child placed
 * away: its start at home and its deputy's), in microseconds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void note(const char* log, const char* what) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  char line[64];
  int n = snprintf(line, sizeof line, "%s %lld\n", what, (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
  int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, line, (size_t)n) != n) {
    perror(log);
    exit(2);
  }
  close(fd);
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "child") == 0) {
    note(argv[2], "main");
    note(argv[2], "exit");
    return 0;
  }
  if (argc != 4 || strcmp(argv[1], "parent") != 0) {
    fprintf(stderr, "usage: start_probe parent N LOG | start_probe child LOG\n");
    return 2;
  }
  const int n = atoi(argv[2]);
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 2;
  self[len] = '\0';
  for (int i = 0; i < n; ++i) {
    note(argv[3], "fork");
    pid_t pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_RDONLY);
      if (null < 0 || dup2(null, 0) < 0) _exit(126);
      if (null != 0) close(null);
      char* args[] = {self, "child", argv[3], NULL};
      execv(self, args);
      _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "start_probe: child %d failed (status %#x)\n", i, status);
      return 1;
    }
    note(argv[3], "reaped");
  }
  struct rusage usage;
  getrusage(RUSAGE_CHILDREN, &usage);
  FILE* log = fopen(argv[3], "a");
  if (log == NULL) return 2;
  fprintf(log, "home_cpu %lld\n", (long long)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000LL +
                                      usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  fclose(log);
  return 0;
}
