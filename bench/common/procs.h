// The processes of a benchmark's job: commands run with a deadline, and a
// scan for what a job leaves behind. For a benchmark that is a child
// subreaper (PR_SET_CHILD_SUBREAPER), so that orphans of its job come back to
// it. For bench/.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mosix::bench {

// Set by an interrupt (SIGINT, SIGTERM, SIGHUP) once supervise_jobs() ran.
extern volatile std::sig_atomic_t g_interrupted;
// The job being run (its mosixrun's pid, which leads its process group), or
// 0: an interrupt asks it to end (SIGTERM: mosixrun ends its job).
extern volatile std::sig_atomic_t g_job_pid;

// Makes this benchmark a child subreaper (orphans of its jobs come back to
// it) that catches interrupts as said above.
void supervise_jobs();

// A file's whole text ("" if it cannot be read), and its last `lines` lines.
std::string read_text(const std::string& path);
std::string tail(const std::string& path, int lines);

// A process, identified across pid reuse by its start time.
struct Proc {
  pid_t pid = 0;
  unsigned long long start = 0;  // clock ticks after boot
  std::string comm;
  bool zombie = false;
};

// What /proc says of `pid`; nothing if it is gone.
std::optional<Proc> proc_info(pid_t pid);

// Adds root's living descendants (root excluded) to `seen`.
void record_descendants(pid_t root, std::map<pid_t, Proc>& seen);

// After the job's launcher (mosixrun) has ended: what of its tree is still
// there after a grace period of 10 s (a recorded descendant, or an orphan that
// came back to this subreaper) is killed and named. Empty if nothing was left.
std::string kill_leftovers(const std::map<pid_t, Proc>& seen);

struct Command {
  std::optional<int> status;  // nothing: timed out (then killed) or interrupted
  std::string out, err;
  double seconds = 0;  // from start to end or kill
};

// Runs argv to its end or its deadline (then it is killed), its stdout and
// stderr kept in STEM.out and STEM.err. Stops waiting early once *interrupted
// is set (from a signal handler).
Command run_command(const std::vector<std::string>& argv, const std::string& stem, double timeout_s,
                    const volatile std::sig_atomic_t* interrupted);

}  // namespace mosix::bench
