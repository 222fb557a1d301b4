// mpirun's exit-status rule, as a pure function of how each copy ended.
#pragma once

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

}  // namespace mosix
