#include "runtime/core/placement.h"

#include <algorithm>
#include <limits>
#include <string>

namespace mosix {
namespace {

std::string mib(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

bool reports_memory(const NodeLoad& node) { return node.total_memory > 0; }

// Slot limit per node; INT_MAX where none applies.
std::vector<int> effective_slots(std::span<const NodeLoad> nodes, const PlacementRequest& req) {
  std::vector<int> out(nodes.size(), std::numeric_limits<int>::max());
  const bool no_hosts = req.slots.empty();
  if (no_hosts && req.map_by == MapBy::kLoad) return out;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const int given = no_hosts ? -1 : req.slots[i];
    out[i] = given < 0 ? std::max(1, nodes[i].cores) : given;
  }
  return out;
}

Error not_enough_slots(int copies, long total_slots) {
  return make_error("not enough slots for " + std::to_string(copies) + " copies: the hosts give " +
                    std::to_string(total_slots) +
                    " slots in all; add slots (host:N or slots=N) or pass --oversubscribe");
}

Status check_memory(std::span<const NodeLoad> nodes, const std::vector<std::size_t>& ranks,
                    std::uint64_t per_copy) {
  if (per_copy == 0) return Status::Ok();
  std::vector<std::uint64_t> count(nodes.size(), 0);
  for (auto n : ranks) ++count[n];
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!reports_memory(nodes[i]) || count[i] == 0) continue;
    if (count[i] * per_copy > nodes[i].free_memory) {
      return make_error("node " + std::to_string(nodes[i].id) + " has " +
                        mib(nodes[i].free_memory) + " free, not enough for " +
                        std::to_string(count[i]) + " copies of " + mib(per_copy) +
                        "; give it fewer slots, lower the memory estimate, or use the default "
                        "placement");
    }
  }
  return Status::Ok();
}

Expected<std::vector<std::size_t>> place_by_load(std::span<const NodeLoad> nodes,
                                                 const PlacementRequest& req,
                                                 const std::vector<int>& slots) {
  const bool capped = !req.slots.empty() && !req.oversubscribe;
  std::vector<int> placed(nodes.size(), 0);
  std::vector<std::size_t> ranks;
  ranks.reserve(static_cast<std::size_t>(req.copies));
  for (int rank = 0; rank < req.copies; ++rank) {
    std::size_t best = nodes.size();
    double best_load = 0.0;
    bool any_slot = false;
    std::size_t most_free = nodes.size();
    std::uint64_t most_free_bytes = 0;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const NodeLoad& node = nodes[i];
      if (capacity(node) <= 0.0) continue;
      if (capped && placed[i] >= slots[i]) continue;
      any_slot = true;
      if (req.memory_per_copy > 0 && reports_memory(node)) {
        const std::uint64_t used = static_cast<std::uint64_t>(placed[i]) * req.memory_per_copy;
        const std::uint64_t left = node.free_memory > used ? node.free_memory - used : 0;
        if (most_free == nodes.size() || left > most_free_bytes) {
          most_free = i;
          most_free_bytes = left;
        }
        if (left < req.memory_per_copy) continue;
      }
      const double load = load_with(node, placed[i] + 1.0);
      const bool better = best == nodes.size() || load < best_load ||
                          (load == best_load && node.speed > nodes[best].speed);
      if (better) {
        best = i;
        best_load = load;
      }
    }
    if (best == nodes.size()) {
      if (!any_slot) {
        long total = 0;
        for (std::size_t i = 0; i < nodes.size(); ++i) {
          if (capacity(nodes[i]) > 0.0) total += slots[i];
        }
        return not_enough_slots(req.copies, total);
      }
      std::string where = most_free == nodes.size()
                              ? std::string("none reports free memory")
                              : "most is " + mib(most_free_bytes) + " on node " +
                                    std::to_string(nodes[most_free].id);
      return make_error("cannot place rank " + std::to_string(rank) + ": no node has " +
                        mib(req.memory_per_copy) + " free (" + where +
                        "); lower the memory estimate or add nodes");
    }
    ++placed[best];
    ranks.push_back(best);
  }
  return ranks;
}

