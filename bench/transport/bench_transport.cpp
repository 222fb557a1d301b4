// MPI transport throughput, as a ratio to a pipe copy measured in the same run,
// plus round-trip time and the CPU an idle daemon's transport burns, for the
// progress settings of MpiTransport. Run it without arguments: it starts
// itself under `mpirun -np 2` once per setting and prints one table.
//   bench_transport [--mib N] [--quick]
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../common/cli.h"
#include "runtime/transport/mpi/mpi_transport.h"

namespace mosix {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

constexpr std::size_t kChunk = 1u << 20;

// Bytes per second through a pipe from this thread to another, 1 MiB at a time.
double pipe_rate(std::size_t total) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  std::vector<char> out(kChunk, 'x');
  std::thread reader([&] {
    std::vector<char> in(kChunk);
    std::size_t got = 0;
    while (got < total) {
      const ssize_t n = read(fds[0], in.data(), in.size());
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
  });
  const auto start = Clock::now();
  for (std::size_t sent = 0; sent < total;) {
    const ssize_t n = write(fds[1], out.data() + (sent % kChunk), kChunk - sent % kChunk);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  close(fds[1]);
  reader.join();
  const double rate = static_cast<double>(total) / seconds_since(start);
  close(fds[0]);
  return rate;
}

// Bytes per second of encode_frame + decode_frame of 1 MiB chunks, one thread.
double codec_rate(std::size_t total) {
  ImageChunk chunk{1, 0, Bytes(kChunk, 7)};
  const auto start = Clock::now();
  for (std::size_t done = 0; done < total; done += kChunk) {
    auto m = decode_frame(encode_frame(chunk));
    if (!m) return 0;
  }
  return static_cast<double>(total) / seconds_since(start);
}

std::vector<Delivery> wait(Transport& t, int timeout_ms = -1) {
  auto in = receive_wait(t, timeout_ms);
  if (!in) {
    std::fprintf(stderr, "bench_transport: %s\n", in.error().message.c_str());
    std::exit(1);
  }
  return std::move(*in);
}

void expect_one(Transport& t) {
  while (wait(t).empty()) {
  }
}

// Rank 0 streams `total` bytes to rank 1 in ImageChunks; rank 1 decodes each
// and answers once it has everything. Returns bytes per second at rank 0.
double stream(Transport& t, std::size_t total) {
  if (t.rank() == 0) {
    const auto start = Clock::now();
    for (std::size_t off = 0; off < total; off += kChunk) {
      (void)send_message(t, 1, ImageChunk{1, off, Bytes(kChunk, 'x')});
    }
    expect_one(t);
    return static_cast<double>(total) / seconds_since(start);
  }
  std::size_t got = 0;
  while (got < total) {
    for (const auto& d : wait(t)) {
      auto m = decode_delivery(d);
      if (!m) {
        std::fprintf(stderr, "bench_transport: %s\n", m.error().message.c_str());
        std::exit(1);
      }
      got += std::get<ImageChunk>(*m).bytes.size();
    }
  }
  (void)send_message(t, 0, Shutdown{"done"});
  return 0;
}

double round_trip_us(Transport& t, int rounds) {
  const auto start = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    if (t.rank() == 0) {
      (void)send_message(t, 1, GuestSignal{i, 10});
      expect_one(t);
    } else {
      expect_one(t);
      (void)send_message(t, 0, GuestSignal{i, 10});
    }
  }
  return seconds_since(start) * 1e6 / rounds;
}

// The command line: --mib and --quick for people; the rest is what the
// benchmark passes to its copies under mpirun (one setting each).
struct Args {
  std::size_t mib = 512;
  bool quick = false;
  int idle_max_us = -1;  // -1: MpiTransport's default
  int fixed = 0;
  std::string label = "adaptive";
  int keep_heap = 1;
  int child = 0;  // 1 in the copies (they are told apart by OMPI_COMM_WORLD_SIZE)
};

int child(const Args& args) {
  MpiTransport::Options options;
  if (args.idle_max_us >= 0) options.idle_poll_max = std::chrono::microseconds(args.idle_max_us);
  options.fixed_period = args.fixed == 1;
  const std::string& label = args.label;
  const bool keep_heap = args.keep_heap == 1;
  const std::size_t total = args.mib << 20;
  if (keep_heap) {
    // Reuse freed buffers instead of mapping fresh pages for every 1 MiB frame.
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
  }
  auto made = MpiTransport::create(options);
  if (!made) {
    std::fprintf(stderr, "bench_transport: %s\n", made.error().message.c_str());
    return 1;
  }
  Transport& t = **made;
  if (t.size() != 2) {
    std::fprintf(stderr, "bench_transport: run with 2 ranks\n");
    return 1;
  }
  double pipe = 0;
  double codec = 0;
  if (t.rank() == 0) {
    pipe_rate(total / 4);  // warm up
    pipe = pipe_rate(total);
    codec = codec_rate(total / 4);
  }
  stream(t, 32u << 20);  // warm up: connections, allocator
  const double rate = stream(t, total);
  round_trip_us(t, 100);
  const double rtt = round_trip_us(t, 2000);
  // Idle: nothing to send or receive for one second.
  const double cpu0 = cpu_seconds();
  const auto idle_start = Clock::now();
  (void)wait(t, 1000);
  const double idle_pct = 100.0 * (cpu_seconds() - cpu0) / seconds_since(idle_start);
  if (t.rank() == 0) {
    std::printf("RESULT %-30s %9.2f %9.2f %7.2fx %10.1f %8.2f %9.2f\n", label.c_str(), rate / 1e9,
                pipe / 1e9, rate / pipe, rtt, idle_pct, codec / 1e9);
  }
  if (!t.close().ok()) return 1;
  return 0;
}

int launch(const char* self, const Args& args) {
  const std::string mib = std::to_string(args.mib);
  const bool quick = args.quick;
  if (getuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  struct Setting {
    const char* label;
    const char* mpirun;
    const char* args;
  };
  std::vector<Setting> settings = {
      {"shm adaptive, idle<=10ms", "", "--idle-max-us 10000 --fixed 0"},
      {"tcp adaptive, idle<=10ms", "--mca btl self,tcp", "--idle-max-us 10000 --fixed 0"},
  };
  if (!quick) {
    settings.push_back({"shm adaptive, idle<=1ms", "", "--idle-max-us 1000 --fixed 0"});
    settings.push_back({"shm adaptive, idle<=50ms", "", "--idle-max-us 50000 --fixed 0"});
    settings.push_back({"shm timer every 1ms", "", "--idle-max-us 1000 --fixed 1"});
    settings.push_back({"tcp timer every 1ms", "--mca btl self,tcp", "--idle-max-us 1000 --fixed 1"});
    settings.push_back({"shm adaptive, fresh pages", "", "--idle-max-us 10000 --fixed 0 --keep-heap 0"});
  }
  std::printf("bench_transport: %s MiB from rank 0 to rank 1 in 1 MiB ImageChunks (encode, CRC32C, "
              "MPI, decode), against a pipe copy of as many bytes in this run\n",
              mib.c_str());
  std::printf("%-30s %9s %9s %8s %10s %8s %9s\n", "setting", "GB/s", "pipe GB/s", "ratio",
              "rtt us", "idle CPU%", "codec GB/s");
  std::fflush(stdout);
  int failures = 0;
  for (const auto& s : settings) {
    const std::string command = std::string("mpirun --oversubscribe -np 2 ") + s.mpirun + " '" + self +
                                "' --child 1 --label '" + s.label + "' --mib " + mib + " " + s.args;
    FILE* p = popen(command.c_str(), "r");
    if (!p) return 1;
    char line[512];
    bool got = false;
    while (std::fgets(line, sizeof line, p)) {
      if (std::strncmp(line, "RESULT ", 7) == 0) {
        std::fputs(line + 7, stdout);
        got = true;
      }
    }
    if (pclose(p) != 0 || !got) {
      std::printf("%-30s failed: %s\n", s.label, command.c_str());
      ++failures;
    }
    std::fflush(stdout);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace mosix

int main(int argc, char** argv) {
  mosix::Args args;
  CLI::App app{"MPI transport throughput against a pipe copy, round-trip time and idle CPU, per "
               "progress setting (it starts itself under mpirun -np 2 once per setting)",
               "bench_transport"};
  app.add_option("--mib", args.mib, "MiB streamed from rank 0 to rank 1")->check(mosix::bench::positive());
  app.add_flag("--quick", args.quick, "Only the two main settings");
  // What each copy under mpirun is given.
  app.add_option("--child", args.child, "")->group("");
  app.add_option("--idle-max-us", args.idle_max_us, "")->group("");
  app.add_option("--fixed", args.fixed, "")->group("");
  app.add_option("--label", args.label, "")->group("");
  app.add_option("--keep-heap", args.keep_heap, "")->group("");
  if (auto status = mosix::bench::parse_command_line(app, argc, argv)) return *status;
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) return mosix::child(args);
  return mosix::launch(argv[0], args);
}
