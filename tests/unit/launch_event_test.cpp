#include "runtime/core/launch_event.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

TEST(LaunchEvent, ADaemonKilledByASignalReadsBackAsWritten) {
  NodeDaemonEnded e{0, 4242, "vhost", 9, 0, true};
  std::string line = launch_event_line(e);
  EXPECT_EQ(line, "node_daemon_ended rank=0 pid=4242 node=vhost signal=9 ending_others=1\n");
  EXPECT_EQ(parse_launch_event(line), e);
}

TEST(LaunchEvent, ADaemonThatExitedReadsBackAsWritten) {
  NodeDaemonEnded e{3, 17, "n1.example.org", 0, 1, false};
  EXPECT_EQ(parse_launch_event(launch_event_line(e)), e);
}

TEST(LaunchEvent, OtherLinesAreNotEvents) {
  for (const char* line : {"", "mosixd: cannot start the node daemons: no space left",
                           "node_daemon_ended rank=0 pid=1 node=h ending_others=1",       // no end
                           "node_daemon_ended rank=x pid=1 node=h signal=9 ending_others=0",
                           "node_daemon_ended rank=0 pid=1 node= signal=9 ending_others=0",
                           "node_daemon_ended rank=0 pid=1 node=h signal=0 ending_others=0",
                           "node_daemon_ended rank=0 pid=1 node=h signal=9 ending_others=2",
                           "node_daemon_ended rank=99999999999 pid=1 node=h signal=9 ending_others=0",
                           "node_daemon_endedrank=0"}) {
    EXPECT_FALSE(parse_launch_event(line)) << line;
  }
}

TEST(LaunchEvent, KeysOfALaterVersionAreSkipped) {
  auto e = parse_launch_event("node_daemon_ended rank=1 pid=2 node=h exit_status=3 ending_others=0 cause=oom");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exit_status, 3);
}

}  // namespace
}  // namespace mosix
