// Sockets of jobs that were killed: SIGKILL leaves a process no time to
// unlink what it listened on, and a runtime directory on a tmpfs that lives
// as long as the machine keeps them. In this user's runtime directory:
// the node daemons' guests-JOB-N.sock and mosixrun's job-JOB/ directories
// (home.sock, control.sock). A socket whose listener is gone refuses every
// connection (ECONNREFUSED); one that does, is ours and is older than
// `min_age_seconds` (a listener may be between its bind and its listen) is
// removed, and a job directory goes with the last of its sockets. Anything
// else (a live listener, another user's file, a name of another shape) is
// left alone.
#pragma once

#include <string>

namespace mosix::sys {

// How many sockets were removed.
int remove_stale_sockets(const std::string& runtime_dir, int min_age_seconds = 60);

}  // namespace mosix::sys
