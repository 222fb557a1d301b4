// Reading a small file a user named (a hostfile, a list) without trusting its
// size: /dev/zero or a huge file ends in an error, not in a hang or in all
// of memory.
#pragma once

#include <cstddef>
#include <string>

#include "runtime/core/expected.h"

namespace mosix::sys {

// The whole content of `path` if it has at most `max_bytes` bytes. Reads at
// most max_bytes + 1 bytes whatever the file is (regular, device, pipe); the
// error names the file as "<what> '<path>'" (the path through printable())
// and says why: missing, a directory, larger than the limit, a read error.
Expected<std::string> read_file_limited(const std::string& path, std::size_t max_bytes, const std::string& what);

}  // namespace mosix::sys
