#include "runtime/core/balancer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace mosix {
namespace {

using ::testing::HasSubstr;

constexpr std::uint64_t kMB = 1000 * 1000;
constexpr std::uint64_t kGiB = 1ULL << 30;
constexpr double kNow = 1000.0;

NodeLoad node(NodeId id, double speed, double processes, double work = -1.0) {
  NodeLoad n;
  n.id = id;
  n.speed = speed;
  n.cores = 1;
  n.load = processes / speed;
  n.work = work;
  return n;
}

GuestState guest(GuestId id, double remaining, std::uint64_t image = 100 * kMB) {
  GuestState g;
  g.id = id;
  g.rank = static_cast<int>(id);
  g.remaining_work = remaining;
  g.image_bytes = image;
  g.memory_bytes = image;
  g.arrived_at = 0.0;  // long resident
  return g;
}

BalancerParams params() {
  BalancerParams p;
  p.bandwidth = 100 * kMB;  // 1 s per 100 MB image
  p.min_residency = 10.0;
  p.min_gain = 1.0;
  return p;
}

const Explanation& explanation_of(const Decision& d, GuestId id) {
  for (const auto& e : d.explanations) {
    if (e.guest == id) return e;
  }
  ADD_FAILURE() << "no explanation for guest " << id;
  return d.explanations.front();
}

// Node 0 (speed 1) runs guests needing 10, 40 and 20 s. Node 1 (speed 1) is
// busy with 30 s of work, node 2 (speed 2) is idle, node 3 (speed 0.5) is
// idle. Node 0 finishes at 70 s. Moving the 40 s guest to node 2 leaves
// 30 s here and 1 + 40/2 = 21 s there: the later finishing time drops from
// 70 to 30 s, gain 40 s, cost 1 s. Every other guest/target gains less.
TEST(Balancer, FixedScenarioHasTheKnownAnswer) {
  NodeState self{node(0, 1.0, 3.0), {guest(1, 10), guest(2, 40), guest(3, 20)}};
  const std::vector<NodeLoad> view{node(1, 1.0, 1.0, 30.0), node(2, 2.0, 0.0, 0.0),
                                   node(3, 0.5, 0.0, 0.0)};
  const Decision d = decide(self, view, kNow, params());
  ASSERT_TRUE(d.move.has_value());
  EXPECT_EQ(d.move->guest, 2u);
  EXPECT_EQ(d.move->target, 2u);
  EXPECT_EQ(d.move->verdict, Verdict::kMove);
  EXPECT_DOUBLE_EQ(d.move->expected_gain, 40.0);
  EXPECT_DOUBLE_EQ(d.move->cost, 1.0);
  ASSERT_EQ(d.explanations.size(), 3u);
  EXPECT_EQ(explanation_of(d, 2).verdict, Verdict::kMove);
  EXPECT_EQ(explanation_of(d, 1).verdict, Verdict::kOtherGuestMoves);
  EXPECT_EQ(explanation_of(d, 3).verdict, Verdict::kOtherGuestMoves);
  EXPECT_EQ(*explanation_of(d, 2).least_loaded, 2u);
  EXPECT_DOUBLE_EQ(explanation_of(d, 2).node_load, 3.0);
}

struct MarginCase {
  const char* name;
  double here;   // runnable processes on this node (speed 1)
  double there;  // on the other node (speed 1)
  bool moves;
};

class StabilityMargin : public ::testing::TestWithParam<MarginCase> {};

TEST_P(StabilityMargin, MovesOnlyBeyondOnePointThreeProcesses) {
  const MarginCase& c = GetParam();
  NodeState self{node(0, 1.0, c.here), {}};
  for (int i = 0; i < static_cast<int>(c.here); ++i) self.guests.push_back(guest(i + 1, 100));
  const std::vector<NodeLoad> view{node(1, 1.0, c.there, 100.0 * c.there)};
  const Decision d = decide(self, view, kNow, params());
  EXPECT_EQ(d.move.has_value(), c.moves);
  if (!c.moves) {
    for (const auto& e : d.explanations) EXPECT_EQ(e.verdict, Verdict::kBelowMargin);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, StabilityMargin,
                         ::testing::Values(MarginCase{"equal", 2, 2, false},
                                           MarginCase{"one_more", 2, 1, false},
                                           MarginCase{"one_point_two_more", 3.2, 2, false},
                                           MarginCase{"two_more", 3, 1, true},
                                           MarginCase{"two_vs_idle", 2, 0, true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Balancer, ALoneGuestLeavesASlowNodeForAnIdleFastOne) {
  // Load 2 vs 0 is below 1.3 processes of the slow node (2.6), but the guest
  // would run three times faster there.
  NodeState self{node(0, 0.5, 1.0), {guest(1, 30)}};
  const std::vector<NodeLoad> view{node(1, 1.5, 0.0, 0.0)};
  const Decision d = decide(self, view, kNow, params());
  ASSERT_TRUE(d.move.has_value());
  EXPECT_EQ(d.move->target, 1u);
  EXPECT_DOUBLE_EQ(d.move->expected_gain, 60.0 - (1.0 + 20.0));
}

// The end of a job: the last guest (20 s of work left) alone on a node of
// speed 0.5, next to a node of speed 0.75 that just went idle but whose
// exported load is still decaying in this node's view (0.93: 0.7 of a
// process). Neither the load rule (2.0 - 0.93 < 2.6) nor the speed rule
// (0.75 / 1.7 < 1.3 * 0.5) fires, but it gossips no work left, and there the
// guest finishes at 1 + 20 / 0.75 = 27.7 s instead of 40 s: 1.45x sooner,
// beyond the 1.3 margin. The way back would finish later: no move.
TEST(Balancer, TheLastGuestLeavesASlowNodeForOneThatJustWentIdle) {
  NodeLoad fast = node(1, 0.75, 0.7, 0.0);
  NodeState self{node(0, 0.5, 1.0), {guest(1, 20)}};
  const Decision d = decide(self, std::vector<NodeLoad>{fast}, kNow, params());
  ASSERT_TRUE(d.move.has_value());
  EXPECT_EQ(d.move->target, 1u);
  EXPECT_NEAR(d.move->expected_gain, 40.0 - (1.0 + 20.0 / 0.75), 1e-9);

  NodeState there{node(1, 0.75, 1.0), {guest(1, 20)}};
  const Decision back = decide(there, std::vector<NodeLoad>{node(0, 0.5, 0.0, 0.0)}, kNow, params());
  EXPECT_FALSE(back.move.has_value());
  EXPECT_EQ(back.explanations[0].verdict, Verdict::kBelowMargin);
}

// Three guests that look alike (100 s done, remaining unknown) on a fast
// node and an idle slow node: the later finishing time stays at 200 s (plus
// the 1 s stop), but two guests finish at 133 s instead of 200 s: the mean
// completion time drops from 200 s to (133.3 + 133.3 + 201) / 3 = 155.9 s.
TEST(Balancer, IdleCapacityIsUsedWhenTheLaterFinishingTimeIsUnchanged) {
  NodeState self{node(0, 1.5, 3.0), {guest(1, -1), guest(2, -1), guest(3, -1)}};
  for (auto& g : self.guests) g.cpu_used = 100.0;
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 0.5, 0.0, 0.0)}, kNow, params());
  ASSERT_TRUE(d.move.has_value());
  EXPECT_EQ(d.move->target, 1u);
  EXPECT_NEAR(d.move->expected_gain, 200.0 - (400.0 / 1.5 + 201.0) / 3.0, 1e-9);
}

TEST(Balancer, MeanCompletionDoesNotJustifyALaterFinish) {
  // Two guests on the fast node finish at 133 s; sending one to the slow
  // node would finish it at 201 s, though the other would finish at 67 s.
  NodeState self{node(0, 1.5, 2.0), {guest(1, 100), guest(2, 100)}};
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 0.5, 0.0, 0.0)}, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  for (const auto& e : d.explanations) EXPECT_EQ(e.verdict, Verdict::kGainTooSmall);
}

