#include "runtime/core/run_queue.h"

#include <gtest/gtest.h>

#include "runtime/core/gossip.h"

namespace mosix {
namespace {

TEST(LoadSample, RunnableTasksPerReferenceCpu) {
  // A vnode capped at half a CPU: one core of speed 0.5.
  EXPECT_DOUBLE_EQ(load_sample(1, 0.5, 1), 2.0);
  EXPECT_DOUBLE_EQ(load_sample(4, 0.5, 1), 8.0);
  // A real node of 2 cores of speed 1: two tasks fill it.
  EXPECT_DOUBLE_EQ(load_sample(2, 1.0, 2), 1.0);
  EXPECT_DOUBLE_EQ(load_sample(0, 1.0, 2), 0.0);
}

TEST(LoadSample, NoCapacityIsNoLoad) {
  EXPECT_DOUBLE_EQ(load_sample(3, 0.0, 1), 0.0);
  EXPECT_DOUBLE_EQ(load_sample(3, 1.0, 0), 0.0);
}

TEST(MachineRunnable, TheReaderIsNotCounted) {
  EXPECT_EQ(machine_runnable(5), 4);
  EXPECT_EQ(machine_runnable(1), 0);
  EXPECT_EQ(machine_runnable(0), 0);
}

TEST(CountsAsRunnable, OnlyStateR) {
  EXPECT_TRUE(counts_as_runnable('R'));
  for (char s : {'S', 'D', 'T', 't', 'Z', 'X', 'I', '?'}) EXPECT_FALSE(counts_as_runnable(s)) << s;
}

TEST(ParseStatBusyTicks, SumsTheBusyFields) {
  const char* text =
      "cpu  100 20 30 4000 50 6 7 8 9 10\n"
      "cpu0 50 10 15 2000 25 3 3 4 0 0\n"
      "intr 12345\n"
      "procs_running 3\n";
  auto busy = parse_stat_busy_ticks(text);
  ASSERT_TRUE(busy);
  EXPECT_EQ(*busy, 100u + 20 + 30 + 6 + 7 + 8);
}

TEST(ParseStatBusyTicks, RefusesMissingOrShortLines) {
  EXPECT_FALSE(parse_stat_busy_ticks(""));
  EXPECT_FALSE(parse_stat_busy_ticks("cpu0 1 2 3 4 5 6 7 8\n"));
  EXPECT_FALSE(parse_stat_busy_ticks("cpu  1 2 3\n"));
  EXPECT_FALSE(parse_stat_busy_ticks("cpu  1 2 x 4 5 6 7 8\n"));
}

TEST(ParsePidList, OneIdALine) {
  auto pids = parse_pid_list("12\n345\n\n6\n");
  ASSERT_TRUE(pids);
  EXPECT_EQ(*pids, (std::vector<int>{12, 345, 6}));
  auto empty = parse_pid_list("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(ParsePidList, RefusesGarbage) {
  EXPECT_FALSE(parse_pid_list("12\nabc\n"));
  EXPECT_FALSE(parse_pid_list("0\n"));
  EXPECT_FALSE(parse_pid_list("-3\n"));
  EXPECT_FALSE(parse_pid_list("12 13\n"));
}

TEST(ParseSchedstat, RunningPlusWaitingInSeconds) {
  ASSERT_TRUE(parse_schedstat_runnable_seconds("1500000000 500000000 42\n").has_value());
  EXPECT_DOUBLE_EQ(*parse_schedstat_runnable_seconds("1500000000 500000000 42\n"), 2.0);
  EXPECT_DOUBLE_EQ(*parse_schedstat_runnable_seconds("0 1068175 1"), 0.001068175);
  EXPECT_FALSE(parse_schedstat_runnable_seconds("").has_value());
  EXPECT_FALSE(parse_schedstat_runnable_seconds("12 x 3").has_value());
}

TEST(CpuMeter, FirstSampleIsTheBaseline) {
  CpuMeter m;
  EXPECT_DOUBLE_EQ(m.add({{10, 5.0}, {11, 7.0}}), 0.0);
}

TEST(CpuMeter, GrowthOfProcessesSeenTwice) {
  CpuMeter m;
  m.add({{10, 5.0}, {11, 7.0}});
  EXPECT_DOUBLE_EQ(m.add({{10, 5.5}, {11, 7.25}}), 0.75);
}

TEST(CpuMeter, NewProcessCountsWhole_GoneProcessIsDropped) {
  CpuMeter m;
  m.add({{10, 5.0}, {11, 7.0}});
  // 11 ended, 12 was born (a child of a guest) and used 0.3.
  EXPECT_DOUBLE_EQ(m.add({{10, 5.5}, {12, 0.3}}), 0.8);
  EXPECT_DOUBLE_EQ(m.add({{10, 5.5}, {12, 0.4}}), 0.1);
}

TEST(CpuMeter, ReusedPidWithLessTimeIsNotNegative) {
  CpuMeter m;
  m.add({{10, 5.0}});
  EXPECT_DOUBLE_EQ(m.add({{10, 0.2}}), 0.0);
}

TEST(CounterDelta, GrowthOnly) {
  CounterDelta c;
  EXPECT_DOUBLE_EQ(c.add(100), 0.0);
  EXPECT_DOUBLE_EQ(c.add(150), 50.0);
  EXPECT_DOUBLE_EQ(c.add(140), 0.0);
  EXPECT_DOUBLE_EQ(c.add(145), 5.0);
}

// The smoothing the daemon applies to these samples (gossip.h): four busy
// children appearing on a vnode of half a CPU show at once in the exported
// load, and leave it slowly; the node's own estimate rises slowly.
TEST(LoadSmoothing, ExportedRisesAtOnceAndDecaysSlowly) {
  EstimatorParams est;
  const double busy = load_sample(4, 0.5, 1);
  double exported = exported_load_estimate(0.0, busy, 0.5, est.export_decay);
  double local = local_load_estimate(0.0, busy, 0.5, est.local_rise);
  EXPECT_DOUBLE_EQ(exported, 8.0);
  EXPECT_GT(local, 0.0);
  EXPECT_LT(local, 8.0);
  exported = exported_load_estimate(exported, 0.0, 0.5, est.export_decay);
  local = local_load_estimate(local, 0.0, 0.5, est.local_rise);
  EXPECT_GT(exported, 6.0);
  EXPECT_DOUBLE_EQ(local, 0.0);
}

}  // namespace
}  // namespace mosix
