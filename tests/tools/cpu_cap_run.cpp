// Runs one program under a CpuCap, for tests/integration/cpu_cap_test.sh.
//   cpu_cap_run --why                  prints where caps go, or why there are
//                                      none (then exits 3)
//   cpu_cap_run NAME CPUS PROGRAM ARGS...
//                                      caps group NAME to CPUS, runs PROGRAM
//                                      in it, removes the group and exits
//                                      with PROGRAM's status (128+S if killed)
//   cpu_cap_run --until-throttled NAME CPUS PROGRAM ARGS...
//                                      as above for a CPU-bound PROGRAM, but
//                                      ends it once the kernel has throttled
//                                      its group 5 times, or once it has used
//                                      5 s of CPU, and prints "throttled N cpu
//                                      S wall W" (its CPU and wall seconds);
//                                      exits 1 if the group was never
//                                      throttled (no cap in force).
//                                      Needs no idle machine: load only
//                                      lowers the CPU a program gets, and the
//                                      test is what the kernel enforced. On
//                                      a loaded machine the program seldom
//                                      gets its whole quota in a period, so
//                                      few throttles are seen: one is proof
//                                      enough that a quota is enforced.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "runtime/daemon/cpu_cap.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: cpu_cap_run --why | cpu_cap_run [--until-throttled] NAME CPUS PROGRAM [ARGS...]\n");
  return 2;
}

double monotonic_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// nr_throttled from the group's cpu.stat (the same key on cgroup v1 and v2);
// -1 when it cannot be read.
long throttled_periods(const std::string& group) {
  std::ifstream in(group + "/cpu.stat");
  std::string key;
  long value = 0;
  while (in >> key >> value) {
    if (key == "nr_throttled") return value;
  }
  return -1;
}

// CPU seconds process `pid` (a child of ours, still running) has used.
double cpu_seconds_of(pid_t pid) {
  clockid_t clock{};
  if (::clock_getcpuclockid(pid, &clock) != 0) return 0;
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mosix;
  if (argc == 2 && std::string(argv[1]) == "--why") {
    CgroupRoots roots = detect_cgroups();
    if (auto why = why_uncapped(roots)) {
      std::printf("%s\n", why->c_str());
      return 3;
    }
    std::printf("cgroup v%d under %s\n", roots.version == CgroupVersion::kV2 ? 2 : 1, roots.parent.c_str());
    return 0;
  }
  bool until_throttled = argc > 1 && std::string(argv[1]) == "--until-throttled";
  if (until_throttled) {
    --argc;
    ++argv;
  }
  if (argc < 4) return usage();
  char* end = nullptr;
  double cpus = std::strtod(argv[2], &end);
  if (end == argv[2] || *end != '\0') return usage();

  auto cap = CpuCap::create(argv[1], cpus, detect_cgroups());
  if (!cap) {
    std::fprintf(stderr, "cpu_cap_run: %s\n", cap.error().message.c_str());
    return 3;
  }
  // The child waits until it is in the group, so none of its CPU time is
  // spent outside the cap.
  int gate[2];
  if (::pipe2(gate, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "cpu_cap_run: pipe: %s\n", std::strerror(errno));
    return 3;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    std::fprintf(stderr, "cpu_cap_run: fork: %s\n", std::strerror(errno));
    return 3;
  }
  if (pid == 0) {
    ::close(gate[1]);
    char go = 0;
    if (::read(gate[0], &go, 1) != 1 || go != 'g') ::_exit(3);
    ::execvp(argv[3], argv + 3);
    std::fprintf(stderr, "cpu_cap_run: cannot run %s: %s\n", argv[3], std::strerror(errno));
    ::_exit(127);
  }
  ::close(gate[0]);
  Status added = cap->add(pid);
  if (!added) std::fprintf(stderr, "cpu_cap_run: %s\n", added.error().message.c_str());
  char go = added ? 'g' : 'n';
  if (::write(gate[1], &go, 1) != 1) std::fprintf(stderr, "cpu_cap_run: cannot start the child\n");
  ::close(gate[1]);
  std::fprintf(stderr, "cpu_cap_run: %s capped to %g CPUs\n", cap->path().c_str(), cap->cpus());
  int status = 0;
  if (until_throttled && added) {
    // Watch the kernel's throttle count while the program burns; 20 ms
    // polls, so a CPU-bound program is never left unwatched for long.
    constexpr long kPeriods = 5;
    constexpr double kGiveUpCpu = 5.0;
    double start = monotonic_seconds();
    long throttled = 0;
    double cpu = 0;
    while (true) {
      throttled = throttled_periods(cap->path());
      cpu = cpu_seconds_of(pid);
      if (throttled >= kPeriods || cpu >= kGiveUpCpu || throttled < 0) break;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        std::fprintf(stderr, "cpu_cap_run: %s ended before its group was throttled\n", argv[3]);
        (void)cap->remove();
        return 1;
      }
      ::usleep(20'000);
    }
    double wall = monotonic_seconds() - start;
    ::kill(pid, SIGKILL);
    rusage usage{};
    while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
          static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    (void)cap->remove();
    if (throttled < 1) {
      std::printf("never throttled (nr_throttled %ld) after %.3f s of CPU in %.3f s\n", throttled, cpu, wall);
      return 1;
    }
    std::printf("throttled %ld cpu %.6f wall %.6f\n", throttled, cpu, wall);
    return 0;
  }
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (Status removed = cap->remove(); !removed) {
    std::fprintf(stderr, "cpu_cap_run: %s\n", removed.error().message.c_str());
    return 3;
  }
  if (!added) return 3;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
