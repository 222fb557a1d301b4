// A job spread over several nodes: mosixrun's side. It starts the node
// daemons through mpirun, hands the job to the home node's daemon over a
// unix socket, and from then on behaves as a local job does: guest output to
// our stdout/stderr, our stdin to rank 0, signals to every copy on every
// node, and mpirun's exit rule.
#pragma once

#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/job_registry.h"

namespace mosix {

struct RemoteJobSpec {
  std::vector<SpawnGuest> guests;        // in rank order
  std::vector<std::string> mpirun_argv;  // mpirun ... mosixd [args]; --home-socket is appended
  std::vector<std::string> mpirun_env;   // complete environment of mpirun
  std::string mpirun_path;
  bool tag_output = false;
  std::string output_dir;
  bool keep_going = false;
  double timeout_seconds = 0;
  double kill_grace_seconds = 3;
  double node_timeout = 10;              // seconds of silence after which the home declares a node gone
  JobRecord record;
};

Expected<int> run_remote_job(RemoteJobSpec spec);

}  // namespace mosix
