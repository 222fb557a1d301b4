// The file locks a process holds, for its checkpoint: every POSIX (fcntl
// F_SETLK), OFD (F_OFD_SETLK) and flock lock, as /proc/self/fdinfo/FD lists
// them ("lock:" lines, Linux 4.x and later). Async-signal-safe: raw system
// calls and fixed buffers only, nothing opened on the locked files (closing
// one would release the process's POSIX locks on it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/ckpt/format/image_writer.h"

namespace mosix::agent {

// Writes a file lock record for each lock on the open file behind fd (inode
// ino): the POSIX locks the process set through it and the OFD and flock
// locks of its open file description. Writes nothing for a descriptor that
// duplicates a lower one (the same open file description): that one carries
// them. False with one line in `error` when a lock cannot be recorded (a
// lease, a lock held through standard input, output or error, which are
// reconnected at restart, an unreadable fdinfo) or the writer fails.
bool write_fd_locks(ckpt::ImageWriter* writer, long fd, std::uint64_t ino, char* error, std::size_t error_cap);

}  // namespace mosix::agent
