// bench_launch: start-up cost of `mosixrun -np N /bin/true` against
// `mpirun --oversubscribe -np N /bin/true`, both measured in this run, printed
// as ratios (median of several runs each). Goal: <= 0.3x mpirun at N = 8.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <fcntl.h>

namespace {

double run_once(const std::vector<std::string>& argv) {
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench_launch: '%s ...' failed (status %d)\n", argv[0].c_str(), status);
    std::exit(1);
  }
  return s;
}

double median_of(const std::vector<std::string>& argv, int runs) {
  std::vector<double> t;
  run_once(argv);  // warm the page cache
  for (int i = 0; i < runs; ++i) t.push_back(run_once(argv));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argv[0];
  dir = dir.substr(0, dir.rfind('/') + 1);
  std::string mosixrun = argc > 1 ? argv[1] : dir + "mosixrun";
  int runs = argc > 2 ? std::atoi(argv[2]) : 9;
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);

  std::printf("%-32s %10s %10s %8s %s\n", "case", "mosixrun", "mpirun", "ratio", "goal");
  for (int n : {1, 8, 64}) {
    std::fprintf(stderr, "bench_launch: N=%d ...\r", n);
    std::string np = std::to_string(n);
    double ours = median_of({mosixrun, "--oversubscribe", "-np", np, "/bin/true"}, runs);
    double theirs = median_of({"mpirun", "--oversubscribe", "-np", np, "/bin/true"}, runs);
    double ratio = ours / theirs;
    const char* goal = n == 8 ? (ratio <= 0.3 ? "<= 0.3x: met" : "<= 0.3x: NOT met") : "";
    std::printf("%-32s %8.1fms %8.1fms %7.2fx %s\n", ("-np " + np + " /bin/true").c_str(),
                ours * 1e3, theirs * 1e3, ratio, goal);
  }
  return 0;
}
