#include "runtime/core/guest_groups.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

GroupRequest req(GroupOp op, int arg = 0, std::string name = "g") { return GroupRequest{op, std::move(name), arg}; }

int only(const std::vector<GroupAnswer>& answers, int rank) {
  EXPECT_EQ(answers.size(), 1u);
  if (answers.size() != 1) return 12345;
  EXPECT_EQ(answers[0].to_rank, rank);
  return answers[0].result;
}

TEST(GuestGroupsTest, RequestsRoundTripTheirBytes) {
  GroupRequest r{GroupOp::kBarrier, "matrix", -1};
  auto back = decode_group_request(encode_group_request(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->op, GroupOp::kBarrier);
  EXPECT_EQ(back->arg, -1);
  EXPECT_EQ(back->name, "matrix");
  auto bytes = encode_group_request(r);
  bytes.pop_back();
  EXPECT_FALSE(decode_group_request(bytes));
  bytes[0] = 99;
  EXPECT_FALSE(decode_group_request(bytes));
}

TEST(GuestGroupsTest, InstancesAreTheLowestFreeNumber) {
  GuestGroups g;
  EXPECT_EQ(only(g.request(5, req(GroupOp::kJoin)), 5), 0);
  EXPECT_EQ(only(g.request(6, req(GroupOp::kJoin)), 6), 1);
  EXPECT_EQ(only(g.request(7, req(GroupOp::kJoin)), 7), 2);
  EXPECT_EQ(only(g.request(6, req(GroupOp::kJoin)), 6), kGroupDup);
  EXPECT_EQ(only(g.request(6, req(GroupOp::kLeave)), 6), 0);
  EXPECT_EQ(only(g.request(8, req(GroupOp::kJoin)), 8), 1);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kSize)), 1), 3);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kInstOf, 7)), 1), 2);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kRankOf, 1)), 1), 8);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kRankOf, 9)), 1), kGroupNoInst);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kInstOf, 6)), 1), kGroupNotMember);
}

TEST(GuestGroupsTest, BadNamesAndGroupsGetPvmsCodes) {
  GuestGroups g;
  EXPECT_EQ(only(g.request(1, req(GroupOp::kJoin, 0, "")), 1), kGroupNull);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kSize, 0, "none")), 1), kGroupNone);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kLeave, 0, "none")), 1), kGroupNone);
  g.request(1, req(GroupOp::kJoin));
  EXPECT_EQ(only(g.request(2, req(GroupOp::kLeave)), 2), kGroupNotMember);
  EXPECT_EQ(only(g.request(2, req(GroupOp::kBarrier, -1)), 2), kGroupNotMember);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kBarrier, 0)), 1), kGroupBadParam);
}

TEST(GuestGroupsTest, ABarrierReleasesEveryWaiterAtItsCount) {
  GuestGroups g;
  for (int r : {1, 2, 3}) g.request(r, req(GroupOp::kJoin));
  EXPECT_TRUE(g.request(1, req(GroupOp::kBarrier, -1)).empty());
  EXPECT_TRUE(g.request(3, req(GroupOp::kBarrier, -1)).empty());
  auto released = g.request(2, req(GroupOp::kBarrier, -1));
  ASSERT_EQ(released.size(), 3u);
  for (const auto& a : released) EXPECT_EQ(a.result, 0);
  // The next barrier starts empty, with its own count.
  EXPECT_TRUE(g.request(1, req(GroupOp::kBarrier, 2)).empty());
  EXPECT_EQ(g.request(2, req(GroupOp::kBarrier, 2)).size(), 2u);
}

TEST(GuestGroupsTest, ARankThatEndsLeavesAndMayReleaseABarrier) {
  GuestGroups g;
  for (int r : {1, 2, 3}) g.request(r, req(GroupOp::kJoin));
  EXPECT_TRUE(g.request(1, req(GroupOp::kBarrier, -1)).empty());
  EXPECT_TRUE(g.request(2, req(GroupOp::kBarrier, -1)).empty());
  auto released = g.rank_ended(3);
  EXPECT_EQ(released.size(), 2u);
  EXPECT_EQ(only(g.request(1, req(GroupOp::kSize)), 1), 2);
}

TEST(GuestGroupsTest, AFreezeWaitsForItsSize) {
  GuestGroups g;
  g.request(1, req(GroupOp::kJoin));
  EXPECT_TRUE(g.request(1, req(GroupOp::kFreeze, 3)).empty());
  auto joined = g.request(2, req(GroupOp::kJoin));
  EXPECT_EQ(joined.size(), 1u);  // only the join's answer
  joined = g.request(3, req(GroupOp::kJoin));
  ASSERT_EQ(joined.size(), 2u);
  EXPECT_EQ(joined[1].to_rank, 1);
  EXPECT_EQ(only(g.request(2, req(GroupOp::kFreeze, -1)), 2), 0);
}

TEST(GuestGroupsTest, MembersAreListedByInstanceWithHoles) {
  GuestGroups g;
  for (int r : {4, 5, 6}) g.request(r, req(GroupOp::kJoin));
  g.request(5, req(GroupOp::kLeave));
  auto m = g.request(9, req(GroupOp::kMembers));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].result, 2);
  EXPECT_EQ(m[0].ranks, (std::vector<std::int32_t>{4, -1, 6}));
}

}  // namespace
}  // namespace mosix
