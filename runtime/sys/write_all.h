// Writing a whole buffer to a descriptor.
#pragma once

#include <cstddef>
#include <string_view>

namespace mosix::sys {

// Writes all `size` bytes of `data` to `fd`: a short write goes on with the
// rest, EINTR is retried, and a non-blocking descriptor that is full is
// waited for (poll). Returns 0 once everything is written, else the errno of
// the write that failed (EIO for a write that took nothing); what was written
// before that stays written.
int write_all(int fd, const void* data, std::size_t size);
inline int write_all(int fd, std::string_view data) { return write_all(fd, data.data(), data.size()); }

}  // namespace mosix::sys
