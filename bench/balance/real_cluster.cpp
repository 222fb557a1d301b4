// bench_balance --real: issue 6's benchmark on the real virtual cluster.
//
//   mosixrun --vcluster 4 --vcluster-cpu S*0.5,S*0.5,S*1,S*1.5 -np 12
//            cpu_work --table WORK
//
// 4 node daemons on this machine, each capped by the cgroup CPU controller to
// its share; 12 copies of tests/programs/cpu_work, each a FIXED amount of CPU
// work (rank r does WORK * table[r] / sum(table) units, lengths 30..240 in a
// fixed table). Modes, interleaved in each run so that the machine's load
// changes hit them alike:
//   rebalance    placement by load (the default on a vcluster), balancer on
//   migrate=off  the same placement, --migrate off
//   mpirun rr    --map-by node (round-robin like mpirun's), --migrate off
// The makespan is the wall time of the whole mosixrun job (daemons' start-up
// included). The ideal lower bound is max(total CPU / total share, longest
// copy's CPU / min(1, largest share)), from the CPU seconds the copies report
// in that run and the shares actually used.
//
// S (--scale): the full speeds 0.5+0.5+1+1.5 = 3.5 CPUs do not fit in a
// machine of fewer cores, so by default they are scaled (same ratios) to
// 7/8 of the cores: 0.5 on 2 cores (0.25, 0.25, 0.5, 0.75 = 1.75 CPUs).
//
// While a job runs, `mosixctl ps --job ID --json` is asked every --poll
// seconds: where each copy was placed and moved, how often (migrations,
// balancer_migrations), the balancer's verdicts (kept in the work directory,
// a histogram with --trace), and how much CPU each virtual node actually
// delivered while it had copies, against its cap ("delivered"): a cap is a
// ceiling, not a guarantee, and on a machine busy with other work a node may
// get less than its share.
//
// Usage: bench_balance --real [--mosixrun PATH] [--cpu-work PATH] [--scale S]
//          [--work UNITS] [--runs N] [--modes rebalance,off,rr] [--poll S]
//          [--timeout S] [--no-priority] [--trace] [--keep]
// mosixctl is taken beside mosixrun; both default to this executable's
// directory, as does cpu_work. Every command has a deadline; the bench is a
// child subreaper and kills (and reports) whatever of a job outlives it.
// Work files go under $BENCH_DIR (default /tmp), kept with --keep or on a
// failure; MOSIX_LOG=debug passes through to mosixrun (its stderr is there).
#include "real_cluster.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/cli.h"
#include "../common/procs.h"
#include "../common/timed_run.h"
#include "runtime/sys/install_path.h"

namespace mosix::bench_balance {
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

constexpr int kNodes = 4;
constexpr int kCopies = 12;
const double kSpeeds[kNodes] = {0.5, 0.5, 1.0, 1.5};
constexpr double kTargetIdeal = 80;  // seconds, for the default --work

__attribute__((format(printf, 1, 2))) void progress(const char* fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "bench_balance: %s\n", line);
}

// The 1-minute load average, as uptime shows it.
double load_average() {
  double one = -1;
  std::ifstream in("/proc/loadavg");
  in >> one;
  return one;
}

// ---- the job's processes, so that nothing outlives a run ----------------

Command run_command(const std::vector<std::string>& argv, const std::string& stem, double timeout_s) {
  return mosix::bench::run_command(argv, stem, timeout_s, &g_interrupted);
}

// ---- the jobs' priority on this machine ------------------------------------
//
// A vnode's cap is a ceiling, not a guarantee: on a machine busy with other
// work (builds, other benchmarks) the job gets less than its caps and the
// run measures the machine, not the balancer. The daemons give each vnode a
// CPU weight in proportion to its share (CpuCap), so the speeds keep their
// ratios; the bench (as root, unless --no-priority) also raises the weight of
// the cgroup all vnodes live under (ROOT/mosix) to the maximum while it runs,
// so that the job gets its caps whenever the machine has them, and puts the
// old weight back at the end. Other work then gets what the caps leave.

struct CpuCgroup {
  std::string root;  // where the hierarchy with the cpu controller is mounted
  bool v2 = false;
  std::string weight_file() const { return root + "/mosix/" + (v2 ? "cpu.weight" : "cpu.shares"); }
};

