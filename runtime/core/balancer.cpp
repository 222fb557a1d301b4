#include "runtime/core/balancer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <span>

namespace mosix {
namespace {

double low_water(const NodeLoad& node, const BalancerParams& p) {
  return std::max(static_cast<double>(p.memory_low_bytes),
                  p.memory_low_fraction * static_cast<double>(node.total_memory));
}

bool reports_memory(const NodeLoad& node) { return node.total_memory > 0; }

// A node without memory figures is assumed to have room.
bool has_room(const NodeLoad& target, const GuestState& g, const BalancerParams& p) {
  if (!reports_memory(target)) return true;
  return static_cast<double>(target.free_memory) >=
         static_cast<double>(g.memory_bytes) + low_water(target, p);
}

// When a node finishes `work` shared by `processes` runnable processes, the
// longest of which needs `longest`: work-conserving time-sharing over
// min(cores, processes) cores, and no process faster than one core.
double finish_time(const NodeLoad& node, double processes, double work, double longest) {
  if (work <= 0.0 || node.speed <= 0.0 || node.cores <= 0) return 0.0;
  const double busy = std::min(static_cast<double>(node.cores), std::max(processes, 1.0));
  return std::max(work / (node.speed * busy), longest / node.speed);
}

// Processes that need `remaining` work each, `count` of them.
struct Run {
  double remaining = 0.0;
  std::size_t count = 0;
};

// Sum of the completion times of the processes of `runs` (in ascending order
// of remaining work), all runnable from now on and time-sharing the node
// fairly. The processes of a run finish together: one step per run, not per
// process (a target's processes are one run of equal shares, and a node of
// a large cluster may hold hundreds).
double flow_time(const NodeLoad& node, std::span<const Run> runs) {
  std::size_t left = 0;
  for (const Run& run : runs) left += run.count;
  double now = 0.0;
  double done = 0.0;
  double sum = 0.0;
  for (const Run& run : runs) {
    if (run.count == 0) continue;
    const double rate = process_rate(node, static_cast<double>(left));
    if (rate <= 0.0) return 0.0;
    now += (run.remaining - done) / rate;
    done = run.remaining;
    sum += now * static_cast<double>(run.count);
    left -= run.count;
  }
  return sum;
}

// The same for processes needing `remaining` work each, in any order.
double flow_time(const NodeLoad& node, std::vector<double> remaining) {
  std::sort(remaining.begin(), remaining.end());
  std::vector<Run> runs;
  for (double r : remaining) {
    if (runs.empty() || runs.back().remaining != r) runs.push_back(Run{r, 0});
    ++runs.back().count;
  }
  return flow_time(node, runs);
}

// This node's work as the balancer sees it.
struct LocalModel {
  double processes = 1.0;
  double work = 0.0;
  double finish = 0.0;
  std::vector<double> remaining;  // per guest
  std::vector<double> all;        // per runnable process: guests first, then the others
  double flow = 0.0;
  std::vector<double> flow_without;  // per guest: the flow time of `all` without it
  double longest = 0.0;
  double second_longest = 0.0;
};

LocalModel model_local(const NodeState& self, const BalancerParams& p) {
  LocalModel m;
  m.processes = std::max(runnable(self.self), 1.0);
  double sum = 0.0;
  for (const auto& g : self.guests) {
    const double r = expected_remaining(g, p.remaining_floor);
    m.remaining.push_back(r);
    sum += r;
    if (r > m.longest) {
      m.second_longest = m.longest;
      m.longest = r;
    } else if (r > m.second_longest) {
      m.second_longest = r;
    }
  }
  const double n = static_cast<double>(self.guests.size());
  const double others = std::max(0.0, m.processes - n);
  m.work = sum + (n > 0 ? others * sum / n : 0.0);
  m.finish = finish_time(self.self, m.processes, m.work, m.longest);
  m.all = m.remaining;
  if (n > 0) m.all.insert(m.all.end(), static_cast<std::size_t>(std::lround(others)), sum / n);
  m.flow = flow_time(self.self, m.all);
  m.flow_without.reserve(self.guests.size());
  for (std::size_t i = 0; i < self.guests.size(); ++i) {
    std::vector<double> without = m.all;
    without.erase(without.begin() + static_cast<std::ptrdiff_t>(i));
    m.flow_without.push_back(flow_time(self.self, std::move(without)));
  }
  return m;
}

struct Evaluation {
  double gain = 0.0;           // what the decision uses and reports
  double finish_gain = 0.0;    // drop of the pair's later finishing time
  double flow_gain = 0.0;      // drop of the pair's mean completion time
  double cost = 0.0;
  bool triggered = false;
};

Evaluation evaluate(const NodeState& self, const LocalModel& local, std::size_t guest_index,
                    const NodeLoad& target, const BalancerParams& p) {
  const GuestState& g = self.guests[guest_index];
  const double r_g = local.remaining[guest_index];
  Evaluation ev;
  ev.cost = p.bandwidth > 0.0 ? static_cast<double>(g.image_bytes) / p.bandwidth : 0.0;

  const double cap_here = capacity(self.self);
  const double target_processes = runnable(target);
  const bool load_rule = cap_here > 0.0 && self.self.load - target.load > p.margin / cap_here;
  const bool speed_rule = process_rate(target, target_processes + 1.0) >
                          p.margin * process_rate(self.self, local.processes);

  const double longest_after = r_g >= local.longest ? local.second_longest : local.longest;
  const double here_after = finish_time(self.self, local.processes - 1.0,
                                        std::max(0.0, local.work - r_g), longest_after);
  const double target_work = target.work >= 0.0 ? target.work : target_processes * r_g;
  const double there_before = finish_time(target, target_processes, target_work, 0.0);
  const double there_after =
      std::max(finish_time(target, target_processes + 1.0, target_work + r_g, r_g),
               ev.cost + r_g / target.speed);
  const double pair_before = std::max(local.finish, there_before);
  const double pair_after = std::max(here_after, there_after);
  ev.finish_gain = pair_before - pair_after;
  // Third rule: the pair's later finishing time drops by the margin's factor.
  // The load rule misses a node whose load is still decaying in the others'
  // view (exported loads decay slowly) though it went idle, and the speed
  // rule counts that phantom load too; at the end of a job that leaves the
  // longest guest on a slow node beside an idle fast one. A move this rule
  // takes cannot be undone by it: back, the pair's finishing time rises.
  const bool finish_rule = pair_after > 0.0 && pair_before > p.margin * pair_after;
  ev.triggered = load_rule || speed_rule || finish_rule;

  // Mean completion time of the processes of both nodes; the target's are
  // taken as equal shares of its work.
  std::size_t k = static_cast<std::size_t>(std::lround(target_processes));
  if (k == 0 && target_work > 0.0) k = 1;
  const Run shares{k > 0 ? target_work / static_cast<double>(k) : 0.0, k};
  const Run guest{r_g, 1};
  const Run before[] = {shares};
  const Run after_short[] = {guest, shares};
  const Run after_long[] = {shares, guest};
  const double there_flow_before = flow_time(target, before);
  const double there_flow_after =
      flow_time(target, r_g < shares.remaining ? std::span<const Run>(after_short) : after_long) + ev.cost;
  const double here_flow_after = local.flow_without[guest_index];
  const double processes = static_cast<double>(local.all.size() + k);
  ev.flow_gain = (local.flow + there_flow_before - here_flow_after - there_flow_after) / processes;

  ev.gain = ev.finish_gain >= -ev.cost ? std::max(ev.finish_gain, ev.flow_gain) : ev.finish_gain;
  return ev;
}

bool usable_target(const NodeLoad& n, NodeId self, const BalancerParams& p) {
  return n.id != self && capacity(n) > 0.0 && n.age <= p.max_info_age;
}

std::string fixed(double x, int digits) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::fixed, digits);
  return std::string(buf, res.ptr);
}

