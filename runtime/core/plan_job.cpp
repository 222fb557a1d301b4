#include "runtime/core/plan_job.h"

#include <algorithm>
#include <cmath>

#include "runtime/core/environment.h"

namespace mosix {
namespace {

// The slots a host list line gives (-1: every core of its node).
int given_slots(const HostSlots& h, const PlanInputs& in) {
  return h.slots_given || !in.host_without_slots_is_all_cores ? h.slots : -1;
}

std::vector<std::string> copies_environment(const RunOptions& o, const PlanInputs& in,
                                            std::vector<std::string>& warnings) {
  std::vector<std::string> env = in.environment;
  for (const EnvSetting& s : o.env) {
    if (s.value) {
      set_env(env, s.name, *s.value);
    } else if (!get_env(in.environment, s.name)) {
      warnings.push_back("-x " + s.name + ": not set here, nothing to export");
    }
  }
  if (!o.no_agent && !in.agent.empty()) {
    // Every copy is a guest: the agent goes inside it, first.
    auto old = get_env(in.environment, "LD_PRELOAD");
    set_env(env, "LD_PRELOAD", in.agent + (old && !old->empty() ? ":" + *old : ""));
  }
  return env;
}

// The SMP view (docs/mosixrun.md): the agent shows the copies of a job over
// several nodes the cluster's CPUs and memory. A virtual node counts its CPU
// share rounded up (0.4 -> 1, 1.5 -> 2: the CPUs a program needs to use all
// of it), a real node its slots (a node with every core: as many as this
// one's); the memory is this node's for every node that runs copies. Not for
// MPI copies, whose ranks already are the job's parallelism, nor --no-smp,
// which also drops a view inherited from an outer job.
void set_smp_view(const RunOptions& o, const PlanInputs& in, bool mpi, JobPlan& plan) {
  if (o.no_smp) {
    std::erase_if(plan.env, [](const std::string& e) { return e.rfind("MOSIX_SMP_", 0) == 0; });
    return;
  }
  if (!plan.multi_node || o.no_agent || mpi) return;
  long long cpus = 0, nodes = 0;
  if (o.vcluster > 0) {
    for (int i = 0; i < o.vcluster; ++i) {
      double share = o.vcluster_cpu.empty() ? 1.0 : o.vcluster_cpu[static_cast<size_t>(i)];
      cpus += std::max(1LL, static_cast<long long>(std::ceil(share - 1e-9)));
    }
    nodes = o.vcluster;
  } else {
    for (int slots : plan.node_slots) {
      const long long n = slots < 0 ? std::max(1, in.cores) : slots;
      if (n == 0) continue;  // the home node only routes
      cpus += n;
      ++nodes;
    }
  }
  set_env(plan.env, "MOSIX_SMP_CPUS", std::to_string(std::clamp(cpus, 1LL, kMaxSmpCpus)));
  if (in.memory_kib > 0) {
    set_env(plan.env, "MOSIX_SMP_MEMORY_KIB", std::to_string(in.memory_kib * static_cast<std::uint64_t>(nodes)));
  }
}

SpawnGuest copy_spawn(const RunOptions& o, const PlanInputs& in, const std::vector<std::string>& env, int rank,
                      int copies, std::uint32_t mpi) {
  SpawnGuest g;
  g.rank = rank;
  g.argv = o.program;
  g.cwd = in.wdir;
  g.env = env;
  const std::string r = std::to_string(rank), n = std::to_string(copies);
  // Local ranks are this node's until the home places the copies.
  for (const char* name : {"MOSIX_RANK", "OMPI_COMM_WORLD_RANK", "MOSIX_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"}) {
    set_env(g.env, name, r);
  }
  for (const char* name : {"MOSIX_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
    set_env(g.env, name, n);
  }
  set_env(g.env, "OMPI_COMM_WORLD_NODE_RANK", r);
  set_env(g.env, "MOSIX_HOME_NODE", in.this_node);
  set_env(g.env, "MOSIX_NODE", in.this_node);
  g.flags = rank == 0 ? kSpawnStdin | (o.pty ? kSpawnPty : 0) : 0;
  if (std::binary_search(o.pin.begin(), o.pin.end(), rank)) g.flags |= kSpawnPinned;
  if (o.bind_to == BindTo::kCore) g.flags |= kSpawnBindCore;
  // mpirun binds to a core when a job has 2 copies or fewer (to a package
  // beyond, which on a one-socket node is no binding): an MPI job's latency
  // between two ranks is mpirun's only if they are bound as mpirun's are.
  if (o.bind_to == BindTo::kAuto && mpi && copies <= 2) g.flags |= kSpawnBindAuto;
  g.flags |= mpi;
  return g;
}

}  // namespace

bool names_this_node(const std::string& host, const PlanInputs& in) {
  const std::string short_me = in.this_node.substr(0, in.this_node.find('.'));
  // Slurm may name this node otherwise than its host name (several slurmd
  // on one host, or NodeName aliases).
  return host == "localhost" || host == "127.0.0.1" || host == "::1" || host == in.this_node ||
         host == short_me || (!in.slurm_node_name.empty() && host == in.slurm_node_name);
}

Expected<JobPlan> plan_job(const RunOptions& o, const PlanInputs& in) {
  JobPlan plan;
  plan.home_node = in.this_node;
  plan.wdir = in.wdir;
  const int cores = std::max(1, in.cores);
  // Slots: from the host list, else one per core of this node.
  plan.slots = cores;
  if (!in.hosts.empty()) {
    plan.slots = 0;
    for (const HostSlots& h : in.hosts) {
      if (!names_this_node(h.name, in)) plan.remote_hosts.push_back(h.name);
      const int slots = given_slots(h, in);
      plan.slots += slots < 0 ? cores : slots;
    }
  }
  plan.multi_node = o.vcluster > 0 || !plan.remote_hosts.empty();
  if (o.vcluster > 0) plan.slots = std::max<long long>(plan.slots, o.vcluster);
  if (o.np == 0 && plan.slots > kMaxCopies) {
    return make_error("the host list gives " + std::to_string(plan.slots) + " slots, more than the bound of " +
                      std::to_string(kMaxCopies) + " copies in one job: give -np");
  }
  plan.copies = o.np > 0 ? o.np : static_cast<int>(plan.slots);
  // A virtual cluster spreads copies by load, as MOSIX does: no slot limit.
  if (plan.copies > plan.slots && !o.oversubscribe && o.vcluster == 0) {
    return make_error(std::to_string(plan.copies) + " copies asked for but only " + std::to_string(plan.slots) +
                      " slot" + (plan.slots == 1 ? "" : "s") + " (" +
                      (in.hosts.empty() ? "cores of this node" : "from the host list") +
                      "): add --oversubscribe, or give more slots with --host/--hostfile");
  }
  if (!o.pin.empty() && o.pin.back() >= plan.copies) {
    return make_error("--pin: rank " + std::to_string(o.pin.back()) + " does not exist: the job has " +
                      std::to_string(plan.copies) + " cop" + (plan.copies == 1 ? "y" : "ies") +
                      " (ranks count from 0)");
  }
  if (plan.multi_node && o.vcluster == 0) {
    // One node daemon per host, the home node first (it is rank 0).
    std::vector<HostSlots> ordered;
    for (const HostSlots& h : in.hosts) {
      if (names_this_node(h.name, in)) ordered.insert(ordered.begin(), h);
      else ordered.push_back(h);
    }
    if (!names_this_node(ordered.front().name, in)) {
      ordered.insert(ordered.begin(), HostSlots{in.this_node, 0, true});  // the home only routes
    }
    for (const HostSlots& h : ordered) {
      plan.nodes.push_back(h.name);
      plan.node_slots.push_back(given_slots(h, in));
    }
  }
  // Open MPI's copies are served PMIx (the node's helper), MPICH's PMI-1
  // (the node daemon): told apart by the library the program links.
  std::uint32_t mpi = 0;
  if (o.mpi == MpiMode::kPmix) mpi = kSpawnPmix;
  if (o.mpi == MpiMode::kPmi) mpi = kSpawnPmi;
  if (o.mpi == MpiMode::kAuto && in.program_links_mpi) mpi = in.program_links_mpich ? kSpawnPmi : kSpawnPmix;
  plan.env = copies_environment(o, in, plan.warnings);
  set_smp_view(o, in, mpi != 0, plan);
  plan.guests.reserve(static_cast<size_t>(plan.copies));
  for (int rank = 0; rank < plan.copies; ++rank) plan.guests.push_back(copy_spawn(o, in, plan.env, rank, plan.copies, mpi));
  return plan;
}

}  // namespace mosix
