// What may be trusted on disk. Checkpoint images are code (restoring one runs
// what it holds as the user), and request files steer the agent inside a
// guest: a directory or file that another user can write, or swap for a
// symlink, must never be used. "Ours" means owned by the effective uid.
#pragma once

#include <string>

#include "runtime/core/expected.h"

namespace mosix::sys {

// A private directory of ours: creates `dir` (and any missing parents) with
// mode 0700 if it does not exist, then checks, with lstat, that it is a
// directory and not a symlink, that we own it, and that neither group nor
// others may write to it. Nothing is chmod-ed: a directory that fails is
// refused, and the error names it, what is wrong and what to do.
Status ensure_private_dir(const std::string& dir);

// The same checks on a directory that must already exist; creates nothing.
Status check_private_dir(const std::string& dir);

// A file we may trust: a regular file (a symlink is refused, not followed),
// owned by us, writable by neither group nor others.
Status check_trusted_file(const std::string& path);

// The same checks on an open descriptor (fstat), for callers that opened the
// file with O_NOFOLLOW and want no gap between check and use. `name` is the
// path for the message.
Status check_trusted_fd(int fd, const std::string& name);

}  // namespace mosix::sys
