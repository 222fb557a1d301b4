// Periodic checkpoints: the scheduler's decisions as pure functions, and its
// rounds over a guest table of real children, with a checkpointer that waits
// for the test instead of a real agent.
#include "runtime/daemon/checkpoint_scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <set>

#include "tests/unit/daemon_test_node.h"

namespace mosix {
namespace {

using ::testing::ElementsAre;
using test::spawn_of;
using test::TestNode;

TEST(CheckpointSchedule, OnlyWithAnIntervalAndADirectory) {
  NodeDaemonOptions o;
  EXPECT_FALSE(periodic_checkpoints_on(o));
  o.ckpt_interval = 5;
  EXPECT_FALSE(periodic_checkpoints_on(o));
  o.ckpt_dir = "/ckpt";
  EXPECT_TRUE(periodic_checkpoints_on(o));
  o.ckpt_interval = 0;
  EXPECT_FALSE(periodic_checkpoints_on(o));
  o.ckpt_interval = -1;
  EXPECT_FALSE(periodic_checkpoints_on(o));
}

TEST(CheckpointSchedule, ImagesAreNamedByRank) {
  EXPECT_EQ(rank_image_path("/ckpt", 0), "/ckpt/rank.0.img");
  EXPECT_EQ(rank_image_path("/a/b", 12), "/a/b/rank.12.img");
}

TEST(CheckpointSchedule, ARoundTakesLiveRunningGuestsThatStayPut) {
  LocalGuest g;
  EXPECT_TRUE(checkpoint_this_round(g));
  g.migrating = true;
  EXPECT_FALSE(checkpoint_this_round(g));
  g.migrating = false;
  g.running = false;
  EXPECT_FALSE(checkpoint_this_round(g));
  g.running = true;
  g.phase = GuestPhase::kIncoming;
  EXPECT_FALSE(checkpoint_this_round(g));
  g.phase = GuestPhase::kGone;
  EXPECT_FALSE(checkpoint_this_round(g));
}

TEST(CheckpointSchedule, ARoundStartsUnlessTheLastStillRuns) {
  RoundPlan idle = plan_round(2.5, false);
  EXPECT_TRUE(idle.start);
  EXPECT_EQ(idle.next, std::chrono::milliseconds(2500));
  RoundPlan busy = plan_round(2.5, true);
  EXPECT_FALSE(busy.start);  // skipped, not doubled
  EXPECT_EQ(busy.next, std::chrono::milliseconds(2500));  // and due again one interval on
  EXPECT_EQ(plan_round(0.001, false).next, std::chrono::microseconds(1000));
}

// A checkpointer that records what it was asked and holds the round until
// the test opens the gate.
struct GatedCheckpointer {
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::mutex mutex;
  std::vector<CheckpointTarget> asked;
  std::set<int> failing;

  Checkpointer fn() {
    return [this](const CheckpointTarget& t) -> Expected<std::uint64_t> {
      open.wait();
      std::lock_guard<std::mutex> lock(mutex);
      asked.push_back(t);
      if (failing.count(t.rank)) return make_error("refused: fd 3 is a socket");
      return std::uint64_t{4096};
    };
  }
};

NodeDaemonOptions with_checkpoints() {
  NodeDaemonOptions o;
  o.ckpt_interval = 3600;
  o.ckpt_dir = "/ckpt";
  return o;
}

TEST(CheckpointScheduler, ARoundCheckpointsEachGuestHereThatStaysPut) {
  TestNode node(with_checkpoints());
  GuestTable table(node.context());
  for (int rank : {0, 1, 2}) table.spawn(spawn_of(rank, {"sleep", "100000"}));  // killed at the end
  table.find(2)->migrating = true;
  GatedCheckpointer ckpt;
  ckpt.gate.set_value();
  CheckpointScheduler scheduler(node.context(), table, ckpt.fn());
  ASSERT_TRUE(scheduler.start_round());
  scheduler.join();
  EXPECT_FALSE(scheduler.round_running());
  std::vector<int> ranks;
  for (const CheckpointTarget& t : ckpt.asked) {
    ranks.push_back(t.rank);
    EXPECT_EQ(t.pid, table.find(t.rank)->proc.pid);
    EXPECT_EQ(t.image, rank_image_path("/ckpt", t.rank));
  }
  EXPECT_THAT(ranks, ElementsAre(0, 1));
}

TEST(CheckpointScheduler, ARoundStillRunningIsNotDoubled) {
  TestNode node(with_checkpoints());
  GuestTable table(node.context());
  table.spawn(spawn_of(0, {"sleep", "100000"}));
  GatedCheckpointer ckpt;
  CheckpointScheduler scheduler(node.context(), table, ckpt.fn());
  ASSERT_TRUE(scheduler.start_round());
  EXPECT_TRUE(scheduler.round_running());
  EXPECT_FALSE(scheduler.start_round());
  ckpt.gate.set_value();
  scheduler.join();
  EXPECT_FALSE(scheduler.round_running());
  EXPECT_EQ(ckpt.asked.size(), 1u);
  ASSERT_TRUE(scheduler.start_round());  // the next one runs
  scheduler.join();
  EXPECT_EQ(ckpt.asked.size(), 2u);
}

TEST(CheckpointScheduler, AFailedCheckpointDoesNotEndTheRound) {
  TestNode node(with_checkpoints());
  GuestTable table(node.context());
  for (int rank : {0, 1}) table.spawn(spawn_of(rank, {"sleep", "100000"}));
  GatedCheckpointer ckpt;
  ckpt.failing = {0};
  ckpt.gate.set_value();
  CheckpointScheduler scheduler(node.context(), table, ckpt.fn());
  ASSERT_TRUE(scheduler.start_round());
  scheduler.join();
  ASSERT_EQ(ckpt.asked.size(), 2u);
  EXPECT_EQ(ckpt.asked[1].rank, 1);
}

TEST(CheckpointScheduler, NoGuestsNoCheckpoints) {
  TestNode node(with_checkpoints());
  GuestTable table(node.context());
  GatedCheckpointer ckpt;
  ckpt.gate.set_value();
  CheckpointScheduler scheduler(node.context(), table, ckpt.fn());
  ASSERT_TRUE(scheduler.start_round());
  scheduler.join();
  EXPECT_TRUE(ckpt.asked.empty());
}

}  // namespace
}  // namespace mosix