TEST(Balancer, GuestsWithACoreEachStayOnAMultiCoreNode) {
  // Three guests on four cores each run at full speed: moving one to an idle
  // node of the same speed gains nothing and costs its stopped time.
  NodeState self{node(0, 1.0, 3.0), {guest(1, 100), guest(2, 100), guest(3, 100)}};
  self.self.cores = 4;
  self.self.load = 3.0 / 4.0;
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 1.0, 0.0, 0.0)}, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  for (const auto& e : d.explanations) EXPECT_EQ(e.verdict, Verdict::kGainTooSmall);
}

TEST(Balancer, NoMoveWhenTheGainDoesNotPayTheCost) {
  NodeState self{node(0, 1.0, 3.0), {guest(1, 3, 500 * kMB), guest(2, 3, 500 * kMB),
                                      guest(3, 3, 500 * kMB)}};
  const std::vector<NodeLoad> view{node(1, 1.0, 0.0, 0.0)};
  const Decision d = decide(self, view, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  for (const auto& e : d.explanations) {
    EXPECT_EQ(e.verdict, Verdict::kGainTooSmall);
    EXPECT_DOUBLE_EQ(e.cost, 5.0);
    EXPECT_EQ(e.best_target, 1u);
  }
}

TEST(Balancer, AGuestStaysForTheMinimumResidency) {
  NodeState self{node(0, 1.0, 2.0), {guest(1, 100), guest(2, 100)}};
  for (auto& g : self.guests) g.arrived_at = kNow - 3.0;
  const std::vector<NodeLoad> view{node(1, 1.0, 0.0, 0.0)};
  const Decision d = decide(self, view, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  for (const auto& e : d.explanations) EXPECT_EQ(e.verdict, Verdict::kResidency);
}

// A guest moved from node 0 to node 1 is not sent back: neither while it is
// resident for less than min_residency, nor after (node 1's load then exceeds
// node 0's by less than the margin).
TEST(Balancer, AMovedGuestDoesNotPingPong) {
  NodeState a{node(0, 1.0, 3.0), {guest(1, 100), guest(2, 100), guest(3, 100)}};
  NodeLoad b = node(1, 1.0, 1.0, 100.0);
  const Decision first = decide(a, std::vector<NodeLoad>{b}, kNow, params());
  ASSERT_TRUE(first.move.has_value());
  const double arrival = kNow + first.move->cost;

  NodeState b_after{node(1, 1.0, 2.0), {guest(9, 100)}};
  GuestState moved = guest(first.move->guest, 100);
  moved.arrived_at = arrival;
  b_after.guests.push_back(moved);
  const std::vector<NodeLoad> a_after{node(0, 1.0, 2.0, 200.0)};
  for (double t : {arrival + 1.0, arrival + 60.0}) {
    const Decision back = decide(b_after, a_after, t, params());
    EXPECT_FALSE(back.move.has_value()) << "at " << t - arrival << " s after arrival";
  }
  EXPECT_EQ(explanation_of(decide(b_after, a_after, arrival + 1.0, params()), moved.id).verdict,
            Verdict::kResidency);
}

TEST(Balancer, UshersAGuestOutWhenShortOfMemory) {
  // Loads are equal, so only memory can justify a move. Node 0 has 20 MiB
  // free of 4 GiB (low-water: 5% = 205 MiB). Guest 2 alone clears the
  // shortage; node 1 has no room, node 2 has.
  NodeState self{node(0, 1.0, 2.0), {guest(1, 50, 100 * kMB), guest(2, 50, 300 * kMB)}};
  self.self.total_memory = 4 * kGiB;
  self.self.free_memory = 20ULL << 20;
  NodeLoad full = node(1, 1.0, 2.0, 100.0);
  full.total_memory = 4 * kGiB;
  full.free_memory = 300ULL << 20;
  NodeLoad roomy = node(2, 1.0, 2.0, 100.0);
  roomy.total_memory = 4 * kGiB;
  roomy.free_memory = 3 * kGiB;
  for (auto& g : self.guests) g.arrived_at = kNow - 1.0;  // ushering ignores residency

  const Decision d = decide(self, std::vector<NodeLoad>{full, roomy}, kNow, params());
  ASSERT_TRUE(d.move.has_value());
  EXPECT_EQ(d.move->verdict, Verdict::kUsher);
  EXPECT_EQ(d.move->guest, 2u);
  EXPECT_EQ(d.move->target, 2u);
  EXPECT_EQ(explanation_of(d, 1).verdict, Verdict::kOtherGuestMoves);
}

TEST(Balancer, UsheringNeedsATargetWithRoom) {
  NodeState self{node(0, 1.0, 1.0), {guest(1, 50, 300 * kMB)}};
  self.self.total_memory = 4 * kGiB;
  self.self.free_memory = 20ULL << 20;
  NodeLoad other = node(1, 1.0, 0.0, 0.0);
  other.total_memory = 4 * kGiB;
  other.free_memory = 250ULL << 20;
  const Decision d = decide(self, std::vector<NodeLoad>{other}, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  EXPECT_EQ(d.explanations[0].verdict, Verdict::kNoRoom);
}

TEST(Balancer, PinnedGuestsStayAndAnotherMovesInstead) {
  NodeState self{node(0, 1.0, 3.0), {guest(1, 200), guest(2, 50), guest(3, 50)}};
  self.guests[0].pinned = true;
  const std::vector<NodeLoad> view{node(1, 1.0, 0.0, 0.0)};
  const Decision d = decide(self, view, kNow, params());
  ASSERT_TRUE(d.move.has_value());
  EXPECT_NE(d.move->guest, 1u);
  EXPECT_EQ(explanation_of(d, 1).verdict, Verdict::kPinned);
}

TEST(Balancer, AGuestThatCannotMoveSaysWhy) {
  NodeState self{node(0, 1.0, 3.0), {guest(1, 100)}};
  self.guests[0].cant_move = "open socket";
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 1.0, 0.0, 0.0)}, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  EXPECT_EQ(d.explanations[0].verdict, Verdict::kCantMove);
  EXPECT_EQ(d.explanations[0].detail, "open socket");
}

TEST(Balancer, MigrateOffMovesNothing) {
  NodeState self{node(0, 1.0, 4.0), {guest(1, 100), guest(2, 100)}};
  self.self.total_memory = 4 * kGiB;  // short of memory too
  BalancerParams p = params();
  p.migrate = false;
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 2.0, 0.0, 0.0)}, kNow, p);
  EXPECT_FALSE(d.move.has_value());
  for (const auto& e : d.explanations) EXPECT_EQ(e.verdict, Verdict::kMigrateOff);
}

