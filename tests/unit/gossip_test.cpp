#include "runtime/core/gossip.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace mosix {
namespace {

NodeLoad entry(NodeId id, double age, double load = 0.0) {
  NodeLoad n;
  n.id = id;
  n.age = age;
  n.load = load;
  return n;
}

struct MergeCase {
  const char* name;
  double held_age;      // age of the entry already held, at merge time
  double received_age;  // age of the received entry
  double want_load;     // load held afterwards (held = 1, received = 2)
};

class MergeByAge : public ::testing::TestWithParam<MergeCase> {};

TEST_P(MergeByAge, KeepsTheYoungerEntryPerNode) {
  const MergeCase& c = GetParam();
  LoadVector v(0, GossipParams{});
  const double now = 100.0;
  const std::vector<NodeLoad> held{entry(7, c.held_age, 1.0)};
  ASSERT_EQ(v.merge(held, now), 1u);
  const std::vector<NodeLoad> received{entry(7, c.received_age, 2.0)};
  v.merge(received, now);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v.find(7, now)->load, c.want_load);
  EXPECT_DOUBLE_EQ(v.find(7, now)->age, std::min(c.held_age, c.received_age));
}

INSTANTIATE_TEST_SUITE_P(Cases, MergeByAge,
                         ::testing::Values(MergeCase{"received_younger", 3.0, 1.0, 2.0},
                                           MergeCase{"received_older", 1.0, 3.0, 1.0},
                                           MergeCase{"same_age_keeps_held", 2.0, 2.0, 1.0}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(LoadVector, IgnoresEntriesAboutItself) {
  LoadVector v(3, GossipParams{});
  const std::vector<NodeLoad> received{entry(3, 0.0, 9.0), entry(4, 0.0)};
  EXPECT_EQ(v.merge(received, 1.0), 1u);
  EXPECT_EQ(v.size(), 1u);
  EXPECT_EQ(v.find(3, 1.0)->load, 0.0);
}

TEST(LoadVector, AgesGrowWithTheLocalClock) {
  LoadVector v(0, GossipParams{});
  const std::vector<NodeLoad> received{entry(1, 0.5)};
  v.merge(received, 10.0);
  EXPECT_DOUBLE_EQ(v.find(1, 12.0)->age, 2.5);
}

TEST(LoadVector, WindowIsOwnEntryFirstThenTheYoungest) {
  GossipParams p;
  p.window = 20;
  LoadVector v(0, p);
  std::vector<NodeLoad> received;
  for (NodeId id = 1; id <= 30; ++id) received.push_back(entry(id, 0.1 * id));
  v.merge(received, 50.0);
  v.update_self(NodeLoad{.id = 99, .load = 4.0}, 50.0);

  const auto w = v.window(50.0);
  ASSERT_EQ(w.size(), 20u);
  EXPECT_EQ(w[0].id, 0u);  // own id, whatever the measurement said
  EXPECT_EQ(w[0].load, 4.0);
  EXPECT_EQ(w[0].age, 0.0);
  for (std::size_t i = 1; i < w.size(); ++i) {
    EXPECT_EQ(w[i].id, static_cast<NodeId>(i)) << "the 19 youngest, youngest first";
  }
}

TEST(LoadVector, WindowIsSmallerWhileFewNodesAreKnown) {
  LoadVector v(0, GossipParams{});
  const std::vector<NodeLoad> received{entry(1, 0.0), entry(2, 0.0)};
  v.merge(received, 1.0);
  EXPECT_EQ(v.window(1.0).size(), 3u);
}

TEST(LoadVector, DropsTheOldestBeyondCapacity) {
  GossipParams p;
  p.capacity = 4;
  LoadVector v(0, p);
  std::vector<NodeLoad> received;
  for (NodeId id = 1; id <= 6; ++id) received.push_back(entry(id, id));
  v.merge(received, 10.0);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_FALSE(v.find(5, 10.0).has_value());
  EXPECT_FALSE(v.find(6, 10.0).has_value());
  EXPECT_TRUE(v.find(4, 10.0).has_value());
}

TEST(LoadVector, ExpiresEntriesOlderThanTheLimit) {
  GossipParams p;
  p.expire_after = 5.0;
  LoadVector v(0, p);
  const std::vector<NodeLoad> received{entry(1, 0.0), entry(2, 4.0), entry(3, 6.0)};
  EXPECT_EQ(v.merge(received, 0.0), 2u) << "an entry already too old is not taken";
  v.expire(2.0);
  EXPECT_TRUE(v.find(1, 2.0).has_value());
  EXPECT_FALSE(v.find(2, 2.0).has_value());
}

TEST(LoadVector, NoteGuestSentRaisesTheTargetsLoad) {
  LoadVector v(0, GossipParams{});
  NodeLoad n = entry(1, 0.0, 1.0);
  n.speed = 2.0;
  n.work = 10.0;
  const std::vector<NodeLoad> received{n};
  v.merge(received, 0.0);
  v.note_guest_sent(1, 5.0);
  EXPECT_DOUBLE_EQ(v.find(1, 0.0)->load, 1.5);
  EXPECT_DOUBLE_EQ(v.find(1, 0.0)->work, 15.0);
}

struct EstimatorCase {
  const char* name;
  bool local;  // local_load_estimate, else exported_load_estimate
  double previous;
  double sample;
  double dt;
  double want;
};

class Estimators : public ::testing::TestWithParam<EstimatorCase> {};

TEST_P(Estimators, AreAsymmetric) {
  const EstimatorCase& c = GetParam();
  const double tau = 2.0;
  const double got = c.local ? local_load_estimate(c.previous, c.sample, c.dt, tau)
                             : exported_load_estimate(c.previous, c.sample, c.dt, tau);
  EXPECT_NEAR(got, c.want, 1e-12);
}

const double kOneTau = 1.0 - std::exp(-1.0);

INSTANTIATE_TEST_SUITE_P(
    Cases, Estimators,
    ::testing::Values(EstimatorCase{"local_drops_at_once", true, 4.0, 1.0, 0.1, 1.0},
                      EstimatorCase{"local_rises_slowly", true, 0.0, 1.0, 2.0, kOneTau},
                      EstimatorCase{"local_rise_needs_time", true, 1.0, 3.0, 0.0, 1.0},
                      EstimatorCase{"export_rises_at_once", false, 1.0, 4.0, 0.1, 4.0},
                      EstimatorCase{"export_decays_slowly", false, 1.0, 0.0, 2.0, 1.0 - kOneTau},
                      EstimatorCase{"export_steady", false, 2.0, 2.0, 5.0, 2.0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Estimators, LocalRiseAndExportDecayReachTheSampleEventually) {
  double local = 0.0;
  double exported = 5.0;
  for (int i = 0; i < 200; ++i) {
    local = local_load_estimate(local, 5.0, 0.1, 1.0);
    exported = exported_load_estimate(exported, 0.0, 0.1, 1.0);
  }
  EXPECT_NEAR(local, 5.0, 1e-6);
  EXPECT_NEAR(exported, 0.0, 1e-6);
}

TEST(PickPeer, NeverPicksItselfAndReachesEveryOther) {
  Rng rng(42);
  std::vector<int> hits(8, 0);
  for (int i = 0; i < 4000; ++i) ++hits[*pick_peer(5, 8, rng)];
  EXPECT_EQ(hits[5], 0);
  for (int n = 0; n < 8; ++n) {
    if (n != 5) {
      EXPECT_GT(hits[n], 400) << "node " << n;
    }
  }
}

TEST(PickPeer, NoPeerInAClusterOfOne) {
  Rng rng(1);
  EXPECT_FALSE(pick_peer(0, 1, rng).has_value());
}

TEST(PickPeer, SameSeedSameSequence) {
  Rng a(7);
  Rng b(7);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(pick_peer(0, 1000, a), pick_peer(0, 1000, b));
}

TEST(NextGossipDelay, StaysWithinTheJitter) {
  GossipParams p;
  p.interval = 0.5;
  p.jitter = 0.5;
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) {
    const double d = next_gossip_delay(p, rng);
    EXPECT_GE(d, 0.375);
    EXPECT_LT(d, 0.625);
  }
}

// Synchronous gossip rounds in memory, seeded: every node sends its window
// to one random peer per interval.
std::vector<LoadVector> gossip_rounds(std::size_t n, const GossipParams& p, int rounds,
                                      double& now) {
  std::vector<LoadVector> nodes;
  nodes.reserve(n);
  for (NodeId i = 0; i < n; ++i) nodes.emplace_back(i, p);
  Rng rng(2024);
  for (int round = 0; round < rounds; ++round) {
    now += p.interval;
    for (NodeId i = 0; i < n; ++i) {
      nodes[i].update_self(NodeLoad{.id = i}, now);
      const auto w = nodes[i].window(now);
      nodes[*pick_peer(i, n, rng)].merge(w, now);
    }
  }
  return nodes;
}

// With a window larger than the cluster every entry travels in every message:
// 16 nodes all know each other within 10 intervals.
TEST(GossipInMemory, SixteenNodesAllKnowEachOther) {
  double now = 0.0;
  const auto nodes = gossip_rounds(16, GossipParams{}, 10, now);
  for (const auto& v : nodes) EXPECT_EQ(v.size(), 15u) << "node " << v.self();
}

// 4096 nodes, capacity 64: every vector fills up and what a node would send
// (its window) is young: about two intervals on average; the oldest belongs
// to a node that heard nothing for k intervals (probability e^-k), so a
// dozen intervals at most among 4096 nodes.
TEST(GossipInMemory, FourThousandNodesHoldFullVectorsOfYoungEntries) {
  const GossipParams p;
  double now = 0.0;
  const auto nodes = gossip_rounds(4096, p, 30, now);
  double sum = 0.0;
  double worst = 0.0;
  std::size_t count = 0;
  for (const auto& v : nodes) {
    ASSERT_EQ(v.size(), p.capacity) << "node " << v.self();
    const auto w = v.window(now);
    for (std::size_t i = 1; i < w.size(); ++i) {
      sum += w[i].age;
      worst = std::max(worst, w[i].age);
      ++count;
    }
  }
  EXPECT_LT(sum / count, 3 * p.interval) << "worst " << worst;
  EXPECT_LT(worst, 20 * p.interval) << "mean " << sum / count;
}

}  // namespace
}  // namespace mosix
