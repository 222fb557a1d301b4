#include "runtime/sys/stale_sockets.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string_view>
#include <vector>

#include "runtime/sys/unix_address.h"

namespace mosix::sys {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  }
  ::closedir(d);
  return names;
}

// Ours, a socket, old enough, and nobody listens on it.
bool stale(const std::string& path, int min_age_seconds) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != ::getuid()) return false;
  if (std::time(nullptr) - st.st_mtime < min_age_seconds) return false;
  auto addr = unix_address(path);
  if (!addr) return false;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  const bool refused = ::connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

}  // namespace

int remove_stale_sockets(const std::string& runtime_dir, int min_age_seconds) {
  int removed = 0;
  for (const std::string& name : entries(runtime_dir)) {
    const std::string path = runtime_dir + "/" + name;
    if (starts_with(name, "guests-") && ends_with(name, ".sock")) {
      if (stale(path, min_age_seconds) && ::unlink(path.c_str()) == 0) ++removed;
    } else if (starts_with(name, "job-")) {
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid()) continue;
      std::vector<std::string> inside = entries(path);
      bool all_stale = !inside.empty();
      for (const std::string& f : inside) all_stale = all_stale && ends_with(f, ".sock") && stale(path + "/" + f, min_age_seconds);
      if (!all_stale) continue;
      for (const std::string& f : inside) removed += ::unlink((path + "/" + f).c_str()) == 0 ? 1 : 0;
      ::rmdir(path.c_str());
    }
  }
  return removed;
}

}  // namespace mosix::sys