TEST(Balancer, StaleInformationIsNoTarget) {
  NodeState self{node(0, 1.0, 3.0), {guest(1, 100)}};
  NodeLoad idle = node(1, 1.0, 0.0, 0.0);
  idle.age = 30.0;
  const Decision d = decide(self, std::vector<NodeLoad>{idle}, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  EXPECT_EQ(d.explanations[0].verdict, Verdict::kNoTarget);
}

TEST(Balancer, UnknownRemainingWorkIsEstimatedFromWorkDone) {
  // Without hints the guest that has run longest is expected to run longest,
  // so it is the one sent to the fast node.
  NodeState self{node(0, 1.0, 2.0), {guest(1, -1), guest(2, -1)}};
  self.guests[0].cpu_used = 5.0;
  self.guests[1].cpu_used = 50.0;
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 2.0, 0.0, 0.0)}, kNow, params());
  ASSERT_TRUE(d.move.has_value());
  EXPECT_EQ(d.move->guest, 2u);
  EXPECT_DOUBLE_EQ(explanation_of(d, 2).remaining, 50.0);
}

TEST(Balancer, MovesTeachTheBandwidthTheCostIsCountedWith) {
  // 512 MiB stopped for 2 s: 268 MB/s, averaged with the 100 MB/s before.
  const double first = measured_bandwidth(100e6, 512ULL << 20, 2.0);
  EXPECT_DOUBLE_EQ(first, 0.5 * (100e6 + (512.0 * (1 << 20)) / 2.0));
  EXPECT_DOUBLE_EQ(measured_bandwidth(first, 512ULL << 20, 2.0), 0.5 * (first + (512.0 * (1 << 20)) / 2.0));
  // Small images (their fixed costs dominate) and nonsense times teach nothing.
  EXPECT_EQ(measured_bandwidth(first, 64 * 1024, 0.2), first);
  EXPECT_EQ(measured_bandwidth(first, kBandwidthSampleBytes - 1, 0.01), first);
  EXPECT_EQ(measured_bandwidth(first, 1ULL << 30, 0.0), first);
  EXPECT_EQ(measured_bandwidth(first, 1ULL << 30, -1.0), first);
  // After three such moves (247 MB/s) the cost of moving 1 GiB is 4.3 s.
  BalancerParams p = params();
  p.bandwidth = measured_bandwidth(measured_bandwidth(first, 512ULL << 20, 2.0), 512ULL << 20, 2.0);
  NodeState self{node(0, 1.0, 3.0), {guest(1, 100, 1ULL << 30), guest(2, 100, 1ULL << 30), guest(3, 100, 1ULL << 30)}};
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 1.0, 0.0, 0.0)}, kNow, p);
  ASSERT_TRUE(d.move.has_value());
  EXPECT_NEAR(d.move->cost, static_cast<double>(1ULL << 30) / p.bandwidth, 1e-9);
  EXPECT_GT(d.move->cost, 4.0);
  EXPECT_LT(d.move->cost, 4.5);
}

