#include "runtime/sys/install_path.h"

#include <linux/limits.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/sys/errno_text.h"

namespace mosix::sys {

Expected<std::string> executable_path() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof path) {
    const int err = n < 0 ? errno : n == 0 ? ENOENT : ENAMETOOLONG;
    return make_error("cannot find this program's own executable (/proc/self/exe): " + errno_text(err));
  }
  return std::string(path, static_cast<std::size_t>(n));
}

Expected<std::string> program_dir() {
  auto exe = executable_path();
  if (!exe) return exe.error();
  return exe->substr(0, exe->rfind('/'));
}

Expected<std::string> installed_program(std::string_view name) {
  auto dir = program_dir();
  if (!dir) return dir.error();
  return *dir + "/" + std::string(name);
}

Expected<std::string> installed_library(std::string_view name) {
  auto dir = program_dir();
  if (!dir) return dir.error();
  return *dir + "/../lib/" + std::string(name);
}

}  // namespace mosix::sys
