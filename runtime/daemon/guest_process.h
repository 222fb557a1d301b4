// Starting one guest on this node: a child process in its own process group,
// with pipes for its stdio, killed by the kernel if its node daemon dies.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

#include "runtime/core/expected.h"

namespace mosix {

struct GuestLaunch {
  int rank = 0;
  std::string path;                // resolved program path (execve, no PATH search)
  std::vector<std::string> argv;   // argv[0] as the user wrote it
  std::vector<std::string> env;    // complete environment, "NAME=value"
  std::string cwd;                 // empty: inherit
  std::vector<int> cpus;           // empty: no binding
  int stdin_fd = -1;               // -1: a pipe is made; otherwise dup'ed into the child
  std::string cgroup_procs;        // cgroup.procs file to join before exec (CPU cap), or empty
  int pass_fd = -1;                 // a close-on-exec descriptor the program inherits (PMI_FD)
  bool new_session = false;         // its own session too, not only its own process group
  bool pty = false;                 // a pseudo-terminal for stdin, stdout and stderr, its controlling
                                    // terminal in a session of its own (stdin_fd is not used)
  unsigned short pty_rows = 0, pty_cols = 0;  // its size (0: the kernel's default)
  bool one_output = false;          // stderr is the stdout pipe (kSpawnOneOutput)
  bool close_inherited_fds = false; // close every fd above 2 (a guest to be checkpointed must
                                    // not hold a pipe of whoever started mosixrun)
};

struct GuestProcess {
  int rank = 0;
  pid_t pid = -1;     // also its process group id
  int stdin_fd = -1;  // our write end, or -1 when the child got a given fd
  int stdout_fd = -1; // our read ends, close-on-exec (a pty: its master, and stderr at its end at once)
  int stderr_fd = -1;
};

// Starts the program in a child that shares our memory until it execs (as
// posix_spawn does: no copy of a big, threaded process's page tables).
// Returns once the exec succeeded, or the reason it did not (then no process
// is left behind).
Expected<GuestProcess> start_guest(const GuestLaunch& launch);

// Whether our child `pid` has ended or is ending (a signal it sent itself can
// be taking it down: PF_EXITING); it may not be reaped yet. A SIGTERM or
// SIGKILL of ours that finds it so did not kill it: its own status counts.
bool guest_has_ended(pid_t pid);

// Finds PROGRAM as execvp would (PATH search when it has no slash) and checks
// it is an executable regular file. Errors say what to do.
Expected<std::string> resolve_program(const std::string& program, const std::string& path_env,
                                      const std::string& cwd);

}  // namespace mosix