// As the daemons' detect_cgroups() for root: v2 if its root offers the cpu
// controller, else a v1 hierarchy mounted with "cpu".
std::optional<CpuCgroup> find_cpu_cgroup() {
  std::ifstream in("/proc/self/mounts");
  std::optional<CpuCgroup> v1, v2;
  for (std::string dev, dir, type, opts, rest; in >> dev >> dir >> type >> opts && std::getline(in, rest);) {
    if (type == "cgroup2" && !v2) {
      std::istringstream controllers(read_text(dir + "/cgroup.controllers"));
      for (std::string c; controllers >> c;)
        if (c == "cpu") v2 = CpuCgroup{dir, true};
    } else if (type == "cgroup" && !v1) {
      std::stringstream list(opts);
      for (std::string o; std::getline(list, o, ',');)
        if (o == "cpu") v1 = CpuCgroup{dir, false};
    }
  }
  return v2 ? v2 : v1;
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text << "\n";
  out.flush();
  return static_cast<bool>(out);
}

// Raises ROOT/mosix's weight; gives back the value to restore, or nothing
// (with a line on stderr saying why) when it cannot be written.
std::optional<std::string> raise_priority(const CpuCgroup& cg) {
  std::error_code ec;
  std::filesystem::create_directories(cg.root + "/mosix", ec);  // as the daemons' CpuCap would
  const std::string old = read_text(cg.weight_file());
  if (old.empty() || !write_text(cg.weight_file(), cg.v2 ? "10000" : "262144")) {
    std::fprintf(stderr, "bench_balance: cannot raise the weight of %s (not root?): the job competes with the "
                 "machine's other work as any other group\n", cg.weight_file().c_str());
    return std::nullopt;
  }
  return old.substr(0, old.find_first_of(" \n"));
}

// ---- options ---------------------------------------------------------------

enum class Mode { kRebalance, kMigrateOff, kRoundRobin };

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kRebalance: return "rebalance";
    case Mode::kMigrateOff: return "migrate=off";
    case Mode::kRoundRobin: return "mpirun rr";
  }
  return "?";
}

std::vector<std::string> mode_flags(Mode m) {
  switch (m) {
    case Mode::kRebalance: return {};  // --map-by load and --migrate on: the vcluster's defaults
    case Mode::kMigrateOff: return {"--migrate", "off"};
    case Mode::kRoundRobin: return {"--map-by", "node", "--migrate", "off"};
  }
  return {};
}

struct Options {
  std::string mosixrun, mosixctl, cpu_work;
  double scale = 0;  // 0: 7/8 of the cores over 3.5
  double work = 0;   // units; 0: for an ideal of about kTargetIdeal seconds
  int runs = 2;
  std::vector<Mode> modes{Mode::kRebalance, Mode::kMigrateOff, Mode::kRoundRobin};
  double poll = 2.0;
  double timeout = 0;  // per job; 0: 4 x the nominal ideal + 120 s
  bool trace = false;
  bool keep = false;
  bool priority = true;
};

}  // namespace

struct RealOptions : Options {
  std::vector<std::string> mode_names;  // --modes, as given
};

std::shared_ptr<RealOptions> add_real_options(CLI::App& app, CLI::Option* real) {
  auto o = std::make_shared<RealOptions>();
  auto dir = mosix::sys::program_dir();
  o->mosixrun = (dir ? *dir : ".") + "/mosixrun";
  o->cpu_work = (dir ? *dir : ".") + "/cpu_work";
  auto group = [&](CLI::Option* option) { option->needs(real)->group("--real (the virtual cluster)"); };
  group(app.add_option("--mosixrun", o->mosixrun, "The mosixrun to run (mosixctl is taken next to it)"));
  group(app.add_option("--cpu-work", o->cpu_work, "The cpu_work program the copies run"));
  group(app.add_option("--scale", o->scale, "CPU shares of the 4 virtual nodes, times 0.25,0.25,0.5,0.75")
            ->check(mosix::bench::positive()));
  group(app.add_option("--work", o->work, "Units of work of the whole table")->check(mosix::bench::positive()));
  group(app.add_option("--runs", o->runs, "Runs of each mode")->check(mosix::bench::positive()));
  group(app.add_option("--poll", o->poll, "Seconds between two looks at the job")->check(mosix::bench::positive()));
  group(app.add_option("--timeout", o->timeout, "Seconds a job may take (default: 4 x the ideal + 120 s)")
            ->check(mosix::bench::positive()));
  group(app.add_option("--modes", o->mode_names, "Modes to run: rebalance,off,rr (default: all three)")
            ->delimiter(',')
            ->check(CLI::IsMember({"rebalance", "off", "rr"})));
  group(app.add_flag("--keep", o->keep, "Keep the work directory"));
  group(app.add_flag("--no-priority", [o](std::int64_t) { o->priority = false; },
                     "Leave the weight of the mosix cgroup as it is"));
  return o;
}

