// bench_gossip: a discrete-event simulation of runtime/core's load gossip at
// 16, 1,024 and 65,536 nodes (seeded, same code as the daemons). Reports
// messages per node per second and the mean / 95th-percentile age of the
// load information nodes hold, and checks the goals of issue 5: constant
// messages per node as the cluster grows, age growing no faster than log2(n).
//
// Model: every node sends its window to one uniformly random node after a
// jittered delay (GossipParams defaults: 0.5 s +-25%, window 20, capacity 64);
// a message arrives after a fixed latency (1 ms), which is added to the ages
// it carries. Virtual time runs 20 s; ages are sampled once per virtual
// second after a 5 s warm-up, on all nodes up to 1,024 and on 1,024 nodes
// chosen at random beyond that. "Window" ages are those of the entries about
// other nodes that a node would send (its freshest information); "vector"
// ages are those of every entry it holds.
//
// Usage: bench_gossip [--seed N] [--seconds T] [--sizes n1,n2,...]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <queue>
#include <string>
#include <vector>

#include "../common/cli.h"
#include "runtime/core/gossip.h"
#include "runtime/core/rng.h"

namespace {

using mosix::GossipParams;
using mosix::LoadVector;
using mosix::NodeId;
using mosix::NodeLoad;
using mosix::Rng;

struct AgeStats {
  double mean = 0.0;
  double p95 = 0.0;
};

AgeStats stats(std::vector<double>& ages) {
  AgeStats s;
  if (ages.empty()) return s;
  double sum = 0.0;
  for (double a : ages) sum += a;
  s.mean = sum / static_cast<double>(ages.size());
  const auto k = static_cast<std::size_t>(0.95 * static_cast<double>(ages.size() - 1));
  std::nth_element(ages.begin(), ages.begin() + static_cast<std::ptrdiff_t>(k), ages.end());
  s.p95 = ages[k];
  return s;
}

struct Result {
  std::size_t nodes = 0;
  double messages_per_node_per_s = 0.0;
  double entries_per_message = 0.0;
  AgeStats window;
  AgeStats vector;
  double wall_seconds = 0.0;
};

struct Event {
  double time;
  NodeId node;
  bool operator>(const Event& o) const { return time > o.time || (time == o.time && node > o.node); }
};

Result simulate(std::size_t n, double seconds, std::uint64_t seed) {
  const auto start = std::chrono::steady_clock::now();
  const GossipParams params;
  const double latency = 0.001;
  const double warmup = 5.0;
  const std::size_t max_sampled = 1024;

  Rng rng(seed ^ (0x9e3779b97f4a7c15ULL * n));
  std::vector<LoadVector> nodes;
  nodes.reserve(n);
  for (NodeId i = 0; i < n; ++i) nodes.emplace_back(i, params);

  std::vector<NodeId> sampled;
  if (n <= max_sampled) {
    for (NodeId i = 0; i < n; ++i) sampled.push_back(i);
  } else {
    std::vector<NodeId> all(n);
    for (NodeId i = 0; i < n; ++i) all[i] = i;
    for (std::size_t i = 0; i < max_sampled; ++i) {
      std::swap(all[i], all[i + rng.below(n - i)]);
      sampled.push_back(all[i]);
    }
  }

  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue;
  for (NodeId i = 0; i < n; ++i) queue.push({rng.uniform() * params.interval, i});

  std::vector<double> window_ages;
  std::vector<double> vector_ages;
  double next_sample = warmup;
  std::uint64_t messages = 0;
  std::uint64_t entries = 0;
  std::vector<NodeLoad> window;
  while (!queue.empty()) {
    const Event ev = queue.top();
    if (ev.time > seconds) break;
    queue.pop();
    while (ev.time >= next_sample) {
      for (NodeId s : sampled) {
        const auto w = nodes[s].window(next_sample);
        for (std::size_t k = 1; k < w.size(); ++k) window_ages.push_back(w[k].age);
        for (const auto& e : nodes[s].others(next_sample)) vector_ages.push_back(e.age);
      }
      next_sample += 1.0;
    }
    LoadVector& sender = nodes[ev.node];
    NodeLoad self;
    self.load = rng.uniform() * 4.0;  // any measurement will do; ages are what is measured
    sender.update_self(self, ev.time);
    window = sender.window(ev.time);
    if (auto peer = mosix::pick_peer(ev.node, n, rng)) {
      for (auto& e : window) e.age += latency;
      nodes[*peer].merge(window, ev.time + latency);
      ++messages;
      entries += window.size();
    }
    queue.push({ev.time + mosix::next_gossip_delay(params, rng), ev.node});
  }

  Result r;
  r.nodes = n;
  r.messages_per_node_per_s = static_cast<double>(messages) / (static_cast<double>(n) * seconds);
  r.entries_per_message = messages ? static_cast<double>(entries) / static_cast<double>(messages) : 0;
  r.window = stats(window_ages);
  r.vector = stats(vector_ages);
  r.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = 1;
  double seconds = 20.0;
  std::vector<std::size_t> sizes{16, 1024, 65536};
  CLI::App app{"Load gossip at 16, 1,024 and 65,536 nodes: messages per node and age of the information",
               "bench_gossip"};
  app.add_option("--seed", seed, "Seed of the simulation");
  app.add_option("--seconds", seconds, "Virtual seconds to simulate (more than 6)");
  app.add_option("--sizes", sizes, "Cluster sizes, e.g. 16,1024,65536")->delimiter(',');
  if (auto status = mosix::bench::parse_command_line(app, argc, argv)) return *status;
  if (sizes.empty() || seconds <= 6.0) {
    std::fprintf(stderr, "bench_gossip: need at least one size and more than 6 virtual seconds\n");
    return 2;
  }

  const GossipParams p;
  std::printf("bench_gossip: seed %llu, %.0f s virtual, interval %.2f s +-%.0f%%, window %zu, "
              "capacity %zu\n",
              static_cast<unsigned long long>(seed), seconds, p.interval, p.jitter * 50.0,
              p.window, p.capacity);
  std::printf("%8s %10s %9s %12s %12s %12s %12s %12s %8s\n", "nodes", "msg/node/s", "entries",
              "window mean", "window p95", "vector mean", "vector p95", "mean/log2n", "wall s");
  std::vector<Result> results;
  for (std::size_t n : sizes) {
    if (n < 2) continue;
    const Result r = simulate(n, seconds, seed);
    results.push_back(r);
    std::printf("%8zu %10.3f %9.1f %11.3fs %11.3fs %11.3fs %11.3fs %12.3f %8.2f\n", r.nodes,
                r.messages_per_node_per_s, r.entries_per_message, r.window.mean, r.window.p95,
                r.vector.mean, r.vector.p95, r.window.mean / std::log2(static_cast<double>(n)),
                r.wall_seconds);
    std::fflush(stdout);
  }
  if (results.size() < 2) return 0;

  double lo = results.front().messages_per_node_per_s;
  double hi = lo;
  for (const auto& r : results) {
    lo = std::min(lo, r.messages_per_node_per_s);
    hi = std::max(hi, r.messages_per_node_per_s);
  }
  const bool constant = hi / lo < 1.05;
  std::printf("messages per node per second: %.3f .. %.3f (max/min %.3f): %s\n", lo, hi, hi / lo,
              constant ? "constant" : "NOT constant");

  // Age grows no faster than log2(n) when age/log2(n) does not grow from the
  // smallest cluster to the largest (10% slack for sampling noise).
  const auto ratio = [](const Result& r, double age) {
    return age / std::log2(static_cast<double>(r.nodes));
  };
  const Result& first = results.front();
  const Result& last = results.back();
  const double mean_growth = ratio(last, last.window.mean) / ratio(first, first.window.mean);
  const double p95_growth = ratio(last, last.window.p95) / ratio(first, first.window.p95);
  const double vector_growth = ratio(last, last.vector.mean) / ratio(first, first.vector.mean);
  std::printf("window age/log2(n), %zu -> %zu nodes: mean x%.3f, p95 x%.3f: %s\n", first.nodes,
              last.nodes, mean_growth, p95_growth,
              mean_growth <= 1.1 && p95_growth <= 1.1 ? "no faster than log(n)"
                                                      : "FASTER than log(n)");
  std::printf("vector age/log2(n), %zu -> %zu nodes: mean x%.3f: %s\n", first.nodes, last.nodes,
              vector_growth, vector_growth <= 1.1 ? "no faster than log(n)" : "FASTER than log(n)");
  return 0;
}
