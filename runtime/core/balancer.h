// The rebalancing decision of one node: should one of its guests move, where
// to, and why (or why not). Pure: this node's state, its view of the others
// (from gossip), the time and the parameters in; a Decision out. The node
// daemon calls it periodically and carries the move out; bench/balance runs
// the same function in a simulator.
//
// Base: MOSIX's algorithm. A node considers sending a guest to another node
// when its load exceeds that node's by more than a stability margin, `margin`
// times the load one process adds here (MOSIX uses 1.3). With the margin
// counted in this node's processes, a move can never make the target's load
// exceed this node's by its own margin, so the target never sends one back
// on the load rule. Improvements:
// - Speed: a guest is also considered for a node where it would run faster
//   by more than `margin` times (a lone process on a slow node moves to an
//   idle fast one, which the load rule alone misses).
// - Finishing time: a move is also considered when it makes the later of
//   the two nodes' finishing times drop by the margin's factor (1.3x): a
//   node that just went idle still looks busy in the others' slowly
//   decaying view of its load, and the two rules above miss it.
// - Finishing time, not load, chooses: for each movable guest and each
//   candidate target, the balancer estimates when the two nodes finish the
//   work they hold (work / (speed * min(cores, runnable)), and a single
//   process not faster than one core) before and after the move, the moved
//   guest arriving after its stopped time (image_bytes / bandwidth). The
//   expected gain is the drop of the later of the two finishing times. When
//   that drop is nil (it does not worsen by more than the stopped time), the
//   drop of the mean completion time of the two nodes' processes counts
//   instead, so idle capacity gets used even when remaining work is only
//   estimated (three equal-looking guests on a fast node, an idle slow one:
//   the later finishing time is the same, but two of the three finish
//   sooner). The guest and target with the largest gain win, if the gain
//   exceeds the cost (the stopped time) by min_gain; one move per call.
// - No ping-pong: a guest that started or arrived less than min_residency
//   seconds ago stays put; a target must be trigger-worthy and the gain real.
// - Memory ushering first: a node short of free memory (below
//   max(memory_low_bytes, memory_low_fraction * total)) moves a guest to a
//   node that keeps enough room after taking it, before it would swap; one
//   guest that alone clears the shortage is preferred, the cheapest to move.
//   Ushering ignores min_residency (swapping is worse than moving twice) but
//   only picks targets that stay above their own low-water mark, so the guest
//   is not ushered back.
// - The load is all of the node's runnable tasks, also those the balancer
//   cannot move (other jobs, other users, children that are not guests):
//   they count as runnable processes without guests' remaining work
//   (taken as the guests' mean). Only a runnable guest moves for load (a
//   guest waiting for its children or for I/O would take no load away);
//   the margin rule holds whatever share of the load is foreign, since a
//   move takes exactly one runnable process from here to the target, so
//   foreign load never makes guests bounce between two nodes.
// - Pinned guests, guests that cannot move (cant_move) and --migrate=off are
//   respected, each with its reason.
//
// Assumptions: guests are CPU-bound while runnable and time-share a node
// fairly; remaining work is the guest's hint if known, else the work done so
// far (node_state.h's expected_remaining); a remote node's remaining work is
// the `work` it gossips, or, if it reports none, its runnable count times the
// candidate's. Entries older than max_info_age are not trusted as targets.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/node_state.h"

