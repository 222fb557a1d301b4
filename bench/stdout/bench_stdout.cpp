// bench_stdout: throughput of a copy's stdout through mosixrun, against
// `cat` of the same bytes through a pipe, both measured in this run (median
// of several runs each). A writer copy (this program with --writer) sends
// BYTES of a known pattern to its stdout; this program reads what arrives
// through a pipe, checks every byte and times it.
//   cat     writer | cat                                      (baseline)
//   remote  mosixrun --vcluster 2 --map-by node -np 2 writer  (rank 1 writes,
//           on vnode1: its node daemon sends the bytes to the home node's
//           daemon over MPI, which hands them to mosixrun)   goal >= 0.5x
//   local   mosixrun -np 1 writer  (one node, no daemons)    for comparison
//   direct  writer straight into the pipe                   the ceiling
// Throughput counts from the first byte that arrives to the last (start-up
// is not in it; the whole time from start to exit is shown next to it).
// Other work on the machine moves every row: the load average is printed
// before and after, and the remote/cat ratio of each round (the two ran one
// after the other) with its median, next to the ratio of the medians.
// Every command runs with a deadline (--timeout): one that hangs is killed
// and reported, and the benchmark goes on and exits 1.
// Usage: bench_stdout [MOSIXRUN] [--mib N] [--runs N] [--timeout SECONDS]
//        bench_stdout --writer BYTES [--rank R] [--not-on NODE]   (the copy)
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <string>
#include <unistd.h>
#include <vector>

#include "../common/cli.h"
#include "../common/timed_run.h"
#include "runtime/sys/install_path.h"

namespace {

using mosix::bench::Clock;
using mosix::bench::TimedChild;

constexpr size_t kPatternSize = 1 << 16;

// Byte i of the stream is pattern()[i % kPatternSize]: no short period, so
// a lost, doubled or moved block shows.
const std::vector<unsigned char>& pattern() {
  static const std::vector<unsigned char> p = [] {
    std::vector<unsigned char> v(kPatternSize);
    std::uint32_t x = 0x9e3779b9u;
    for (unsigned char& c : v) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      c = static_cast<unsigned char>(x);
    }
    return v;
  }();
  return p;
}

int rank_from_env() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "MOSIX_RANK"}) {
    if (const char* v = std::getenv(name)) return std::atoi(v);
  }
  return 0;
}

// The copy: writes `bytes` of the pattern to stdout if it is rank `rank`
// (the other copies write nothing); refuses to run on node `not_on`.
int run_writer(unsigned long long bytes, int rank, const std::string& not_on) {
  if (rank_from_env() != rank) return 0;
  const char* node = std::getenv("MOSIX_NODE");
  if (!not_on.empty() && node && not_on == node) {
    std::fprintf(stderr, "bench_stdout: the writer runs on %s, the home node's daemon; it must "
                         "run on another node\n", node);
    return 3;
  }
  const auto& p = pattern();
  while (bytes > 0) {
    size_t n = static_cast<size_t>(std::min<unsigned long long>(bytes, p.size()));
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::write(1, p.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        std::fprintf(stderr, "bench_stdout: writer: %s\n", std::strerror(errno));
        return 1;
      }
      done += static_cast<size_t>(w);
    }
    bytes -= n;
  }
  return 0;
}

struct Sample {
  double stream_s = 0;  // first byte to last byte
  double total_s = 0;   // start to exit
};

