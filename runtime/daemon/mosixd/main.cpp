// mosixd: one node daemon of a job, started by mosixrun through mpirun (one
// rank per node, rank 0 on the home node). Not meant to be run by hand.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <sys/prctl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sstream>

#include "runtime/daemon/node_daemon.h"
#include "runtime/daemon/orphan_watcher.h"
#include "runtime/transport/transport.h"

// Under AddressSanitizer (the CI's second build): Open MPI's plugins leak at
// MPI_Finalize and are unloaded by then, so LeakSanitizer can neither blame
// nor suppress them by name. mosixd's own leaks are covered by the unit tests
// of the code it runs; here leak checking is off, every other check stays on.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

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
  app.add_option("--ckpt-interval", options.ckpt_interval, "Checkpoint every guest every SECONDS");
  app.add_option("--ckpt-dir", options.ckpt_dir, "Directory of the periodic checkpoints (seen by every node)");
  app.add_option("--node-timeout", options.node_timeout,
                 "Seconds without a word from a node before the home declares it gone (default 10)");
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

  // If whatever started us (mpirun, orted) dies, so do we, and with us our
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
  auto transport = make_transport(TransportOptions{TransportKind::kMpi});
  if (!transport) {
    spdlog::error("cannot join the other node daemons: {}", transport.error().message);
    return 1;
  }
  int rc = run_node_daemon(**transport, options);
  watcher->release();
  return rc;
}
