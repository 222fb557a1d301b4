// What this node is doing now: the kernel's load averages (/proc/loadavg)
// and its memory (/proc/meminfo). The parsers are pure; read_* read /proc.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/core/expected.h"

namespace mosix {

struct LoadAverage {
  double avg1 = 0.0;   // runnable + uninterruptible tasks, 1-minute average
  double avg5 = 0.0;
  double avg15 = 0.0;
  int running = 0;     // tasks runnable now
  int threads = 0;     // tasks (threads) on the node
};

struct MemoryInfo {
  std::uint64_t total_bytes = 0;      // MemTotal
  std::uint64_t available_bytes = 0;  // MemAvailable: what a new program can get without swapping
};

// "0.52 0.31 0.12 2/345 6789"
Expected<LoadAverage> parse_loadavg(const std::string& text);
// Lines "Name:   123 kB"; needs MemTotal and MemAvailable.
Expected<MemoryInfo> parse_meminfo(const std::string& text);

Expected<LoadAverage> read_loadavg();
Expected<MemoryInfo> read_meminfo();

}  // namespace mosix