// Runs argv with its stdout into a pipe that we read and check; nothing if
// it failed (the reason in `failure`).
std::optional<Sample> measure(const std::vector<std::string>& argv, unsigned long long bytes,
                              double timeout_s, std::string& failure) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    failure = std::string("pipe: ") + std::strerror(errno);
    return std::nullopt;
  }
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(timeout_s));
  auto child = TimedChild::start(argv, fds[1], 2);
  ::close(fds[1]);
  if (!child) {
    ::close(fds[0]);
    failure = "cannot fork";
    return std::nullopt;
  }
  const auto& p = pattern();
  std::vector<unsigned char> buf(1 << 18);
  unsigned long long got = 0;
  std::optional<unsigned long long> first_wrong;
  Clock::time_point first{}, last{};
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 1000))) <= 0) continue;
    ssize_t n = ::read(fds[0], buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    auto now = Clock::now();
    if (got == 0) first = now;
    last = now;
    // Compare against the pattern at this stream offset, a run at a time.
    size_t off = 0, len = static_cast<size_t>(n);
    while (off < len && !first_wrong) {
      size_t at = static_cast<size_t>((got + off) % kPatternSize);
      size_t run = std::min(len - off, kPatternSize - at);
      if (std::memcmp(buf.data() + off, p.data() + at, run) != 0) {
        for (size_t i = 0; i < run; ++i) {
          if (buf[off + i] != p[at + i]) {
            first_wrong = got + off + i;
            break;
          }
        }
      }
      off += run;
    }
    got += static_cast<unsigned long long>(n);
  }
  ::close(fds[0]);
  std::optional<int> status;
  if (!timed_out) status = child->wait_until(deadline);
  if (!status) {
    child->kill_group(std::chrono::seconds(5));
    failure = "timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s (killed)";
    return std::nullopt;
  }
  auto end = Clock::now();
  if (!mosix::bench::succeeded(status)) {
    failure = mosix::bench::describe_status(status);
    return std::nullopt;
  }
  if (first_wrong) {
    failure = "wrong byte at offset " + std::to_string(*first_wrong);
    return std::nullopt;
  }
  if (got != bytes) {
    failure = std::to_string(got) + " bytes arrived, not " + std::to_string(bytes);
    return std::nullopt;
  }
  Sample s;
  s.stream_s = std::chrono::duration<double>(last - first).count();
  s.total_s = std::chrono::duration<double>(end - start).count();
  return s;
}

struct Row {
  std::string name, command;
  std::vector<std::string> argv;
  std::optional<Sample> median;
  std::string failure;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string load_average() {
  char buf[128] = {};
  int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "?";
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  // "1.00 0.50 0.25 2/300 1234": the first three.
  size_t end = 0;
  for (int fields = 0; fields < 3 && end != std::string::npos; ++fields) end = s.find(' ', end + 1);
  return s.substr(0, end);
}

}  // namespace

