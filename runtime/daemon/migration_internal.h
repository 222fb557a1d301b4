// What both ends of a move share (migration.cpp, the source; migration_in.cpp,
// the target): private to those two files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace mosix::migration_internal {

// Migration progress goes home every this many bytes (and at each phase).
inline constexpr std::uint64_t kProgressStep = 64u << 20;

// A memfd of ours, as a path another process of our user can open.
inline std::string memfd_path(int memfd) {
  return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(memfd);
}

// The name of process `pid` (/proc/PID/comm), or "" when it is gone.
inline std::string read_comm(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/comm", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[64] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string c(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

}  // namespace mosix::migration_internal
