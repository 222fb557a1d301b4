#include "runtime/job/daemon_command.h"

#include <spdlog/fmt/fmt.h>

#include "runtime/core/environment.h"

namespace mosix {
namespace {

template <typename T>
std::string joined(const std::vector<T>& items) {
  std::string out;
  for (const T& item : items) out += (out.empty() ? "" : ",") + fmt::format("{}", item);
  return out;
}

}  // namespace

NodeDaemonOptions node_daemon_options(const RunOptions& o, const JobPlan& plan, const std::string& job_id,
                                      const std::string& ckpt_dir, double node_timeout,
                                      std::optional<Topology> topology) {
  NodeDaemonOptions d;
  d.copies = plan.copies;
  d.job_id = job_id;
  d.ckpt_interval = o.ckpt_interval;
  d.ckpt_dir = ckpt_dir;
  d.node_timeout = node_timeout;
  d.rebalance = o.migrate != "off";
  d.no_agent = o.no_agent;
  if (plan.multi_node && !o.no_agent && o.spread != "off") d.spread = o.spread;
  if (!plan.multi_node) {
    d.map_by = "slot";
    d.slots = {plan.copies};
    d.topology = std::move(topology);
    return d;
  }
  d.map_by = !o.map_by.empty() ? o.map_by : o.vcluster > 0 ? "load" : "slot";
  if (o.vcluster > 0) {
    for (int i = 0; i < o.vcluster; ++i) {
      d.vcluster_cpu.push_back(o.vcluster_cpu.empty() ? 1.0 : o.vcluster_cpu[static_cast<size_t>(i)]);
    }
  } else {
    d.slots = plan.node_slots;
    d.oversubscribe = o.oversubscribe;
  }
  return d;
}

std::vector<std::string> mosixd_arguments(const NodeDaemonOptions& d) {
  std::vector<std::string> args{"--copies", std::to_string(d.copies), "--job", d.job_id, "--map-by", d.map_by};
  if (!d.slots.empty()) args.insert(args.end(), {"--slots", joined(d.slots)});
  if (!d.oversubscribe) args.push_back("--no-oversubscribe");
  if (!d.rebalance) args.push_back("--no-migrate");
  if (d.no_agent) args.push_back("--no-agent");
  if (!d.spread.empty()) args.insert(args.end(), {"--spread", d.spread});
  if (d.ckpt_interval > 0) {
    // Each node daemon checkpoints its guests; a rank lost with its node
    // restarts from its image on a live node (the directory must be on a
    // file system every node sees, as the job's files are).
    args.insert(args.end(), {"--ckpt-interval", fmt::format("{}", d.ckpt_interval), "--ckpt-dir", d.ckpt_dir});
  }
  args.insert(args.end(), {"--node-timeout", fmt::format("{}", d.node_timeout)});
  if (!d.vcluster_cpu.empty()) args.insert(args.end(), {"--vcluster-cpu", joined(d.vcluster_cpu)});
  return args;
}

DaemonsCommand daemons_command(const RunOptions& o, const JobPlan& plan, const NodeDaemonOptions& daemon,
                               const DaemonsContext& c) {
  auto ours = [&c](const char* name) { return get_env(c.environment, name); };
  DaemonsCommand cmd;
  const int daemons = o.vcluster > 0 ? o.vcluster : static_cast<int>(plan.nodes.size());
  if (c.launch_here) {
    // A virtual cluster's daemons all run here: mosixd --launch starts them
    // and connects them by unix sockets, without MPI's start-up.
    cmd.path = c.mosixd;
    cmd.argv = {"mosixd", "--launch", std::to_string(daemons)};
    cmd.launch_events = true;
  } else {
    cmd.path = c.mpirun;
    cmd.argv = {"mpirun", "--oversubscribe", "--bind-to", "none", "-np", std::to_string(daemons)};
    if (o.vcluster == 0) {
      std::string list;
      for (const std::string& node : plan.nodes) list += (list.empty() ? "" : ",") + node + ":1";
      cmd.argv.insert(cmd.argv.end(), {"--host", list});
    }
    for (const char* var : {"MOSIX_LOG", "XDG_STATE_HOME"}) {
      if (ours(var)) cmd.argv.insert(cmd.argv.end(), {"-x", var});
    }
    // A node daemon that dies must not take the job with it: the home node
    // notices the silence, and mosixrun decides (the ranks it held are lost;
    // a guest that was moving there resumes where it was).
    cmd.argv.insert(cmd.argv.end(), {"--enable-recovery", c.mosixd});
  }
  const std::vector<std::string> args = mosixd_arguments(daemon);
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());

  cmd.env = plan.env;
  // The agent is for guests (each node daemon preloads it into its own),
  // never for mpirun or the daemons: the plan put it in the copies'.
  if (auto preload = ours("LD_PRELOAD")) {
    set_env(cmd.env, "LD_PRELOAD", *preload);
  } else {
    std::erase_if(cmd.env, [](const std::string& e) { return e.rfind("LD_PRELOAD=", 0) == 0; });
  }
  if (c.in_slurm && ours("SLURM_STEP_ID")) {
    // Inside a job step mpirun must overlap the step, and sees the step's
    // task counts unless given the job's.
    set_env(cmd.env, "SLURM_OVERLAP", "1");
    if (auto cpus = ours("SLURM_JOB_CPUS_PER_NODE")) set_env(cmd.env, "SLURM_TASKS_PER_NODE", *cpus);
  }
  if (!ours("OMPI_MCA_plm_rsh_args") && !ours("OMPI_MCA_plm_rsh_agent")) {
    // ssh must neither ask for a password nor wait minutes for a host
    // that does not answer: the daemons start, or mosixrun says why.
    set_env(cmd.env, "OMPI_MCA_plm_rsh_args", "-o BatchMode=yes -o ConnectTimeout=10");
  }
  if (o.vcluster > 0) {
    // Every daemon of a virtual cluster is on this machine: shared memory
    // is all the transport needs, and skipping the network layers' start-up
    // (UCX alone costs a quarter of a second here) makes the launch faster.
    if (!ours("OMPI_MCA_pml")) set_env(cmd.env, "OMPI_MCA_pml", "ob1");
    if (!ours("OMPI_MCA_btl")) set_env(cmd.env, "OMPI_MCA_btl", "self,vader");
  }
  if (c.as_root) {
    // Open MPI refuses root unless told; mosixrun's daemons are not MPI programs of the user.
    set_env(cmd.env, "OMPI_ALLOW_RUN_AS_ROOT", "1");
    set_env(cmd.env, "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
  }
  return cmd;
}

}  // namespace mosix
