// bench_ckpt [SIZE_MIB...]: checkpoint and restore speed against the machine's
// own memcpy and pipe-copy bandwidth, measured in the same run.
//
// For each size (default 64 512 2048) a guest (this program re-run with
// --guest and the agent preloaded) writes SIZE MiB of memory, then:
//  - it is checkpointed to a FIFO that this process drains (--leave-running):
//    "to a pipe", the goal being >= 0.5x pipe-copy bandwidth;
//  - it is checkpointed to a file in the page cache as `mosixctl checkpoint
//    --kill` does it (request_checkpoint: written, checked, made durable,
//    killed), uncompressed and with --compress fast;
//  - each file is restored with mosix-restore (time from exec until the
//    restored guest answers on its standard input), the goal being >= 0.5x
//    memcpy, and against the write rate of never-touched pages, which bounds
//    any restore;
//  - the time the guest is stopped is the time from the request until the
//    agent's answer (the agent writes with every thread parked).
//  - where `criu` is installed and works, `criu dump` of the same guest
//    without the agent, against our "to file" time, which is all of
//    `mosixctl checkpoint --kill`, its read-back check included (the CRIU
//    column); where
//    it is not, or fails, the last line says why.
// Also: the agent's resident memory in an idle guest (smaps of libmosix.so;
// goal under 1 MiB) and its threads (goal: none of its own).
// Paths: MOSIX_AGENT (default ../lib/libmosix.so next to this binary),
// MOSIX_RESTORER (default mosix-restore next to it), BENCH_DIR for the images
// (default /tmp). Not a test: prints numbers and ratios, exits 0 unless
// something failed to run.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../common/cli.h"
#include "runtime/ckpt/format/image_file.h"
#include "runtime/ckpt/request.h"
#include "runtime/sys/install_path.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double gib_per_s(std::uint64_t bytes, double s) { return s > 0 ? bytes / s / (1 << 30) : 0; }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_ckpt: %s\n", what.c_str());
  std::exit(1);
}

// The guest: SIZE MiB of written memory (a counter pattern that compresses a
// little, like real data), then it answers "p" to every byte on stdin.
int run_guest(std::size_t mib) {
  std::size_t len = mib << 20;
  auto* p = static_cast<std::uint64_t*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) return 1;
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = 0; i < len / 8; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (i & 1) ? x : i;
  }
  for (;;) {
    char c;
    ssize_t n = read(0, &c, 1);
    if (n == 0) return 0;
    if (n < 0) continue;
    if (write(1, "p", 1) != 1) return 1;
  }
}

std::string self_dir() {
  auto dir = mosix::sys::program_dir();
  if (!dir) die(dir.error().message);
  return *dir;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// A child whose stdin and stdout are pipes to us.
struct Child {
  pid_t pid = -1;
  int to = -1, from = -1;

  // Sends a byte and waits for the answer: the child is running its loop.
  void ping() const {
    char c = 'x';
    if (write(to, &c, 1) != 1) die("the guest's stdin is closed");
    if (read(from, &c, 1) != 1) die("the guest did not answer");
  }
  void end() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (to >= 0) close(to);
    if (from >= 0) close(from);
    pid = -1;
    to = from = -1;
  }
};

Child spawn(const std::vector<std::string>& argv, const std::string& preload) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) die("pipe failed");
  Child c;
  c.pid = fork();
  if (c.pid < 0) die("fork failed");
  if (c.pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close_range(3, ~0U, 0);  // an inherited descriptor would make the checkpoint refuse
    if (!preload.empty()) setenv("LD_PRELOAD", preload.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  c.to = in[1];
  c.from = out[0];
  return c;
}

double memcpy_gib_s(std::size_t len) {
  std::vector<char> a(len, 1), b(len, 2);
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    std::memcpy(b.data(), a.data(), len);
    best = std::min(best, seconds_since(t0));
    a[i] = b[len - 1 - i];
  }
  return gib_per_s(len, best);
}

double fresh_pages_gib_s(std::size_t len) {
  auto t0 = Clock::now();
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap failed");
  std::memset(p, 3, len);
  double s = seconds_since(t0);
  munmap(p, len);
  return gib_per_s(len, s);
}

// Reads a descriptor to its end, counting; for the FIFO and pipe copies.
std::uint64_t drain(int fd) {
  static char buf[1 << 20];
  std::uint64_t total = 0;
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    total += static_cast<std::uint64_t>(n);
  }
  return total;
}

