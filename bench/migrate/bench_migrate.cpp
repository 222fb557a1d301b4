// bench_migrate: what moving a running guest costs against the size of its
// memory, and against a pipe copy between two processes measured in the same
// run.
//
// For each size (--sizes, MiB, default 64,256,512), dirtying rate (--dirty,
// MB/s, default 0,100), way of moving (--modes, default precopy,stop: the
// pre-copy rounds of docs/migration.md, or MOSIX_PRECOPY=0 for the whole
// copy while stopped, the baseline) and run (--runs, default 3): SIZE bytes are copied
// through a pipe from one process to another; then `mosixrun --vcluster 3
// --map-by node --migrate off -np 1 mem_hold SIZE DONE SECONDS DIRTY` starts
// a guest that writes SIZE MiB of incompressible memory, keeps rewriting it
// at DIRTY MB/s (0: idle) and waits; it is moved with `mosixctl migrate 0
// vnode1 --json` and back to the node it started on (vnode0); then it checks
// every byte of its memory and must exit 0. Printed per size, rate and
// direction, medians over the runs: the final image's size and all the bytes
// sent (pre-copy rounds and image) over the guest's memory, the time the
// guest was stopped (stopped_ms: from the stop at the source until the
// target has restored it; with pre-copy the rounds before run with the
// guest), the total time (total_ms: at the home node, from the order to the
// answer), the stopped time per GiB of memory, the guest's own progress
// (pages rewritten a second, from its tick lines) during the move over its
// rate before the first move, and the memory's MB/s over the stopped time
// against the pipe copy (best of 3 in each run). A
// size that needs more than the memory available (6x the size: guest, image
// in /dev/shm, frames, image at the target, restored guest) is skipped with a
// message.
//
// Every command has a deadline (--timeout SECONDS, default 120); the bench is
// a child subreaper, so a process of the job that outlives mosixrun comes
// back to it: every such process is named, killed and counted as a failure,
// as is an image left in /dev/shm by the job's node daemons. Progress goes to
// stderr, one line per step. Binaries are taken next to this one (--bin DIR);
// work files go under $BENCH_DIR (default /tmp) and are kept on failure or
// with --keep (MOSIX_LOG=debug passes through to mosixrun: its log is there).
// Not a test: exits 0 when every run worked, 1 otherwise.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/cli.h"
#include "../common/procs.h"
#include "../common/timed_run.h"
#include "runtime/sys/install_path.h"

namespace {

using mosix::bench::after;
using mosix::bench::Clock;
using mosix::bench::g_interrupted;
using mosix::bench::g_job_pid;
using mosix::bench::Command;
using mosix::bench::kill_leftovers;
using mosix::bench::Proc;
using mosix::bench::read_text;
using mosix::bench::record_descendants;
using mosix::bench::since;
using mosix::bench::supervise_jobs;
using mosix::bench::tail;
using mosix::bench::TimedChild;

constexpr int kVnodes = 3;
constexpr double kMemoryFactor = 6;  // guest, /dev/shm image, frames, memfd, restored guest

__attribute__((format(printf, 1, 2))) void progress(const char* fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "bench_migrate: %s\n", line);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::optional<std::uint64_t> mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return std::nullopt;
}

