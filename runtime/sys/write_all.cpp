#include "runtime/sys/write_all.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace mosix::sys {

int write_all(int fd, const void* data, std::size_t size) {
  const char* at = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, at, size);
    if (n > 0) {
      at += n;
      size -= static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return errno;
    } else {
      return n < 0 ? errno : EIO;
    }
  }
  return 0;
}

}  // namespace mosix::sys
