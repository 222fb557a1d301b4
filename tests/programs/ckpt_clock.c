/* ckpt_clock [STEPS]: calls clock_gettime, gettimeofday, sched_getcpu, getpid
 * and getppid in a tight loop, 1000 iterations a step, and checks:
 * - CLOCK_MONOTONIC never goes backwards within one process image (a restore
 *   may move it; a new image is told by the kernel's pid and start time);
 * - clock_gettime stays a vDSO call: if it was clearly faster than the raw
 *   system call at start, its cost relative to the system call may not grow
 *   threefold (nor reach 0.8), and the [vdso] mapping must be
 *   where the program's auxiliary vector (AT_SYSINFO_EHDR) says it is;
 * - sched_getcpu() is a valid CPU, and after pinning the thread to a CPU it
 *   names that CPU (a stale rseq area would keep the old one);
 * - getpid() and getppid() return the values read at start, every iteration.
 * Lines say only "clock OK"; nothing in them depends on time, CPU or pid.
 * Ten progress lines, then "RESULT ckpt_clock <checksum> OK". Default 6000
 * steps. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "ckpt_common.h"

#define NAME "ckpt_clock"
#define ITERATIONS 1000

/* The kernel's own pid for this process, bypassing any wrapper around
 * getpid() or syscall(), and the start time from /proc: together they tell
 * one process image from the next. */
static long kernel_pid(void) {
#if defined(__x86_64__)
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"((long)SYS_getpid) : "rcx", "r11", "memory");
  return ret;
#else
  return syscall(SYS_getpid);
#endif
}

static unsigned long long start_time(void) {
  FILE* f = fopen("/proc/self/stat", "r");
  if (f == NULL) ckpt_fail(NAME, "open /proc/self/stat: %s", strerror(errno));
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char* p = strrchr(buf, ')');
  if (p == NULL) ckpt_fail(NAME, "cannot parse /proc/self/stat");
  /* After ") " come fields 3 (state) to 22 (starttime). */
  p += 2;
  for (int field = 3; field < 22; ++field) {
    p = strchr(p, ' ');
    if (p == NULL) ckpt_fail(NAME, "cannot parse /proc/self/stat");
    ++p;
  }
  return strtoull(p, NULL, 10);
}

struct Image {
  long pid;
  unsigned long long start;
};

static struct Image current_image(void) {
  struct Image im = {kernel_pid(), start_time()};
  return im;
}

static int64_t ns(const struct timespec* t) { return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec; }

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return ns(&t);
}

/* Cost of clock_gettime through libc (the vDSO) over the raw system call:
 * the best of several short trials of each, so load on the machine cancels. */
static double vdso_ratio(void) {
  int64_t best_vdso = INT64_MAX, best_sys = INT64_MAX;
  struct timespec t;
  for (int trial = 0; trial < 20; ++trial) {
    int64_t a = now_ns();
    for (int i = 0; i < 200; ++i) clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t b = now_ns();
    for (int i = 0; i < 200; ++i) syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
    int64_t c = now_ns();
    if (b - a < best_vdso) best_vdso = b - a;
    if (c - b < best_sys) best_sys = c - b;
  }
  return best_sys > 0 ? (double)best_vdso / (double)best_sys : 1.0;
}

static void check_vdso_mapping(void) {
  unsigned long at = getauxval(AT_SYSINFO_EHDR);
  if (at == 0) return;
  FILE* f = fopen("/proc/self/maps", "r");
  if (f == NULL) ckpt_fail(NAME, "open /proc/self/maps: %s", strerror(errno));
  char line[512];
  int found = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && strstr(line, "[vdso]") != NULL) {
      found = lo == at;
      break;
    }
  }
  fclose(f);
  if (!found) ckpt_fail(NAME, "the [vdso] mapping is not at AT_SYSINFO_EHDR %#lx", at);
}

/* Pins this thread to each allowed CPU in turn: sched_getcpu() must follow.
 * A restore between pinning and asking starts the thread with the
 * restarting process's affinity (affinity is not part of an image: the
 * CPUs of another node differ), so a disagreement is retried once. */
