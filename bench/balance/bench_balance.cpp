// bench_balance: simulates issue 6's benchmark, 4 nodes of speeds 0.5, 0.5,
// 1 and 1.5 running 12 CPU-bound copies of uneven length, with runtime/core's
// own placement, gossip and balancer decision (the same functions the node
// daemons call). Reports makespan / ideal lower bound, where the ideal is
// max(total work / total speed, longest copy / fastest speed), for:
//   rebalance        placement by load, balancer on, remaining work unknown
//                    (estimated from work done, as the daemons must)
//   rebalance+hints  the same with each copy's remaining work known
//   migrate=off      placement by load, no migration
//   mpirun rr        mpirun's round-robin (--map-by node, one slot per node,
//                    --oversubscribe), no migration
//
// The model, kept simple on purpose:
// - Time advances in steps of 10 ms. A node with r runnable copies gives each
//   speed * min(1, cores / r) reference-CPU seconds per second (fair
//   time-sharing; every node has one core). Copies are CPU-bound from start
//   to end; work is in reference-CPU seconds, log-uniform in [30, 240].
// - Every 100 ms each node measures its load (runnable / capacity) and feeds
//   the local and exported estimators; it gossips its window to a random node
//   every 0.5 s +-25%, and runs decide() every 1 s +-25%, with its own
//   local estimate as its load and the gossiped view of the others.
// - A move stops the copy for image / bandwidth seconds (images 64-512 MiB,
//   1 GB/s measured bandwidth), during which it runs nowhere; dump and
//   restore cost no CPU otherwise. Memory is plentiful (no ushering here).
//
// Usage: bench_balance [--seeds N] [--first-seed S] [--table] [--trace]
// --table: the copies of --real's fixed table instead of random lengths.
// --trace prints each copy's work and node at placement, every migration,
// and each copy's finishing time and last node.
//
// bench_balance --real [...] measures the same on the real virtual cluster
// (mosixrun --vcluster, the node daemons' own balancer) instead: see
// real_cluster.cpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/balancer.h"
#include "runtime/core/gossip.h"
#include "runtime/core/placement.h"
#include "runtime/core/rng.h"
#include "../common/cli.h"
#include "real_cluster.h"

