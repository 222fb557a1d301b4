#include "runtime/core/exit_rule.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

GuestEnd exited(int rank, int code) { return GuestEnd{rank, false, code, false}; }
GuestEnd killed(int rank, int sig, bool by_runtime = false) {
  return GuestEnd{rank, true, sig, by_runtime};
}

TEST(ExitRule, AllSucceed) {
  EXPECT_EQ(job_exit_status({exited(0, 0), exited(1, 0)}), 0);
  EXPECT_EQ(job_exit_status({}), 0);
}

TEST(ExitRule, LowestRankedFailureWins) {
  EXPECT_EQ(job_exit_status({exited(2, 5), exited(0, 3), exited(1, 4)}), 3);
  EXPECT_EQ(job_exit_status({exited(0, 0), exited(1, 7), exited(2, 0)}), 7);
}

TEST(ExitRule, SignalGives128PlusSignal) {
  EXPECT_EQ(job_exit_status({exited(0, 0), killed(1, 11)}), 139);
  EXPECT_EQ(shell_status(killed(0, 9)), 137);
}

TEST(ExitRule, CopiesEndedByTheRuntimeDoNotHideTheRealFailure) {
  // Rank 2 failed; ranks 0 and 1 were then terminated by us.
  EXPECT_EQ(job_exit_status({killed(0, 15, true), killed(1, 15, true), exited(2, 5)}), 5);
  // A copy that handled our SIGTERM and exited 1 is not a failure either.
  EXPECT_EQ(job_exit_status({GuestEnd{0, false, 1, true}, exited(1, 4)}), 4);
}

TEST(ExitRule, OnlyRuntimeEndsStillReportAFailure) {
  EXPECT_EQ(job_exit_status({killed(0, 15, true), exited(1, 0)}), 143);
}

TEST(ExitRule, Describe) {
  EXPECT_EQ(describe_end(exited(0, 3)), "exited with status 3");
  EXPECT_EQ(describe_end(killed(0, 11)), "was killed by signal 11 (Segmentation fault)");
}

TEST(ExitRule, TheCatchUpTargetHasAMargin) {
  EXPECT_EQ(catch_up_cpu_us(0), 10'000u);
  EXPECT_EQ(catch_up_cpu_us(800), 10'800u);
  EXPECT_EQ(catch_up_cpu_us(50'000), 100'000u);
  EXPECT_EQ(catch_up_cpu_us(60'000'000), 61'000'000u);
}

TEST(ExitRule, ACopyCatchesUpByCpuTime) {
  EXPECT_FALSE(caught_up(900, {899, true}, std::nullopt));
  EXPECT_TRUE(caught_up(900, {900, true}, std::nullopt));
  EXPECT_TRUE(caught_up(900, {1500, false}, CopyProgress{1400, true}));
}

TEST(ExitRule, ACopyThatWaitsHasCaughtUp) {
  // Blocked (sleeping on its failed peer, stopped): seen twice, no CPU used between.
  EXPECT_TRUE(caught_up(900, {10, false}, CopyProgress{10, false}));
  // Once is not enough: it may be between two slices of work.
  EXPECT_FALSE(caught_up(900, {10, false}, std::nullopt));
  EXPECT_FALSE(caught_up(900, {10, false}, CopyProgress{10, true}));
  // It ran between the two looks.
  EXPECT_FALSE(caught_up(900, {20, false}, CopyProgress{10, false}));
  // Runnable: it is on its way, however long it waits for a CPU.
  EXPECT_FALSE(caught_up(900, {10, true}, CopyProgress{10, true}));
}

}  // namespace
}  // namespace mosix
