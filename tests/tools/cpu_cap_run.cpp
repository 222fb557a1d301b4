// Runs one program under a CpuCap, for tests/integration/cpu_cap_test.sh.
//   cpu_cap_run --why                  prints where caps go, or why there are
//                                      none (then exits 3)
//   cpu_cap_run NAME CPUS PROGRAM ARGS...
//                                      caps group NAME to CPUS, runs PROGRAM
//                                      in it, removes the group and exits
//                                      with PROGRAM's status (128+S if killed)
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/daemon/cpu_cap.h"

namespace {

int usage() {
  std::fprintf(stderr, "usage: cpu_cap_run --why | cpu_cap_run NAME CPUS PROGRAM [ARGS...]\n");
  return 2;
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