TEST(Balancer, ExplainNamesTheVerdictAndItsNumbers) {
  NodeState self{node(0, 1.0, 3.0), {guest(1, 10), guest(2, 40), guest(3, 20)}};
  const std::vector<NodeLoad> view{node(2, 2.0, 0.0, 0.0)};
  const Decision d = decide(self, view, kNow, params());
  const std::string line = explain(explanation_of(d, 2));
  EXPECT_THAT(line, HasSubstr("moving to balance load"));
  EXPECT_THAT(line, HasSubstr("load 3.00"));
  EXPECT_THAT(line, HasSubstr("best node 2 (load 0.00)"));
  EXPECT_THAT(line, HasSubstr("gain 40.0s, cost 1.0s"));
}

// The load counts what the balancer cannot move: other jobs, other users,
// children that are not guests. Node 0 runs one guest (60 s left) beside 3
// foreign busy tasks; node 1 is idle. The guest moves: node 0 keeps its 3
// foreign tasks, node 1 then holds 1 process. Node 1 does not send it back:
// the margin rule holds whatever share of a load is foreign.
TEST(Balancer, ForeignLoadSendsAGuestOutOnceAndNotBack) {
  NodeState crowded{node(0, 1.0, 4.0), {guest(1, 60)}};
  const Decision out = decide(crowded, std::vector<NodeLoad>{node(1, 1.0, 0.0, 0.0)}, kNow, params());
  ASSERT_TRUE(out.move.has_value());
  EXPECT_EQ(out.move->target, 1u);

  NodeState there{node(1, 1.0, 1.0), {guest(1, 60)}};
  there.guests[0].arrived_at = 0.0;  // long enough ago: only the load decides
  const Decision back = decide(there, std::vector<NodeLoad>{node(0, 1.0, 3.0, 0.0)}, kNow, params());
  EXPECT_FALSE(back.move.has_value());
  EXPECT_EQ(back.explanations[0].verdict, Verdict::kBelowMargin);
}