namespace {

using namespace mosix;

constexpr double kStep = 0.01;
constexpr double kMeasureEvery = 0.1;
constexpr double kBalanceEvery = 1.0;
constexpr double kBandwidth = 1e9;
constexpr std::uint64_t kMiB = 1ULL << 20;
constexpr std::uint64_t kNodeMemory = 16ULL << 30;

const std::vector<double> kSpeeds{0.5, 0.5, 1.0, 1.5};
constexpr int kCopies = 12;

struct Copy {
  double work = 0.0;
  double remaining = 0.0;
  double cpu_used = 0.0;
  std::uint64_t image = 0;
  int node = -1;             // -1 while in transit
  int destination = -1;      // node it is travelling to
  double arrives_at = 0.0;   // end of its stopped time
  double arrived_at = 0.0;   // when it started on, or arrived at, its node
  double finished_at = -1.0;
};

struct Scenario {
  std::vector<Copy> copies;
  double ideal = 0.0;
};

// --table: the lengths of tests/programs/cpu_work's table, which
// bench_balance --real runs, scaled to an ideal of 80 s (as --real's), with
// the small images of that program; the seed then only changes the gossip
// and the timers.
constexpr std::array<double, kCopies> kRealTable{240, 30, 160, 45, 110, 60, 200, 35, 80, 130, 50, 95};

Scenario make_scenario(std::uint64_t seed, bool real_table) {
  Rng rng(seed);
  Scenario s;
  double total = 0.0;
  double longest = 0.0;
  double speed_total = 0.0;
  for (double v : kSpeeds) speed_total += v;
  double table_total = 0.0;
  for (double w : kRealTable) table_total += w;
  for (int i = 0; i < kCopies; ++i) {
    Copy c;
    c.work = real_table ? kRealTable[static_cast<std::size_t>(i)] * 80.0 * speed_total / table_total
                        : 30.0 * std::pow(2.0, 3.0 * rng.uniform());
    c.remaining = c.work;
    c.image = real_table ? 64 * 1024 : (64 + rng.below(449)) * kMiB;
    total += c.work;
    longest = std::max(longest, c.work);
    s.copies.push_back(c);
  }
  double speed_sum = 0.0;
  for (double v : kSpeeds) speed_sum += v;
  s.ideal = std::max(total / speed_sum,
                     longest / *std::max_element(kSpeeds.begin(), kSpeeds.end()));
  return s;
}

enum class Mode { kRebalance, kRebalanceHints, kMigrateOff, kRoundRobin };

const char* name(Mode m) {
  switch (m) {
    case Mode::kRebalance: return "rebalance";
    case Mode::kRebalanceHints: return "rebalance+hints";
    case Mode::kMigrateOff: return "migrate=off";
    case Mode::kRoundRobin: return "mpirun rr";
  }
  return "?";
}

struct Outcome {
  double makespan = 0.0;
  int migrations = 0;
};

NodeLoad describe(std::size_t i, double load, const std::vector<Copy>& copies, bool hints,
                  double floor) {
  NodeLoad n;
  n.id = static_cast<NodeId>(i);
  n.cores = 1;
  n.speed = kSpeeds[i];
  n.load = load;
  n.total_memory = kNodeMemory;
  std::uint64_t used = 0;
  double work = 0.0;
  for (const auto& c : copies) {
    if (c.node != static_cast<int>(i) || c.finished_at >= 0.0) continue;
    used += c.image;
    work += hints ? c.remaining : std::max(c.cpu_used, floor);
  }
  n.free_memory = kNodeMemory - used;
  n.work = work;
  return n;
}

Outcome run(const Scenario& scenario, Mode mode, std::uint64_t seed, bool trace) {
  std::vector<Copy> copies = scenario.copies;
  const std::size_t n = kSpeeds.size();
  const bool hints = mode == Mode::kRebalanceHints;
  const bool balance = mode == Mode::kRebalance || mode == Mode::kRebalanceHints;
  const GossipParams gossip;
  const EstimatorParams estimators;
  BalancerParams bp;
  bp.bandwidth = kBandwidth;
  bp.migrate = balance;

  std::vector<NodeLoad> idle;
  for (std::size_t i = 0; i < n; ++i) idle.push_back(describe(i, 0.0, copies, hints, 0.0));
  PlacementRequest req;
  req.copies = kCopies;
  if (mode == Mode::kRoundRobin) {
    req.map_by = MapBy::kNode;
    req.slots.assign(n, 1);
    req.oversubscribe = true;
  }
  auto placed = place(idle, req);
  if (!placed) {
    std::fprintf(stderr, "bench_balance: placement failed: %s\n", placed.error().message.c_str());
    std::exit(1);
  }
  for (int i = 0; i < kCopies; ++i) copies[i].node = static_cast<int>((*placed)[i]);
  if (trace) {
    std::printf("    %-15s placement:", name(mode));
    for (const auto& c : copies) std::printf(" %.0f@%d", c.work, c.node);
    std::printf("\n");
  }

  Rng rng(seed * 7919 + static_cast<std::uint64_t>(mode));
  std::vector<LoadVector> vectors;
  std::vector<double> local(n, 0.0), exported(n, 0.0), next_gossip(n), next_balance(n);
  for (std::size_t i = 0; i < n; ++i) {
    vectors.emplace_back(static_cast<NodeId>(i), gossip);
    next_gossip[i] = rng.uniform() * gossip.interval;
    next_balance[i] = kBalanceEvery * (1.0 + rng.uniform());
  }

  Outcome out;
  double now = 0.0;
  double next_measure = 0.0;
  int left = kCopies;
  std::vector<int> runnable(n, 0);
  while (left > 0) {
    for (auto& c : copies) {
      if (c.node < 0 && c.destination >= 0 && c.arrives_at <= now) {
        c.node = c.destination;
        c.destination = -1;
        c.arrived_at = now;
      }
    }
    std::fill(runnable.begin(), runnable.end(), 0);
    for (const auto& c : copies) {
      if (c.node >= 0 && c.finished_at < 0.0) ++runnable[c.node];
    }

    if (now >= next_measure) {
      for (std::size_t i = 0; i < n; ++i) {
        const double sample = runnable[i] / kSpeeds[i];
        local[i] = local_load_estimate(local[i], sample, kMeasureEvery, estimators.local_rise);
        exported[i] =
            exported_load_estimate(exported[i], sample, kMeasureEvery, estimators.export_decay);
        vectors[i].update_self(describe(i, exported[i], copies, hints, bp.remaining_floor), now);
      }
      next_measure += kMeasureEvery;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (now < next_gossip[i]) continue;
      if (auto peer = pick_peer(static_cast<NodeId>(i), n, rng)) {
        const auto w = vectors[i].window(now);
        vectors[*peer].merge(w, now);
      }
      next_gossip[i] = now + next_gossip_delay(gossip, rng);
    }
    if (balance) {
      for (std::size_t i = 0; i < n; ++i) {
        if (now < next_balance[i]) continue;
        next_balance[i] = now + kBalanceEvery * (0.75 + 0.5 * rng.uniform());
        NodeState self;
        self.self = describe(i, local[i], copies, hints, bp.remaining_floor);
        std::vector<std::size_t> index;
        for (std::size_t k = 0; k < copies.size(); ++k) {
          const Copy& c = copies[k];
          if (c.node != static_cast<int>(i) || c.finished_at >= 0.0) continue;
          GuestState g;
          g.id = k;
          g.rank = static_cast<int>(k);
          g.cpu_used = c.cpu_used;
          g.remaining_work = hints ? c.remaining : -1.0;
          g.image_bytes = c.image;
          g.memory_bytes = c.image;
          g.arrived_at = c.arrived_at;
          self.guests.push_back(g);
          index.push_back(k);
        }
        if (self.guests.empty()) continue;
        const Decision d = decide(self, vectors[i].others(now), now, bp);
        if (!d.move) continue;
        Copy& c = copies[d.move->guest];
        if (trace) {
          std::printf("    %8.2f s  %-15s copy %2llu (work %5.1f, done %5.1f): node %zu -> %u, "
                      "gain %.1f s, cost %.2f s\n",
                      now, name(mode), static_cast<unsigned long long>(d.move->guest), c.work,
                      c.cpu_used, i, d.move->target, d.move->expected_gain, d.move->cost);
        }
        c.node = -1;
        c.destination = static_cast<int>(d.move->target);
        c.arrives_at = now + static_cast<double>(c.image) / kBandwidth;
        vectors[i].note_guest_sent(d.move->target,
                                   hints ? c.remaining : std::max(c.cpu_used, bp.remaining_floor));
        ++out.migrations;
        --runnable[i];
      }
    }

    for (auto& c : copies) {
      if (c.node < 0 || c.finished_at >= 0.0) continue;
      const double rate = kSpeeds[c.node] * std::min(1.0, 1.0 / runnable[c.node]);
      if (c.remaining <= rate * kStep) {
        c.finished_at = now + c.remaining / rate;
        c.cpu_used += c.remaining;
        c.remaining = 0.0;
        out.makespan = std::max(out.makespan, c.finished_at);
        --left;
      } else {
        c.remaining -= rate * kStep;
        c.cpu_used += rate * kStep;
      }
    }
    now += kStep;
  }
  if (trace) {
    std::printf("    %-15s finished:", name(mode));
    for (const auto& c : copies) std::printf(" %.0f@%d", c.finished_at, c.node);
    std::printf("\n");
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int seeds = 10;
  std::uint64_t first = 1;
  bool trace = false;
  bool real_table = false;
  bool real = false;
  CLI::App app{"Makespan / ideal of the balancer against our placement alone and mpirun's "
               "round-robin: the simulator, or --real on a virtual cluster (docs/scheduling.md)",
               "bench_balance"};
  CLI::Option* real_flag = app.add_flag("--real", real, "Run on a real virtual cluster, not the simulator");
  app.add_option("--seeds", seeds, "Simulated clusters per mode")->excludes(real_flag);
  app.add_option("--first-seed", first, "Seed of the first")->excludes(real_flag);
  app.add_flag("--table", real_table, "Simulate --real's fixed table of copies")->excludes(real_flag);
  app.add_flag("--trace", trace, "Print each copy's end and node");
  auto real_options = mosix::bench_balance::add_real_options(app, real_flag);
  if (auto status = mosix::bench::parse_command_line(app, argc, argv)) return *status;
  if (real) return mosix::bench_balance::run_real(*real_options, trace);
  if (seeds < 1) {
    std::fprintf(stderr, "bench_balance: --seeds must be at least 1\n");
    return 2;
  }

  const Mode modes[] = {Mode::kRebalance, Mode::kRebalanceHints, Mode::kMigrateOff,
                        Mode::kRoundRobin};
  constexpr int kModes = 4;
  std::printf("bench_balance: speeds 0.5,0.5,1,1.5; %d copies; %d seeds from %llu; "
              "makespan / ideal (migrations)\n",
              kCopies, seeds, static_cast<unsigned long long>(first));
  std::printf("%6s %9s", "seed", "ideal s");
  for (Mode m : modes) std::printf(" %19s", name(m));
  std::printf("\n");
  double sum[kModes] = {};
  double worst[kModes] = {};
  for (int s = 0; s < seeds; ++s) {
    const std::uint64_t seed = first + static_cast<std::uint64_t>(s);
    const Scenario sc = make_scenario(seed, real_table);
    std::printf("%6llu %9.1f", static_cast<unsigned long long>(seed), sc.ideal);
    for (int k = 0; k < kModes; ++k) {
      const Outcome o = run(sc, modes[k], seed, false);
      const double ratio = o.makespan / sc.ideal;
      sum[k] += ratio;
      worst[k] = std::max(worst[k], ratio);
      std::printf("      %6.3f (%3d)  ", ratio, o.migrations);
    }
    std::printf("\n");
    if (trace) {
      for (Mode m : modes) run(sc, m, seed, true);
    }
  }
  std::printf("%6s %9s", "mean", "");
  for (int k = 0; k < kModes; ++k) std::printf("      %6.3f        ", sum[k] / seeds);
  std::printf("\n%6s %9s", "worst", "");
  for (int k = 0; k < kModes; ++k) std::printf("      %6.3f        ", worst[k]);
  std::printf("\n");

  const double reb = sum[0] / seeds;
  const double off = sum[2] / seeds;
  const double rr = sum[3] / seeds;
  const bool within = reb <= 1.15;
  const bool better = reb < 0.9 * off && reb < 0.9 * rr;
  std::printf("goal: rebalance <= 1.15x ideal: %s (mean %.3f); clearly better (>10%%) than "
              "migrate=off (%.3f) and mpirun rr (%.3f): %s\n",
              within ? "met" : "NOT met", reb, off, rr, better ? "yes" : "NO");
  return 0;
}