namespace mosix {

struct BalancerParams {
  bool migrate = true;                // false: --migrate=off
  double margin = 1.3;                // stability margin, in processes of this node
  double min_residency = 3.0;         // seconds a guest stays after starting or arriving
  double bandwidth = 100e6;           // bytes per second a move costs (measured_bandwidth)
  double min_gain = 1.0;              // seconds a move must gain beyond its cost
  double max_info_age = 10.0;         // older load entries are not used as targets
  double remaining_floor = 1.0;       // least expected remaining work of a guest
  double memory_low_fraction = 0.05;  // short of memory below this fraction of total ...
  std::uint64_t memory_low_bytes = 64ULL << 20;  // ... or below this many bytes free
};

// What was decided for a guest, for `mosixctl ps --explain`.
enum class Verdict {
  kMove,             // this guest moves to best_target to balance load
  kUsher,            // this guest moves to best_target to free memory here
  kMigrateOff,       // --migrate=off
  kPinned,           // --pin
  kCantMove,         // the guest holds something that cannot move (detail says what)
  kResidency,        // arrived or started less than min_residency ago
  kWaiting,          // not runnable now: moving it would not lower this node's load
  kNoTarget,         // no other node is known with fresh enough information
  kNoRoom,           // no node has the free memory the guest needs
  kBelowMargin,      // no node is less loaded (or faster) by the stability margin
  kGainTooSmall,     // the best move would not gain its cost plus min_gain
  kOtherGuestMoves,  // worth moving, but another guest of this node moves first
};

struct Explanation {
  GuestId guest = 0;
  Verdict verdict = Verdict::kBelowMargin;
  double decided_at = 0.0;
  double node_load = 0.0;                 // this node's load
  std::optional<NodeId> least_loaded;     // least-loaded known other node
  double least_load = 0.0;                // and its load
  double remaining = 0.0;                 // expected remaining work of the guest
  std::optional<NodeId> best_target;      // best target evaluated, if any
  double target_load = 0.0;               // its load
  double expected_gain = 0.0;             // seconds the later finishing time (or mean completion) drops by
  double cost = 0.0;                      // seconds the guest would be stopped to move
  std::string detail;                     // kCantMove: the reason the guest gave
};

struct Move {
  GuestId guest = 0;
  NodeId target = 0;
  Verdict verdict = Verdict::kMove;  // kMove or kUsher
  double expected_gain = 0.0;
  double cost = 0.0;
};

struct Decision {
  std::optional<Move> move;
  std::vector<Explanation> explanations;  // one per guest, in the order of NodeState::guests
};

// Decides for `self` at local time `now`, knowing the other nodes as `view`
// (entries about self are ignored).
Decision decide(const NodeState& self, std::span<const NodeLoad> view, double now,
                const BalancerParams& params);

// The bandwidth to count for moving an image (BalancerParams::bandwidth)
// after a move of `bytes` that kept its guest stopped `seconds` (checkpoint,
// stream and restore): the mean of the old value and this move's rate. Moves
// of less than kBandwidthSampleBytes leave it as it is: their fixed costs
// (stopping, starting the restorer) would make a small rate of it.
inline constexpr std::uint64_t kBandwidthSampleBytes = 16ULL << 20;
double measured_bandwidth(double current, std::uint64_t bytes, double seconds);

// The ids of the node daemons' own moves (the balancer's): the deciding
// node's rank + 1 in the high bits, its count of moves below. mosixrun's
// moves (mosixctl migrate) count from 1 and never reach those bits.
inline std::uint64_t balancer_move_id(int node, std::uint64_t count) {
  return (static_cast<std::uint64_t>(node + 1) << 40) + count;
}
inline bool is_balancer_move(std::uint64_t migration_id) { return (migration_id >> 40) != 0; }

// The target's say on a balancer move coming to it, as MOSIX let the
// receiving node refuse. Nodes decide on gossip a second or two old, so
// several can pick the same idle node in one round, or in the rounds before
// its load is heard of again: that node ends up the busiest. The target knows
// its load now. It declines while another balancer move is on its way to it
// (`arriving`), and when the guest would leave it more loaded than the
// source was (`source`: the target's last view of it; unknown, not checked).
// `target`'s load is its runnable tasks now, the guests arrived since they
// were counted included. "" to accept, else the reason, for the source's log.
std::string decline_move(const NodeLoad& target, int arriving, const std::optional<NodeLoad>& source);

// True when the node reports memory and has less free than its low-water mark.
bool short_of_memory(const NodeLoad& node, const BalancerParams& params);

// A short phrase for a verdict: "moving", "pinned", "below margin", ...
std::string_view verdict_phrase(Verdict verdict);

// One line for `mosixctl ps --explain`: the verdict and its numbers.
std::string explain(const Explanation& e);

}  // namespace mosix
