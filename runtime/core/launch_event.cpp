#include "runtime/core/launch_event.h"

#include <charconv>

namespace mosix {
namespace {

constexpr std::string_view kEnded = "node_daemon_ended";

template <typename T>
bool number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string launch_event_line(const NodeDaemonEnded& e) {
  std::string line = std::string(kEnded) + " rank=" + std::to_string(e.rank) + " pid=" + std::to_string(e.pid) +
                     " node=" + e.node;
  line += e.signal != 0 ? " signal=" + std::to_string(e.signal) : " exit_status=" + std::to_string(e.exit_status);
  line += std::string(" ending_others=") + (e.ending_others ? "1" : "0") + "\n";
  return line;
}

std::optional<NodeDaemonEnded> parse_launch_event(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (line.substr(0, kEnded.size()) != kEnded) return std::nullopt;
  line.remove_prefix(kEnded.size());
  NodeDaemonEnded e;
  bool rank = false, pid = false, node = false, end = false, others = false;
  while (!line.empty()) {
    if (line.front() != ' ') return std::nullopt;
    line.remove_prefix(1);
    const std::string_view field = line.substr(0, line.find(' '));
    line.remove_prefix(field.size());
    const auto eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    bool ok = true;
    if (key == "rank") {
      ok = rank = number(value, e.rank);
    } else if (key == "pid") {
      ok = pid = number(value, e.pid);
    } else if (key == "node") {
      e.node = value;
      ok = node = !value.empty();
    } else if (key == "signal") {
      ok = end = number(value, e.signal) && e.signal > 0;
    } else if (key == "exit_status") {
      ok = end = number(value, e.exit_status);
    } else if (key == "ending_others") {
      ok = others = value == "0" || value == "1";
      e.ending_others = value == "1";
    }  // a key of a later version: skipped
    if (!ok) return std::nullopt;
  }
  if (!rank || !pid || !node || !end || !others) return std::nullopt;
  return e;
}

}  // namespace mosix