std::vector<std::size_t> place_by_slot(const std::vector<int>& slots, int copies, long total) {
  std::vector<std::size_t> ranks;
  ranks.reserve(static_cast<std::size_t>(copies));
  const auto n = static_cast<long>(slots.size());
  const long excess = std::max(0L, copies - total);
  const long balance = excess / n;
  long extra = excess % n;
  for (std::size_t i = 0; i < slots.size() && static_cast<int>(ranks.size()) < copies; ++i) {
    long take = slots[i] + balance;
    if (extra > 0) {
      ++take;
      --extra;
    }
    for (long k = 0; k < take && static_cast<int>(ranks.size()) < copies; ++k) ranks.push_back(i);
  }
  return ranks;
}

std::vector<std::size_t> place_by_node(const std::vector<int>& slots, int copies) {
  std::vector<std::size_t> ranks;
  ranks.reserve(static_cast<std::size_t>(copies));
  std::vector<int> placed(slots.size(), 0);
  bool full = false;
  while (static_cast<int>(ranks.size()) < copies) {
    bool progress = false;
    for (std::size_t i = 0; i < slots.size() && static_cast<int>(ranks.size()) < copies; ++i) {
      if (!full && placed[i] >= slots[i]) continue;
      ++placed[i];
      ranks.push_back(i);
      progress = true;
    }
    if (!progress) full = true;
  }
  return ranks;
}

}  // namespace

Expected<std::vector<std::size_t>> place(std::span<const NodeLoad> nodes,
                                         const PlacementRequest& req) {
  if (req.copies < 0) return make_error("the number of copies must not be negative");
  if (req.copies == 0) return std::vector<std::size_t>{};
  if (nodes.empty()) return make_error("no nodes to place copies on");
  if (!req.slots.empty() && req.slots.size() != nodes.size()) {
    return make_error("the host list names " + std::to_string(req.slots.size()) +
                      " hosts but there are " + std::to_string(nodes.size()) +
                      " nodes; give one slot count per node");
  }
  const std::vector<int> slots = effective_slots(nodes, req);
  if (req.map_by == MapBy::kLoad) {
    long total = 0;
    bool any_speed = false;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (capacity(nodes[i]) <= 0.0) continue;
      any_speed = true;
      total += slots[i] == std::numeric_limits<int>::max() ? 0 : slots[i];
    }
    if (!any_speed) return make_error("no node reports a speed and cores; cannot place by load");
    if (!req.slots.empty() && !req.oversubscribe && req.copies > total) {
      return not_enough_slots(req.copies, total);
    }
    return place_by_load(nodes, req, slots);
  }

  long total = 0;
  for (int s : slots) total += s;
  if (req.copies > total && !req.oversubscribe) return not_enough_slots(req.copies, total);
  if (total == 0) {
    return make_error("no host has a slot; give hosts slots (host:N or slots=N)");
  }
  std::vector<std::size_t> ranks = req.map_by == MapBy::kSlot
                                       ? place_by_slot(slots, req.copies, total)
                                       : place_by_node(slots, req.copies);
  if (Status s = check_memory(nodes, ranks, req.memory_per_copy); !s) return s.error();
  return ranks;
}

std::vector<int> slots_from_hosts(std::span<const HostSlots> hosts) {
  std::vector<int> out;
  out.reserve(hosts.size());
  for (const auto& h : hosts) out.push_back(h.slots_given ? h.slots : -1);
  return out;
}

std::optional<std::size_t> pick_restart_node(std::span<const RestartCandidate> nodes) {
  std::optional<std::size_t> best;
  double best_score = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const RestartCandidate& n = nodes[i];
    if (!n.usable) continue;
    const double capacity = std::max(1e-6, n.speed * std::max(1, n.cores));
    const double score = (n.ranks + 1) / capacity;
    if (!best || score < best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

std::size_t place_at_exec(std::span<const NodeLoad> nodes, std::size_t here, bool leave) {
  if (here >= nodes.size()) return here;
  const NodeLoad& home = nodes[here];
  if (!leave && capacity(home) > 0.0 && runnable(home) + 1.0 <= home.cores + 1e-9) return here;
  const double here_load = leave ? std::numeric_limits<double>::infinity() : capacity(home) > 0.0 ? load_with(home, 1.0) : 0.0;
  std::size_t best = here;
  double best_load = here_load;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (i == here || capacity(nodes[i]) <= 0.0) continue;
    const double load = load_with(nodes[i], 1.0);
    const bool better = load < best_load - 1e-9 ||
                        (best != here && load <= best_load + 1e-9 && nodes[i].speed > nodes[best].speed);
    if (better) {
      best = i;
      best_load = load;
    }
  }
  return best;
}

}  // namespace mosix
