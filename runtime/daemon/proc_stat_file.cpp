#include "runtime/daemon/proc_stat_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

namespace mosix {

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  char path[64], buf[1024];  // a stat line is about 300 bytes; field 22 comes well before 1024
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  return parse_proc_stat(std::string_view(buf, static_cast<std::size_t>(n)));
}

double process_cpu_seconds(pid_t pid) {
  auto st = read_proc_stat(pid);
  if (!st) return -1;
  return static_cast<double>(st->utime + st->stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

char process_state(pid_t pid) {
  auto st = read_proc_stat(pid);
  return st ? st->state : '?';
}

}  // namespace mosix