int main(int argc, char** argv) {
  auto exe = mosix::sys::executable_path();
  std::string self_path = exe ? *exe : argv[0];
  std::string dir = self_path.substr(0, self_path.rfind('/') + 1);
  std::string mosixrun = dir + "mosixrun";
  unsigned long long mib = 512;
  int runs = 5;
  double timeout_s = 300;
  std::optional<unsigned long long> writer_bytes;
  int writer_rank = 0;
  std::string not_on;
  CLI::App app{"A remote copy's stdout through mosixrun against cat through a pipe, in this run",
               "bench_stdout"};
  app.add_option("mosixrun", mosixrun, "The mosixrun to measure (default: next to bench_stdout)");
  app.add_option("--mib", mib, "MiB each run writes")->check(mosix::bench::positive());
  app.add_option("--runs", runs, "Runs of each row (the median is kept)")->check(mosix::bench::positive());
  app.add_option("--timeout", timeout_s, "Seconds one run may take before it is killed")
      ->check(mosix::bench::positive());
  // The writer, as the benchmark starts it (under mosixrun or before cat).
  app.add_option("--writer", writer_bytes, "Be the writer: write this many bytes to stdout")
      ->group("");
  app.add_option("--rank", writer_rank, "The writer's rank")->group("");
  app.add_option("--not-on", not_on, "The writer fails on this node")->group("");
  if (auto status = mosix::bench::parse_command_line(app, argc, argv)) return *status;
  if (writer_bytes) return run_writer(*writer_bytes, writer_rank, not_on);

  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  const unsigned long long bytes = mib << 20;
  const std::string n = std::to_string(bytes);
  std::vector<Row> rows = {
      {"cat", "writer | cat",
       {"/bin/sh", "-c", "\"$0\" --writer \"$1\" | cat", self_path, n}, {}, {}},
      {"remote", "mosixrun --vcluster 2 --map-by node -np 2 writer (rank 1 on vnode1)",
       {mosixrun, "--vcluster", "2", "--map-by", "node", "-np", "2", self_path, "--writer", n,
        "--rank", "1", "--not-on", "vnode0"},
       {}, {}},
      {"local", "mosixrun -np 1 writer", {mosixrun, "-np", "1", self_path, "--writer", n}, {}, {}},
      {"direct", "writer (no relay)", {self_path, "--writer", n}, {}, {}},
  };

  // Interleaved rounds, so that a change of load on the machine hits every
  // row alike.
  const std::string load_before = load_average();
  std::vector<std::vector<Sample>> samples(rows.size());
  for (int round = 0; round < runs; ++round) {
    for (size_t r = 0; r < rows.size(); ++r) {
      if (!rows[r].failure.empty()) continue;
      std::fprintf(stderr, "bench_stdout: round %d/%d: %s ...\n", round + 1, runs,
                   rows[r].name.c_str());
      auto s = measure(rows[r].argv, bytes, timeout_s, rows[r].failure);
      if (s) samples[r].push_back(*s);
    }
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].failure.empty() || samples[r].empty()) continue;
    std::vector<double> stream, total;
    for (const Sample& s : samples[r]) {
      stream.push_back(s.stream_s);
      total.push_back(s.total_s);
    }
    rows[r].median = Sample{median(stream), median(total)};
  }

  std::printf("%llu MiB through a pipe to this program, every byte checked; median of %d runs\n",
              mib, runs);
  std::printf("load average before %s, after %s (2 cores here are shared with whatever else runs)\n",
              load_before.c_str(), load_average().c_str());
  std::printf("%-7s %11s %9s %9s %9s  %s\n", "path", "MiB/s", "vs cat", "total", "vs cat",
              "command");
  const double mb = static_cast<double>(mib);
  const Row& cat = rows[0];
  bool failed = false;
  for (const Row& row : rows) {
    if (!row.median) {
      failed = true;
      std::printf("%-7s FAILED: %s  (%s)\n", row.name.c_str(), row.failure.c_str(),
                  row.command.c_str());
      continue;
    }
    double rate = mb / row.median->stream_s;
    double total_rate = mb / row.median->total_s;
    if (cat.median) {
      std::printf("%-7s %11.0f %8.2fx %8.3fs %8.2fx  %s\n", row.name.c_str(), rate,
                  rate / (mb / cat.median->stream_s), row.median->total_s,
                  total_rate / (mb / cat.median->total_s), row.command.c_str());
    } else {
      std::printf("%-7s %11.0f %9s %8.3fs %9s  %s\n", row.name.c_str(), rate, "-",
                  row.median->total_s, "-", row.command.c_str());
    }
  }
  const Row& remote = rows[1];
  if (cat.median && remote.median && samples[0].size() == samples[1].size()) {
    std::vector<double> paired;
    std::printf("remote/cat in each round:");
    for (size_t i = 0; i < samples[0].size(); ++i) {
      paired.push_back(samples[0][i].stream_s / samples[1][i].stream_s);
      std::printf(" %.2f", paired.back());
    }
    std::printf("; median %.2fx\n", median(paired));
  }
  if (cat.median && remote.median) {
    double ratio = (mb / remote.median->stream_s) / (mb / cat.median->stream_s);
    std::printf("goal: remote stdout >= 0.5x cat through a pipe (MiB/s, first to last byte): "
                "%.2fx, %s\n", ratio, ratio >= 0.5 ? "met" : "NOT met");
  }
  return failed ? 1 : 0;
}
