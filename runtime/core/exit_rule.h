// mpirun's exit-status rule, as a pure function of how each copy ended.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mosix {

// The exit status of a job that timed out (--timeout), and of one that was
// interrupted by SIGINT/SIGTERM/SIGHUP: mpirun's values.
inline constexpr int kTimeoutExitStatus = 110;
inline constexpr int kInterruptedExitStatus = 1;

struct GuestEnd {
  int rank = 0;
  bool signaled = false;          // killed by a signal (then `value` is the signal)
  int value = 0;                  // exit code, or signal number when signaled
  bool ended_by_runtime = false;  // we sent the signal while ending the job
};

// Whether an end looks like the work of the signals the runtime sends when it
// ends a job (SIGTERM, then SIGKILL). A copy that ignores them and exits
// with its own status has failed on its own.
bool ended_by_our_signal(const GuestEnd& end);

// The shell-style status of one copy: the exit code, or 128+S if killed by S.
int shell_status(const GuestEnd& end);

// True if this end counts as a failure of the copy itself.
bool is_failure(const GuestEnd& end);

// The job's exit status: 0 if every copy succeeded; otherwise the status of the
// lowest-ranked copy that failed on its own. Copies the runtime ended only
// count when no copy failed on its own (e.g. the job was interrupted).
int job_exit_status(const std::vector<GuestEnd>& ends);

// The lowest-ranked copy that failed on its own, if any.
std::optional<GuestEnd> first_failure(const std::vector<GuestEnd>& ends);

// "exited with status 3", "was killed by signal 11 (Segmentation fault)".
std::string describe_end(const GuestEnd& end);

// mpirun starts every copy before it acts on a failure, so copies that fail
// at the same point of their run all fail on their own, and the rule above
// sees every failure. Ours start on several nodes, some later than others.
// So when a copy fails, each other copy gets the job's end only once it has
// run as far as the failed one: as much CPU time and a margin (the same run
// takes more or less CPU time from copy to copy, and more on a loaded
// machine), or it is waiting for something: kQuietLooks looks in a row
// (2 ms apart) found no thread of it running, ready to run or in an
// uninterruptible wait (D: the kernel working for it, reading its program),
// and no CPU used between them. CPU time, not wall time: on a loaded machine
// a started copy may wait long for its slices, and a copy blocked on its
// failed peer never catches up by CPU but is ended soon.
struct CopyProgress {
  std::uint64_t cpu_us = 0;  // CPU time of the copy and its children, µs
  bool runnable = false;     // a thread of its process group runs, waits for a CPU, or is in state D
};

inline constexpr int kQuietLooks = 25;

// The CPU time a copy must have used before the job's end reaches it when
// the failed copy used `failed_cpu_us`: as much again, at least 100 ms and
// at most one second more.
std::uint64_t catch_up_cpu_us(std::uint64_t failed_cpu_us);

// Quiet looks in a row after this one: `before` is the previous look at the
// same copy (if any) and `count` the quiet looks up to it.
int quiet_looks(const CopyProgress& now, const std::optional<CopyProgress>& before, int count);

// `target_cpu_us` from catch_up_cpu_us(), `quiet` from quiet_looks().
bool caught_up(std::uint64_t target_cpu_us, const CopyProgress& now, int quiet);

}  // namespace mosix