// Both nodes carry foreign load that differs by less than one guest's worth
// times the margin: nothing moves.
TEST(Balancer, ForeignLoadOnBothNodesBelowTheMarginMovesNothing) {
  NodeState self{node(0, 1.0, 5.0), {guest(1, 60)}};
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 1.0, 4.0)}, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  EXPECT_EQ(d.explanations[0].verdict, Verdict::kBelowMargin);
}

// A guest that waits (a shell waiting for its busy children, which are not
// guests) is not moved for load: the children's load would stay here.
TEST(Balancer, AWaitingGuestDoesNotMoveForLoad) {
  NodeState self{node(0, 1.0, 4.0), {guest(1, 60)}};
  self.guests[0].runnable = false;
  const Decision d = decide(self, std::vector<NodeLoad>{node(1, 1.0, 0.0, 0.0)}, kNow, params());
  EXPECT_FALSE(d.move.has_value());
  EXPECT_EQ(d.explanations[0].verdict, Verdict::kWaiting);
  EXPECT_THAT(explain(d.explanations[0]), HasSubstr("waiting, not running"));
}

// Two nodes that heard of an idle one in the same round both send it a
// guest: it takes the first and declines the second, which stays.
TEST(Balancer, ATargetDeclinesASecondMoveOnItsWay) {
  EXPECT_EQ(decline_move(node(0, 1.0, 1.0), 0, node(2, 1.0, 3.0)), "");
  EXPECT_THAT(decline_move(node(0, 1.0, 1.0), 1, node(3, 1.0, 3.0)), HasSubstr("another move is on its way"));
}

// A node whose load was heard of before guests arrived declines one more
// that would leave it busier than the source; one that evens the two out,
// or fills a fast idle node from a slow one, is taken.
TEST(Balancer, ATargetDeclinesAMoveThatLeavesItBusierThanTheSource) {
  EXPECT_THAT(decline_move(node(0, 1.0, 3.0), 0, node(1, 1.0, 3.0)),
              HasSubstr("more loaded than the source (4.00 against 3.00)"));
  EXPECT_EQ(decline_move(node(0, 1.0, 2.0), 0, node(1, 1.0, 4.0)), "");
  EXPECT_EQ(decline_move(node(0, 2.0, 0.0), 0, node(1, 0.5, 1.0)), "");
  EXPECT_EQ(decline_move(node(0, 1.0, 5.0), 0, std::nullopt), "");  // the source unknown: not checked
}

TEST(Balancer, BalancerMoveIdsAreTellableFromMosixrunsOwn) {
  EXPECT_TRUE(is_balancer_move(balancer_move_id(0, 1)));
  EXPECT_TRUE(is_balancer_move(balancer_move_id(41, 7)));
  EXPECT_FALSE(is_balancer_move(1));
  EXPECT_FALSE(is_balancer_move(123456));
}

}  // namespace
}  // namespace mosix
