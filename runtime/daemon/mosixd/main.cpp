// mosixd: one node daemon of a job, started by mosixrun through mpirun (one
// rank per node, rank 0 on the home node), or, for a virtual cluster, by
// `mosixd --launch K`, which starts the K daemons of this machine itself and
// connects them by unix sockets (no MPI start-up). Not meant to be run by hand.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <chrono>
#include <optional>
#include <sstream>
#include <unistd.h>
#include <vector>

#include "runtime/core/launch_event.h"
#include "runtime/daemon/node_daemon.h"
#include "runtime/daemon/output_relay.h"
#include "runtime/daemon/orphan_watcher.h"
#include "runtime/sys/host_name.h"
#include "runtime/sys/install_path.h"
#include "runtime/sys/write_all.h"
#include "runtime/transport/transport.h"

// Under AddressSanitizer (the CI's second build): Open MPI's plugins leak at
// MPI_Finalize and are unloaded by then, so LeakSanitizer can neither blame
// nor suppress them by name. mosixd's own leaks are covered by the unit tests
// of the code it runs; here leak checking is off, every other check stays on.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

extern char** environ;

namespace {

// What mosixd --launch does in place of mpirun --enable-recovery: starts the
// daemons, one process per rank, in its own process group (so that whoever
// started it can signal them all at once), each killed by the kernel should
// the launcher die. A daemon of another node that is killed leaves the
// others running: the home node declares its node lost, as under mpirun. The
// home node's daemon dying (every frame goes through it), or any daemon
// failing (a non-zero exit: it could not start), ends the others (SIGTERM,
// SIGKILL after a grace period). Each daemon that ends on its own is
// reported to mosixrun on our standard output, one launch event a line
// (runtime/core/launch_event.h). SIGTERM, SIGINT and SIGHUP are passed on
// to the daemons. Exits once all have: 0 if every daemon did.
int launch_daemons(int count, int argc, char** argv, const std::string& home_socket) {
  using namespace mosix;
  auto report = [](const NodeDaemonEnded& ended) {
    const std::string line = launch_event_line(ended);
    sys::write_all(1, line.data(), line.size());
  };
  constexpr auto kGrace = std::chrono::seconds(2);
  const std::string dir = home_socket.substr(0, home_socket.rfind('/'));
  auto exe = sys::executable_path();
  if (!exe) {
    spdlog::error("{}", exe.error().message);
    return 1;
  }
  auto listeners = listen_for_socket_group(dir, count);
  if (!listeners) {
    spdlog::error("cannot start the node daemons: {}", listeners.error().message);
    return 1;
  }
  // Everything but --launch K goes to each daemon, with its place in the group.
  std::vector<std::string> common;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--launch") {
      ++i;
    } else if (a.rfind("--launch=", 0) != 0) {
      common.push_back(a);
    }
  }
  sigset_t handled, old;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&handled, sig);
  ::sigprocmask(SIG_BLOCK, &handled, &old);
  const std::string host = sys::host_name();
  const pid_t launcher = ::getpid();
  std::vector<pid_t> pids(static_cast<size_t>(count), -1);
  for (int rank = 0; rank < count; ++rank) {
    std::vector<std::string> args{*exe};
    args.insert(args.end(), common.begin(), common.end());
    const int listen_fd = (*listeners)[static_cast<size_t>(rank)];
    args.insert(args.end(), {"--node-rank", std::to_string(rank), "--nodes", std::to_string(count),
                             "--listen-fd", std::to_string(listen_fd)});
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      if (std::strncmp(*e, "MOSIX_NODE_RANK=", 16) != 0) env.emplace_back(*e);
    }
    env.push_back("MOSIX_NODE_RANK=" + std::to_string(rank));
    std::vector<char*> argv_c, env_c;
    for (std::string& a : args) argv_c.push_back(a.data());
    argv_c.push_back(nullptr);
    for (std::string& e : env) env_c.push_back(e.data());
    env_c.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (listen_fd >= 0) ::fcntl(listen_fd, F_SETFD, 0);  // the one socket this rank keeps
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(127);
      ::sigprocmask(SIG_SETMASK, &old, nullptr);
      ::execve(exe->c_str(), argv_c.data(), env_c.data());
      ::_exit(127);
    }
    if (pid < 0) {
      spdlog::error("cannot start node daemon rank {}: fork: {}", rank, std::strerror(errno));
      for (pid_t p : pids) {
        if (p > 0) ::kill(p, SIGKILL);
      }
      while (::wait(nullptr) > 0) {
      }
      return 1;
    }
    pids[static_cast<size_t>(rank)] = pid;
  }
  for (int fd : *listeners) {
    if (fd >= 0) ::close(fd);
  }

  int live = count, status_out = 0, term_sent = 0;
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  auto end_all = [&](int sig) {
    for (pid_t p : pids) {
      if (p > 0) ::kill(p, sig);
    }
    if (sig == SIGTERM) {
      term_sent = SIGTERM;
      if (!kill_at) kill_at = std::chrono::steady_clock::now() + kGrace;
    } else {
      term_sent = SIGKILL;
    }
  };
  while (live > 0) {
    siginfo_t info;
    int sig;
    if (kill_at) {
      auto left = std::max(std::chrono::nanoseconds(0), *kill_at - std::chrono::steady_clock::now());
      timespec wait{static_cast<time_t>(left.count() / 1000000000), static_cast<long>(left.count() % 1000000000)};
      sig = ::sigtimedwait(&handled, &info, &wait);
      if (sig < 0 && errno == EAGAIN) {
        end_all(SIGKILL);
        kill_at.reset();
        continue;
      }
    } else {
      sig = ::sigwaitinfo(&handled, &info);
    }
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      end_all(term_sent == 0 ? SIGTERM : SIGKILL);
      if (status_out == 0) status_out = 128 + sig;
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = std::find(pids.begin(), pids.end(), pid);
      if (it == pids.end()) continue;
      const int rank = static_cast<int>(it - pids.begin());
      *it = -1;
      --live;
      const bool by_us = WIFSIGNALED(status) && term_sent != 0 &&
                         (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL);
      NodeDaemonEnded ended{rank, static_cast<long>(pid), host, 0, 0, false};
      if (WIFSIGNALED(status) && !by_us) {
        if (status_out == 0) status_out = 128 + WTERMSIG(status);
        ended.signal = WTERMSIG(status);
        ended.ending_others = rank == 0 && term_sent == 0;
        report(ended);
        if (rank != 0) continue;  // recovery: the home node decides
      } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && term_sent == 0) {
        ended.exit_status = WEXITSTATUS(status);
        ended.ending_others = true;
        report(ended);
        if (status_out == 0) status_out = WEXITSTATUS(status);
      } else {
        continue;
      }
      if (term_sent == 0 && live > 0) end_all(SIGTERM);
    }
  }
  remove_socket_group(dir, count);  // the names of ranks that died before all had connected
  return status_out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mosix;
  NodeDaemonOptions options;
  std::string shares;
  CLI::App app{"mosix node daemon (started by mosixrun through mpirun)", "mosixd"};
  app.add_option("--home-socket", options.home_socket, "mosixrun's job socket (rank 0)")->required();
  app.add_option("--copies", options.copies, "Copies in the job")->required();
  app.add_option("--map-by", options.map_by, "load, slot or node");
  app.add_option("--vcluster-cpu", shares, "CPU share of each virtual node, comma-separated");
  app.add_option("--job", options.job_id, "Job id");
  std::string slots;
  app.add_option("--slots", slots, "Slots of each node, comma-separated");
  bool no_oversubscribe = false;
  app.add_flag("--no-oversubscribe", no_oversubscribe, "Keep to the slots");
  bool no_migrate = false;
  app.add_flag("--no-migrate", no_migrate, "Never move guests on the daemons' own decision");
  app.add_flag("--no-agent", options.no_agent, "Start guests without libmosix.so (they cannot move)");
  app.add_option("--spread", options.spread, "Place the guests' children at exec, through deputies: load or always")
      ->check(CLI::IsMember({"load", "always"}));
  app.add_option("--ckpt-interval", options.ckpt_interval, "Checkpoint every guest every SECONDS");
  app.add_option("--ckpt-dir", options.ckpt_dir, "Directory of the periodic checkpoints (seen by every node)");
  app.add_option("--node-timeout", options.node_timeout,
                 "Seconds without a word from a node before the home declares it gone (default 10)");
  int launch = 0;
  app.add_option("--launch", launch, "Start this many daemons of this machine, connected by unix sockets");
  TransportOptions transport_options;
  transport_options.kind = TransportKind::kMpi;
  app.add_option("--node-rank", transport_options.rank, "This daemon's rank (given by --launch)");
  app.add_option("--nodes", transport_options.size, "Daemons in the group (given by --launch)");
  app.add_option("--listen-fd", transport_options.listen_fd, "This rank's listening socket (given by --launch)");
  app.set_version_flag("--version", std::string("mosixd ") + MOSIX_VERSION);
  CLI11_PARSE(app, argc, argv);
  std::stringstream ss(shares);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) options.vcluster_cpu.push_back(std::stod(item));
  }

  std::stringstream slots_ss(slots);
  for (std::string item; std::getline(slots_ss, item, ',');) {
    if (!item.empty()) options.slots.push_back(std::stoi(item));
  }
  options.oversubscribe = !no_oversubscribe;
  options.rebalance = !no_migrate;

  auto logger = spdlog::stderr_logger_st("mosixd");
  logger->set_pattern("mosixd: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);
  if (const char* env = std::getenv("MOSIX_LOG")) spdlog::set_level(spdlog::level::from_str(env));

  if (launch > 0) return launch_daemons(launch, argc, argv, options.home_socket);
  if (app.count("--nodes") > 0) {
    transport_options.kind = TransportKind::kSocket;
    transport_options.socket_dir = options.home_socket.substr(0, options.home_socket.rfind('/'));
  }

  // If whatever started us (mpirun, orted, mosixd --launch) dies, so do we, and with us our
  // guests (their own PDEATHSIG) and what they started (the watcher).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Before MPI starts threads: the watcher kills what our guests started if
  // this daemon is killed.
  auto watcher = OrphanWatcher::start();
  if (!watcher) {
    spdlog::error("{}", watcher.error().message);
    return 1;
  }
  options.on_guest_started = [&watcher](pid_t pgid) { watcher->watch(pgid); };
  options.on_cpu_cap = [&watcher](const std::string& cgroup, const std::string& top) {
    watcher->remove_cgroup_at_death(cgroup, top);
  };
  auto transport = make_transport(transport_options);
  if (!transport) {
    spdlog::error("cannot join the other node daemons: {}", transport.error().message);
    return 1;
  }
  int rc = run_node_daemon(**transport, options);
  watcher->release();
  return rc;
}
