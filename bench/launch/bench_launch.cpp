// bench_launch: start-up cost of mosixrun against mpirun, both measured in
// this run, printed as ratios (median of several runs each):
//   mosixrun -np N /bin/true            vs mpirun --oversubscribe -np N /bin/true
//     for N = 1, 8, 64 (goal at N = 8: <= 0.3x; one node, no mpirun inside)
//   mosixrun -np 8 /bin/true            vs a shell that starts 8 /bin/true in
//     the background and waits (the floor for 8 copies; goal <= 1.5x)
//   mosixrun --vcluster 4 -np 16 /bin/true  vs mpirun --oversubscribe -np 16 /bin/true
//     (goal <= 1.0x: 4 node daemons started by mosixd --launch and connected by
//     unix sockets, then local forks); the same through mpirun and the MPI
//     transport (MOSIX_TRANSPORT=mpi) for comparison, without a goal
//   mosixrun -np 16 mpi_hello, and --vcluster 4 -np 16 mpi_hello, vs
//     mpirun --oversubscribe -np 16 mpi_hello: an MPI program's launch,
//     MPI_Init (the PMIx servers' wire-up) and exit (goal <= 1.0x). mpi_hello
//     is the test suite's (tests/mpi_programs, next to bench_launch); the
//     rows are left out, saying so, when it was not built.
// The two commands of a row run in turns. Every command runs with a deadline (--timeout, default 30 s): a run that
// hangs is killed, reported and left out of the median (after 2 such runs
// the command is given up), and the benchmark goes on and exits 1. (Open
// MPI 4.1.4's mpirun -np 64 /bin/true hangs now and then on a loaded
// machine: a few ranks are reaped but never marked terminated.)
// Usage: bench_launch [MOSIXRUN] [RUNS] [--timeout SECONDS]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <unistd.h>
#include <string>
#include <vector>

#include "../common/cli.h"
#include "../common/timed_run.h"

namespace {

using mosix::bench::Clock;
using mosix::bench::TimedChild;

struct Timing {
  std::optional<double> median;  // seconds, of the runs that completed; nothing if none did
  std::string failure;           // why the command failed, or why runs were left out
  int timeouts = 0;
};

constexpr int kMaxTimeouts = 2;  // a command that hangs this often is given up

// Runs argv once (output to /dev/null, errors to our stderr) and returns its
// wall time, or a description of what went wrong.
std::optional<double> run_once(const std::vector<std::string>& argv, double timeout_s,
                               std::string& failure) {
  auto start = Clock::now();
  auto child = TimedChild::start(argv, -1, 2);
  if (!child) {
    failure = "cannot fork";
    return std::nullopt;
  }
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(timeout_s));
  auto status = child->wait_until(deadline);
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (!status) {
    child->kill_group(std::chrono::seconds(5));
    failure = "timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s (killed)";
    return std::nullopt;
  }
  if (!mosix::bench::succeeded(status)) {
    failure = mosix::bench::describe_status(status);
    return std::nullopt;
  }
  return s;
}

// One command's runs. A run that times out is left out of the median (and
// counted); one that fails otherwise fails the command.
struct Series {
  std::vector<std::string> argv;
  std::vector<double> times;
  Timing t;
  bool stopped = false;  // failed, or given up after kMaxTimeouts

  void run(double timeout_s, bool keep) {
    if (stopped) return;
    std::string failure;
    auto s = run_once(argv, timeout_s, failure);
    if (!s && failure.rfind("timed out", 0) == 0) {
      ++t.timeouts;
      t.failure = argv[0] + ": " + failure;
      std::fprintf(stderr, "bench_launch: %s\n", t.failure.c_str());
      stopped = t.timeouts >= kMaxTimeouts;
      return;
    }
    if (!s) {
      t.failure = argv[0] + ": " + failure;
      stopped = true;
      return;
    }
    if (keep) times.push_back(*s);
  }

  Timing finish() {
    if (times.empty() || (stopped && t.timeouts < kMaxTimeouts)) return t;
    std::sort(times.begin(), times.end());
    t.median = times[times.size() / 2];
    if (t.timeouts > 0) {
      t.failure = argv[0] + ": " + std::to_string(t.timeouts) + " run(s) timed out, left out";
      if (t.timeouts >= kMaxTimeouts) {
        t.failure += "; given up after " + std::to_string(times.size()) + " completed runs";
      }
    }
    return t;
  }
};

// Both commands in turns (ours, theirs, then theirs, ours, ...), so that the
// load of a busy machine falls on both alike. Run 0 of each warms the page cache.
std::pair<Timing, Timing> medians_of(const std::vector<std::string>& ours,
                                     const std::vector<std::string>& theirs, int runs,
                                     double timeout_s) {
  Series a{ours, {}, {}, false}, b{theirs, {}, {}, false};
  for (int i = 0; i <= runs && !(a.stopped && b.stopped); ++i) {
    Series& first = i % 2 == 0 ? a : b;
    Series& second = i % 2 == 0 ? b : a;
    first.run(timeout_s, i > 0);
    second.run(timeout_s, i > 0);
  }
  return {a.finish(), b.finish()};
}