bool movable(const GuestState& g) { return !g.pinned && g.cant_move.empty(); }

void fill_target(Explanation& e, const NodeLoad& target, const Evaluation& ev) {
  e.best_target = target.id;
  e.target_load = target.load;
  e.expected_gain = ev.gain;
  e.cost = ev.cost;
}

}  // namespace

double measured_bandwidth(double current, std::uint64_t bytes, double seconds) {
  if (bytes < kBandwidthSampleBytes || !(seconds > 0.0)) return current;
  return 0.5 * (current + static_cast<double>(bytes) / seconds);
}

bool short_of_memory(const NodeLoad& node, const BalancerParams& params) {
  return reports_memory(node) && static_cast<double>(node.free_memory) < low_water(node, params);
}

Decision decide(const NodeState& self, std::span<const NodeLoad> view, double now,
                const BalancerParams& params) {
  Decision d;
  std::vector<const NodeLoad*> targets;
  for (const auto& n : view) {
    if (usable_target(n, self.self.id, params)) targets.push_back(&n);
  }
  const NodeLoad* least = nullptr;
  for (const auto* t : targets) {
    if (least == nullptr || t->load < least->load) least = t;
  }
  const LocalModel local = model_local(self, params);

  d.explanations.resize(self.guests.size());
  for (std::size_t i = 0; i < self.guests.size(); ++i) {
    Explanation& e = d.explanations[i];
    const GuestState& g = self.guests[i];
    e.guest = g.id;
    e.decided_at = now;
    e.node_load = self.self.load;
    e.remaining = local.remaining[i];
    if (least != nullptr) {
      e.least_loaded = least->id;
      e.least_load = least->load;
    }
    if (!params.migrate) {
      e.verdict = Verdict::kMigrateOff;
    } else if (g.pinned) {
      e.verdict = Verdict::kPinned;
    } else if (!g.cant_move.empty()) {
      e.verdict = Verdict::kCantMove;
      e.detail = g.cant_move;
    } else if (targets.empty()) {
      e.verdict = Verdict::kNoTarget;
    }
  }
  if (!params.migrate || targets.empty()) return d;

  // Memory ushering comes before load.
  if (short_of_memory(self.self, params)) {
    const double deficit = low_water(self.self, params) - static_cast<double>(self.self.free_memory);
    std::optional<std::size_t> chosen;
    auto better = [&](std::size_t a, std::size_t b) {
      const GuestState& ga = self.guests[a];
      const GuestState& gb = self.guests[b];
      const bool clears_a = static_cast<double>(ga.memory_bytes) >= deficit;
      const bool clears_b = static_cast<double>(gb.memory_bytes) >= deficit;
      if (clears_a != clears_b) return clears_a;
      if (clears_a) {
        if (ga.image_bytes != gb.image_bytes) return ga.image_bytes < gb.image_bytes;
      } else if (ga.memory_bytes != gb.memory_bytes) {
        return ga.memory_bytes > gb.memory_bytes;
      }
      return d.explanations[a].expected_gain > d.explanations[b].expected_gain;
    };
    for (std::size_t i = 0; i < self.guests.size(); ++i) {
      const GuestState& g = self.guests[i];
      if (!movable(g)) continue;
      Explanation& e = d.explanations[i];
      std::optional<Evaluation> best;
      for (const auto* t : targets) {
        if (!reports_memory(*t) || !has_room(*t, g, params)) continue;
        const Evaluation ev = evaluate(self, local, i, *t, params);
        if (!best || ev.gain > best->gain) {
          best = ev;
          fill_target(e, *t, ev);
        }
      }
      if (!best) {
        e.verdict = Verdict::kNoRoom;
        continue;
      }
      e.verdict = Verdict::kOtherGuestMoves;
      if (!chosen || better(i, *chosen)) chosen = i;
    }
    if (chosen) {
      Explanation& e = d.explanations[*chosen];
      e.verdict = Verdict::kUsher;
      d.move = Move{e.guest, *e.best_target, Verdict::kUsher, e.expected_gain, e.cost};
    }
    return d;
  }

  std::optional<std::size_t> chosen;
  for (std::size_t i = 0; i < self.guests.size(); ++i) {
    const GuestState& g = self.guests[i];
    if (!movable(g)) continue;
    Explanation& e = d.explanations[i];
    if (!g.runnable) {
      e.verdict = Verdict::kWaiting;
      continue;
    }
    if (now - g.arrived_at < params.min_residency) {
      e.verdict = Verdict::kResidency;
      continue;
    }
    std::optional<Evaluation> best_triggered;
    std::optional<Evaluation> best_any;
    const NodeLoad* best_any_target = nullptr;
    for (const auto* t : targets) {
      if (!has_room(*t, g, params)) continue;
      const Evaluation ev = evaluate(self, local, i, *t, params);
      if (ev.triggered && (!best_triggered || ev.gain > best_triggered->gain)) {
        best_triggered = ev;
        fill_target(e, *t, ev);
      }
      if (!best_any || ev.gain > best_any->gain) {
        best_any = ev;
        best_any_target = t;
      }
    }
    if (!best_any) {
      e.verdict = Verdict::kNoRoom;
    } else if (!best_triggered) {
      e.verdict = Verdict::kBelowMargin;
      fill_target(e, *best_any_target, *best_any);
    } else if (best_triggered->gain <= best_triggered->cost + params.min_gain) {
      e.verdict = Verdict::kGainTooSmall;
    } else {
      e.verdict = Verdict::kOtherGuestMoves;
      if (!chosen || e.expected_gain > d.explanations[*chosen].expected_gain) chosen = i;
    }
  }
  if (chosen) {
    Explanation& e = d.explanations[*chosen];
    e.verdict = Verdict::kMove;
    d.move = Move{e.guest, *e.best_target, Verdict::kMove, e.expected_gain, e.cost};
  }
  return d;
}

