// mosixrun: start copies of an unmodified program as mpirun would, through
// the mosix runtime. This file only parses, validates and hands over.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <netdb.h>
#include <unistd.h>

#include "launcher/cli/mosixrun_options.h"
#include "runtime/ckpt/format/image_file.h"
#include "runtime/core/environment.h"
#include "runtime/core/printable.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/job/home_job.h"
#include "runtime/core/slurm_env.h"
#include "runtime/sys/private_path.h"
#include "runtime/sys/read_file.h"
#include "runtime/topology/topology.h"

extern char** environ;

namespace {

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

std::string this_host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

bool names_this_node(const std::string& host, const std::string& me) {
  std::string short_me = me.substr(0, me.find('.'));
  // Slurm may name this node otherwise than its host name (several slurmd
  // on one host, or NodeName aliases).
  const char* slurm_name = std::getenv("SLURMD_NODENAME");
  return host == "localhost" || host == "127.0.0.1" || host == "::1" || host == me ||
         host == short_me || (slurm_name && host == slurm_name);
}

// The directory of this executable: mosixd is installed next to mosixrun.
std::string self_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
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

}  // namespace

int main(int argc, char** argv) {
  using namespace mosix;
  const std::vector<int> inherited_fds = inherited_descriptors();
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_mosixrun_args(args);
  if (!parsed) usage_error(parsed.error().message);
  if (parsed->print_and_exit) {
    std::fputs(parsed->print_and_exit->c_str(), stdout);
    return 0;
  }
  RunOptions& o = parsed->options;
  setup_logging(o.verbose);

  const std::string me = this_host_name();
  auto topology = probe_this_node();
  int cores = 1;
  if (topology) {
    cores = std::max(1, topology->cores);
  } else {
    spdlog::warn("cannot probe this node ({}); counting one core", topology.error().message);
  }

  // Slots: from --host/--hostfile, else one per core of this node.
  std::vector<HostSlots> hosts = o.hosts;
  if (!o.hostfile.empty()) {
    auto text = sys::read_file_limited(o.hostfile, kMaxHostfileBytes, "hostfile");
    if (!text) usage_error(text.error().message);
    auto parsed_file = parse_hostfile(*text, o.hostfile);
    if (!parsed_file) usage_error(parsed_file.error().message);
    hosts = *parsed_file;
  }
  // Inside a Slurm allocation the nodes come from Slurm, with no option needed.
  bool in_slurm = false;
  if (hosts.empty() && o.vcluster == 0) {
    auto allocation = slurm_allocation(slurm_environment(environ));
    if (!allocation) usage_error(allocation.error().message);
    hosts = *allocation;
    in_slurm = !hosts.empty();
  }
  long long slots = cores;
  bool remote_hosts = false;
  if (!hosts.empty()) {
    slots = 0;
    for (const HostSlots& h : hosts) {
      if (!names_this_node(h.name, me)) remote_hosts = true;
      // mpirun: `--host a` is one slot; a hostfile line without slots= is
      // every core of the node.
      slots += h.slots_given || (o.hostfile.empty() && !in_slurm) ? h.slots : cores;
    }
  }
  const bool multi_node = o.vcluster > 0 || remote_hosts;
  // A host name that does not resolve is refused before anything starts
  // (unless mpirun reaches nodes its own way: Slurm, a custom rsh agent).
  if (remote_hosts && !in_slurm && !std::getenv("OMPI_MCA_plm_rsh_agent")) {
    for (const HostSlots& h : hosts) {
      if (names_this_node(h.name, me)) continue;
      addrinfo* found = nullptr;
      int rc = ::getaddrinfo(h.name.c_str(), nullptr, nullptr, &found);
      if (rc != 0) {
        usage_error("host '" + h.name + "' cannot be resolved (" + ::gai_strerror(rc) +
                    "): check --host/--hostfile");
      }
      ::freeaddrinfo(found);
    }
  }
  if (o.vcluster > 0) slots = std::max<long long>(slots, o.vcluster);
  if (o.np == 0 && slots > kMaxCopies) {
    usage_error("the host list gives " + std::to_string(slots) + " slots, more than the bound of " +
                std::to_string(kMaxCopies) + " copies in one job: give -np");
  }
  int np = o.np > 0 ? o.np : static_cast<int>(slots);
  // A virtual cluster spreads copies by load, as MOSIX does: no slot limit.
  if (np > slots && !o.oversubscribe && o.vcluster == 0) {
    usage_error(std::to_string(np) + " copies asked for but only " + std::to_string(slots) +
                " slot" + (slots == 1 ? "" : "s") + " (" +
                (hosts.empty() ? "cores of this node" : "from the host list") +
                "): add --oversubscribe, or give more slots with --host/--hostfile");
  }

  if (!o.pin.empty() && o.pin.back() >= np) {
    usage_error("--pin: rank " + std::to_string(o.pin.back()) + " does not exist: the job has " +
                std::to_string(np) + " cop" + (np == 1 ? "y" : "ies") + " (ranks count from 0)");
  }

  std::string cwd = current_dir();
  std::string wdir = o.wdir.empty() ? cwd : o.wdir;
  if (!o.wdir.empty()) {
    struct stat st {};
    if (::stat(o.wdir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      usage_error("--wdir '" + o.wdir + "' is not a directory");
    }
    if (o.wdir[0] != '/') wdir = cwd + "/" + o.wdir;
  }
  const char* path_env = std::getenv("PATH");
  auto program = resolve_program(o.program[0], path_env ? path_env : "/usr/bin:/bin", wdir);
  if (!program) usage_error(program.error().message);

  // The environment: ours, -x settings, then the rank variables.
  std::vector<std::string> base_env;
  for (char** e = environ; *e; ++e) base_env.emplace_back(*e);
  for (const EnvSetting& s : o.env) {
    if (s.value) {
      set_env(base_env, s.name, *s.value);
    } else if (!std::getenv(s.name.c_str())) {
      spdlog::warn("-x {}: not set here, nothing to export", s.name);
    }
  }

  HomeJobSpec job;
  std::string ckpt_dir;
  if (o.ckpt_interval > 0) {
    // Periodic checkpoints need the agent inside every copy.
    std::string agent = self_dir() + "/../lib/libmosix.so";
    if (::access(agent.c_str(), R_OK) != 0) {
      usage_error("--ckpt-interval needs the checkpoint agent " + agent + ": reinstall mosixrun");
    }
    std::string preload = agent;
    if (const char* old = std::getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;
    set_env(base_env, "LD_PRELOAD", preload);
    // Images are code (restoring one runs what it holds as the user): their
    // directory must be ours alone to write, never a shared fallback.
    ckpt_dir = o.ckpt_dir;
    if (ckpt_dir.empty()) {
      ckpt_dir = ckpt::default_image_dir(std::getenv("XDG_STATE_HOME"), std::getenv("HOME"));
      if (ckpt_dir.empty()) {
        usage_error("--ckpt-interval: no directory for the checkpoints (HOME is unset or not absolute): "
                    "set HOME, or give --ckpt-dir DIR");
      }
      ckpt_dir += "/ckpt/job-" + std::to_string(::getpid());
    }
    if (Status s = sys::ensure_private_dir(ckpt_dir); !s.ok()) usage_error("--ckpt-dir: " + s.error().message);
  }
  job.tag_output = o.tag_output;
  job.output_dir = o.output_filename;
  job.keep_going = o.keep_going;
  job.timeout_seconds = o.timeout_seconds;
  job.record.id = std::to_string(::getpid());
  job.record.launcher_pid = ::getpid();
  job.record.home_node = me;
  job.record.cwd = wdir;
  for (const std::string& a : o.program) {
    job.record.command += (job.record.command.empty() ? "" : " ") + a;
  }
  for (int rank = 0; rank < np; ++rank) {
    SpawnGuest g;
    g.rank = rank;
    g.argv = o.program;
    g.cwd = wdir;
    g.env = base_env;
    const std::string r = std::to_string(rank), n = std::to_string(np);
    for (const char* name : {"MOSIX_RANK", "OMPI_COMM_WORLD_RANK", "MOSIX_LOCAL_RANK",
                             "OMPI_COMM_WORLD_LOCAL_RANK"}) {
      set_env(g.env, name, r);
    }
    for (const char* name : {"MOSIX_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
      set_env(g.env, name, n);
    }
    set_env(g.env, "OMPI_COMM_WORLD_NODE_RANK", r);
    set_env(g.env, "MOSIX_HOME_NODE", me);
    set_env(g.env, "MOSIX_NODE", me);
    g.flags = rank == 0 ? kSpawnStdin : 0;
    if (std::binary_search(o.pin.begin(), o.pin.end(), rank)) g.flags |= kSpawnPinned;
    if (o.bind_to == BindTo::kCore) g.flags |= kSpawnBindCore;
    job.guests.push_back(std::move(g));
  }

  if (!multi_node) {
    // One node: its node daemon runs inside mosixrun. The copies carry the
    // agent only for --ckpt-interval (it is in their LD_PRELOAD then), and
    // inherit what our parent gave us unless they are to be checkpointed.
    NodeDaemonOptions daemon;
    daemon.copies = np;
    daemon.map_by = "slot";
    daemon.slots = {np};
    daemon.job_id = job.record.id;
    daemon.no_agent = true;
    daemon.ckpt_interval = o.ckpt_interval;
    daemon.ckpt_dir = ckpt_dir;
    if (o.ckpt_interval == 0) daemon.inherited_fds = inherited_fds;
    job.local_daemon = std::move(daemon);
    auto status = run_home_job(std::move(job));
    if (!status) {
      spdlog::error("{}", printable(status.error().message));
      return 1;
    }
    return *status;
  }
  HomeJobSpec& remote = job;
  {
    // A virtual cluster's daemons all run here: mosixd --launch starts them and
    // connects them by unix sockets, without MPI's start-up (docs/transport.md);
    // MOSIX_TRANSPORT=mpi starts them through mpirun as on real nodes.
    const char* transport_env = std::getenv("MOSIX_TRANSPORT");
    const bool launch_here = o.vcluster > 0 && !(transport_env && std::string(transport_env) == "mpi");
    auto mpirun = resolve_program("mpirun", path_env ? path_env : "/usr/bin:/bin", cwd);
    if (!mpirun && !launch_here) {
      usage_error("a job over several nodes needs Open MPI's mpirun: " + mpirun.error().message);
    }
    remote.mpirun_path = mpirun ? *mpirun : "";
    std::string mosixd = self_dir() + "/mosixd";
    if (::access(mosixd.c_str(), X_OK) != 0) {
      usage_error("cannot find the node daemon " + mosixd + ": reinstall mosixrun");
    }
    std::vector<std::string> mosixd_extra;
    int daemons = o.vcluster > 0 ? o.vcluster : static_cast<int>(hosts.size());
    remote.mpirun_argv = {"mpirun", "--oversubscribe", "--bind-to", "none", "-np",
                          std::to_string(daemons)};
    if (o.vcluster == 0) {
      // One daemon per host, the home node first (it is rank 0).
      std::string list, slot_list;
      std::vector<HostSlots> ordered;
      for (const HostSlots& h : hosts) {
        if (names_this_node(h.name, me)) ordered.insert(ordered.begin(), h);
        else ordered.push_back(h);
      }
      if (!names_this_node(ordered.front().name, me)) {
        // The home node's daemon only routes: it gets no slot.
        ordered.insert(ordered.begin(), HostSlots{me, 0, true});
        remote.mpirun_argv[5] = std::to_string(++daemons);
      }
      for (const HostSlots& h : ordered) {
        list += (list.empty() ? "" : ",") + h.name + ":1";
        int n_slots = h.slots_given || (o.hostfile.empty() && !in_slurm) ? h.slots : -1;
        slot_list += (slot_list.empty() ? "" : ",") + std::to_string(n_slots);
      }
      remote.mpirun_argv.insert(remote.mpirun_argv.end(), {"--host", list});
      mosixd_extra = {"--slots", slot_list};
      if (!o.oversubscribe) mosixd_extra.push_back("--no-oversubscribe");
    }
    for (const char* var : {"MOSIX_LOG", "XDG_STATE_HOME"}) {
      if (std::getenv(var)) remote.mpirun_argv.insert(remote.mpirun_argv.end(), {"-x", var});
    }
    // A node daemon that dies must not take the job with it: the home node
    // notices the silence, and mosixrun decides (the ranks it held are lost;
    // a guest that was moving there resumes where it was).
    remote.mpirun_argv.push_back("--enable-recovery");
    if (const char* t = std::getenv("MOSIX_NODE_TIMEOUT"); t != nullptr && *t != '\0') {
      char* end = nullptr;
      double seconds = std::strtod(t, &end);
      if (*end != '\0' || !(seconds > 0) || seconds > 86400) {
        usage_error(std::string("MOSIX_NODE_TIMEOUT=") + t + ": give the seconds of silence after which a node is gone");
      }
      remote.node_timeout = seconds;
    }
    remote.mpirun_argv.insert(remote.mpirun_argv.end(),
                              {mosixd, "--copies", std::to_string(np), "--job", job.record.id,
                               "--map-by", o.map_by.empty() ? (o.vcluster ? "load" : "slot") : o.map_by});
    remote.mpirun_argv.insert(remote.mpirun_argv.end(), mosixd_extra.begin(), mosixd_extra.end());
    if (o.migrate == "off") remote.mpirun_argv.push_back("--no-migrate");
    if (o.ckpt_interval > 0) {
      // Each node daemon checkpoints its guests; a rank lost with its node
      // restarts from its image on a live node (the directory must be on a
      // file system every node sees, as the job's files are).
      remote.mpirun_argv.insert(remote.mpirun_argv.end(),
                                {"--ckpt-interval", fmt::format("{}", o.ckpt_interval), "--ckpt-dir",
                                 std::filesystem::absolute(ckpt_dir).string()});
    }
    remote.mpirun_argv.insert(remote.mpirun_argv.end(), {"--node-timeout", fmt::format("{}", remote.node_timeout)});
    if (o.vcluster > 0) {
      std::string shares;
      for (int i = 0; i < o.vcluster; ++i) {
        double share = o.vcluster_cpu.empty() ? 1.0 : o.vcluster_cpu[static_cast<size_t>(i)];
        shares += (i ? "," : "") + fmt::format("{}", share);
      }
      remote.mpirun_argv.insert(remote.mpirun_argv.end(), {"--vcluster-cpu", shares});
    }
    remote.mpirun_env = base_env;
    // The agent is for guests (each node daemon preloads it into its own),
    // never for mpirun or the daemons: --ckpt-interval put it in base_env.
    if (const char* preload = std::getenv("LD_PRELOAD"); preload != nullptr) {
      set_env(remote.mpirun_env, "LD_PRELOAD", preload);
    } else {
      std::erase_if(remote.mpirun_env, [](const std::string& e) { return e.rfind("LD_PRELOAD=", 0) == 0; });
    }
    if (in_slurm && std::getenv("SLURM_STEP_ID")) {
      // Inside a job step mpirun must overlap the step, and sees the step's
      // task counts unless given the job's.
      set_env(remote.mpirun_env, "SLURM_OVERLAP", "1");
      if (const char* cpus = std::getenv("SLURM_JOB_CPUS_PER_NODE")) {
        set_env(remote.mpirun_env, "SLURM_TASKS_PER_NODE", cpus);
      }
    }
    if (!std::getenv("OMPI_MCA_plm_rsh_args") && !std::getenv("OMPI_MCA_plm_rsh_agent")) {
      // ssh must neither ask for a password nor wait minutes for a host
      // that does not answer: the daemons start, or mosixrun says why.
      set_env(remote.mpirun_env, "OMPI_MCA_plm_rsh_args", "-o BatchMode=yes -o ConnectTimeout=10");
    }
    if (o.vcluster > 0) {
      // Every daemon of a virtual cluster is on this machine: shared memory
      // is all the transport needs, and skipping the network layers' start-up
      // (UCX alone costs a quarter of a second here) makes the launch faster.
      if (!std::getenv("OMPI_MCA_pml")) set_env(remote.mpirun_env, "OMPI_MCA_pml", "ob1");
      if (!std::getenv("OMPI_MCA_btl")) set_env(remote.mpirun_env, "OMPI_MCA_btl", "self,vader");
    }
    if (::getuid() == 0) {
      // Open MPI refuses root unless told; mosixrun's daemons are not MPI programs of the user.
      set_env(remote.mpirun_env, "OMPI_ALLOW_RUN_AS_ROOT", "1");
      set_env(remote.mpirun_env, "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    if (launch_here) {
      auto daemon = std::find(remote.mpirun_argv.begin(), remote.mpirun_argv.end(), mosixd);
      std::vector<std::string> argv{"mosixd", "--launch", std::to_string(o.vcluster)};
      argv.insert(argv.end(), daemon + 1, remote.mpirun_argv.end());
      remote.mpirun_argv = std::move(argv);
      remote.mpirun_path = mosixd;
    }
    auto status = run_home_job(std::move(remote));
    if (!status) usage_error(status.error().message);  // nothing started: as bad input
    return *status;
  }
}
