// mosixrun: start copies of an unmodified program as mpirun would, through
// the mosix runtime. This file only parses, validates and hands over.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <termios.h>
#include <netdb.h>
#include <unistd.h>

#include "launcher/cli/mosixrun_options.h"
#include "runtime/ckpt/format/image_file.h"
#include "runtime/core/plan_job.h"
#include "runtime/core/printable.h"
#include "runtime/core/slurm_env.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/job/daemon_command.h"
#include "runtime/job/home_job.h"
#include "runtime/sys/elf_needed.h"
#include "runtime/sys/host_name.h"
#include "runtime/sys/install_path.h"
#include "runtime/sys/private_path.h"
#include "runtime/sys/read_file.h"
#include "runtime/topology/topology.h"

extern char** environ;

namespace {

// --pty: rank 0's own terminal gets every key (Ctrl-C, Ctrl-Z, ^D included),
// so ours passes them through untouched until mosixrun exits; it keeps its
// output processing, so that mosixrun's own messages still start a line.
// Rank 0's terminal starts at our terminal's size (MOSIX_PTY_SIZE).
termios g_saved_terminal{};
void restore_terminal() { ::tcsetattr(0, TCSADRAIN, &g_saved_terminal); }
void pass_keys_through() {
  if (!::isatty(0) || ::tcgetattr(0, &g_saved_terminal) != 0) return;
  winsize size{};
  if (::ioctl(0, TIOCGWINSZ, &size) == 0 && size.ws_row > 0 && size.ws_col > 0) {
    ::setenv("MOSIX_PTY_SIZE", (std::to_string(size.ws_row) + "x" + std::to_string(size.ws_col)).c_str(), 1);
  }
  termios raw = g_saved_terminal;
  ::cfmakeraw(&raw);
  raw.c_oflag = g_saved_terminal.c_oflag;
  if (::tcsetattr(0, TCSADRAIN, &raw) == 0) std::atexit(restore_terminal);
}

constexpr int kUsageError = 2;

[[noreturn]] void usage_error(const std::string& message) {
  // Messages quote the user's input: nothing unprintable reaches the terminal.
  std::fprintf(stderr, "mosixrun: %s\n", mosix::printable(message).c_str());
  std::exit(kUsageError);
}

void setup_logging(int verbose) {
  // Thread-safe: a job on this node has its node daemon on a thread of ours.
  auto logger = spdlog::stderr_logger_mt("mosixrun");
  logger->set_pattern("mosixrun: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);
  if (const char* env = std::getenv("MOSIX_LOG")) {
    spdlog::set_level(spdlog::level::from_str(env));
  }
  if (verbose == 1) spdlog::set_level(spdlog::level::info);
  if (verbose >= 2) spdlog::set_level(spdlog::level::debug);
}

// Descriptors above 2 that mosixrun's parent left open to it (close-on-exec
// ones cannot have come through exec): the copies of a job on this node
// inherit them, unless they are to be checkpointed.
std::vector<int> inherited_descriptors() {
  std::vector<int> fds;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  while (const dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || end == e->d_name || fd <= 2 || fd == ::dirfd(d)) continue;
    const int flags = ::fcntl(static_cast<int>(fd), F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) fds.push_back(static_cast<int>(fd));
  }
  ::closedir(d);
  return fds;
}

std::string current_dir() {
  char buf[4096];
  return ::getcwd(buf, sizeof buf) ? buf : ".";
}

// The host list: --host, --hostfile, else the Slurm allocation we run in
// (no option needed), else none (this node's cores).
std::vector<mosix::HostSlots> host_list(const mosix::RunOptions& o, bool& in_slurm) {
  using namespace mosix;
  in_slurm = false;
  std::vector<HostSlots> hosts = o.hosts;
  if (!o.hostfile.empty()) {
    auto text = sys::read_file_limited(o.hostfile, kMaxHostfileBytes, "hostfile");
    if (!text) usage_error(text.error().message);
    auto parsed = parse_hostfile(*text, o.hostfile);
    if (!parsed) usage_error(parsed.error().message);
    hosts = *parsed;
  }
  if (hosts.empty() && o.vcluster == 0) {
    auto allocation = slurm_allocation(slurm_environment(environ));
    if (!allocation) usage_error(allocation.error().message);
    hosts = *allocation;
    in_slurm = !hosts.empty();
  }
  return hosts;
}

// A host name that does not resolve is refused before anything starts
// (unless mpirun reaches nodes its own way: Slurm, a custom rsh agent).
void check_hosts_resolve(const mosix::PlanInputs& in, bool in_slurm) {
  if (in_slurm || std::getenv("OMPI_MCA_plm_rsh_agent")) return;
  for (const mosix::HostSlots& h : in.hosts) {
    if (mosix::names_this_node(h.name, in)) continue;
    addrinfo* found = nullptr;
    int rc = ::getaddrinfo(h.name.c_str(), nullptr, nullptr, &found);
    if (rc != 0) {
      usage_error("host '" + h.name + "' cannot be resolved (" + ::gai_strerror(rc) + "): check --host/--hostfile");
    }
    ::freeaddrinfo(found);
  }
}

// Images are code (restoring one runs what it holds as the user): their
// directory must be ours alone to write, never a shared fallback.
std::string checkpoint_dir(const mosix::RunOptions& o) {
  using namespace mosix;
  std::string dir = o.ckpt_dir;
  if (dir.empty()) {
    dir = ckpt::default_image_dir(std::getenv("XDG_STATE_HOME"), std::getenv("HOME"));
    if (dir.empty()) {
      usage_error("--ckpt-interval: no directory for the checkpoints (HOME is unset or not absolute): "
                  "set HOME, or give --ckpt-dir DIR");
    }
    dir += "/ckpt/job-" + std::to_string(::getpid());
  }
  if (Status s = sys::ensure_private_dir(dir); !s.ok()) usage_error("--ckpt-dir: " + s.error().message);
  return std::filesystem::absolute(dir).string();
}

// MOSIX_NODE_TIMEOUT: seconds of silence after which a node is gone.
double node_timeout() {
  const char* t = std::getenv("MOSIX_NODE_TIMEOUT");
  if (t == nullptr || *t == '\0') return 10;
  char* end = nullptr;
  double seconds = std::strtod(t, &end);
  if (*end != '\0' || !(seconds > 0) || seconds > 86400) {
    usage_error(std::string("MOSIX_NODE_TIMEOUT=") + t + ": give the seconds of silence after which a node is gone");
  }
  return seconds;
}

// The command line, checked against this machine: the plan of the job, or a
// usage error (exit 2) with nothing started.
mosix::JobPlan plan(const mosix::RunOptions& o, bool& in_slurm, std::optional<mosix::Topology>& topology) {
  using namespace mosix;
  PlanInputs in;
  in.hosts = host_list(o, in_slurm);
  // mpirun: `--host a` is one slot; a hostfile line without slots= is every core of the node.
  in.host_without_slots_is_all_cores = !o.hostfile.empty() || in_slurm;
  in.this_node = sys::host_name();
  if (const char* slurm_name = std::getenv("SLURMD_NODENAME")) in.slurm_node_name = slurm_name;
  if (auto probed = probe_this_node()) {
    in.cores = std::max(1, probed->cores);
    topology = std::move(*probed);
  } else {
    spdlog::warn("cannot probe this node ({}); counting one core", probed.error().message);
  }
  const std::string cwd = current_dir();
  in.wdir = o.wdir.empty() ? cwd : o.wdir[0] == '/' ? o.wdir : cwd + "/" + o.wdir;
  for (char** e = environ; *e; ++e) in.environment.emplace_back(*e);
  if (struct sysinfo si {}; ::sysinfo(&si) == 0) {
    in.memory_kib = static_cast<std::uint64_t>(si.totalram) * std::max<unsigned>(si.mem_unit, 1) / 1024;
  }
  if (!o.no_agent) {
    auto agent = sys::installed_library("libmosix.so");
    if (!agent) usage_error("cannot find the guest agent: " + agent.error().message + " (reinstall mosixrun, or run without it: --no-agent)");
    in.agent = *agent;
  }

  if (std::any_of(in.hosts.begin(), in.hosts.end(), [&in](const HostSlots& h) { return !names_this_node(h.name, in); })) {
    check_hosts_resolve(in, in_slurm);
  }
  const char* path_env = std::getenv("PATH");
  auto program = resolve_program(o.program[0], path_env ? path_env : "/usr/bin:/bin", in.wdir);
  if (program && o.mpi == MpiMode::kAuto) {
    in.program_links_mpi = sys::links_mpi(*program);
    in.program_links_mpich = in.program_links_mpi && sys::links_mpich(*program);
  }
  auto planned = plan_job(o, in);
  if (!planned) usage_error(planned.error().message);
  if (!o.wdir.empty()) {
    struct stat st {};
    if (::stat(o.wdir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) usage_error("--wdir '" + o.wdir + "' is not a directory");
  }
  if (!program) usage_error(program.error().message);
  if (!o.no_agent && ::access(in.agent.c_str(), R_OK) != 0) {
    usage_error("cannot read the guest agent " + in.agent + ": reinstall mosixrun, or run without it: --no-agent");
  }
  for (const std::string& w : planned->warnings) spdlog::warn("{}", w);
  return std::move(*planned);
}

}  // namespace

// parse -> plan -> run.
int main(int argc, char** argv) {
  using namespace mosix;
  const std::vector<int> inherited_fds = inherited_descriptors();
  auto parsed = parse_mosixrun_args(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed) usage_error(parsed.error().message);
  if (parsed->print_and_exit) {
    std::fputs(parsed->print_and_exit->c_str(), stdout);
    return 0;
  }
  const RunOptions& o = parsed->options;
  setup_logging(o.verbose);
  if (o.pty) pass_keys_through();

  bool in_slurm = false;
  std::optional<Topology> topology;
  JobPlan planned = plan(o, in_slurm, topology);
  HomeJobSpec job;
  job.tag_output = o.tag_output;
  job.output_dir = o.output_filename;
  job.keep_going = o.keep_going;
  job.timeout_seconds = o.timeout_seconds;
  job.record.id = std::to_string(::getpid());
  job.record.launcher_pid = ::getpid();
  job.record.home_node = planned.home_node;
  job.record.cwd = planned.wdir;
  for (const std::string& a : o.program) job.record.command += (job.record.command.empty() ? "" : " ") + a;
  const std::string ckpt_dir = o.ckpt_interval > 0 ? checkpoint_dir(o) : "";
  job.node_timeout = planned.multi_node ? node_timeout() : 10;
  NodeDaemonOptions daemon = node_daemon_options(o, planned, job.record.id, ckpt_dir, job.node_timeout,
                                                 std::move(topology));
  job.guests = std::move(planned.guests);

  if (!planned.multi_node) {
    // One node: its node daemon runs inside mosixrun. The copies inherit
    // what our parent gave us, unless they are to be checkpointed.
    if (o.ckpt_interval == 0) daemon.inherited_fds = inherited_fds;
    job.local_daemon = std::move(daemon);
    auto status = run_home_job(std::move(job));
    if (!status) {
      spdlog::error("{}", printable(status.error().message));
      return 1;
    }
    return *status;
  }

  // Several nodes (or a virtual cluster, whose daemons mosixd --launch starts
  // and connects by unix sockets, without MPI's start-up, docs/transport.md;
  // MOSIX_TRANSPORT=mpi starts them through mpirun as on real nodes).
  DaemonsContext context;
  const char* transport_env = std::getenv("MOSIX_TRANSPORT");
  context.launch_here = o.vcluster > 0 && !(transport_env && std::string(transport_env) == "mpi");
  const char* path_env = std::getenv("PATH");
  auto mpirun = resolve_program("mpirun", path_env ? path_env : "/usr/bin:/bin", current_dir());
  if (!mpirun && !context.launch_here) {
    usage_error("a job over several nodes needs Open MPI's mpirun: " + mpirun.error().message);
  }
  context.mpirun = mpirun ? *mpirun : "";
  auto mosixd = sys::installed_program("mosixd");
  if (!mosixd) usage_error("cannot find the node daemon: " + mosixd.error().message);
  context.mosixd = *mosixd;
  if (::access(context.mosixd.c_str(), X_OK) != 0) {
    usage_error("cannot find the node daemon " + context.mosixd + ": reinstall mosixrun");
  }
  context.in_slurm = in_slurm;
  context.as_root = ::getuid() == 0;
  for (char** e = environ; *e; ++e) context.environment.emplace_back(*e);
  DaemonsCommand command = daemons_command(o, planned, daemon, context);
  job.mpirun_path = std::move(command.path);
  job.mpirun_argv = std::move(command.argv);
  job.mpirun_env = std::move(command.env);
  job.launch_events = command.launch_events;
  auto status = run_home_job(std::move(job));
  if (!status) usage_error(status.error().message);  // nothing started: as bad input
  return *status;
}
