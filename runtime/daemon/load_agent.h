// This node's part in MOSIX's load balancing: its load (the runnable tasks of
// the node, or of a virtual node's cgroup, per unit of speed: other jobs and
// guests' children count; run_queue_probe.h), sampled every half second,
// smoothed with MOSIX's two estimators and sent home with the node's CPU use
// (mosixctl ps, mon); the
// randomized gossip of load vectors with the other nodes; and about once a
// second the balancing decision on its guests (runtime/core/balancer.h),
// whose verdicts go home (mosixctl ps --explain) and whose move, if any, the
// migrations part carries out.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/core/gossip.h"
#include "runtime/core/node_state.h"
#include "runtime/core/protocol.h"
#include "runtime/core/rng.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/guest_table.h"
#include "runtime/daemon/migration.h"
#include "runtime/daemon/node_seats_file.h"
#include "runtime/daemon/run_queue_probe.h"

namespace mosix {

class LoadAgent {
 public:
  LoadAgent(DaemonContext& context, const GuestTable& guests, Migrations& migrations);
  LoadAgent(const LoadAgent&) = delete;
  LoadAgent& operator=(const LoadAgent&) = delete;

  // Speed per core as the balancer counts it (a virtual node: its share), and cores.
  void set_capacity(double speed, int cores);
  // Where the load is read (the machine's run queue until told otherwise).
  void set_probe(RunQueueProbe probe);
  // Each probe's runnable tasks go to the seats page too.
  void set_seats(NodeSeatsFile* seats) { seats_ = seats; }
  // Load reports, gossip and balancing from now on.
  void start();
  // Load entries from another node (its own report, or gossip).
  void merge(const LoadReport& report);
  // Nodes this one has heard of through gossip.
  std::size_t known_nodes() const;
  // Whether a balancer move from node `source` is taken here (balancer.h
  // decline_move): "" or the reason it is not.
  std::string admit(int source) const;

 private:
  void report_load();
  void gossip();
  void balance();

  DaemonContext& context_;
  const GuestTable& guests_;
  Migrations& migrations_;
  boost::asio::steady_timer load_timer_, gossip_timer_, balance_timer_;
  Rng rng_;
  LoadVector loads_;  // what this node knows of the others' load (gossip)
  NodeLoad self_load_;
  RunQueueProbe probe_ = RunQueueProbe::machine();
  NodeSeatsFile* seats_ = nullptr;
  double cpu_use_ = 0;  // CPUs busy over the last sample interval
  double runnable_[2] = {0, 0};      // the last two samples' runnable tasks, the newest first
  std::uint64_t arrivals_seen_ = 0;  // guests arrived by moves when the newest was taken
  double local_estimate_ = 0, exported_estimate_ = 0;
  double last_sample_at_ = 0;
  double speed_ = 1.0;
  int cores_ = 1;
  double guest_work_ = -1.0;  // expected remaining work of the guests, at the last balance()
  std::uint64_t next_auto_migration_ = 0;
};

}  // namespace mosix