namespace {

// ---- one job ---------------------------------------------------------------

struct CopyInfo {
  double units = -1, cpu = -1, start = -1, end = -1;  // start, end: s after the job started
  std::string first_node, last_node;
  int moves = 0, balancer_moves = 0;
  // For the delivered CPU: the last sample of this copy while running.
  pid_t pid = 0;
  std::string node;
  double cpu_sampled = -1;
};

struct RunResult {
  std::string error;
  double wall = 0, ideal = 0, ratio = 0, load_before = 0, load_after = 0;
  // The same against the CPU the nodes actually delivered while busy (each
  // share times its node's delivered fraction, 1 for a node never busy).
  double ideal_delivered = 0, ratio_delivered = 0;
  int moves = 0, balancer_moves = 0;
  std::array<int, kNodes> placed{};
  std::array<double, kNodes> got{}, cap{};  // CPU seconds delivered, and capped CPU seconds, while busy
  std::vector<CopyInfo> copies = std::vector<CopyInfo>(kCopies);
  std::map<std::string, int> verdicts;  // guest-polls per balancer verdict
};

int node_index(const std::string& name) {
  if (name.rfind("vnode", 0) != 0) return -1;
  int i = std::atoi(name.c_str() + 5);
  return i >= 0 && i < kNodes ? i : -1;
}

struct Setup {
  std::array<double, kNodes> shares{};
  std::string share_list;  // "0.25,0.25,0.5,0.75"
  double work = 0;
  double timeout = 0;
};

// Reads one `mosixctl ps --json` answer into the run: placements, moves,
// verdicts, CPU delivered per node since the previous answer.
void take_poll(const nlohmann::json& reply, double at, double last_at, const Setup& setup, RunResult& r,
               std::ofstream& explain_log) {
  std::array<int, kNodes> busy{};  // copies seen running on the node in both answers
  std::array<double, kNodes> gained{};
  for (const auto& g : reply.at("guests")) {
    int rank = g.value("rank", -1);
    if (rank < 0 || rank >= kCopies) continue;
    CopyInfo& c = r.copies[static_cast<std::size_t>(rank)];
    std::string node = g.value("node", "");
    std::string state = g.value("state", "");
    if (c.first_node.empty() && !node.empty()) c.first_node = node;
    if (!node.empty()) c.last_node = node;
    c.moves = std::max(c.moves, g.value("migrations", 0));
    c.balancer_moves = std::max(c.balancer_moves, g.value("balancer_migrations", 0));
    pid_t pid = g.value("pid", 0);
    double cpu = g.value("cpu_seconds", -1.0);
    if (state == "running") {
      if (g.contains("decision")) {
        std::string verdict = g["decision"].value("verdict", "");
        std::string line = g["decision"].value("explanation", "");
        r.verdicts[verdict.empty() ? "(none yet)" : verdict]++;
        explain_log << std::fixed;
        explain_log.precision(1);
        explain_log << at << " s rank " << rank << " on " << node << ": " << (line.empty() ? "(none yet)" : line)
                    << "\n";
      }
      int n = node_index(node);
      if (n >= 0 && pid == c.pid && node == c.node && c.cpu_sampled >= 0 && cpu >= c.cpu_sampled) {
        ++busy[static_cast<std::size_t>(n)];
        gained[static_cast<std::size_t>(n)] += cpu - c.cpu_sampled;
      }
      c.pid = pid;
      c.node = node;
      c.cpu_sampled = cpu;
    } else {
      c.cpu_sampled = -1;
    }
  }
  if (last_at < 0) return;
  for (std::size_t n = 0; n < kNodes; ++n) {
    if (busy[n] == 0) continue;
    r.got[n] += gained[n];
    r.cap[n] += std::min(setup.shares[n], static_cast<double>(busy[n])) * (at - last_at);
  }
}

RunResult run_job(const Options& o, const Setup& setup, Mode mode, const std::string& stem) {
  RunResult r;
  r.load_before = load_average();
  std::string out_path = stem + ".out", err_path = stem + ".err";
  std::ofstream explain_log(stem + ".explain");
  std::vector<std::string> argv = {o.mosixrun, "--vcluster", std::to_string(kNodes), "--vcluster-cpu",
                                   setup.share_list};
  for (const std::string& f : mode_flags(mode)) argv.push_back(f);
  for (const std::string& f : {std::string("--timeout"), std::to_string(static_cast<long>(setup.timeout + 30)),
                               std::string("-np"), std::to_string(kCopies), o.cpu_work, std::string("--table")})
    argv.push_back(f);
  char work[32];
  std::snprintf(work, sizeof work, "%g", setup.work);
  argv.push_back(work);

  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const double start_realtime =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto t0 = Clock::now();
  auto job = TimedChild::start(argv, out, err);
  ::close(out);
  ::close(err);
  if (!job) {
    r.error = "cannot start mosixrun";
    return r;
  }
  g_job_pid = job->pid();
  std::map<pid_t, Proc> seen;
  std::optional<int> status;
  const std::string id = std::to_string(job->pid());
  const auto deadline = after(setup.timeout);
  double last_poll = -1;
  int polls = 0;
  auto next_poll = after(o.poll);
  while (!status && !g_interrupted && Clock::now() < deadline) {
    status = job->wait_until(std::min(deadline, next_poll));
    if (status) break;
    if (Clock::now() < next_poll) continue;
    next_poll = after(o.poll);
    record_descendants(job->pid(), seen);
    double at = since(t0);
    Command ps = run_command({o.mosixctl, "ps", "--job", id, "--json"}, stem + ".ps", 10);
    if (!ps.status || ps.out.find('{') == std::string::npos) continue;  // not up yet, or ending
    try {
      take_poll(nlohmann::json::parse(ps.out), at, last_poll, setup, r, explain_log);
      last_poll = at;
      ++polls;
    } catch (const std::exception&) {
    }
  }
  r.wall = since(t0);
  std::string error;
  if (!status) {
    job->kill_group(std::chrono::seconds(5));
    error = g_interrupted ? "interrupted" : "no end after " + std::to_string(static_cast<long>(setup.timeout)) +
                                                " s (--timeout): killed";
  } else if (!mosix::bench::succeeded(status)) {
    error = "mosixrun " + mosix::bench::describe_status(status);
  }
  g_job_pid = 0;
  std::string left = kill_leftovers(seen);
  if (!left.empty()) error += (error.empty() ? "" : "; ") + left;
  r.load_after = load_average();

  // The copies' own lines.
  std::istringstream lines(read_text(out_path));
  int reported = 0;
  for (std::string line; std::getline(lines, line);) {
    int rank = -1;
    double units = 0, cpu = 0, start = 0, end = 0;
    if (std::sscanf(line.c_str(), "cpu_work rank %d units %lf cpu_seconds %lf start_realtime %lf end_realtime %lf",
                    &rank, &units, &cpu, &start, &end) != 5 ||
        rank < 0 || rank >= kCopies)
      continue;
    CopyInfo& c = r.copies[static_cast<std::size_t>(rank)];
    if (c.cpu < 0) ++reported;
    c.units = units;
    c.cpu = cpu;
    c.start = start - start_realtime;
    c.end = end - start_realtime;
  }
  if (error.empty() && reported != kCopies)
    error = std::to_string(reported) + " of " + std::to_string(kCopies) + " copies reported";
  if (error.empty() && polls == 0) error = "mosixctl ps never answered";
  if (!error.empty()) {
    std::string said = tail(err_path, 10);
    r.error = error + "\n  mosixrun's stderr (" + err_path + ")" + (said.empty() ? ": empty" : ", last lines:\n" + said);
    return r;
  }

  double total = 0, longest = 0, share_sum = 0, fastest = 0;
  for (const CopyInfo& c : r.copies) {
    total += c.cpu;
    longest = std::max(longest, c.cpu);
    r.moves += c.moves;
    r.balancer_moves += c.balancer_moves;
    if (int n = node_index(c.first_node); n >= 0) ++r.placed[static_cast<std::size_t>(n)];
  }
  for (double s : setup.shares) {
    share_sum += s;
    fastest = std::max(fastest, std::min(1.0, s));
  }
  r.ideal = std::max(total / share_sum, longest / fastest);
  r.ratio = r.wall / r.ideal;
  double got_sum = 0, got_fastest = 0;
  for (std::size_t n = 0; n < kNodes; ++n) {
    const double fraction = r.cap[n] > 0 ? std::min(1.0, r.got[n] / r.cap[n]) : 1.0;
    got_sum += setup.shares[n] * fraction;
    got_fastest = std::max(got_fastest, std::min(1.0, setup.shares[n]) * fraction);
  }
  r.ideal_delivered = std::max(total / got_sum, longest / got_fastest);
  r.ratio_delivered = r.wall / r.ideal_delivered;
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string delivered(const RunResult& r) {
  std::string s;
  for (std::size_t n = 0; n < kNodes; ++n) {
    char cell[16];
    if (r.cap[n] > 0) std::snprintf(cell, sizeof cell, "%s%.0f%%", s.empty() ? "" : ",", 100 * r.got[n] / r.cap[n]);
    else std::snprintf(cell, sizeof cell, "%s-", s.empty() ? "" : ",");
    s += cell;
  }
  return s;
}

void print_trace(const RunResult& r) {
  std::printf("      %4s %7s %7s %8s %8s  %-16s %s\n", "rank", "units", "cpu s", "start s", "end s", "node", "moves");
  for (std::size_t k = 0; k < r.copies.size(); ++k) {
    const CopyInfo& c = r.copies[k];
    std::string where = c.first_node == c.last_node ? c.first_node : c.first_node + " -> " + c.last_node;
    std::printf("      %4zu %7.2f %7.2f %8.1f %8.1f  %-16s %d (balancer %d)\n", k, c.units, c.cpu, c.start, c.end,
                where.c_str(), c.moves, c.balancer_moves);
  }
  std::string v;
  for (const auto& [verdict, count] : r.verdicts) v += (v.empty() ? "" : ", ") + verdict + " " + std::to_string(count);
  std::printf("      verdicts (copy x poll): %s\n", v.empty() ? "none seen" : v.c_str());
}

}  // namespace

namespace {

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_balance: %s (see bench_balance --help)\n", why.c_str());
  std::exit(2);
}

}  // namespace

