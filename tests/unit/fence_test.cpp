#include "runtime/core/fence.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

// Ranks 0 1 on node 0, rank 2 on node 2, rank 3 on node 1.
const std::vector<std::uint32_t> kMap = {0, 0, 2, 1};

FenceContribution part(std::uint64_t id, std::vector<std::int32_t> ranks, Bytes data) {
  return FenceContribution{id, std::move(ranks), std::move(data)};
}

TEST(FenceCollectorTest, WholeJobReleasesOnceEveryNodeContributedWithDataInNodeOrder) {
  FenceCollector c;
  EXPECT_FALSE(c.contribute(2, part(0, {}, {2, 2}), kMap));
  EXPECT_FALSE(c.contribute(0, part(0, {}, {0}), kMap));
  auto r = c.contribute(1, part(0, {}, {1, 1, 1}), kMap);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->nodes, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(r->message.status, 0);
  EXPECT_EQ(r->message.fence_id, 0u);
  EXPECT_EQ(r->message.data, (Bytes{0, 1, 1, 1, 2, 2}));
  EXPECT_EQ(c.pending(), 0u);
}

TEST(FenceCollectorTest, ASubsetWaitsOnlyForTheNodesOfItsRanks) {
  FenceCollector c;
  EXPECT_FALSE(c.contribute(0, part(0, {1, 3}, {7}), kMap));
  auto r = c.contribute(1, part(0, {1, 3}, {}), kMap);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->nodes, (std::vector<int>{0, 1}));
  EXPECT_EQ(r->message.ranks, (std::vector<std::int32_t>{1, 3}));
  EXPECT_EQ(r->message.data, (Bytes{7}));
}

TEST(FenceCollectorTest, FencesInARowAndOverOtherSetsDoNotMix) {
  FenceCollector c;
  EXPECT_FALSE(c.contribute(0, part(0, {}, {1}), kMap));
  EXPECT_FALSE(c.contribute(0, part(1, {}, {2}), kMap));      // the node's next fence, early
  EXPECT_FALSE(c.contribute(0, part(0, {0, 2}, {3}), kMap));  // another set
  EXPECT_FALSE(c.contribute(1, part(0, {}, {}), kMap));
  auto first = c.contribute(2, part(0, {}, {}), kMap);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message.data, (Bytes{1}));
  auto subset = c.contribute(2, part(0, {0, 2}, {4}), kMap);
  ASSERT_TRUE(subset);
  EXPECT_EQ(subset->message.data, (Bytes{3, 4}));
  EXPECT_EQ(c.pending(), 1u);
}

TEST(FenceCollectorTest, ALostNodeFailsTheFencesWaitingForIt) {
  FenceCollector c;
  EXPECT_FALSE(c.contribute(0, part(0, {}, {1}), kMap));
  EXPECT_FALSE(c.contribute(0, part(0, {0, 3}, {1}), kMap));  // nodes 0 and 1: not waiting for 2
  auto failed = c.node_lost(2);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].message.status, kFenceFailed);
  EXPECT_EQ(failed[0].nodes, (std::vector<int>{0, 1}));
  EXPECT_TRUE(failed[0].message.ranks.empty());
  EXPECT_EQ(c.pending(), 1u);
}

TEST(FenceCollectorTest, ASetOnOneNodeIsReleasedAtOnce) {
  FenceCollector c;
  auto r = c.contribute(0, part(4, {0, 1}, {5}), kMap);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->nodes, (std::vector<int>{0}));
  EXPECT_EQ(r->message.data, (Bytes{5}));
}

TEST(FenceCollectorTest, ARankTheJobDoesNotHaveFailsTheFence) {
  FenceCollector c;
  auto r = c.contribute(0, part(0, {0, 9}, {1}), kMap);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message.status, kFenceFailed);
  EXPECT_EQ(r->nodes, (std::vector<int>{0}));
  EXPECT_EQ(c.pending(), 0u);
}

}  // namespace
}  // namespace mosix