// MB/s (10^6 bytes) of a copy of `bytes` through a pipe from a child process
// to this one, 1 MiB writes and reads, 1 MiB pipe buffer; 0 on failure.
double pipe_mb_s(std::uint64_t bytes, double timeout_s) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return 0;
  ::fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  std::vector<char> src(1 << 20, 0x5a), dst(1 << 20, 1);
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    ::close(p[0]);
    for (std::uint64_t done = 0; done < bytes;) {
      ssize_t n = ::write(p[1], src.data(), std::min<std::uint64_t>(src.size(), bytes - done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(1);
      done += static_cast<std::uint64_t>(n);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  std::uint64_t got = 0;
  auto deadline = after(timeout_s);
  for (;;) {
    pollfd pf{p[0], POLLIN, 0};
    int left = static_cast<int>(std::max(0.0, std::chrono::duration<double, std::milli>(deadline - Clock::now()).count()));
    if (::poll(&pf, 1, left) == 0) break;
    ssize_t n = ::read(p[0], dst.data(), dst.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::uint64_t>(n);
  }
  ::close(p[0]);
  ::kill(pid, SIGKILL);  // harmless once it has exited; ends it if it hangs
  int status = 0;
  ::waitpid(pid, &status, 0);
  double s = since(t0);
  return got == bytes ? bytes / s / 1e6 : 0;
}

// After mosixrun has ended: what of its tree is still there after a grace
// period, killed and named (kill_leftovers); and images left in /dev/shm by
// its daemons.
std::string sweep(const std::map<pid_t, Proc>& seen) {
  std::string report = kill_leftovers(seen);
  std::string files;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator("/dev/shm", ec)) {
    std::string name = f.path().filename().string();
    for (const auto& [pid, p] : seen) {
      if (p.comm == "mosixd" && name.rfind("mosix-migrate-" + std::to_string(pid) + "-", 0) == 0) {
        files += (files.empty() ? "" : ", ") + f.path().string();
        std::filesystem::remove(f.path(), ec);
      }
    }
  }
  if (!files.empty()) report += (report.empty() ? "" : "; ") + std::string("images left (removed): ") + files;
  return report;
}

Command run_command(const std::vector<std::string>& argv, const std::string& stem, double timeout_s) {
  return mosix::bench::run_command(argv, stem, timeout_s, &g_interrupted);
}

struct Move {
  std::string from, to;
  std::uint64_t bytes = 0, sent = 0;  // the final image; every byte sent
  double stopped_s = 0, total_s = 0, ctl_s = 0;
  Clock::time_point began, ended;  // of mosixctl migrate
  double progress = -1;            // the guest's rate during the move over undisturbed; -1: not measured
};

// The guest's "mem_hold tick NS PAGES" lines: its progress in time.
struct Tick {
  std::int64_t ns;
  std::uint64_t pages;
};

std::vector<Tick> read_ticks(const std::string& text) {
  std::vector<Tick> ticks;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    long long ns = 0;
    unsigned long long pages = 0;
    if (std::sscanf(line.c_str(), "mem_hold tick %lld %llu", &ns, &pages) == 2) ticks.push_back({ns, pages});
  }
  return ticks;
}

std::int64_t mono_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Pages a second over [from, to]: from the last tick at or before `from` to
// the first at or after `to` (outer: a move, with the stop inside), or from
// the first tick after `from` to the last before `to` (inner); -1 without
// two such ticks.
double tick_rate(const std::vector<Tick>& ticks, std::int64_t from, std::int64_t to, bool outer) {
  const Tick* a = nullptr;
  const Tick* b = nullptr;
  for (const Tick& k : ticks) {
    if (outer ? k.ns <= from : k.ns >= from && a == nullptr) a = &k;
    if (outer ? k.ns >= to && b == nullptr : k.ns <= to) b = &k;
  }
  if (a == nullptr || b == nullptr || b->ns <= a->ns) return -1;
  return static_cast<double>(b->pages - a->pages) / (static_cast<double>(b->ns - a->ns) / 1e9);
}

struct Run {
  double pipe = 0;  // MB/s
  std::vector<Move> moves;
  std::string error;
};

struct Options {
  std::vector<std::uint64_t> sizes{64, 256, 512};
  std::vector<std::uint64_t> dirty{0, 100};
  std::vector<std::string> modes{"precopy", "stop"};
  int runs = 3;
  double timeout_s = 120;
  std::string bin;
  bool keep = false;
};

Run run_once(const Options& o, std::uint64_t mib, std::uint64_t dirty, const std::string& mode, int run,
             const std::string& work) {
  Run r;
  std::string tag = std::to_string(mib) + " MiB, " + std::to_string(dirty) + " MB/s, " + mode + ", run " +
                    std::to_string(run + 1) + "/" + std::to_string(o.runs);
  const char* t = tag.c_str();
  std::uint64_t bytes = mib << 20;

  for (int i = 0; i < 3; ++i) r.pipe = std::max(r.pipe, pipe_mb_s(bytes, o.timeout_s));
  if (r.pipe <= 0) {
    r.error = "the pipe copy between two processes failed";
    return r;
  }
  progress("[%s] pipe copy between two processes: %.0f MB/s (best of 3)", t, r.pipe);

  std::string stem =
      work + "/" + std::to_string(mib) + "." + std::to_string(dirty) + "." + mode + "." + std::to_string(run + 1);
  std::string done = stem + ".done", out_path = stem + ".mosixrun.out", err_path = stem + ".mosixrun.err";
  std::string job_seconds = std::to_string(static_cast<long>(6 * o.timeout_s));
  std::vector<std::string> argv = {o.bin + "/mosixrun", "--vcluster", std::to_string(kVnodes), "--map-by", "node",
                                   "--migrate", "off", "--timeout", job_seconds, "-np", "1",
                                   o.bin + "/mem_hold", std::to_string(mib), done, job_seconds,
                                   std::to_string(dirty)};
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  progress("[%s] starting mosixrun --vcluster %d -np 1 mem_hold %llu (dirtying %llu MB/s)", t, kVnodes,
           static_cast<unsigned long long>(mib), static_cast<unsigned long long>(dirty));
  auto t0 = Clock::now();
  // The job's node daemons read it (runtime/daemon/migration.h).
  ::setenv("MOSIX_PRECOPY", mode == "stop" ? "0" : "1", 1);
  auto job = TimedChild::start(argv, out, err);
  ::close(out);
  ::close(err);
  if (!job) {
    r.error = "cannot start mosixrun";
    return r;
  }
  g_job_pid = job->pid();
  std::map<pid_t, Proc> seen;
  std::optional<int> job_status;

  // Ends the job (if still running), finds what it left, records the error.
  auto finish = [&](std::string error) {
    if (!job_status) {
      job->kill_group(std::chrono::seconds(5));
      error += "; mosixrun killed";
    }
    g_job_pid = 0;
    std::string left = sweep(seen);
    if (!left.empty()) error += (error.empty() ? "" : "; ") + left;
    if (!error.empty()) {
      std::string said = tail(err_path, 15);
      error += "\n  mosixrun's stderr (" + err_path + ")" + (said.empty() ? ": empty" : ", last lines:\n" + said);
    }
    r.error = error;
    return r;
  };

  std::string id = std::to_string(job->pid());
  auto deadline = after(o.timeout_s);
  while (read_text(out_path).find("mem_hold ready") == std::string::npos) {
    if (g_interrupted) return finish("interrupted");
    job_status = job->wait_until(std::min(deadline, after(0.05)));
    if (job_status)
      return finish("mosixrun ended (" + mosix::bench::describe_status(job_status) + ") before the guest was ready: " +
                    tail(out_path, 3));
    if (Clock::now() >= deadline) return finish("the guest was not ready after " + fmt("%.0f s", o.timeout_s));
  }
  record_descendants(job->pid(), seen);

  Command ps = run_command({o.bin + "/mosixctl", "ps", "--job", id, "--json"}, stem + ".ps", o.timeout_s);
  std::string start_node;
  try {
    auto reply = nlohmann::json::parse(ps.out);
    for (const auto& g : reply.at("guests"))
      if (g.at("rank") == 0) start_node = g.at("node").get<std::string>();
  } catch (const std::exception& e) {
    return finish("mosixctl ps (" + mosix::bench::describe_status(ps.status) + "): " + e.what() + ": " + ps.err);
  }
  progress("[%s] guest ready on %s after %.1f s (job %s, %zu processes)", t, start_node.c_str(), since(t0), id.c_str(),
           seen.size());
  std::string away = start_node == "vnode1" ? "vnode0" : "vnode1";
  // A writing guest's undisturbed rate needs a second of its ticks first.
  Clock::time_point undisturbed_from = Clock::now();
  while (dirty > 0 && since(undisturbed_from) < 1.0 && !g_interrupted) {
    job_status = job->wait_until(after(0.05));
    if (job_status) return finish("mosixrun ended (" + mosix::bench::describe_status(job_status) + ") before the moves");
  }
  Clock::time_point undisturbed_to = Clock::now();

  for (const std::string& to : {away, start_node}) {
    if (g_interrupted) return finish("interrupted");
    Move m;
    m.began = Clock::now();
    Command c = run_command({o.bin + "/mosixctl", "migrate", "0", to, "--job", id, "--json"}, stem + ".migrate-" + to,
                    o.timeout_s);
    m.ended = Clock::now();
    record_descendants(job->pid(), seen);
    std::string what = "mosixctl migrate 0 " + to;
    if (g_interrupted) return finish("interrupted during " + what);
    if (!c.status) return finish(what + ": no answer after " + fmt("%.0f s", o.timeout_s) + " (killed)");
    if (c.out.find('{') == std::string::npos)
      return finish(what + " failed (" + mosix::bench::describe_status(c.status) + "): " + c.err);
    try {
      auto j = nlohmann::json::parse(c.out);
      if (!j.value("ok", false))
        return finish(what + " failed (" + mosix::bench::describe_status(c.status) + "): " + j.value("error", c.err));
      m.from = j.at("from").get<std::string>();
      m.to = j.at("to").get<std::string>();
      m.bytes = j.at("bytes").get<std::uint64_t>();
      m.sent = m.bytes + j.value("precopy_bytes", std::uint64_t{0});
      m.stopped_s = j.at("stopped_ms").get<double>() / 1e3;
      m.total_s = j.at("total_ms").get<double>() / 1e3;
    } catch (const std::exception& e) {
      return finish(what + " (" + mosix::bench::describe_status(c.status) + "): unreadable answer: " + e.what() +
                    ": " + c.out + c.err);
    }
    m.ctl_s = c.seconds;
    progress("[%s] %s -> %s: image %.1f MiB, sent %.1f MiB, stopped %.3f s, total %.3f s (mosixctl %.3f s)", t,
             m.from.c_str(), m.to.c_str(), m.bytes / 1048576.0, m.sent / 1048576.0, m.stopped_s, m.total_s, m.ctl_s);
    r.moves.push_back(m);
  }

  // The last move's progress needs ticks after it.
  for (auto moved = Clock::now(); dirty > 0 && since(moved) < 0.3 && !g_interrupted && !job_status;)
    job_status = job->wait_until(after(0.05));
  if (int fd = ::open(done.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600); fd >= 0) ::close(fd);
  auto t1 = Clock::now();
  deadline = after(o.timeout_s);
  while (!job_status && Clock::now() < deadline && !g_interrupted)
    job_status = job->wait_until(std::min(deadline, after(0.2)));
  if (!job_status) return finish(g_interrupted ? "interrupted" : "mosixrun did not end after the guest was told to");
  std::string said = read_text(out_path);
  if (dirty > 0) {
    std::vector<Tick> ticks = read_ticks(said);
    double undisturbed = tick_rate(ticks, mono_ns(undisturbed_from), mono_ns(undisturbed_to), false);
    for (Move& m : r.moves) {
      double during = tick_rate(ticks, mono_ns(m.began), mono_ns(m.ended), true);
      if (undisturbed > 0 && during >= 0) m.progress = during / undisturbed;
      progress("[%s] %s -> %s: %.0f pages/s during the move, %.0f before", t, m.from.c_str(), m.to.c_str(), during, undisturbed);
    }
  }
  std::string expected = "RESULT mem_hold " + std::to_string(mib) + " OK";
  if (!mosix::bench::succeeded(job_status) || said.find(expected) == std::string::npos)
    return finish("the guest or its job failed after the moves (mosixrun " + mosix::bench::describe_status(job_status) +
                  "): " + tail(out_path, 3));
  progress("[%s] the guest checked its %llu MiB: every byte right; mosixrun exit 0 %.1f s after the go", t,
           static_cast<unsigned long long>(mib), since(t1));
  Run ok = finish("");
  if (ok.error.empty()) progress("[%s] nothing left running (%zu processes of the job gone)", t, seen.size());
  return ok;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// One row per direction for a size, rate and mode, medians over the runs;
// false when a run failed.
bool bench_case(const Options& o, std::uint64_t mib, std::uint64_t dirty, const std::string& mode,
                const std::string& work) {
  bool failed = false;
  std::vector<double> pipes;
  std::map<std::string, std::vector<Move>> by_direction;
  std::vector<std::string> order;
  for (int run = 0; run < o.runs && !g_interrupted; ++run) {
    Run r = run_once(o, mib, dirty, mode, run, work);
    if (r.pipe > 0) pipes.push_back(r.pipe);
    for (const Move& m : r.moves) {
      std::string key = m.from + "->" + m.to;
      if (!by_direction.count(key)) order.push_back(key);
      by_direction[key].push_back(m);
    }
    if (!r.error.empty()) {
      failed = true;
      progress("[%llu MiB, %llu MB/s, %s, run %d/%d] FAILED: %s", static_cast<unsigned long long>(mib),
               static_cast<unsigned long long>(dirty), mode.c_str(), run + 1, o.runs, r.error.c_str());
      std::printf("%6llu %5llu %-7s run %d FAILED: %s\n", static_cast<unsigned long long>(mib),
                  static_cast<unsigned long long>(dirty), mode.c_str(), run + 1, r.error.c_str());
    }
  }
  double pipe = median(pipes);
  double mem = static_cast<double>(mib << 20);
  for (const std::string& key : order) {
    const auto& moves = by_direction[key];
    std::vector<double> image, sent, stopped, total, prog;
    for (const Move& m : moves) {
      image.push_back(static_cast<double>(m.bytes));
      sent.push_back(static_cast<double>(m.sent));
      stopped.push_back(m.stopped_s);
      total.push_back(m.total_s);
      if (m.progress >= 0) prog.push_back(m.progress);
    }
    double s = median(stopped), tt = median(total);
    double rate_s = s > 0 ? mem / s / 1e6 : 0;
    std::string p = prog.empty() ? "-" : fmt("%.2fx", median(prog));
    std::printf("%6llu %5llu %-7s %-16s %9.1f %9.1f %5.2fx %7.3f s %7.3f s %9.0f %8s %6.3fx %9.0f%s\n",
                static_cast<unsigned long long>(mib), static_cast<unsigned long long>(dirty), mode.c_str(), key.c_str(),
                median(image) / 1048576, median(sent) / 1048576, median(sent) / mem, s, tt,
                s * 1e3 / (mem / (1 << 30)), p.c_str(), pipe > 0 ? rate_s / pipe : 0, pipe,
                moves.size() < static_cast<std::size_t>(o.runs)
                    ? (" (" + std::to_string(moves.size()) + " of " + std::to_string(o.runs) + " runs)").c_str()
                    : "");
  }
  std::fflush(stdout);
  return !failed;
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_migrate: %s (see bench_migrate --help)\n", why.c_str());
  std::exit(2);
}

// Fills `o` from the command line; an exit status when the program must stop
// (help shown, or a usage error reported).
std::optional<int> parse(int argc, char** argv, Options& o) {
  if (auto dir = mosix::sys::program_dir()) o.bin = *dir;
  CLI::App app{"Migration of 64 MiB..2 GiB guests, idle or rewriting memory: stopped and total time, bytes sent, the guest's progress",
               "bench_migrate"};
  app.add_option("--sizes", o.sizes, "Guest sizes in MiB, e.g. 64,256,1024")
      ->delimiter(',')
      ->check(mosix::bench::positive());
  app.add_option("--dirty", o.dirty, "MB/s of pages the guest rewrites during the moves, e.g. 0,100 (0: idle)")
      ->delimiter(',');
  app.add_option("--modes", o.modes, "precopy (rounds while the guest runs), stop (the whole copy while stopped)")
      ->delimiter(',')
      ->check(CLI::IsMember({"precopy", "stop"}));
  app.add_option("--runs", o.runs, "Runs of each size")->check(mosix::bench::positive());
  app.add_option("--timeout", o.timeout_s, "Seconds one run may take before it is given up")
      ->check(mosix::bench::positive());
  app.add_option("--bin", o.bin, "Where mosixrun, mosixctl, mosixd and mem_hold are");
  app.add_flag("--keep", o.keep, "Keep the work directory");
  return mosix::bench::parse_command_line(app, argc, argv);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (auto status = parse(argc, argv, o)) return *status;
  for (const char* b : {"mosixrun", "mosixctl", "mosixd", "mosix-restore", "mem_hold"}) {
    if (::access((o.bin + "/" + b).c_str(), X_OK) != 0) usage("no " + std::string(b) + " in " + o.bin + " (--bin DIR)");
  }
  if (::geteuid() == 0) {
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  supervise_jobs();

  const char* base = std::getenv("BENCH_DIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/bench_migrate.XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) usage("cannot create a work directory " + pattern);
  std::string work = buf.data();

  std::printf("mosixrun --vcluster %d --migrate off -np 1 mem_hold SIZE (SIZE MiB of incompressible memory, rewritten "
              "at DIRTY MB/s), moved with mosixctl migrate to another node and back; median of %d run(s); MB = 10^6 "
              "bytes\n",
              kVnodes, o.runs);
  std::printf("%6s %5s %-7s %-16s %9s %9s %6s %9s %9s %9s %8s %7s %9s\n", "MiB", "dirty", "mode", "move", "image MiB",
              "sent MiB", "x mem", "stopped", "total", "ms/GiB st", "progress", "x pipe", "pipe MB/s");
  std::fflush(stdout);
  bool failed = false;
  for (std::uint64_t mib : o.sizes) {
    if (g_interrupted) break;
    double need = kMemoryFactor * static_cast<double>(mib << 20);
    auto avail = mem_available();
    if (avail && static_cast<double>(*avail) < need) {
      std::string why = "skipping " + std::to_string(mib) + " MiB: a migration needs about " +
                        fmt("%.1f GiB", need / (1 << 30)) + " of memory (guest, image in memory, frames, image at "
                        "the target, restored guest), MemAvailable is " + fmt("%.1f GiB", *avail / double(1 << 30));
      progress("%s", why.c_str());
      std::printf("%6llu %s\n", static_cast<unsigned long long>(mib), why.c_str());
      std::fflush(stdout);
      continue;
    }
    for (std::uint64_t dirty : o.dirty) {
      for (const std::string& mode : o.modes) failed = !bench_case(o, mib, dirty, mode, work) || failed;
    }
  }
  std::printf("image: the last image (with pre-copy, only what was written since the last round); sent: pre-copy "
              "rounds and image; x mem: sent over the guest's memory.\n"
              "stopped: from the stop at the source until the target has restored the guest; total: at the home node, "
              "from the order to the answer; ms/GiB st: stopped time per GiB of the guest's memory.\n"
              "progress: pages the guest rewrote a second during the move over its rate in the second before (- when "
              "idle). x pipe: the memory's MB/s over the stopped time against a pipe copy of SIZE bytes between two "
              "processes in the same run (best of 3 each run, median over the runs).\n");
  if (g_interrupted) {
    std::printf("interrupted\n");
    failed = true;
  }
  if (failed || o.keep) {
    std::printf("work files (mosixrun and mosixctl output): %s\n", work.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  }
  return failed ? 1 : 0;
}
