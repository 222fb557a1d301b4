// Where files that processes share through mmap go (the PMIx server's data
// stores and their locks): a private directory on a memory file system, so
// that their pages are never written back to a disk, and a busy disk never
// stalls the processes that touch them.
#pragma once

#include <string>

#include "runtime/core/expected.h"

namespace mosix::sys {

// The runtime directory when it is on tmpfs (as /run/user/UID is), else
// /dev/shm/mosix-UID (made private as the runtime directory is), else, on a
// system without a tmpfs /dev/shm, the runtime directory after all.
Expected<std::string> shared_memory_dir();

// Whether `path` is on a memory file system (tmpfs or ramfs).
bool on_memory_fs(const std::string& path);

}  // namespace mosix::sys
