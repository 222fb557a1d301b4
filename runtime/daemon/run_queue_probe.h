// What runs on this node, read from the kernel for the load agent: the tasks
// runnable now and the CPU time used since the last reading. Three sources,
// chosen once by the node daemon:
// - a real node: the machine's run queue (/proc/loadavg) and busy time
//   (/proc/stat): other jobs and other users count;
// - a node of a virtual cluster: the tasks of its CPU-cap cgroup (cgroup v1
//   or v2 alike, through cgroup.procs): guests, their children and anything
//   else started in the cgroup;
// - a virtual node without a cap cgroup: the job's process trees on the
//   node, every guest and all of its descendants.
// The arithmetic (what counts as runnable, CPU per interval) is core's
// (runtime/core/run_queue.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "runtime/core/run_queue.h"

namespace mosix {

struct RunQueueReading {
  int runnable = 0;          // tasks (threads) runnable now
  double cpu_seconds = 0.0;  // CPU time they used since the previous reading
  // Seconds the tasks were runnable (running or waiting for a CPU) since the
  // previous reading, summed: over the interval, the mean runnable count.
  // < 0 where not measured (the machine's run queue, the first reading, a
  // kernel without schedstat): `runnable` is all there is.
  double runnable_seconds = -1.0;
};

class RunQueueProbe {
 public:
  static RunQueueProbe machine();
  // `cgroup_dir`: the cgroup's directory (with cgroup.procs).
  static RunQueueProbe cgroup(std::string cgroup_dir);
  // `roots` gives the pids of the guests on the node at each reading.
  static RunQueueProbe process_trees(std::function<std::vector<pid_t>()> roots);

  RunQueueReading read();
  // What it reads, for the log: "the machine's run queue", "cgroup DIR", ...
  std::string describe() const;

 private:
  enum class Kind { kMachine, kCgroup, kTrees };
  explicit RunQueueProbe(Kind kind) : kind_(kind) {}
  RunQueueReading read_processes(const std::vector<pid_t>& pids);

  Kind kind_;
  std::string cgroup_dir_;
  std::function<std::vector<pid_t>()> roots_;
  CpuMeter cpu_;
  CpuMeter runnable_time_;  // per thread, schedstat's running + waiting time
  bool runnable_time_started_ = false;
  CounterDelta busy_ticks_;
};

// `roots` and all their descendants that live now (a scan of /proc).
std::vector<pid_t> process_tree_pids(const std::vector<pid_t>& roots);

// Whether a thread of process `pid` is runnable now (core's
// counts_as_runnable): how many of them are.
int runnable_threads(pid_t pid);

}  // namespace mosix
