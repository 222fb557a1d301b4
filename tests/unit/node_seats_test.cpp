#include "runtime/core/node_seats.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "runtime/core/exec_stay_rule.h"

namespace mosix {
namespace {

// A page as the node daemon makes it, and the processes that live.
struct Node {
  std::unique_ptr<NodeSeats> page = std::make_unique<NodeSeats>();
  std::set<std::int32_t> live;

  explicit Node(int cores) {
    page->magic = kSeatsMagic;
    page->cores = cores;
  }
  auto alive() {
    return [this](std::int32_t pid) { return live.count(pid) > 0; };
  }
  SeatAnswer start(std::int32_t pid, std::int32_t parent) {
    live.insert(pid);
    return take_seat(*page, pid, parent, alive());
  }
  void daemon_started(std::int32_t pid) {
    live.insert(pid);
    ASSERT_TRUE(give_seat(*page, pid, alive()));
  }
  void probe(int runnable) { seats_probed(*page, runnable, alive()); }
};

TEST(NodeSeats, ProgramsStayWhileTheCoresFitThemAndTheRestAsk) {
  Node node(2);
  EXPECT_EQ(node.start(11, 1), SeatAnswer::kFreeSeat);
  EXPECT_EQ(node.start(12, 1), SeatAnswer::kFreeSeat);
  EXPECT_EQ(node.start(13, 1), SeatAnswer::kAsk);  // two seats given since the probe fill both cores
  EXPECT_EQ(seats_given_this_round(*node.page), 2);
}

TEST(NodeSeats, AProbeCountsTheBusyInsteadOfTheSeatsGivenBeforeIt) {
  Node node(2);
  EXPECT_EQ(node.start(11, 1), SeatAnswer::kFreeSeat);
  EXPECT_EQ(node.start(12, 1), SeatAnswer::kFreeSeat);
  node.probe(1);  // one of them sleeps
  EXPECT_EQ(seats_given_this_round(*node.page), 0);
  EXPECT_EQ(node.start(13, 1), SeatAnswer::kFreeSeat);
  EXPECT_EQ(node.start(14, 1), SeatAnswer::kAsk);
  node.probe(3);
  EXPECT_EQ(node.start(15, 1), SeatAnswer::kAsk);  // busier than its cores
}

TEST(NodeSeats, TheDaemonsGuestsHoldSeatsToo) {
  Node node(1);
  node.daemon_started(100);  // a body the home placed here
  EXPECT_EQ(node.start(101, 7), SeatAnswer::kAsk);
}

TEST(NodeSeats, AChildTakesOverTheSeatOfTheParentThatWaitsForIt) {
  Node node(1);
  node.daemon_started(100);                              // a compiler driver placed here
  EXPECT_EQ(node.start(101, 100), SeatAnswer::kParentsSeat);  // cc1
  node.live.erase(101);
  node.probe(1);                                         // cc1 was busy at the probe
  EXPECT_EQ(node.start(102, 100), SeatAnswer::kParentsSeat);  // as, after cc1 ended
}

TEST(NodeSeats, ASecondChildOfTheSameParentNeedsAFreeCore) {
  Node node(2);
  node.daemon_started(100);  // make
  EXPECT_EQ(node.start(101, 100), SeatAnswer::kParentsSeat);
  EXPECT_EQ(node.start(102, 100), SeatAnswer::kFreeSeat);  // make, 101 and 102: 100's seat serves 101
  EXPECT_EQ(node.start(103, 100), SeatAnswer::kAsk);
}

TEST(NodeSeats, ASeatPassesDownALineOfWaitingParents) {
  Node node(1);
  node.daemon_started(100);                                   // sh
  EXPECT_EQ(node.start(101, 100), SeatAnswer::kParentsSeat);  // make, run by sh
  EXPECT_EQ(node.start(102, 101), SeatAnswer::kParentsSeat);  // make's first job
  EXPECT_EQ(node.start(103, 101), SeatAnswer::kAsk);          // its second, the core is taken
}

TEST(NodeSeats, NoAnswerWithoutCoresOrFromAPageNotMadeYet) {
  Node always(0);  // --spread always
  EXPECT_EQ(always.start(11, 1), SeatAnswer::kAsk);
  Node unready(4);
  unready.page->magic = 0;
  EXPECT_EQ(unready.start(11, 1), SeatAnswer::kAsk);
}

TEST(NodeSeats, SeatsOfEndedProcessesAreGivenAgainAndAFullPageAsks) {
  Node node(kSeatCount + 10);
  for (std::int32_t pid = 1000; pid < 1000 + kSeatCount; ++pid) node.daemon_started(pid);
  EXPECT_EQ(node.start(5000, 1), SeatAnswer::kAsk);  // every seat held by a live process
  node.live.erase(1003);
  EXPECT_EQ(node.start(5001, 1), SeatAnswer::kFreeSeat);
  node.live.erase(1004);
  node.probe(0);  // frees 1004's
  int held = 0;
  for (const Seat& s : node.page->seats) held += s.owner != 0;
  EXPECT_EQ(held, kSeatCount - 1);
}

// The descriptors' rule that comes before the seats (core/exec_stay_rule.h).
TEST(ExecStayRule, DescriptorsThatCannotFollowKeepTheChild) {
  EXPECT_FALSE(stays_for_descriptors(StdinKind::kNull, false));
  EXPECT_FALSE(stays_for_descriptors(StdinKind::kPipeOrSocket, false));
  EXPECT_TRUE(stays_for_descriptors(StdinKind::kOther, false));  // a terminal, a shared file
  EXPECT_TRUE(stays_for_descriptors(StdinKind::kNull, true));    // fds above 2
  EXPECT_TRUE(stays_for_descriptors(StdinKind::kPipeOrSocket, true));
}

}  // namespace
}  // namespace mosix
