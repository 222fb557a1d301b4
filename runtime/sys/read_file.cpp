#include "runtime/sys/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/core/printable.h"
#include "runtime/sys/errno_text.h"

namespace mosix::sys {

Expected<std::string> read_file_limited(const std::string& path, std::size_t max_bytes,
                                        const std::string& what) {
  const std::string name = what + " " + quote(path, path.size());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("cannot read " + name + ": " + errno_text(errno));
  struct stat st{};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return make_error("cannot read " + name + ": it is a directory");
  }
  std::string text;
  char chunk[64 * 1024];
  for (;;) {
    std::size_t room = max_bytes + 1 - text.size();
    ssize_t n = ::read(fd, chunk, room < sizeof chunk ? room : sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return make_error("cannot read " + name + ": " + errno_text(e));
    }
    if (n == 0) break;
    text.append(chunk, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      ::close(fd);
      return make_error(name + " is larger than " + std::to_string(max_bytes) + " bytes: is it the right file?");
    }
  }
  ::close(fd);
  return text;
}

}  // namespace mosix::sys
