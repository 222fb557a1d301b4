// MOSIX's randomized gossip of load information, as pure functions of their
// inputs (time and a seeded Rng are passed in; nothing reads a clock).
//
// The algorithm: every node keeps a load vector, a bounded set of NodeLoad
// entries about other nodes, each with the local time it was measured at
// (now - age on arrival). Every `interval` seconds, jittered so nodes do not
// fall into step, a node sends a window of its freshest information, its own
// entry first and then its youngest entries about others (`window` entries in
// all), to one node chosen uniformly at random. The receiver merges by age:
// per node id it keeps the younger of its entry and the received one; when
// the vector is over `capacity` the oldest entries go. Entries older than
// `expire_after` are dropped (their node may be gone).
//
// Assumptions: messages carry ages, not time stamps, so clocks need not be
// synchronized; transit time is small next to the interval (the receiver may
// add it to the ages if it knows it). Each node sends one message per
// interval whatever the cluster size, so traffic per node is constant; how
// old the information gets as the cluster grows is what bench/gossip measures.
//
// Load estimators (MOSIX's asymmetry): the load a node uses for its own
// decisions rises slowly and drops at once, so a short burst does not make it
// push guests away; the load it exports rises at once and decays slowly, so
// that a node that just became idle is not flooded by every other node at
// once (herding) and a node that just got busy says so immediately.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "runtime/core/node_state.h"
#include "runtime/core/rng.h"

namespace mosix {

struct GossipParams {
  double interval = 0.5;       // seconds between two sends of one node
  double jitter = 0.5;         // the interval varies uniformly by +-jitter/2 of itself
  std::size_t window = 20;     // entries per message, the sender's own first
  std::size_t capacity = 64;   // entries about other nodes a node keeps
  double expire_after = 60.0;  // entries older than this are dropped
};

// Time-constants of the estimators, seconds.
struct EstimatorParams {
  double local_rise = 1.0;    // local estimate: rises towards a higher sample with this time-constant
  double export_decay = 4.0;  // exported load: decays towards a lower sample with this time-constant
};

// Local estimate: a sample at or below the previous estimate is taken at
// once; a higher one is approached exponentially, time-constant `rise`, over
// `dt` seconds since the previous estimate.
double local_load_estimate(double previous, double sample, double dt, double rise);

// Exported estimate: a sample at or above the previous one is taken at once;
// a lower one is approached exponentially, time-constant `decay`.
double exported_load_estimate(double previous, double sample, double dt, double decay);

// Delay until a node's next send: interval * (1 + jitter * (u - 1/2)).
double next_gossip_delay(const GossipParams& params, Rng& rng);

// A peer chosen uniformly among nodes 0..cluster_size-1 other than `self`.
// With cluster_size < 2 there is none.
std::optional<NodeId> pick_peer(NodeId self, std::size_t cluster_size, Rng& rng);

// One node's load vector. Entries are stored with the local time they were
// measured at; every accessor takes `now` and reports ages.
class LoadVector {
 public:
  LoadVector(NodeId self, GossipParams params);

  NodeId self() const { return self_; }
  const GossipParams& params() const { return params_; }

  // Records this node's own measurement taken at `now` (its id is forced to
  // self). Until the first call the own entry has load 0 and age `now`.
  void update_self(const NodeLoad& measured, double now);

  // What to send: own entry first, then the youngest others, at most
  // params.window entries, ages as of `now`.
  std::vector<NodeLoad> window(double now) const;

  // Merges received entries (ages as of `now`) by age: per node id the
  // younger entry wins, an entry about self is ignored, entries older than
  // expire_after are dropped, and the oldest go when over capacity. Returns
  // how many received entries were taken.
  std::size_t merge(std::span<const NodeLoad> received, double now);

  // Drops entries older than expire_after.
  void expire(double now);

  // Adds one runnable process with `work` expected remaining work to what
  // this node believes about node `id`, after sending it a guest, so that it
  // does not send the next one there on stale information. The entry keeps
  // its age; the next fresher entry from gossip replaces it. No-op if `id`
  // is unknown.
  void note_guest_sent(NodeId id, double work);

  // Everything known about other nodes, youngest first, ages as of `now`.
  std::vector<NodeLoad> others(double now) const;

  // The entry about `id` (self included), if known.
  std::optional<NodeLoad> find(NodeId id, double now) const;

  // Number of entries about other nodes.
  std::size_t size() const { return others_.size(); }

 private:
  struct Entry {
    NodeLoad load;     // load.age unused while stored
    double measured;  // local time of the measurement
  };
  NodeLoad with_age(const Entry& e, double now) const;
  void sort_and_trim();

  NodeId self_;
  GossipParams params_;
  Entry own_;
  std::vector<Entry> others_;  // youngest first
};

}  // namespace mosix