int run_real(const RealOptions& options, bool trace) {
  Options o = options;
  o.trace = trace;
  if (!options.mode_names.empty()) {
    o.modes.clear();
    for (const std::string& m : options.mode_names) {
      o.modes.push_back(m == "rebalance" ? Mode::kRebalance : m == "off" ? Mode::kMigrateOff : Mode::kRoundRobin);
    }
  }
  o.mosixctl = o.mosixrun.substr(0, o.mosixrun.rfind('/') + 1) + "mosixctl";
  if (o.mosixrun.find('/') == std::string::npos) o.mosixctl = "mosixctl";
  for (const std::string& b : {o.mosixrun, o.cpu_work}) {
    if (b.find('/') != std::string::npos && ::access(b.c_str(), X_OK) != 0)
      usage("no executable " + b + " (--mosixrun PATH, --cpu-work PATH)");
  }
  if (::geteuid() == 0) {
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  supervise_jobs();

  const char* base = std::getenv("BENCH_DIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/bench_balance.XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) usage("cannot create a work directory " + pattern);
  const std::string dir = buf.data();

  // The shares: the speeds' ratios, scaled to fit in this machine's cores.
  const long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  double speed_sum = 0;
  for (double s : kSpeeds) speed_sum += s;
  Setup setup;
  const double scale = o.scale > 0 ? o.scale : std::min(1.0, 0.875 * static_cast<double>(cores) / speed_sum);
  double share_sum = 0;
  for (std::size_t n = 0; n < kNodes; ++n) {
    setup.shares[n] = kSpeeds[n] * scale;
    share_sum += setup.shares[n];
    char s[32];
    std::snprintf(s, sizeof s, "%s%g", n ? "," : "", setup.shares[n]);
    setup.share_list += s;
  }

  // One unit of cpu_work, uncapped (best of 3): what a unit costs here.
  double unit = 0;
  for (int i = 0; i < 3; ++i) {
    Command c = run_command({o.cpu_work, "--calibrate"}, dir + "/calibrate", 60);
    double cpu = 0;
    const char* at = std::strstr(c.out.c_str(), "cpu_seconds ");
    if (!mosix::bench::succeeded(c.status) || at == nullptr || std::sscanf(at, "cpu_seconds %lf", &cpu) != 1) {
      std::fprintf(stderr, "bench_balance: %s --calibrate failed (%s): %s%s\n", o.cpu_work.c_str(),
                   mosix::bench::describe_status(c.status).c_str(), c.out.c_str(), c.err.c_str());
      return 1;
    }
    unit = unit > 0 ? std::min(unit, cpu) : cpu;
  }
  setup.work = o.work > 0 ? o.work : std::round(kTargetIdeal * share_sum / unit);
  const double nominal_ideal = setup.work * unit / share_sum;
  setup.timeout = o.timeout > 0 ? o.timeout : 4 * nominal_ideal + 120;
  // The jobs' priority, put back however the bench ends (an interrupt too:
  // it ends the runs and returns here).
  struct Priority {
    std::optional<CpuCgroup> cg;
    std::optional<std::string> old;
    ~Priority() {
      if (cg && old && !write_text(cg->weight_file(), *old))
        std::fprintf(stderr, "bench_balance: could not put back %s = %s\n", cg->weight_file().c_str(), old->c_str());
    }
  } priority;
  if (o.priority) {
    priority.cg = find_cpu_cgroup();
    if (!priority.cg) std::fprintf(stderr, "bench_balance: no cgroup CPU controller found: the jobs run uncapped\n");
    if (priority.cg && ::geteuid() == 0) priority.old = raise_priority(*priority.cg);
  }

  std::printf("bench_balance --real: mosixrun --vcluster %d --vcluster-cpu %s -np %d cpu_work --table %g\n", kNodes,
              setup.share_list.c_str(), kCopies, setup.work);
  std::printf("  shares: speeds 0.5,0.5,1,1.5 x %g = %.3g CPUs on this machine's %ld cores%s (same ratios)\n", scale,
              share_sum, cores,
              scale < 1 ? ": the full 3.5 CPUs cannot all be delivered here, so each node's cgroup cap is scaled" : "");
  std::printf("  work: %g units, 1 unit = %.3f CPU s here (cpu_work --calibrate, uncapped, best of 3); copies of "
              "30..240/1235 of it; nominal ideal %.1f s\n",
              setup.work, unit, nominal_ideal);
  std::printf("  ratio = makespan (wall time of the whole mosixrun job) / ideal, ideal = max(total CPU / %.3g CPUs, "
              "longest copy's CPU / %.3g), from the CPU seconds the copies report; %d run(s), median\n",
              share_sum, std::min(1.0, setup.shares[kNodes - 1]), o.runs);
  std::printf("  weights: the daemons give each node's cgroup a CPU weight in proportion to its share, so the speed "
              "ratios hold on a busy machine\n");
  if (priority.old) {
    std::printf("  priority: %s raised from %s to the maximum during the runs, so that the jobs get their caps when "
                "other work shares the machine (--no-priority: not)\n",
                priority.cg->weight_file().c_str(), priority.old->c_str());
  } else {
    std::printf("  priority: the jobs compete with the machine's other work as any cgroup does%s\n",
                o.priority ? " (not root)" : " (--no-priority)");
  }
  std::printf("  load = 1-min load average (uptime) before -> after the job (others share this machine); delivered = "
              "CPU each node gave its copies while it had some, over its cap (a cap is a ceiling, not a guarantee);\n"
              "  ratio/delivered = makespan / the ideal for the CPU actually delivered (each share times its node's "
              "delivered fraction)\n");
  std::fflush(stdout);

  std::map<Mode, std::vector<double>> ratios, ratios_delivered;
  std::map<Mode, std::vector<RunResult>> results;
  bool failed = false;
  std::printf("%4s  %-12s %11s %8s %8s %7s %7s %10s  %-11s %-16s %s\n", "run", "mode", "load", "ideal s", "wall s",
              "ratio", "moves", "(balancer)", "placed", "delivered", "ratio/delivered");
  std::fflush(stdout);
  for (int run = 0; run < o.runs && !g_interrupted; ++run) {
    for (Mode mode : o.modes) {
      if (g_interrupted) break;
      std::string key = mode == Mode::kRebalance ? "rebalance" : mode == Mode::kMigrateOff ? "off" : "rr";
      std::string stem = dir + "/" + key + "." + std::to_string(run + 1);
      progress("run %d/%d, %s: starting (load %.2f)", run + 1, o.runs, mode_name(mode), load_average());
      RunResult r = run_job(o, setup, mode, stem);
      if (!r.error.empty()) {
        failed = true;
        progress("run %d/%d, %s: FAILED: %s", run + 1, o.runs, mode_name(mode), r.error.c_str());
        std::printf("%4d  %-12s FAILED: %s\n", run + 1, mode_name(mode), r.error.c_str());
        std::fflush(stdout);
        continue;
      }
      progress("run %d/%d, %s: %.1f s, %.3f x ideal", run + 1, o.runs, mode_name(mode), r.wall, r.ratio);
      char placed[32];
      std::snprintf(placed, sizeof placed, "%d,%d,%d,%d", r.placed[0], r.placed[1], r.placed[2], r.placed[3]);
      char load[32];
      std::snprintf(load, sizeof load, "%.2f->%.2f", r.load_before, r.load_after);
      std::printf("%4d  %-12s %11s %8.1f %8.1f %7.3f %7d %10d  %-11s %-16s %.3f\n", run + 1, mode_name(mode), load,
                  r.ideal, r.wall, r.ratio, r.moves, r.balancer_moves, placed, delivered(r).c_str(),
                  r.ratio_delivered);
      double least = 1;
      for (std::size_t n = 0; n < kNodes; ++n)
        if (r.cap[n] > 0) least = std::min(least, r.got[n] / r.cap[n]);
      if (least < 0.9) {
        std::printf("      a node got %.0f%% of its cap: the machine is busier than the caps allow (load %.2f); the "
                    "speeds were not what the daemons assume: try a smaller --scale\n",
                    100 * least, std::max(r.load_before, r.load_after));
      }
      if (o.trace) print_trace(r);
      std::fflush(stdout);
      ratios[mode].push_back(r.ratio);
      ratios_delivered[mode].push_back(r.ratio_delivered);
      results[mode].push_back(r);
    }
  }

  std::printf("\nbench_balance --real: makespan / ideal, median of the runs (min..max)\n");
  std::printf("%-12s %7s %16s %6s %17s\n", "mode", "median", "range", "runs", "/delivered median");
  for (Mode mode : o.modes) {
    const auto& v = ratios[mode];
    if (v.empty()) {
      std::printf("%-12s %7s\n", mode_name(mode), "-");
      continue;
    }
    char range[40];
    std::snprintf(range, sizeof range, "%.3f..%.3f", *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()));
    std::printf("%-12s %7.3f %16s %6zu %17.3f\n", mode_name(mode), median(v), range, v.size(),
                median(ratios_delivered[mode]));
  }
  if (!ratios[Mode::kRebalance].empty() && !ratios[Mode::kMigrateOff].empty() &&
      !ratios[Mode::kRoundRobin].empty()) {
    const double reb = median(ratios[Mode::kRebalance]);
    const double off = median(ratios[Mode::kMigrateOff]);
    const double rr = median(ratios[Mode::kRoundRobin]);
    std::printf("goal: rebalance <= 1.15x ideal: %s (median %.3f); clearly better (>10%%) than migrate=off (%.3f) "
                "and mpirun rr (%.3f): %s\n",
                reb <= 1.15 ? "met" : "NOT met", reb, off, rr, reb < 0.9 * off && reb < 0.9 * rr ? "yes" : "NO");
  }
  if (g_interrupted) {
    std::printf("interrupted\n");
    failed = true;
  }
  if (failed || o.keep) {
    std::printf("work files (mosixrun output and stderr, balancer verdicts per poll in *.explain): %s\n", dir.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return failed ? 1 : 0;
}

}  // namespace mosix::bench_balance
