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
  EXPECT_EQ(catch_up_cpu_us(0), 100'000u);
  EXPECT_EQ(catch_up_cpu_us(800), 100'800u);
  EXPECT_EQ(catch_up_cpu_us(500'000), 1'000'000u);
  EXPECT_EQ(catch_up_cpu_us(60'000'000), 61'000'000u);
}

TEST(ExitRule, ACopyCatchesUpByCpuTime) {
  EXPECT_FALSE(caught_up(900, {899, true}, 0));
  EXPECT_TRUE(caught_up(900, {900, true}, 0));
}

TEST(ExitRule, ACopyThatWaitsLongEnoughHasCaughtUp) {
  // Blocked (sleeping on its failed peer, stopped): quiet looks add up.
  std::optional<CopyProgress> before;
  int quiet = 0;
  for (int look = 0; look <= kQuietLooks; ++look) {
    const CopyProgress now{10, false};
    EXPECT_FALSE(caught_up(900, now, quiet)) << look;
    quiet = quiet_looks(now, before, quiet);
    before = now;
  }
  EXPECT_TRUE(caught_up(900, {10, false}, quiet));
}

TEST(ExitRule, AnyWorkStartsTheQuietLooksAgain) {
  EXPECT_EQ(quiet_looks({10, false}, CopyProgress{10, false}, 7), 8);
  EXPECT_EQ(quiet_looks({10, false}, std::nullopt, 7), 0);
  EXPECT_EQ(quiet_looks({10, false}, CopyProgress{10, true}, 7), 0);  // it was running
  EXPECT_EQ(quiet_looks({20, false}, CopyProgress{10, false}, 7), 0);  // it ran between the looks
  EXPECT_EQ(quiet_looks({10, true}, CopyProgress{10, true}, 7), 0);    // runnable however long
}

}  // namespace
}  // namespace mosix