double pipe_gib_s(std::size_t len) {
  int p[2];
  if (pipe(p) != 0) die("pipe failed");
  fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  std::vector<char> src(1 << 20, 5);
  std::uint64_t got = 0;
  auto t0 = Clock::now();
  std::thread reader([&] { got = drain(p[0]); });
  for (std::size_t done = 0; done < len;) {
    ssize_t n = write(p[1], src.data(), std::min(src.size(), len - done));
    if (n <= 0) die("pipe write failed");
    done += static_cast<std::size_t>(n);
  }
  close(p[1]);
  reader.join();
  double s = seconds_since(t0);
  close(p[0]);
  return gib_per_s(got, s);
}

struct Timed {
  double seconds = 0;
  std::uint64_t bytes = 0;
};

Timed checkpoint(pid_t pid, const std::string& out, mosix::ckpt::AfterCheckpoint mode,
                 mosix::ckpt::Compression c, bool to_fifo) {
  mosix::ckpt::CheckpointRequest r;
  r.pid = pid;
  r.mode = mode;
  r.compression = c;
  r.image_path = out;
  std::uint64_t drained = 0;
  std::thread reader;
  if (to_fifo) {
    unlink(out.c_str());
    if (mkfifo(out.c_str(), 0600) != 0) die("mkfifo failed");
    reader = std::thread([&] {
      int fd = open(out.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        drained = drain(fd);
        close(fd);
      }
    });
  }
  auto t0 = Clock::now();
  // To a file, as `mosixctl checkpoint --kill` does it: the agent writes,
  // the image is read back and checked (beside the writing), made durable,
  // and only then is the process killed.
  mosix::Expected<std::uint64_t> bytes = mosix::make_error("no checkpoint");
  if (to_fifo) {
    bytes = mosix::ckpt::ask_agent(r, out);
  } else if (auto done = mosix::ckpt::request_checkpoint(r); done) {
    bytes = done->bytes;
  } else {
    bytes = done.error();
  }
  double s = seconds_since(t0);
  if (to_fifo) {
    if (!bytes) close(open(out.c_str(), O_RDWR | O_CLOEXEC));  // lets a reader still in open() go
    reader.join();
    unlink(out.c_str());
  }
  if (!bytes) die(bytes.error().message);
  if (to_fifo && drained != *bytes) die("the FIFO carried another size than the agent wrote");
  return {s, *bytes};
}

std::string fmt_ratio(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", r);
  return buf;
}

// `criu` in PATH, or "".
std::string find_criu() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  for (std::size_t at = 0; at <= dirs.size();) {
    std::size_t end = dirs.find(':', at);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(at, end - at) + "/criu";
    if (end > at && access(candidate.c_str(), X_OK) == 0) return candidate;
    at = end + 1;
  }
  return "";
}

// CRIU's `criu dump` (which kills the task, as our "to file" row's mode does)
// of the same guest without the agent: seconds, or nullopt with the reason
// in *why (no criu here, or it failed: Debian 12's 3.17 does on kernel 6.x).
std::optional<double> criu_dump_seconds(const std::string& criu, const std::string& self, std::size_t mib,
                                        const std::string& work, std::string* why) {
  Child guest = spawn({self, "--guest", std::to_string(mib)}, "");
  guest.ping();
  std::string dir = work + "/bench_ckpt." + std::to_string(getpid()) + ".criu";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    std::string t = std::to_string(guest.pid);
    execl(criu.c_str(), "criu", "dump", "-t", t.c_str(), "-D", dir.c_str(), "-o", "dump.log", "--shell-job",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) status = -1;
  double s = seconds_since(t0);
  guest.end();
  std::optional<double> result;
  if (status == 0) {
    result = s;
  } else {
    std::ifstream log(dir + "/dump.log");
    std::string line, last;
    while (std::getline(log, line))
      if (line.find("Error") != std::string::npos) last = line;
    *why = criu + " dump failed (" +
           (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : std::string("status -1")) +
           (last.empty() ? ")" : "): " + last);
  }
  std::filesystem::remove_all(dir);
  return result;
}

std::size_t agent_rss_kib(pid_t pid) {
  std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  bool in_agent = false;
  std::size_t kib = 0;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 16)
      in_agent = line.find("/libmosix.so") != std::string::npos;
    else if (in_agent && line.rfind("Rss:", 0) == 0)
      kib += std::strtoul(line.c_str() + 4, nullptr, 10);
  }
  return kib;
}

