// What one node knows about itself and what it tells others: speed, cores,
// load, memory and the guests it runs. Plain values; the node daemon fills
// them from its measurements, gossip spreads NodeLoad, and placement and the
// balancer decide from them.
//
// Units used throughout runtime/core:
// - speed: how fast one core of the node runs a CPU-bound process, relative
//   to a reference core (1.0). A vcluster node capped to half a CPU has one
//   core of speed 0.5.
// - capacity = speed * cores: reference-CPU seconds the node delivers per
//   second when it has at least `cores` runnable processes.
// - load: runnable processes divided by capacity (processes per reference
//   CPU). One more process on the node adds 1/capacity. Every runnable task
//   of the node counts: guests, their children, other jobs, other users (of
//   a virtual node: the tasks of its cgroup); run_queue.h.
// - work: reference-CPU seconds, i.e. what a process would need on a
//   reference core running alone.
// - time and ages: seconds. Each node uses its own clock; ages, not time
//   stamps, cross the network.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mosix {

using NodeId = std::uint32_t;
using GuestId = std::uint64_t;

// One entry of a load vector: the state of node `id` as measured at that
// node `age` seconds ago. total_memory == 0 means "memory not reported": no
// memory constraint applies to the node.
struct NodeLoad {
  NodeId id = 0;
  int cores = 1;
  double speed = 1.0;
  double load = 0.0;
  double work = -1.0;  // expected remaining work of its runnable processes; < 0 unknown
  std::uint64_t free_memory = 0;
  std::uint64_t total_memory = 0;
  double age = 0.0;
  bool operator==(const NodeLoad&) const = default;
};

// A guest as its current node sees it.
struct GuestState {
  GuestId id = 0;
  int rank = -1;
  double cpu_used = 0.0;         // work done so far, reference-CPU seconds
  double remaining_work = -1.0;  // work left if known (user hint, profile); < 0 unknown
  std::uint64_t image_bytes = 0;   // what a migration streams
  std::uint64_t memory_bytes = 0;  // memory it needs on a target node
  double arrived_at = 0.0;  // when it started on, or arrived at, this node (local clock)
  bool pinned = false;      // --pin or --migrate=off for this guest
  bool runnable = true;     // a thread of it runs or waits for a CPU now (not waiting for children, I/O)
  std::string cant_move;    // non-empty: why it cannot move ("open socket", ...)
};

// This node: its own fresh load entry (age 0) and its guests.
struct NodeState {
  NodeLoad self;
  std::vector<GuestState> guests;
};

// speed * cores; 0 for a node that reports no speed or no cores.
double capacity(const NodeLoad& node);

// Runnable processes implied by the load (load * capacity).
double runnable(const NodeLoad& node);

// Load after adding `processes` runnable processes to the node.
double load_with(const NodeLoad& node, double processes);

// Rate (reference-CPU seconds per second) one of `processes` runnable
// CPU-bound processes gets on the node under fair time-sharing:
// speed * min(1, cores / processes).
double process_rate(const NodeLoad& node, double processes);

// Expected remaining work of a guest: its known remaining work, else the
// work it has done so far (a process that has run for T is as likely as not
// to run for T more: the lifetime heuristic of Harchol-Balter and Downey),
// and that estimate never below `floor`.
double expected_remaining(const GuestState& guest, double floor);

// Sum of expected_remaining over the guests: what a node gossips as `work`.
double expected_work(const std::vector<GuestState>& guests, double floor);

}  // namespace mosix
