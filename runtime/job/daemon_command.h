// How a planned job's node daemons are told what to do: their options
// (NodeDaemonOptions, for the one that runs in mosixrun as for mosixd), and
// for jobs over several nodes the one command line that starts them, mpirun
// (or mosixd --launch on a virtual cluster) with mosixd's arguments and
// environment. mosixd parses back what mosixd_arguments() writes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/core/plan_job.h"
#include "runtime/core/run_options.h"
#include "runtime/daemon/node_daemon.h"

namespace mosix {

// The options of the job's node daemons. For a job on this node alone (not
// plan.multi_node), those of its daemon inside mosixrun: every copy here, the
// agent in the copies' LD_PRELOAD unless --no-agent, and this node's
// topology as mosixrun probed it (`topology`), so it is not probed twice.
NodeDaemonOptions node_daemon_options(const RunOptions& options, const JobPlan& plan, const std::string& job_id,
                                      const std::string& ckpt_dir, double node_timeout,
                                      std::optional<Topology> topology = std::nullopt);

// mosixd's own arguments for `options` (--copies N --job ID ...).
std::vector<std::string> mosixd_arguments(const NodeDaemonOptions& options);

struct DaemonsContext {
  std::string mosixd;          // path of mosixd
  std::string mpirun;          // path of mpirun (unused with launch_here)
  bool launch_here = false;    // a virtual cluster started by mosixd --launch, without MPI
  bool in_slurm = false;       // the hosts are a Slurm allocation
  bool as_root = false;
  std::vector<std::string> environment;  // mosixrun's own
};

struct DaemonsCommand {
  std::string path;
  std::vector<std::string> argv;  // --home-socket PATH is added when the job starts
  std::vector<std::string> env;
  bool launch_events = false;     // mosixd --launch: its stdout carries launch events
};

// The command that starts the node daemons of a job over several nodes.
DaemonsCommand daemons_command(const RunOptions& options, const JobPlan& plan, const NodeDaemonOptions& daemon,
                               const DaemonsContext& context);

}  // namespace mosix