int thread_count(pid_t pid) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  std::optional<std::size_t> guest;
  CLI::App app{"Checkpoint and restore speed against memcpy and a pipe copy, measured in this run",
               "bench_ckpt"};
  app.add_option("sizes", sizes, "Guest sizes in MiB (default 64 512 2048)")->check(mosix::bench::positive());
  app.add_option("--guest", guest, "Be the guest: write this many MiB, then answer on stdin")->group("");
  if (auto status = mosix::bench::parse_command_line(app, argc, argv)) return *status;
  if (guest) return run_guest(*guest);
  if (sizes.empty()) sizes = {64, 512, 2048};
  std::string dir = self_dir();
  std::string agent = env_or("MOSIX_AGENT", *mosix::sys::installed_library("libmosix.so"));
  std::string restorer = env_or("MOSIX_RESTORER", *mosix::sys::installed_program("mosix-restore"));
  std::string work = env_or("BENCH_DIR", "/tmp");
  std::string self = dir + "/bench_ckpt";
  if (access(agent.c_str(), R_OK) != 0) die("no agent at " + agent + " (set MOSIX_AGENT)");
  if (access(restorer.c_str(), X_OK) != 0) die("no restorer at " + restorer + " (set MOSIX_RESTORER)");

  double mc = memcpy_gib_s(256 << 20), pc = pipe_gib_s(std::size_t{1} << 30), fresh = fresh_pages_gib_s(512 << 20);
  std::printf("baselines: memcpy %.2f GiB/s, pipe copy %.2f GiB/s, writing fresh pages %.2f GiB/s\n", mc, pc, fresh);

  {
    Child idle = spawn({self, "--guest", "1"}, agent);
    idle.ping();
    std::printf("idle guest: agent resident %zu KiB (goal < 1024), threads %d (goal 1: none of the agent's)\n",
                agent_rss_kib(idle.pid), thread_count(idle.pid));
    idle.end();
  }

  using mosix::ckpt::AfterCheckpoint;
  using mosix::ckpt::Compression;
  // The CRIU column: where criu is installed and works here.
  std::string criu = find_criu(), no_criu;
  if (criu.empty()) no_criu = "criu is not installed here";
  std::printf("%8s %-5s %10s %9s %8s %9s %8s %9s %8s %8s\n", "MiB", "zstd", "image MiB", "to pipe", "x pipe",
              "to file", "restore", "x memcpy", "x fresh", "x criu");
  for (std::size_t mib : sizes) {
    for (Compression c : {Compression::none, Compression::fast}) {
      std::uint64_t raw = std::uint64_t{mib} << 20;
      Child guest = spawn({self, "--guest", std::to_string(mib)}, agent);
      guest.ping();
      std::string fifo = work + "/bench_ckpt." + std::to_string(getpid()) + ".fifo";
      Timed piped = checkpoint(guest.pid, fifo, AfterCheckpoint::kLeaveRunning, c, true);
      guest.ping();
      std::string image = work + "/bench_ckpt." + std::to_string(getpid()) + ".img";
      Timed filed = checkpoint(guest.pid, image, AfterCheckpoint::kKill, c, false);
      waitpid(guest.pid, nullptr, 0);
      guest.pid = -1;
      guest.end();
      auto summary = mosix::ckpt::verify_image_file(image);
      if (!summary) die(summary.error().message);
      auto t0 = Clock::now();
      Child restored = spawn({restorer, image}, "");
      restored.ping();
      double restore_s = seconds_since(t0);
      restored.end();
      unlink(image.c_str());
      std::string vs_criu = "-";
      if (c == Compression::none && no_criu.empty()) {
        if (auto criu_s = criu_dump_seconds(criu, self, mib, work, &no_criu))
          vs_criu = fmt_ratio(*criu_s / filed.seconds);
      }
      std::printf("%8zu %-5s %10.1f %7.3f s %8.2f %7.3f s %6.3f s %9.2f %8.2f %8s\n", mib,
                  c == Compression::none ? "none" : "fast", filed.bytes / 1048576.0, piped.seconds,
                  gib_per_s(piped.bytes, piped.seconds) / pc, filed.seconds, restore_s,
                  gib_per_s(raw, restore_s) / mc, gib_per_s(raw, restore_s) / fresh, vs_criu.c_str());
    }
  }
  std::printf("to pipe / to file: seconds from the request, all the while the guest is "
              "stopped; to pipe: until the agent's answer (leave-running); to file: all of `mosixctl checkpoint --kill` (the image "
              "checked as it is written, made durable, the process killed).\nx pipe: image bytes per second over pipe copy (goal >= 0.5, "
              "uncompressed); x memcpy: guest memory restored per second over memcpy (goal >= 0.5), x fresh: "
              "over writing never-touched pages.\nrestore: exec of mosix-restore until the restored guest "
              "answers; the restorer reads the image twice (verification, then restore).\nx criu: `criu dump` of the "
              "same guest (without the agent) over our \"to file\" time, in the same run (goal >= 1.0)%s%s\n",
              no_criu.empty() ? "" : ": no CRIU column, ", no_criu.c_str());
  return 0;
}
