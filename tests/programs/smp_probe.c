// Prints the machine a program sees, one "name value" line each: the CPU
// counts of sysconf, get_nprocs, sched_getaffinity (of the process and of
// its thread by tid), pthread_getaffinity_np, /proc/cpuinfo (read with open
// and with fopen), /sys/devices/system/cpu/online, and the memory totals of
// /proc/meminfo and sysinfo. With a GATE argument it then waits until that
// file exists (the test's handshake, e.g. across a checkpoint) and prints
// everything again, and "done" at the end.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

static int count_processors(const char* text) {
  int n = 0;
  for (const char* p = text; (p = strstr(p, "processor")) != NULL; p += 9)
    if (p == text || p[-1] == '\n') ++n;
  return n;
}

static void print_view(void) {
  printf("sysconf_onln %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
  printf("sysconf_conf %ld\n", sysconf(_SC_NPROCESSORS_CONF));
  printf("get_nprocs %d\n", get_nprocs());
  printf("get_nprocs_conf %d\n", get_nprocs_conf());
  cpu_set_t set;
  printf("sched_getaffinity %d\n", sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1);
  pid_t tid = (pid_t)syscall(SYS_gettid);
  printf("sched_getaffinity_tid %d\n", sched_getaffinity(tid, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1);
  printf("pthread_getaffinity_np %d\n",
         pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1);

  static char buf[1 << 20];
  int fd = open("/proc/cpuinfo", O_RDONLY);
  ssize_t len = 0, n;
  while (fd >= 0 && (n = read(fd, buf + len, sizeof buf - 1 - (size_t)len)) > 0) len += n;
  buf[len] = '\0';
  if (fd >= 0) close(fd);
  printf("cpuinfo_open %d\n", count_processors(buf));
  FILE* f = fopen("/proc/cpuinfo", "r");
  len = f ? (ssize_t)fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[len] = '\0';
  if (f) fclose(f);
  printf("cpuinfo_fopen %d\n", count_processors(buf));

  char online[64] = "";
  fd = open("/sys/devices/system/cpu/online", O_RDONLY | O_CLOEXEC);
  n = fd >= 0 ? read(fd, online, sizeof online - 1) : -1;
  online[n > 0 ? n : 0] = '\0';
  online[strcspn(online, "\n")] = '\0';
  if (fd >= 0) close(fd);
  printf("cpu_online %s\n", online);

  unsigned long long mem_total = 0;
  char line[256];
  f = fopen("/proc/meminfo", "re");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "MemTotal: %llu kB", &mem_total) == 1) break;
  if (f) fclose(f);
  printf("meminfo_total_kib %llu\n", mem_total);
  struct sysinfo si;
  printf("sysinfo_total_kib %llu\n",
         sysinfo(&si) == 0 ? (unsigned long long)si.totalram * si.mem_unit / 1024 : 0ULL);
  fflush(stdout);
}

int main(int argc, char** argv) {
  print_view();
  if (argc < 2) return 0;
  while (access(argv[1], F_OK) != 0) usleep(10000);
  print_view();
  printf("done\n");
  return 0;
}