struct Case {
  std::string label;
  std::vector<std::string> ours, theirs;
  double goal = 0;  // ratio ours/theirs must be <= goal; 0: none
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argv[0];
  dir = dir.substr(0, dir.rfind('/') + 1);
  std::string mosixrun = dir + "mosixrun";
  int runs = 9;
  double timeout_s = 30;
  CLI::App app{"Start-up of mosixrun against mpirun and a shell loop, measured in turns in this run",
               "bench_launch"};
  app.add_option("mosixrun", mosixrun, "The mosixrun to measure (default: next to bench_launch)");
  app.add_option("runs", runs, "Runs of each command (the median is kept)")
      ->check(mosix::bench::positive());
  app.add_option("--timeout", timeout_s, "Seconds one run may take before it is killed")
      ->check(mosix::bench::positive());
  if (auto status = mosix::bench::parse_command_line(app, argc, argv)) return *status;
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);

  std::vector<Case> cases;
  for (int n : {1, 8, 64}) {
    std::string np = std::to_string(n);
    cases.push_back({"-np " + np + " /bin/true",
                     {mosixrun, "--oversubscribe", "-np", np, "/bin/true"},
                     {"mpirun", "--oversubscribe", "-np", np, "/bin/true"},
                     n == 8 ? 0.3 : 0});
  }
  cases.push_back({"-np 8 /bin/true (vs sh loop)",
                   {mosixrun, "--oversubscribe", "-np", "8", "/bin/true"},
                   {"sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/true & done; wait"},
                   1.5});
  cases.push_back({"--vcluster 4 -np 16 /bin/true",
                   {mosixrun, "--vcluster", "4", "-np", "16", "/bin/true"},
                   {"mpirun", "--oversubscribe", "-np", "16", "/bin/true"},
                   1.0});
  cases.push_back({"  the same through mpirun (MPI)",
                   {"env", "MOSIX_TRANSPORT=mpi", mosixrun, "--vcluster", "4", "-np", "16", "/bin/true"},
                   {"mpirun", "--oversubscribe", "-np", "16", "/bin/true"},
                   0});

  const std::string hello = dir + "mpi_hello";
  if (::access(hello.c_str(), X_OK) == 0) {
    cases.push_back({"-np 16 mpi_hello (MPI)",
                     {mosixrun, "--oversubscribe", "-np", "16", hello},
                     {"mpirun", "--oversubscribe", "-np", "16", hello},
                     1.0});
    cases.push_back({"--vcluster 4 -np 16 mpi_hello",
                     {mosixrun, "--vcluster", "4", "--oversubscribe", "-np", "16", hello},
                     {"mpirun", "--oversubscribe", "-np", "16", hello},
                     1.0});
  } else {
    std::fprintf(stderr, "bench_launch: no %s (built with the tests, MOSIX_MPI=ON): the MPI rows are left out\n",
                 hello.c_str());
  }

  std::printf("median of %d runs each; mpirun baseline: mpirun --oversubscribe -np N /bin/true\n",
              runs);
  std::printf("sh loop baseline: sh -c 'for i in 1 2 3 4 5 6 7 8; do /bin/true & done; wait'\n");
  std::printf("%-32s %10s %10s %8s %s\n", "case", "mosixrun", "baseline", "ratio", "goal");
  std::fflush(stdout);
  bool failed = false;
  for (const Case& c : cases) {
    std::fprintf(stderr, "bench_launch: %s ...\n", c.label.c_str());
    auto [ours, theirs] = medians_of(c.ours, c.theirs, runs, timeout_s);
    if (!ours.median || !theirs.median) {
      failed = true;
      auto shown = [](const Timing& t) {
        return t.median ? std::to_string(static_cast<int>(*t.median * 1e3 + 0.5)) + "ms"
                        : std::string("FAILED");
      };
      const std::string& why = !ours.median ? ours.failure : theirs.failure;
      std::printf("%-32s %10s %10s %8s %s\n", c.label.c_str(), shown(ours).c_str(),
                  shown(theirs).c_str(), "-", why.c_str());
      std::fflush(stdout);
      continue;
    }
    double ratio = *ours.median / *theirs.median;
    std::string goal;
    if (c.goal > 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "<= %.1fx: %s", c.goal, ratio <= c.goal ? "met" : "NOT met");
      goal = buf;
    }
    std::printf("%-32s %8.1fms %8.1fms %7.2fx %s\n", c.label.c_str(), *ours.median * 1e3,
                *theirs.median * 1e3, ratio, goal.c_str());
    for (const Timing* t : {&ours, &theirs}) {
      if (t->timeouts > 0) {
        failed = true;
        std::printf("%-32s   note: %s\n", "", t->failure.c_str());
      }
    }
    std::fflush(stdout);
  }
  return failed ? 1 : 0;
}
