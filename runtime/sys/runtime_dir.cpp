#include "runtime/sys/runtime_dir.h"

#include <linux/limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "runtime/sys/errno_text.h"
#include "runtime/sys/private_path.h"
#include "runtime/sys/runtime_dir_rule.h"

namespace mosix::sys {

std::string runtime_dir_path() {
  char path[PATH_MAX];
  auto is_dir = [](const char* p) {
    struct stat st{};
    return ::stat(p, &st) == 0 && S_ISDIR(st.st_mode);
  };
  if (!runtime_dir_path(path, sizeof path, std::getenv("XDG_RUNTIME_DIR"), ::getuid(), is_dir)) {
    return std::string(std::getenv("XDG_RUNTIME_DIR")) + "/mosix";  // too long to be used: the error names it
  }
  return path;
}

Expected<std::string> runtime_dir() {
  const std::string dir = runtime_dir_path();
  if (Status s = ensure_private_dir(dir); !s) {
    return make_error(s.error().message + " (or set XDG_RUNTIME_DIR to a private directory)");
  }
  struct stat st{};
  if (::lstat(dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) {
    return make_error("cannot make " + dir + " private (chmod 0700): " + errno_text(errno));
  }
  return dir;
}

}  // namespace mosix::sys
