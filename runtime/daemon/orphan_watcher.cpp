#include "runtime/daemon/orphan_watcher.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "runtime/daemon/proc_stat_file.h"

namespace mosix {
namespace {

constexpr int32_t kRelease = 0;

// When the process `pid` started (clock ticks after boot, field 22 of
// /proc/PID/stat); 0 if there is no such process.
uint64_t start_time(int32_t pid) {
  auto st = read_proc_stat(pid);
  return st ? st->starttime : 0;
}

// A group to kill if the owner dies, and when its leader started. A group's
// number cannot be reused while any process is still in it; once it is
// empty, the number may go to an unrelated process (another job's daemon)
// that leads a group of its own. So at the end a group is killed only if no
// process has its number, or if that process is the leader we recorded.
struct Group {
  int32_t pgid;
  uint64_t leader_start;
};

[[noreturn]] void watcher_main(int fd) {
  // Own process group, so the terminal's ^C and ^Z reach mosixrun, not us.
  ::setpgid(0, 0);
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD) ::signal(s, SIG_IGN);
  }
  int null_fd = ::open("/dev/null", O_RDWR);
  for (int i = 0; i < 3; ++i) ::dup2(null_fd, i);
  // Keep nothing of the parent's open: its stdout pipe must close with it.
  for (int i = 3; i < 1024; ++i) {
    if (i != fd) ::close(i);
  }
  ::prctl(PR_SET_NAME, "mosix-watcher");
  std::vector<Group> groups;
  for (;;) {
    int32_t pgid;
    ssize_t n = ::read(fd, &pgid, sizeof pgid);
    if (n < 0 && errno == EINTR) continue;
    if (n == static_cast<ssize_t>(sizeof pgid)) {
      if (pgid == kRelease) ::_exit(0);
      groups.push_back(Group{pgid, start_time(pgid)});
      continue;
    }
    break;  // EOF or error: the parent is gone without releasing us.
  }
  for (const Group& g : groups) {
    uint64_t now = start_time(g.pgid);
    if (now == 0 || now == g.leader_start) ::kill(-g.pgid, SIGKILL);
  }
  ::_exit(0);
}

}  // namespace

Expected<OrphanWatcher> OrphanWatcher::start() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    return make_error(std::string("cannot start the orphan watcher: ") + std::strerror(errno));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(p[0]);
    ::close(p[1]);
    return make_error(std::string("cannot start the orphan watcher: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::close(p[1]);
    watcher_main(p[0]);
  }
  ::close(p[0]);
  return OrphanWatcher(pid, p[1]);
}

OrphanWatcher::OrphanWatcher(OrphanWatcher&& other) noexcept : pid_(other.pid_), fd_(other.fd_) {
  other.pid_ = -1;
  other.fd_ = -1;
}

OrphanWatcher::~OrphanWatcher() {
  if (fd_ >= 0) release();
}

void OrphanWatcher::watch(pid_t pgid) {
  if (fd_ < 0 || pgid <= 0) return;
  int32_t v = pgid;
  [[maybe_unused]] ssize_t n = ::write(fd_, &v, sizeof v);
}

void OrphanWatcher::release() {
  if (fd_ < 0) return;
  int32_t v = kRelease;
  [[maybe_unused]] ssize_t n = ::write(fd_, &v, sizeof v);
  ::close(fd_);
  fd_ = -1;
  // Not waited for: it reads the release before the end of the pipe and
  // exits on its own; waiting would only add its start-up to ours.
  pid_ = -1;
}

}  // namespace mosix
