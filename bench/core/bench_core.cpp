// bench_core: runtime/core's hot paths under Google Benchmark, so that a
// change to one of them can be measured in isolation (the other benches time
// whole commands). What each benchmark stands for:
//   BM_Crc32c/N          every frame and every image chunk is checksummed
//                        (bytes/s; the SSE4.2 instruction when the CPU has it)
//   BM_Crc32cPortable/N  the table version, for CPUs without it
//   BM_EncodeLoadReport  a gossip message (window of 20 entries)
//   BM_DecodeLoadReport  its decoding, every check included
//   BM_EncodeSpawnGuest  a spawn with a typical environment (40 variables)
//   BM_DecodeSpawnGuest
//   BM_GuestOutputFrame/N  the output path: encode_guest_output + view (bytes/s)
//   BM_GossipMerge       one received window merged into a full load vector
//                        of a node in a 65,536-node cluster
//   BM_BalancerDecide/G/V  one decision of a node with G guests knowing V
//                        other nodes (64: a full load vector; 65,536: every
//                        node of the largest cluster at once)
// Usage: bench_core [Google Benchmark options, e.g. --benchmark_filter=Gossip]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/balancer.h"
#include "runtime/core/crc32c.h"
#include "runtime/core/gossip.h"
#include "runtime/core/node_state.h"
#include "runtime/core/protocol.h"
#include "runtime/core/rng.h"

namespace {

constexpr std::uint32_t kClusterNodes = 65536;

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  mosix::Rng rng(seed);
  std::vector<std::uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng.next());
  return bytes;
}

mosix::NodeLoad random_node(mosix::NodeId id, mosix::Rng& rng) {
  mosix::NodeLoad n;
  n.id = id;
  n.cores = 1 + static_cast<int>(rng.below(64));
  n.speed = 0.5 + rng.uniform();
  n.load = 2.0 * rng.uniform();
  n.work = 100.0 * rng.uniform();
  n.total_memory = 64ULL << 30;
  n.free_memory = static_cast<std::uint64_t>(rng.uniform() * static_cast<double>(n.total_memory));
  n.age = 5.0 * rng.uniform();
  return n;
}

void BM_Crc32c(benchmark::State& state) {
  auto bytes = random_bytes(static_cast<std::size_t>(state.range(0)), 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(mosix::crc32c(0, bytes.data(), bytes.size()));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32c)->Arg(64)->Arg(4096)->Arg(256 << 10);

void BM_Crc32cPortable(benchmark::State& state) {
  auto bytes = random_bytes(static_cast<std::size_t>(state.range(0)), 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(mosix::crc32c_portable(0, bytes.data(), bytes.size()));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32cPortable)->Arg(4096)->Arg(256 << 10);

mosix::LoadReport load_report() {
  mosix::Rng rng(2);
  mosix::LoadReport report;
  for (std::uint32_t i = 0; i < mosix::GossipParams{}.window; ++i) {
    mosix::LoadEntry e;
    e.node = static_cast<std::uint32_t>(rng.below(kClusterNodes));
    e.load = rng.uniform();
    e.speed = 1.0 + rng.uniform();
    e.free_memory = rng.next();
    e.age_ms = static_cast<std::uint32_t>(rng.below(5000));
    e.cores = 32;
    e.work = 10.0 * rng.uniform();
    report.entries.push_back(e);
  }
  return report;
}

mosix::SpawnGuest spawn_guest() {
  mosix::SpawnGuest spawn;
  spawn.rank = 17;
  spawn.argv = {"/usr/bin/povray", "+Iscene.pov", "+W1920", "+H1080", "+SR1", "+ER64"};
  for (int i = 0; i < 40; ++i) {
    spawn.env.push_back("VARIABLE_" + std::to_string(i) + "=" + std::string(40, 'x'));
  }
  spawn.cwd = "/home/someone/render";
  spawn.memory_bytes = 1ULL << 30;
  return spawn;
}

template <typename M>
void encode(benchmark::State& state, const M& message) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto frame = mosix::encode_frame(message);
    bytes = frame.size();
    benchmark::DoNotOptimize(frame.data());
  }
  state.counters["frame_bytes"] = static_cast<double>(bytes);
}

