#include "runtime/daemon/orphan_watcher.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace mosix {
namespace {

constexpr int32_t kRelease = 0;

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
  std::vector<int32_t> groups;
  for (;;) {
    int32_t pgid;
    ssize_t n = ::read(fd, &pgid, sizeof pgid);
    if (n < 0 && errno == EINTR) continue;
    if (n == static_cast<ssize_t>(sizeof pgid)) {
      if (pgid == kRelease) ::_exit(0);
      groups.push_back(pgid);
      continue;
    }
    break;  // EOF or error: the parent is gone without releasing us.
  }
  for (int32_t g : groups) ::kill(-g, SIGKILL);
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