static void check_cpu_follows_pinning(long ncpu) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  int checked = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpu < ncpu && checked < 4; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) continue;
    int got = sched_getcpu();
    unsigned kernel_cpu = 0;
    long rc = syscall(SYS_getcpu, &kernel_cpu, NULL, NULL);
    if (rc == 0 && ((int)kernel_cpu != cpu || got != cpu)) {
      if (sched_setaffinity(0, sizeof one, &one) != 0) continue;
      got = sched_getcpu();
      rc = syscall(SYS_getcpu, &kernel_cpu, NULL, NULL);
    }
    if (rc == 0 && (int)kernel_cpu != cpu) ckpt_fail(NAME, "pinned to CPU %d, the kernel says %u", cpu, kernel_cpu);
    if (got != cpu) ckpt_fail(NAME, "pinned to CPU %d, sched_getcpu() says %d (stale rseq area?)", cpu, got);
    checked++;
  }
  sched_setaffinity(0, sizeof allowed, &allowed);
}

int main(int argc, char** argv) {
  long steps = ckpt_steps(NAME, argc, argv, 6000);
  ckpt_print("%s start steps=%ld\n", NAME, steps);

  const pid_t pid0 = getpid(), ppid0 = getppid();
  long ncpu = sysconf(_SC_NPROCESSORS_CONF);
  if (ncpu < 1) ckpt_fail(NAME, "sysconf(_SC_NPROCESSORS_CONF) gave %ld", ncpu);
  struct Image image = current_image();
  /* If the vDSO is no faster than a system call here (some clock sources
   * are not readable from user space), the speed check is skipped. */
  const double ratio0 = vdso_ratio();
  const int vdso_fast = ratio0 < 0.5;
  const double ratio_limit = 3 * ratio0 < 0.8 ? 3 * ratio0 : 0.8;

  struct timespec mono, prev_mono, real;
  struct timeval tv;
  clock_gettime(CLOCK_MONOTONIC, &prev_mono);
  uint64_t sum = 0;
  for (long step = 1; step <= steps; ++step) {
    for (int i = 0; i < ITERATIONS; ++i) {
      clock_gettime(CLOCK_MONOTONIC, &mono);
      clock_gettime(CLOCK_REALTIME, &real);
      gettimeofday(&tv, NULL);
      int cpu = sched_getcpu();
      if (cpu >= ncpu) ncpu = sysconf(_SC_NPROCESSORS_CONF); /* restored on a bigger node? */
      if (cpu < 0 || cpu >= ncpu) ckpt_fail(NAME, "sched_getcpu() returned %d with %ld CPUs", cpu, ncpu);
      if (getpid() != pid0) ckpt_fail(NAME, "getpid() changed during the run");
      if (getppid() != ppid0) ckpt_fail(NAME, "getppid() changed during the run");
      if (ns(&mono) < ns(&prev_mono)) {
        struct Image now = current_image();
        if (now.pid == image.pid && now.start == image.start)
          ckpt_fail(NAME, "CLOCK_MONOTONIC went back %lld ns within one process image",
                    (long long)(ns(&prev_mono) - ns(&mono)));
        image = now;
      }
      prev_mono = mono;
      sum = ckpt_mix(sum, (uint64_t)(step * ITERATIONS + i));
    }
    if (ckpt_is_tenth(step, steps)) {
      check_vdso_mapping();
      ncpu = sysconf(_SC_NPROCESSORS_CONF);
      check_cpu_follows_pinning(ncpu);
      if (vdso_fast) {
        double r = vdso_ratio();
        if (r >= ratio_limit)
          ckpt_fail(NAME, "clock_gettime costs %.2f of a system call, %.2f at start (vDSO lost or wrapped?)", r,
                    ratio0);
      }
      clock_gettime(CLOCK_MONOTONIC, &prev_mono);
      ckpt_print("%s step %ld/%ld clock OK\n", NAME, step, steps);
    }
  }
  ckpt_result(NAME, ckpt_mix(sum, (uint64_t)steps));
  return 0;
}
