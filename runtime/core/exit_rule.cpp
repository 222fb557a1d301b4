#include "runtime/core/exit_rule.h"

#include <algorithm>

namespace mosix {
namespace {

const char* signal_name(int sig) {
  // Names as strsignal prints them; kept here so core stays free of libc state.
  switch (sig) {
    case 1: return "Hangup";
    case 2: return "Interrupt";
    case 3: return "Quit";
    case 4: return "Illegal instruction";
    case 5: return "Trace/breakpoint trap";
    case 6: return "Aborted";
    case 7: return "Bus error";
    case 8: return "Floating point exception";
    case 9: return "Killed";
    case 10: return "User defined signal 1";
    case 11: return "Segmentation fault";
    case 12: return "User defined signal 2";
    case 13: return "Broken pipe";
    case 14: return "Alarm clock";
    case 15: return "Terminated";
    case 24: return "CPU time limit exceeded";
    case 25: return "File size limit exceeded";
    default: return "unknown signal";
  }
}

}  // namespace

int shell_status(const GuestEnd& end) {
  return end.signaled ? 128 + end.value : end.value;
}

bool ended_by_our_signal(const GuestEnd& end) {
  return end.signaled && (end.value == 15 || end.value == 9);
}

bool is_failure(const GuestEnd& end) {
  return !end.ended_by_runtime && (end.signaled || end.value != 0);
}

std::optional<GuestEnd> first_failure(const std::vector<GuestEnd>& ends) {
  std::optional<GuestEnd> best;
  for (const GuestEnd& e : ends) {
    if (is_failure(e) && (!best || e.rank < best->rank)) best = e;
  }
  return best;
}

int job_exit_status(const std::vector<GuestEnd>& ends) {
  if (auto f = first_failure(ends)) return shell_status(*f);
  std::optional<GuestEnd> ended;
  for (const GuestEnd& e : ends) {
    bool failed = e.signaled || e.value != 0;
    if (failed && (!ended || e.rank < ended->rank)) ended = e;
  }
  return ended ? shell_status(*ended) : 0;
}

std::string describe_end(const GuestEnd& end) {
  if (end.signaled) {
    return "was killed by signal " + std::to_string(end.value) + " (" + signal_name(end.value) + ")";
  }
  return "exited with status " + std::to_string(end.value);
}

std::uint64_t catch_up_cpu_us(std::uint64_t failed_cpu_us) {
  return failed_cpu_us + std::clamp<std::uint64_t>(failed_cpu_us, 100'000, 1'000'000);
}

int quiet_looks(const CopyProgress& now, const std::optional<CopyProgress>& before, int count) {
  const bool quiet = !now.runnable && before && !before->runnable && before->cpu_us == now.cpu_us;
  return quiet ? count + 1 : 0;
}

bool caught_up(std::uint64_t target_cpu_us, const CopyProgress& now, int quiet) {
  return now.cpu_us >= target_cpu_us || quiet >= kQuietLooks;
}

}  // namespace mosix
