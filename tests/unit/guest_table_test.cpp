// The guest table over a one-rank LocalTransport: real children started,
// fed, signalled and reaped, and what the table reports home.
#include "runtime/daemon/guest_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/unit/daemon_test_node.h"

namespace mosix {
namespace {

using test::output_of;
using test::spawn_of;
using test::TestNode;

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

// One guest started on a table of its own, then signalled: what its end
// report says.
class GuestSignals : public ::testing::Test {
 protected:
  void SetUp() override { table.start(); }
  void start(const std::vector<std::string>& argv, std::uint32_t flags = 0) {
    table.spawn(spawn_of(0, argv, flags));
    node.run_until_a<GuestStarted>();
  }
  GuestExited end_report() { return std::get<GuestExited>(node.run_until_a<GuestExited>().back()); }

  TestNode node;
  GuestTable table{node.context()};
};

TEST(GuestTable, StartsAndReapsAChildAndReportsItsExit) {
  TestNode node;
  GuestTable table(node.context());
  table.start();
  table.spawn(spawn_of(0, {"true"}));
  auto got = node.run_until_a<GuestExited>();
  ASSERT_GE(got.size(), 2u);
  const auto* started = std::get_if<GuestStarted>(&got.front());
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->rank, 0);
  EXPECT_GT(started->pid, 0);
  EXPECT_EQ(started->node, 0u);
  const auto& exited = std::get<GuestExited>(got.back());
  EXPECT_EQ(exited.rank, 0);
  EXPECT_EQ(exited.exit_code, 0);
  EXPECT_EQ(exited.term_signal, 0);
  EXPECT_FALSE(exited.runtime_signaled);
  ASSERT_NE(table.find(0), nullptr);
  EXPECT_FALSE(table.find(0)->running);
  EXPECT_EQ(table.find(0)->proc.pid, started->pid);
}

TEST(GuestTable, ReportsTheExitCode) {
  TestNode node;
  GuestTable table(node.context());
  table.start();
  table.spawn(spawn_of(3, {"sh", "-c", "exit 7"}));
  auto got = node.run_until_a<GuestExited>();
  const auto& exited = std::get<GuestExited>(got.back());
  EXPECT_EQ(exited.rank, 3);
  EXPECT_EQ(exited.exit_code, 7);
}

TEST(GuestTable, OutputGoesHomeBeforeTheExit) {
  TestNode node;
  GuestTable table(node.context());
  table.start();
  table.spawn(spawn_of(1, {"sh", "-c", "echo out; echo err >&2; exit 2"}));
  auto got = node.run_until_a<GuestExited>();
  EXPECT_EQ(output_of(got, 1, OutputStream::kStdout), "out\n");
  EXPECT_EQ(output_of(got, 1, OutputStream::kStderr), "err\n");
  EXPECT_EQ(std::get<GuestExited>(got.back()).exit_code, 2);
}

TEST(GuestTable, AProgramThatIsNotThereEndsWith127) {
  TestNode node;
  GuestTable table(node.context());
  table.start();
  table.spawn(spawn_of(0, {"/nonexistent/program"}));
  auto got = node.run_until_a<GuestExited>();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(std::get<GuestExited>(got[0]).exit_code, 127);
  EXPECT_EQ(table.find(0), nullptr);
}

TEST(GuestTable, StdinReachesTheGuestAndItsEndClosesIt) {
  TestNode node;
  GuestTable table(node.context());
  table.start();
  table.spawn(spawn_of(0, {"cat"}, kSpawnStdin));
  EXPECT_TRUE(table.deliver_stdin(GuestStdin{0, bytes_of("hello "), false}));
  EXPECT_TRUE(table.deliver_stdin(GuestStdin{0, bytes_of("world\n"), true}));
  auto got = node.run_until_a<GuestExited>();
  EXPECT_EQ(output_of(got, 0, OutputStream::kStdout), "hello world\n");
  EXPECT_EQ(std::get<GuestExited>(got.back()).exit_code, 0);
}

TEST(GuestTable, StdinForARankNotHereIsNotTaken) {
  TestNode node;
  GuestTable table(node.context());
  EXPECT_FALSE(table.deliver_stdin(GuestStdin{5, bytes_of("x"), false}));
}

TEST_F(GuestSignals, ASignalFromTheHomeEndsAGuestAsTheRuntimes) {
  start({"cat"}, kSpawnStdin);  // waits on its stdin until killed
  table.signal(kAllRanks, SIGTERM);
  const GuestExited exited = end_report();
  EXPECT_EQ(exited.term_signal, SIGTERM);
  EXPECT_TRUE(exited.runtime_signaled);
}

TEST_F(GuestSignals, ASignalForAnotherRankLeavesTheGuestAlone) {
  start({"cat"}, kSpawnStdin);
  table.signal(1, SIGTERM);
  // Its end of input is what ends it: exit 0, not the signal.
  EXPECT_TRUE(table.deliver_stdin(GuestStdin{0, {}, true}));
  const GuestExited exited = end_report();
  EXPECT_EQ(exited.term_signal, 0);
  EXPECT_EQ(exited.exit_code, 0);
  EXPECT_FALSE(exited.runtime_signaled);
}

// The job's end after a copy failed (not_before_cpu_us): a busy guest gets
// it only once it has used that much CPU time, its report says how much.
TEST_F(GuestSignals, TheJobsEndWaitsUntilABusyGuestHasUsedTheCpuTime) {
  start({"sh", "-c", "while :; do :; done"});
  table.signal(kAllRanks, SIGTERM, 50'000);
  table.signal(kAllRanks, SIGCONT, 50'000);
  const GuestExited exited = end_report();
  EXPECT_EQ(exited.term_signal, SIGTERM);
  EXPECT_TRUE(exited.runtime_signaled);
  EXPECT_GE(exited.cpu_us, 50'000u);
}

// ... and a guest that waits for something (here its stdin) gets it at once,
// however far it is from that CPU time.
TEST_F(GuestSignals, TheJobsEndReachesAWaitingGuestAtOnce) {
  start({"cat"}, kSpawnStdin);
  table.signal(kAllRanks, SIGTERM, 3'600'000'000);  // an hour of CPU time
  const GuestExited exited = end_report();
  EXPECT_EQ(exited.term_signal, SIGTERM);
  EXPECT_TRUE(exited.runtime_signaled);
}

// A guest that ends on its own while the job's end waits for it keeps its
// own status: the held signal is never sent.
TEST_F(GuestSignals, AGuestThatEndsWhileItsEndIsHeldKeepsItsOwnStatus) {
  start({"sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i + 1)); done; exit 4"});
  table.signal(kAllRanks, SIGTERM, 3'600'000'000);
  const GuestExited exited = end_report();
  EXPECT_EQ(exited.term_signal, 0);
  EXPECT_EQ(exited.exit_code, 4);
  EXPECT_FALSE(exited.runtime_signaled);
}

// SIGKILL (the grace is over) first sends what was held.
TEST_F(GuestSignals, SigkillSendsWhatWasHeldFirst) {
  start({"sh", "-c", "while :; do :; done"});
  table.signal(kAllRanks, SIGTERM, 3'600'000'000);
  table.signal(kAllRanks, SIGKILL);
  const GuestExited exited = end_report();
  EXPECT_EQ(exited.term_signal, SIGTERM);
  EXPECT_TRUE(exited.runtime_signaled);
}

TEST(GuestTable, TakeStdinGivesWhatTheGuestHasNotRead) {
  TestNode node;
  GuestTable table(node.context());
  table.start();
  table.spawn(spawn_of(0, {"sleep", "100000"}, kSpawnStdin));  // never reads; killed at the end
  ASSERT_TRUE(table.deliver_stdin(GuestStdin{0, bytes_of("abc"), false}));
  ASSERT_TRUE(table.deliver_stdin(GuestStdin{0, bytes_of("def"), false}));
  LocalGuest* g = table.find(0);
  ASSERT_NE(g, nullptr);
  GuestStdin left = table.take_stdin(*g);
  EXPECT_EQ(left.rank, 0);
  EXPECT_EQ(std::string(left.bytes.begin(), left.bytes.end()), "abcdef");
  EXPECT_FALSE(left.eof);
  // Taken: the pipe is empty, and what comes now waits until it is given back.
  ASSERT_TRUE(table.deliver_stdin(GuestStdin{0, bytes_of("ghi"), false}));
  table.give_back_stdin(*g, std::move(left));
  GuestStdin again = table.take_stdin(*g);
  EXPECT_EQ(std::string(again.bytes.begin(), again.bytes.end()), "abcdefghi");
}

TEST(GuestTable, StartLocalGuestHoldsAnIncomingGuestsOutput) {
  TestNode node;
  GuestTable table(node.context());
  table.start();
  GuestStart start;
  start.launch.rank = 4;
  start.launch.path = "/bin/sh";
  start.launch.argv = {"sh", "-c", "read line; echo \"$line\""};
  start.launch.env = {"PATH=/usr/bin:/bin"};
  start.flags = kSpawnStdin;
  start.phase = GuestPhase::kIncoming;
  start.work_before = 12.5;
  start.stdin_left = {GuestStdin{4, bytes_of("from the source\n"), true}};
  auto started = table.start_local_guest(std::move(start));
  ASSERT_TRUE(started.ok()) << started.error().message;
  LocalGuest* g = *started;
  EXPECT_EQ(g->phase, GuestPhase::kIncoming);
  EXPECT_DOUBLE_EQ(g->work_before, 12.5);
  // Until it is live its output is held, and its end is not reported: run
  // until both pipes have closed.
  while (g->open_streams > 0) node.io().run_one();
  EXPECT_TRUE(node.received().empty());
  ASSERT_EQ(g->held.size(), 1u);
  EXPECT_EQ(std::string(g->held[0].bytes.begin(), g->held[0].bytes.end()), "from the source\n");
}

}  // namespace
}  // namespace mosix
