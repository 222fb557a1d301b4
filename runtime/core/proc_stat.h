// The fields of a Linux /proc/PID/stat line that the runtime and the benches
// use, parsed from the text alone (the caller reads the file).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mosix {

struct ProcStat {
  int pid = 0;            // field 1
  std::string comm;       // field 2, without its parentheses
  char state = '?';       // field 3: R, S, D, T, Z, X, ...
  int ppid = 0;           // field 4
  int pgrp = 0;           // field 5
  uint64_t flags = 0;     // field 9, the kernel's PF_* bits
  uint64_t utime = 0;     // field 14, clock ticks
  uint64_t stime = 0;     // field 15, clock ticks
  uint64_t cutime = 0;    // field 16, clock ticks: its reaped children's user time
  uint64_t cstime = 0;    // field 17, clock ticks: ... and system time
  uint64_t starttime = 0; // field 22, clock ticks after boot

  bool zombie() const { return state == 'Z' || state == 'X'; }
  // Ending: a zombie, or on its way to being one (PF_EXITING).
  bool exiting() const { return zombie() || (flags & 0x4) != 0; }
};

// Parses one /proc/PID/stat line (a trailing newline is allowed). The command
// name may hold spaces and parentheses, so the fields after it are counted
// from the LAST ')'. Nothing if the line is cut short before field 22 or a
// field used here is not a number.
std::optional<ProcStat> parse_proc_stat(std::string_view line);

}  // namespace mosix
