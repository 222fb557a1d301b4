#include "runtime/daemon/proc_stat_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace mosix {

std::optional<ProcStat> read_proc_stat(pid_t pid, pid_t tid) {
  char path[64], buf[1024];  // a stat line is about 300 bytes; field 22 comes well before 1024
  if (tid > 0) {
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(pid), static_cast<int>(tid));
  } else {
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  }
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

namespace {

// The CPU time of every thread of `pid`, to the ns (the kernel's own count,
// not /proc's clock ticks); -1 if it is gone.
std::int64_t process_cpu_us(pid_t pid) {
  clockid_t clock;
  timespec ts{};
  if (::clock_getcpuclockid(pid, &clock) != 0 || ::clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// Whether a thread of `pid` is running, waiting for a CPU, or in an
// uninterruptible wait (D: the kernel is working for it).
bool any_thread_runnable(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return false;
  bool runnable = false;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    auto st = read_proc_stat(pid, std::atoi(e->d_name));
    if (st && (st->state == 'R' || st->state == 'D')) {
      runnable = true;
      break;
    }
  }
  ::closedir(dir);
  return runnable;
}

}  // namespace

std::optional<CopyProgress> read_copy_progress(pid_t leader) {
  auto st = read_proc_stat(leader);
  const std::int64_t own = process_cpu_us(leader);
  if (!st || own < 0) return std::nullopt;
  const auto tick_us = static_cast<std::uint64_t>(1000000 / ::sysconf(_SC_CLK_TCK));
  CopyProgress p;
  p.cpu_us = static_cast<std::uint64_t>(own) + (st->cutime + st->cstime) * tick_us;
  p.runnable = any_thread_runnable(leader);
  if (p.runnable) return p;
  // The leader waits: for a process of its group, perhaps.
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return p;
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    const auto pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid == leader) continue;
    auto member = read_proc_stat(pid);
    if (!member || member->pgrp != leader) continue;
    const std::int64_t cpu = process_cpu_us(pid);
    if (cpu > 0) p.cpu_us += static_cast<std::uint64_t>(cpu);
    if (!p.runnable && any_thread_runnable(pid)) p.runnable = true;
  }
  ::closedir(proc);
  return p;
}

}  // namespace mosix
