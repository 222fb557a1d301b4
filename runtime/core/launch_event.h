// What `mosixd --launch` (the node daemons of a virtual cluster) tells
// mosixrun about the daemons it started: one line each on its standard
// output, "node_daemon_ended rank=R pid=P node=HOST signal=S ending_others=0|1"
// (exit_status=E instead of signal=S for a daemon that exited). mosixrun
// reads the lines back with parse_launch_event and words its messages
// itself: nothing parses English.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mosix {

struct NodeDaemonEnded {
  int rank = 0;
  long pid = 0;
  std::string node;            // host name, no spaces
  int signal = 0;              // the signal that killed it, or 0
  int exit_status = 0;         // when signal is 0
  bool ending_others = false;  // the launcher now ends the other daemons
  bool operator==(const NodeDaemonEnded&) const = default;
};

// The line for `event`, '\n' included.
std::string launch_event_line(const NodeDaemonEnded& event);
// The event of one line (with or without its '\n'); nothing if it is not one.
std::optional<NodeDaemonEnded> parse_launch_event(std::string_view line);

}  // namespace mosix
