// The nodes and slots of the Slurm allocation a process runs in, read from
// its environment (SLURM_JOB_ID, SLURM_JOB_NODELIST, SLURM_TASKS_PER_NODE and
// their fallbacks). Pure: the caller passes the environment in.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/hostlist.h"

namespace mosix {

// One entry per node of the allocation, in Slurm's order, with its task count
// as slots (slots_given = true). Nodes come from SLURM_JOB_NODELIST, else
// SLURM_NODELIST; counts from SLURM_TASKS_PER_NODE, else
// SLURM_JOB_CPUS_PER_NODE (the other way round inside a job step, where
// SLURM_STEP_ID is set and SLURM_TASKS_PER_NODE is the step's); with neither,
// each node gets slots_given = false ("as many as the node has cores"). Outside an allocation (no SLURM_JOB_ID
// or SLURM_JOBID) the result is empty. A malformed list, a node list that
// does not match its counts, or a node given no task is an error that names
// the variable and its value.
Expected<std::vector<HostSlots>> slurm_allocation(const std::map<std::string, std::string>& env);

// The SLURM_* entries of a NAME=VALUE environment block (such as environ),
// for slurm_allocation. A null block gives an empty map.
std::map<std::string, std::string> slurm_environment(const char* const* envp);

}  // namespace mosix