std::string_view verdict_phrase(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMove: return "moving to balance load";
    case Verdict::kUsher: return "moving to free memory";
    case Verdict::kMigrateOff: return "migration is off";
    case Verdict::kPinned: return "pinned";
    case Verdict::kCantMove: return "cannot move";
    case Verdict::kResidency: return "arrived too recently";
    case Verdict::kWaiting: return "waiting, not running";
    case Verdict::kNoTarget: return "no other node known";
    case Verdict::kNoRoom: return "no node has room";
    case Verdict::kBelowMargin: return "below the stability margin";
    case Verdict::kGainTooSmall: return "gain does not pay the cost";
    case Verdict::kOtherGuestMoves: return "another guest moves first";
  }
  return "unknown";
}

std::string explain(const Explanation& e) {
  std::string out(verdict_phrase(e.verdict));
  if (!e.detail.empty()) out += ": " + e.detail;
  out += "; load " + fixed(e.node_load, 2) + ", remaining " + fixed(e.remaining, 1) + "s";
  if (e.best_target) {
    out += "; best node " + std::to_string(*e.best_target) + " (load " + fixed(e.target_load, 2) +
           "), gain " + fixed(e.expected_gain, 1) + "s, cost " + fixed(e.cost, 1) + "s";
  } else if (e.least_loaded) {
    out += "; least loaded node " + std::to_string(*e.least_loaded) + " (load " +
           fixed(e.least_load, 2) + ")";
  }
  return out;
}

std::string decline_move(const NodeLoad& target, int arriving, const std::optional<NodeLoad>& source) {
  char why[160];
  if (arriving > 0) {
    std::snprintf(why, sizeof why, "another move is on its way there (%d)", arriving);
    return why;
  }
  if (!source || capacity(target) <= 0.0) return "";
  const double after = load_with(target, 1.0);
  if (after <= source->load + 1e-9) return "";
  std::snprintf(why, sizeof why, "it would be more loaded than the source (%.2f against %.2f)", after,
                source->load);
  return why;
}

}  // namespace mosix