template <typename M>
void decode(benchmark::State& state, const M& message) {
  const auto frame = mosix::encode_frame(message);
  for (auto _ : state) {
    auto decoded = mosix::decode_frame(frame);
    if (!decoded) {
      state.SkipWithError(decoded.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(decoded);
  }
  state.counters["frame_bytes"] = static_cast<double>(frame.size());
}

void BM_EncodeLoadReport(benchmark::State& state) { encode(state, load_report()); }
void BM_DecodeLoadReport(benchmark::State& state) { decode(state, load_report()); }
void BM_EncodeSpawnGuest(benchmark::State& state) { encode(state, spawn_guest()); }
void BM_DecodeSpawnGuest(benchmark::State& state) { decode(state, spawn_guest()); }
BENCHMARK(BM_EncodeLoadReport);
BENCHMARK(BM_DecodeLoadReport);
BENCHMARK(BM_EncodeSpawnGuest);
BENCHMARK(BM_DecodeSpawnGuest);

void BM_GuestOutputFrame(benchmark::State& state) {
  auto bytes = random_bytes(static_cast<std::size_t>(state.range(0)), 3);
  for (auto _ : state) {
    auto frame = mosix::encode_guest_output(3, mosix::OutputStream::kStdout, bytes);
    auto view = mosix::view_guest_output(frame);
    if (!view) {
      state.SkipWithError(view.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(view->bytes.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_GuestOutputFrame)->Arg(4096)->Arg(64 << 10);

// A node of a 65,536-node cluster with a full load vector receives one window
// from a random peer, all of whose entries are younger than what it holds
// (the worst case: every entry is taken, the vector sorted and trimmed).
void BM_GossipMerge(benchmark::State& state) {
  const mosix::GossipParams params;
  mosix::Rng rng(4);
  mosix::LoadVector vector(0, params);
  double now = 10.0;
  std::vector<mosix::NodeLoad> fill;
  for (std::size_t i = 0; i < params.capacity; ++i) {
    fill.push_back(random_node(1 + static_cast<mosix::NodeId>(rng.below(kClusterNodes - 1)), rng));
  }
  vector.merge(fill, now);
  // Windows prepared in advance, so that the loop times the merge alone.
  std::vector<std::vector<mosix::NodeLoad>> windows(256);
  for (auto& w : windows) {
    for (std::size_t i = 0; i < params.window; ++i) {
      auto n = random_node(1 + static_cast<mosix::NodeId>(rng.below(kClusterNodes - 1)), rng);
      n.age = 0.01 * static_cast<double>(i);
      w.push_back(n);
    }
  }
  std::size_t next = 0;
  for (auto _ : state) {
    now += 0.5;
    benchmark::DoNotOptimize(vector.merge(windows[next], now));
    next = (next + 1) % windows.size();
  }
  state.counters["cluster_nodes"] = kClusterNodes;
}
BENCHMARK(BM_GossipMerge);

// One decision of a loaded node (`guests` guests, the last one long-running
// and movable) that knows `view` other nodes.
void BM_BalancerDecide(benchmark::State& state) {
  const auto guests = static_cast<std::size_t>(state.range(0));
  const auto view_size = static_cast<std::size_t>(state.range(1));
  mosix::Rng rng(5);
  mosix::NodeState self;
  self.self = random_node(0, rng);
  self.self.age = 0;
  self.self.cores = 4;
  self.self.load = static_cast<double>(guests) / (self.self.speed * self.self.cores);
  for (std::size_t g = 0; g < guests; ++g) {
    mosix::GuestState guest;
    guest.id = g + 1;
    guest.rank = static_cast<int>(g);
    guest.cpu_used = 10.0 * static_cast<double>(g + 1);
    guest.image_bytes = 64ULL << 20;
    guest.memory_bytes = 64ULL << 20;
    self.guests.push_back(guest);
  }
  std::vector<mosix::NodeLoad> view;
  for (std::size_t i = 0; i < view_size; ++i) {
    view.push_back(random_node(static_cast<mosix::NodeId>(1 + i % (kClusterNodes - 1)), rng));
  }
  const mosix::BalancerParams params;
  std::size_t moves = 0;
  for (auto _ : state) {
    auto decision = mosix::decide(self, view, 100.0, params);
    moves += decision.move ? 1 : 0;
    benchmark::DoNotOptimize(decision);
  }
  state.counters["moves"] = benchmark::Counter(static_cast<double>(moves),
                                               benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_BalancerDecide)
    ->Args({8, 64})
    ->Args({64, 64})
    ->Args({8, kClusterNodes})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
