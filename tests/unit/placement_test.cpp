#include "runtime/core/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace mosix {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr std::uint64_t kMiB = 1ULL << 20;

PlacementRequest request(int copies, std::uint64_t memory = 0, MapBy map_by = MapBy::kLoad,
                         std::vector<int> slots = {}, bool oversubscribe = false) {
  PlacementRequest r;
  r.copies = copies;
  r.memory_per_copy = memory;
  r.map_by = map_by;
  r.slots = std::move(slots);
  r.oversubscribe = oversubscribe;
  return r;
}

std::vector<NodeLoad> cluster(const std::vector<double>& speeds) {
  std::vector<NodeLoad> nodes;
  for (std::size_t i = 0; i < speeds.size(); ++i) {
    NodeLoad n;
    n.id = static_cast<NodeId>(i);
    n.speed = speeds[i];
    n.cores = 1;
    nodes.push_back(n);
  }
  return nodes;
}

std::vector<int> counts(const std::vector<std::size_t>& ranks, std::size_t nodes) {
  std::vector<int> out(nodes, 0);
  for (auto r : ranks) ++out[r];
  return out;
}

struct SpeedCase {
  int copies;
  std::vector<int> want;
};

class PlaceByLoad : public ::testing::TestWithParam<SpeedCase> {};

TEST_P(PlaceByLoad, FasterNodesGetCopiesInProportionToSpeed) {
  const auto nodes = cluster({1, 1, 2, 2});
  auto ranks = place(nodes, request(GetParam().copies));
  ASSERT_TRUE(ranks.ok()) << ranks.error().message;
  EXPECT_THAT(counts(*ranks, nodes.size()), ElementsAreArray(GetParam().want));
}

INSTANTIATE_TEST_SUITE_P(Speeds1122, PlaceByLoad,
                         ::testing::Values(SpeedCase{6, {1, 1, 2, 2}}, SpeedCase{12, {2, 2, 4, 4}},
                                           SpeedCase{24, {4, 4, 8, 8}}));

TEST(PlaceByLoad, FirstCopiesGoToTheFastestNodes) {
  auto ranks = place(cluster({1, 1, 2, 2}), request(2));
  ASSERT_TRUE(ranks.ok());
  EXPECT_THAT(*ranks, ElementsAreArray({2u, 3u}));
}

TEST(PlaceByLoad, LoadAlreadyOnANodeCounts) {
  auto nodes = cluster({1, 1});
  nodes[0].load = 2.0;  // two processes already running there
  auto ranks = place(nodes, request(4));
  ASSERT_TRUE(ranks.ok());
  EXPECT_THAT(counts(*ranks, 2), ElementsAreArray({1, 3}));
}

TEST(PlaceByLoad, CoresAddCapacity) {
  auto nodes = cluster({1, 1});
  nodes[1].cores = 3;
  auto ranks = place(nodes, request(8));
  ASSERT_TRUE(ranks.ok());
  EXPECT_THAT(counts(*ranks, 2), ElementsAreArray({2, 6}));
}

TEST(PlaceByLoad, SkipsNodesWithoutTheMemoryNeeded) {
  auto nodes = cluster({1, 1, 2, 2});
  for (auto& n : nodes) n.total_memory = 8192 * kMiB;
  nodes[0].free_memory = 4096 * kMiB;
  nodes[1].free_memory = 4096 * kMiB;
  nodes[2].free_memory = 1024 * kMiB;  // fast but room for one copy only
  nodes[3].free_memory = 512 * kMiB;   // fast but no room at all
  auto ranks = place(nodes, request(6, 1024 * kMiB));
  ASSERT_TRUE(ranks.ok()) << ranks.error().message;
  EXPECT_THAT(counts(*ranks, 4), ElementsAreArray({3, 2, 1, 0}));
}

TEST(PlaceByLoad, NodesWithoutMemoryFiguresAreNotConstrained) {
  auto nodes = cluster({1});
  auto ranks = place(nodes, request(3, 1024 * kMiB));
  EXPECT_TRUE(ranks.ok());
}

TEST(PlaceByLoad, FailsNamingTheMemoryWhenNoNodeHasRoom) {
  auto nodes = cluster({1, 1});
  for (auto& n : nodes) n.total_memory = 4096 * kMiB;
  nodes[0].free_memory = 1024 * kMiB;
  nodes[1].free_memory = 1536 * kMiB;
  auto ranks = place(nodes, request(2, 2048 * kMiB));
  ASSERT_FALSE(ranks.ok());
  EXPECT_THAT(ranks.error().message, HasSubstr("no node has 2048 MiB free"));
  EXPECT_THAT(ranks.error().message, HasSubstr("1536 MiB on node 1"));
}

