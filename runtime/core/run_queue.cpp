#include "runtime/core/run_queue.h"

#include <algorithm>
#include <charconv>

namespace mosix {
namespace {

// The next blank-separated field of `line`, which loses it; "" at the end.
std::string_view next_field(std::string_view& line) {
  const std::size_t start = line.find_first_not_of(" \t\r");
  if (start == std::string_view::npos) {
    line = {};
    return {};
  }
  const std::size_t end = line.find_first_of(" \t\r", start);
  const std::string_view field = line.substr(start, end == std::string_view::npos ? line.npos : end - start);
  line = end == std::string_view::npos ? std::string_view() : line.substr(end);
  return field;
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

double load_sample(double runnable, double speed, int cores) {
  const double capacity = speed * cores;
  if (!(capacity > 0.0) || runnable <= 0.0) return 0.0;
  return runnable / capacity;
}

int machine_runnable(int procs_running) { return std::max(0, procs_running - 1); }

bool counts_as_runnable(char state) { return state == 'R'; }

std::optional<std::uint64_t> parse_stat_busy_ticks(std::string_view proc_stat) {
  while (!proc_stat.empty()) {
    const std::size_t end = proc_stat.find('\n');
    std::string_view line = proc_stat.substr(0, end);
    proc_stat = end == std::string_view::npos ? std::string_view() : proc_stat.substr(end + 1);
    if (!line.starts_with("cpu ")) continue;
    line.remove_prefix(4);
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    std::uint64_t field[8] = {};
    for (std::uint64_t& f : field) {
      if (!parse_number(next_field(line), f)) return std::nullopt;
    }
    return field[0] + field[1] + field[2] + field[5] + field[6] + field[7];
  }
  return std::nullopt;
}

std::optional<std::vector<int>> parse_pid_list(std::string_view text) {
  std::vector<int> pids;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const std::string_view id = next_field(line);
    if (id.empty()) continue;
    int pid = 0;
    if (!parse_number(id, pid) || pid <= 0 || !next_field(line).empty()) return std::nullopt;
    pids.push_back(pid);
  }
  return pids;
}

std::optional<double> parse_schedstat_runnable_seconds(std::string_view text) {
  std::uint64_t run = 0, wait = 0;
  if (!parse_number(next_field(text), run) || !parse_number(next_field(text), wait)) return std::nullopt;
  return (static_cast<double>(run) + static_cast<double>(wait)) / 1e9;
}

double CpuMeter::add(const std::map<int, double>& time_by_pid) {
  double used = 0.0;
  if (started_) {
    for (const auto& [pid, time] : time_by_pid) {
      auto before = last_.find(pid);
      if (before == last_.end()) {
        used += std::max(0.0, time);
      } else {
        used += std::max(0.0, time - before->second);
      }
    }
  }
  started_ = true;
  last_ = time_by_pid;
  return used;
}

double CounterDelta::add(double value) {
  const double delta = last_ && value >= *last_ ? value - *last_ : 0.0;
  last_ = value;
  return delta;
}

}  // namespace mosix
