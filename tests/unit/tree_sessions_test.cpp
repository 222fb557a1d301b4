#include "runtime/ckpt/tree_sessions.h"

#include <gtest/gtest.h>

namespace mosix::ckpt {
namespace {

// A root in session 7 (led by its parent), a child that called setsid(), and
// the child's child forked before that setsid(): it keeps session 7.
std::vector<TreeProc> early_grandchild(pid_t outer) {
  return {{10, -1, outer, outer}, {11, 0, 11, 11}, {12, 1, outer, outer}};
}

TEST(TreeSessions, ChildKeepsTheSessionItsParentHadBeforeSetsid) {
  std::vector<char> early;
  EXPECT_EQ(plan_tree_sessions(early_grandchild(7), &early), "");
  EXPECT_EQ(early, (std::vector<char>{0, 0, 1}));
}

// getsid() and /proc say 0 for a session led from outside the pid namespace
// (CI's container): 0 is a session like any other, not "unknown".
TEST(TreeSessions, SessionZeroFromOutsideThePidNamespace) {
  std::vector<char> early;
  EXPECT_EQ(plan_tree_sessions(early_grandchild(0), &early), "");
  EXPECT_EQ(early, (std::vector<char>{0, 0, 1}));
  std::vector<TreeProc> flat{{10, -1, 0, 0}, {11, 0, 0, 0}, {12, 0, 0, 12}};
  EXPECT_EQ(plan_tree_sessions(flat, &early), "");
  EXPECT_EQ(early, (std::vector<char>{0, 0, 0}));
}

TEST(TreeSessions, RootThatLedItsSessionGivesNoEarlySession) {
  // The root called setsid(): what it had before is not known, so a child in
  // another session cannot be given back.
  std::vector<TreeProc> t{{10, -1, 10, 10}, {11, 0, 0, 0}};
  std::vector<char> early;

  EXPECT_NE(plan_tree_sessions(t, &early).find("process 11 (child of 10) is in session 0"), std::string::npos);
}

TEST(TreeSessions, TwoChildrenNeedingDifferentOuterSessionsAreRefused) {
  std::vector<TreeProc> t{{10, -1, 7, 7}, {11, 0, 11, 11}, {12, 1, 7, 7}, {13, 1, 0, 0}};
  std::vector<char> early;
  EXPECT_NE(plan_tree_sessions(t, &early).find("cannot both give back"), std::string::npos);
}

TEST(TreeSessions, GroupNeitherOwnNorInheritedIsRefused) {
  std::vector<TreeProc> t{{10, -1, 7, 7}, {11, 0, 7, 10}};
  std::vector<char> early;
  EXPECT_NE(plan_tree_sessions(t, &early).find("is in process group 10"), std::string::npos);
}

}  // namespace
}  // namespace mosix::ckpt
