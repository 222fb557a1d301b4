// A node's real load, from what the node daemon reads of the kernel: the
// tasks runnable on the node (a real node: the machine's run queue; a node of
// a virtual cluster: the tasks of its CPU-cap cgroup, or without one, of the
// job's process trees) and the CPU time they use. The reading is the
// daemon's (runtime/daemon/run_queue_probe.h); the arithmetic is here, pure.
//
// Load, as everywhere in core (node_state.h): runnable tasks per reference
// CPU, runnable / (speed * cores). The daemon samples every half second and
// smooths the samples with MOSIX's two estimators (gossip.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

namespace mosix {

// One sample of load: `runnable` tasks on a node of `speed` per core and
// `cores` cores. 0 for a node of no capacity.
double load_sample(double runnable, double speed, int cores);

// The machine's runnable tasks from the kernel's count (/proc/loadavg's
// "R/T" or /proc/stat's procs_running), which includes the reading thread
// itself: that one is taken off.
int machine_runnable(int procs_running);

// Whether a task in /proc state `state` counts as runnable: R only (running
// or waiting for a CPU; a throttled task of a capped cgroup is R too). D
// (uninterruptible wait, I/O) is not CPU demand a move could relieve.
bool counts_as_runnable(char state);

// The busy clock ticks of the "cpu " line of /proc/stat (user, nice, system,
// irq, softirq, steal; not idle, iowait, nor guest time, which user already
// holds). Nothing if the text has no such line or it is malformed.
std::optional<std::uint64_t> parse_stat_busy_ticks(std::string_view proc_stat);

// A cgroup's cgroup.procs (or tasks): one id a line. Nothing if a line is
// not a positive number.
std::optional<std::vector<int>> parse_pid_list(std::string_view text);

// A thread's /proc/PID/task/TID/schedstat ("RUN_NS WAIT_NS SLICES"): the
// seconds it has been runnable, running (RUN) or waiting on a run queue
// (WAIT; a task of a capped cgroup waits there while the cgroup is
// throttled). Its growth over an interval, summed over a node's threads and
// divided by the interval, is the mean count of runnable tasks: MOSIX's load
// measured, not sampled. Nothing if the text is malformed.
std::optional<double> parse_schedstat_runnable_seconds(std::string_view text);

// CPU time of a changing set of processes, per interval. Each sample gives
// the CPU time (any unit) of every process in the set now; add() returns the
// time they used since the previous sample: the growth of each process seen
// both times, the whole time of a process new to the set (it joined or was
// born since; a process's time starts at its exec under the cap). A process
// that left or ended is lost for its last interval. The first sample gives
// 0: it is the baseline.
class CpuMeter {
 public:
  double add(const std::map<int, double>& time_by_pid);

 private:
  std::map<int, double> last_;
  bool started_ = false;
};

// A counter that only grows (the machine's busy ticks), per interval: the
// growth since the previous value; 0 for the first value or when the
// counter went back.
class CounterDelta {
 public:
  double add(double value);

 private:
  std::optional<double> last_;
};

}  // namespace mosix