TEST(PlaceByLoad, HostSlotsCapTheCopiesPerNode) {
  const auto nodes = cluster({1, 4});
  auto ranks = place(nodes, request(4, 0, MapBy::kLoad, {2, 2}));
  ASSERT_TRUE(ranks.ok());
  EXPECT_THAT(counts(*ranks, 2), ElementsAreArray({2, 2}));
}

TEST(PlaceByLoad, OversubscribeLiftsTheSlotCap) {
  const auto nodes = cluster({1, 4});
  auto ranks = place(nodes, request(5, 0, MapBy::kLoad, {1, 1}, true));
  ASSERT_TRUE(ranks.ok());
  EXPECT_THAT(counts(*ranks, 2), ElementsAreArray({1, 4}));
}

struct MapCase {
  const char* name;
  MapBy map_by;
  std::vector<int> slots;
  int copies;
  bool oversubscribe;
  std::vector<std::size_t> want;
};

class MpirunMapping : public ::testing::TestWithParam<MapCase> {};

TEST_P(MpirunMapping, KeepsMpirunsMeaning) {
  const MapCase& c = GetParam();
  const auto nodes = cluster(std::vector<double>(c.slots.size(), 1.0));
  auto ranks = place(nodes, request(c.copies, 0, c.map_by, c.slots, c.oversubscribe));
  ASSERT_TRUE(ranks.ok()) << ranks.error().message;
  EXPECT_THAT(*ranks, ElementsAreArray(c.want));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MpirunMapping,
    ::testing::Values(
        MapCase{"slot_fills_first_host", MapBy::kSlot, {2, 2}, 4, false, {0, 0, 1, 1}},
        MapCase{"slot_partial", MapBy::kSlot, {3, 2}, 4, false, {0, 0, 0, 1}},
        MapCase{"node_round_robin", MapBy::kNode, {2, 2}, 4, false, {0, 1, 0, 1}},
        MapCase{"node_skips_full", MapBy::kNode, {1, 3}, 4, false, {0, 1, 1, 1}},
        MapCase{"slot_oversubscribed", MapBy::kSlot, {1, 1}, 5, true, {0, 0, 0, 1, 1}},
        MapCase{"node_oversubscribed", MapBy::kNode, {1, 1, 1}, 5, true, {0, 1, 2, 0, 1}},
        MapCase{"slots_default_to_cores", MapBy::kSlot, {-1, -1}, 2, false, {0, 1}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(MpirunMapping, NotEnoughSlotsWithoutOversubscribe) {
  const auto nodes = cluster({1, 1});
  for (MapBy m : {MapBy::kSlot, MapBy::kNode, MapBy::kLoad}) {
    auto ranks = place(nodes, request(5, 0, m, {2, 2}));
    ASSERT_FALSE(ranks.ok());
    EXPECT_THAT(ranks.error().message, HasSubstr("not enough slots for 5 copies"));
    EXPECT_THAT(ranks.error().message, HasSubstr("--oversubscribe"));
  }
}

TEST(MpirunMapping, SlotsDefaultToTheNodesCores) {
  auto nodes = cluster({1, 1});
  nodes[0].cores = 2;
  auto ranks = place(nodes, request(4, 0, MapBy::kNode));
  ASSERT_FALSE(ranks.ok()) << "2 + 1 cores give 3 slots";
  ranks = place(nodes, request(3, 0, MapBy::kNode));
  ASSERT_TRUE(ranks.ok());
  EXPECT_THAT(*ranks, ElementsAreArray({0u, 1u, 0u}));
}

TEST(MpirunMapping, StillChecksMemory) {
  auto nodes = cluster({1, 1});
  for (auto& n : nodes) {
    n.total_memory = 4096 * kMiB;
    n.free_memory = 1024 * kMiB;
  }
  auto ranks = place(nodes, request(4, 768 * kMiB, MapBy::kSlot, {2, 2}));
  ASSERT_FALSE(ranks.ok());
  EXPECT_THAT(ranks.error().message, HasSubstr("node 0 has 1024 MiB free"));
}

TEST(Placement, HostListSlotsBecomeSlotCounts) {
  const std::vector<HostSlots> hosts{{"a", 2, true}, {"b", 1, false}};
  EXPECT_THAT(slots_from_hosts(hosts), ElementsAreArray({2, -1}));
}

TEST(Placement, RejectsAHostListOfTheWrongLength) {
  auto ranks = place(cluster({1, 1}), request(1, 0, MapBy::kLoad, {1}));
  ASSERT_FALSE(ranks.ok());
  EXPECT_THAT(ranks.error().message, HasSubstr("names 1 hosts but there are 2 nodes"));
}

TEST(Placement, ZeroCopiesPlaceNothing) {
  auto ranks = place(cluster({1}), request(0));
  ASSERT_TRUE(ranks.ok());
  EXPECT_TRUE(ranks->empty());
}

TEST(Placement, NoNodesIsAnError) {
  auto ranks = place({}, request(1));
  EXPECT_FALSE(ranks.ok());
}

// Restart of ranks lost with their node (pick_restart_node).

RestartCandidate candidate(double speed, int cores, int ranks, bool usable = true) {
  RestartCandidate c;
  c.usable = usable;
  c.speed = speed;
  c.cores = cores;
  c.ranks = ranks;
  return c;
}

TEST(RestartPlacement, FewestRanksPerCapacityOnceAdded) {
  // (1+1)/1 = 2, (3+1)/4 = 1, (0+1)/0.5 = 2: the four-core node.
  std::vector<RestartCandidate> nodes = {candidate(1, 1, 1), candidate(1, 4, 3), candidate(0.5, 1, 0)};
  EXPECT_EQ(pick_restart_node(nodes), std::optional<std::size_t>(1));
}

TEST(RestartPlacement, TiesGoToTheLowerIndex) {
  std::vector<RestartCandidate> nodes = {candidate(2, 1, 1), candidate(1, 2, 1), candidate(1, 1, 0)};
  EXPECT_EQ(pick_restart_node(nodes), std::optional<std::size_t>(0));
}

TEST(RestartPlacement, UnusableNodesAreSkipped) {
  std::vector<RestartCandidate> nodes = {candidate(1, 1, 5), candidate(100, 8, 0, false), candidate(1, 1, 9)};
  EXPECT_EQ(pick_restart_node(nodes), std::optional<std::size_t>(0));
}

TEST(RestartPlacement, NoUsableNodeIsNone) {
  std::vector<RestartCandidate> nodes = {candidate(1, 1, 0, false), candidate(1, 1, 0, false)};
  EXPECT_EQ(pick_restart_node(nodes), std::nullopt);
  EXPECT_EQ(pick_restart_node({}), std::nullopt);
}

TEST(RestartPlacement, ZeroSpeedAndCoresStillCount) {
  // A node that reported no speed or cores is the last choice, not a division by zero.
  std::vector<RestartCandidate> nodes = {candidate(0, 0, 0), candidate(0.01, 1, 3)};
  EXPECT_EQ(pick_restart_node(nodes), std::optional<std::size_t>(1));
}

TEST(RestartPlacement, SeveralLostRanksSpreadByCapacity) {
  // Counting each pick before the next, as the home does: a node twice as
  // fast takes twice the ranks.
  std::vector<RestartCandidate> nodes = {candidate(2, 1, 0), candidate(1, 1, 0), candidate(1, 1, 0, false)};
  std::vector<int> taken(nodes.size(), 0);
  for (int i = 0; i < 6; ++i) {
    auto best = pick_restart_node(nodes);
    ASSERT_TRUE(best.has_value());
    ++nodes[*best].ranks;
    ++taken[*best];
  }
  EXPECT_THAT(taken, ElementsAreArray({4, 2, 0}));
}

// Placement at exec: runnable processes on a node are load * capacity.
std::vector<NodeLoad> with_runnable(std::vector<NodeLoad> nodes, const std::vector<double>& runnable) {
  for (std::size_t i = 0; i < nodes.size(); ++i) nodes[i].load = runnable[i] / (nodes[i].speed * nodes[i].cores);
  return nodes;
}

TEST(PlaceAtExec, StaysWhileItsNodeHasAFreeCore) {
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {0, 0, 0}), 0), 0u);
  auto two_cores = cluster({1, 1});
  two_cores[1].cores = 2;
  EXPECT_EQ(place_at_exec(with_runnable(two_cores, {0, 1}), 1), 1u);
}

