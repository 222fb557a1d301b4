// What a node daemon is told at its start (mosixd's command line, or
// mosixrun for the daemon it runs itself). Every part of the daemon reads it
// through its DaemonContext.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "runtime/topology/topology.h"

namespace mosix {

struct NodeDaemonOptions {
  std::string home_socket;        // rank 0: mosixrun's unix socket
  int copies = 0;                 // rank 0: how many SpawnGuest messages to expect
  std::string map_by = "load";    // rank 0: load | slot | node
  std::vector<int> slots;         // rank 0: slots of each node, in rank order; empty: by load
  bool oversubscribe = true;      // rank 0: may exceed the slots
  std::vector<double> vcluster_cpu;  // virtual cluster: CPU share of each node; empty: real nodes
  std::string job_id;             // names the CPU-cap cgroups
  bool no_agent = false;          // do not preload libmosix.so into guests (they cannot move)
  std::string spread;             // "load"/"always": guests' children are placed at exec (deputies); "": never
  bool rebalance = true;          // move guests when the balancer says so (--migrate=off: false)
  double node_timeout = 10;       // rank 0: a node silent this many seconds is declared gone
  double ckpt_interval = 0;       // checkpoint every guest every so many seconds; 0: never
  std::string ckpt_dir;           // ... into DIR/rank.N.img (a directory every node sees)
  // Runs inside mosixrun (a one-node job over LocalTransport): mosixrun's
  // own signal handling stays in charge (SIGTERM, SIGINT and SIGHUP are its
  // to act on), and frames that never left this process are not checked again.
  bool in_process = false;
  // Descriptors the guests inherit (in-process, without checkpoints: those
  // mosixrun's parent gave it, as mpirun's copies' 0-2 are); every other
  // descriptor of this process is kept from them.
  std::vector<int> inherited_fds;
  // This node's topology when the caller has probed it already (mosixrun,
  // for the daemon it runs itself); empty: the daemon probes the node.
  std::optional<Topology> topology;
  // In-process: what the guest that takes the job's stdin (rank 0) reads,
  // given to it as it is (mosixrun's stdin when that is a file); -1: a pipe
  // fed with GuestStdin.
  int guest_stdin_fd = -1;
  // Called with each guest's pid (= process group) once started, e.g. to
  // have an OrphanWatcher kill the group should the daemon die.
  std::function<void(pid_t)> on_guest_started;
  // Called with a virtual node's CPU-cap cgroup once made, and the directory
  // above it that CpuCap::remove keeps, e.g. to have an OrphanWatcher remove
  // the group should the daemon die.
  std::function<void(const std::string& cgroup, const std::string& top)> on_cpu_cap;
};

}  // namespace mosix
