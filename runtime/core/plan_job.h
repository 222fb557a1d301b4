// What mosixrun decides before anything starts, from its command line and
// what it found out about this machine: how many copies, on which nodes with
// how many slots, whether the job needs node daemons of its own (other
// hosts, a virtual cluster) or runs on this node alone, and each copy's
// spawn: program, working directory, environment with mpirun's rank
// variables. Pure: a test gives it any host list, core count and environment.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/hostlist.h"
#include "runtime/core/protocol.h"
#include "runtime/core/run_options.h"

namespace mosix {

// The most CPUs the SMP view shows (the kernel's largest NR_CPUS; the agent's bound too).
constexpr long long kMaxSmpCpus = 8192;

struct PlanInputs {
  // From --host, --hostfile or the Slurm allocation; empty: this node only.
  std::vector<HostSlots> hosts;
  // The hosts came from a hostfile or Slurm: there a host without slots= has
  // every core of its node (mpirun's rule; `--host a` is one slot).
  bool host_without_slots_is_all_cores = false;
  int cores = 1;                       // of this node
  std::string this_node;               // its host name
  std::string slurm_node_name;         // SLURMD_NODENAME, if set: Slurm's name for it
  std::vector<std::string> environment;  // mosixrun's own, "NAME=value"
  std::string wdir;                    // the copies' working directory, absolute
  std::string agent;                   // the agent to preload (unless --no-agent; checked by the caller)
  bool program_links_mpi = false;      // the program's ELF needs an MPI library (--mpi auto)
  bool program_links_mpich = false;    // ... and that library is MPICH's: PMI, not PMIx
  std::uint64_t memory_kib = 0;        // this node's memory (MemTotal); 0: unknown
};

struct JobPlan {
  std::string home_node;  // this node, where mosixrun runs
  std::string wdir;       // the copies' working directory
  int copies = 0;
  long long slots = 0;
  // Node daemons of its own are needed: other hosts than this one, or a
  // virtual cluster. Otherwise the job's one node daemon runs in mosixrun.
  bool multi_node = false;
  // Other hosts than this one (their names must resolve, unless mpirun
  // reaches them its own way).
  std::vector<std::string> remote_hosts;
  // Real hosts: one node daemon each, in rank order, this node first (added
  // with no slot when the host list does not name it: its daemon only
  // routes), and the slots of each (-1: every core of that node).
  std::vector<std::string> nodes;
  std::vector<int> node_slots;
  std::vector<std::string> env;     // every copy's environment before its rank variables
  std::vector<SpawnGuest> guests;   // in rank order
  std::vector<std::string> warnings;
};

// Whether `host` of a host list is this node.
bool names_this_node(const std::string& host, const PlanInputs& in);

// The plan, or a usage error naming what to change (more copies than slots,
// a --pin rank the job does not have, a host list beyond the bounds).
Expected<JobPlan> plan_job(const RunOptions& options, const PlanInputs& in);

}  // namespace mosix