TEST(PlaceAtExec, LeavesABusyNodeForTheLeastLoaded) {
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {1, 1, 0}), 0), 2u);
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {1, 0, 0}), 0), 1u);  // tie: lower index
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 2}), {1, 0, 0}), 0), 2u);  // tie... the faster is less loaded
}

TEST(PlaceAtExec, StaysWhenNoNodeIsLessLoaded) {
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {1, 1, 1}), 0), 0u);
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {2, 3, 2}), 1), 0u);
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {2, 2, 2}), 1), 1u);
}

TEST(PlaceAtExec, LeaveGoesToTheLeastLoadedOtherNode) {
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {0, 2, 1}), 0, true), 2u);
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1, 1, 1}), {0, 0, 0}), 1, true), 0u);
  EXPECT_EQ(place_at_exec(with_runnable(cluster({1}), {0}), 0, true), 0u);  // nowhere else
}

TEST(PlaceAtExec, ANodeThatTakesNothingIsSkipped) {
  auto nodes = with_runnable(cluster({1, 0, 1}), {1, 0, 1});
  EXPECT_EQ(place_at_exec(nodes, 0), 0u);
  EXPECT_EQ(place_at_exec(nodes, 7), 7u);  // not a node: nothing to decide
}

}  // namespace
}  // namespace mosix
