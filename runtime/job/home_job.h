// A job, as mosixrun sees it. It starts the node daemons (through mpirun or
// mosixd --launch; for a job on this node alone, one node daemon on a thread
// of this process over LocalTransport), hands the job to the home node's
// daemon over a unix socket, and from then on relays: guest output to our
// stdout/stderr, our stdin to rank 0, signals to every copy on every node,
// mpirun's exit rule, and mosixctl's questions and orders.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/job/job_registry.h"
#include "runtime/daemon/node_daemon.h"

namespace mosix {

struct HomeJobSpec {
  std::vector<SpawnGuest> guests;        // in rank order
  std::vector<std::string> mpirun_argv;  // mpirun ... mosixd [args]; --home-socket is appended
  std::vector<std::string> mpirun_env;   // complete environment of mpirun
  std::string mpirun_path;
  bool launch_events = false;            // it is mosixd --launch: launch events on its stdout
  bool tag_output = false;
  std::string output_dir;
  bool keep_going = false;
  double timeout_seconds = 0;
  double kill_grace_seconds = 3;
  double node_timeout = 10;              // seconds of silence after which the home declares a node gone
  JobRecord record;
  // Set: the job runs on this node alone; its node daemon runs on a thread
  // of ours with these options (mpirun_* unused). Its home socket, guest
  // callback and stdin are filled in here.
  std::optional<NodeDaemonOptions> local_daemon;
};

Expected<int> run_home_job(HomeJobSpec spec);

}  // namespace mosix
