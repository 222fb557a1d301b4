#include "runtime/daemon/run_queue_probe.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>

#include "runtime/daemon/proc_stat_file.h"
#include "runtime/sys/read_file.h"
#include "runtime/topology/node_load.h"

namespace mosix {
namespace {

// Numeric entries of a /proc directory.
std::vector<pid_t> numeric_entries(const std::string& dir) {
  std::vector<pid_t> ids;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ids;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    ids.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
  }
  ::closedir(d);
  return ids;
}

double tick_seconds() { return 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK)); }

}  // namespace

int runnable_threads(pid_t pid) {
  int n = 0;
  for (pid_t tid : numeric_entries("/proc/" + std::to_string(pid) + "/task")) {
    auto st = read_proc_stat(pid, tid);
    if (st && counts_as_runnable(st->state)) ++n;
  }
  return n;
}

std::vector<pid_t> process_tree_pids(const std::vector<pid_t>& roots) {
  std::multimap<pid_t, pid_t> children;
  for (pid_t pid : numeric_entries("/proc")) {
    if (auto st = read_proc_stat(pid)) children.emplace(static_cast<pid_t>(st->ppid), pid);
  }
  std::set<pid_t> seen;
  std::vector<pid_t> todo(roots.begin(), roots.end());
  std::vector<pid_t> out;
  while (!todo.empty()) {
    pid_t pid = todo.back();
    todo.pop_back();
    if (pid <= 0 || !seen.insert(pid).second) continue;
    out.push_back(pid);
    auto [from, to] = children.equal_range(pid);
    for (auto it = from; it != to; ++it) todo.push_back(it->second);
  }
  return out;
}

RunQueueProbe RunQueueProbe::machine() { return RunQueueProbe(Kind::kMachine); }

RunQueueProbe RunQueueProbe::cgroup(std::string cgroup_dir) {
  RunQueueProbe p(Kind::kCgroup);
  p.cgroup_dir_ = std::move(cgroup_dir);
  return p;
}

RunQueueProbe RunQueueProbe::process_trees(std::function<std::vector<pid_t>()> roots) {
  RunQueueProbe p(Kind::kTrees);
  p.roots_ = std::move(roots);
  return p;
}

std::string RunQueueProbe::describe() const {
  switch (kind_) {
    case Kind::kMachine: return "the machine's run queue";
    case Kind::kCgroup: return "the tasks of cgroup " + cgroup_dir_;
    case Kind::kTrees: return "the job's process trees on this node";
  }
  return "?";
}

// The runnable count now (one sample, noisy: a process's helper threads wake
// and sleep) and the runnable time of every thread since the last reading
// (its schedstat), the load the balancer is given when the kernel has it.
RunQueueReading RunQueueProbe::read_processes(const std::vector<pid_t>& pids) {
  RunQueueReading r;
  std::map<int, double> cpu, runnable_time;
  int threads = 0;
  for (pid_t pid : pids) {
    auto st = read_proc_stat(pid);
    if (!st || st->zombie()) continue;
    cpu[pid] = static_cast<double>(st->utime + st->stime) * tick_seconds();
    r.runnable += runnable_threads(pid);
    const std::string tasks = "/proc/" + std::to_string(pid) + "/task/";
    for (pid_t tid : numeric_entries(tasks)) {
      ++threads;
      auto text = sys::read_file_limited(tasks + std::to_string(tid) + "/schedstat", 256, "a thread's schedstat");
      if (auto seconds = text ? parse_schedstat_runnable_seconds(*text) : std::nullopt) runnable_time[tid] = *seconds;
    }
  }
  r.cpu_seconds = cpu_.add(cpu);
  const double runnable_seconds = runnable_time_.add(runnable_time);
  // None readable among several threads: a kernel without schedstat.
  const bool schedstat = threads == 0 || !runnable_time.empty();
  if (schedstat && runnable_time_started_) r.runnable_seconds = runnable_seconds;
  runnable_time_started_ = true;
  return r;
}

RunQueueReading RunQueueProbe::read() {
  switch (kind_) {
    case Kind::kMachine: {
      RunQueueReading r;
      if (auto load = read_loadavg()) r.runnable = machine_runnable(load->running);
      if (auto stat = sys::read_file_limited("/proc/stat", 1 << 20, "the kernel's statistics")) {
        if (auto busy = parse_stat_busy_ticks(*stat)) {
          r.cpu_seconds = busy_ticks_.add(static_cast<double>(*busy)) * tick_seconds();
        }
      }
      return r;
    }
    case Kind::kCgroup: {
      auto text = sys::read_file_limited(cgroup_dir_ + "/cgroup.procs", 16 << 20, "the cgroup's process list");
      auto pids = text ? parse_pid_list(*text) : std::nullopt;
      std::vector<pid_t> list;
      if (pids) list.assign(pids->begin(), pids->end());
      return read_processes(list);
    }
    case Kind::kTrees: return read_processes(process_tree_pids(roots_()));
  }
  return {};
}

}  // namespace mosix
