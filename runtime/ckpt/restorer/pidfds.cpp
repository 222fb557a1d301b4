// pidfds: each of the process itself or of a process of its tree (the agent
// refuses any other), opened again with pidfd_open on that process's new
// pid once every process of the tree exists (after the point of no return).
#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/restorer.h"
#include "runtime/core/little_endian.h"

namespace mosix::ckpt::restorer {
namespace {

struct Target {
  std::int32_t vpid;
  bool self;
};

Target target_of(const Fd& f) {
  if (f.data.size() != 8) refuse("fd " + std::to_string(f.rec.fd) + ": a malformed pidfd record");
  return {static_cast<std::int32_t>(load_le<std::uint32_t>(f.data.data())),
          load_le<std::uint32_t>(f.data.data() + 4) == 1};
}

}  // namespace

void check_pidfds(const Image& img) {
  for (const Fd& f : img.fds) {
    if (f.rec.kind != FdKind::pidfd) continue;
    Target t = target_of(f);
    if (!t.self && tree_real_pid(t.vpid, false) == 0)
      refuse("fd " + std::to_string(f.rec.fd) + ": a pidfd of process " + std::to_string(t.vpid) +
             ", which this restore does not make");
  }
}

void place_pidfds(const Image& img) {
  for (const Fd& f : img.fds) {
    if (f.rec.kind != FdKind::pidfd) continue;
    Target t = target_of(f);
    std::int32_t real = t.self ? getpid() : tree_real_pid(t.vpid, true);
    int fd = static_cast<int>(syscall(SYS_pidfd_open, real, f.rec.open_flags & O_NONBLOCK));
    if (fd < 0) die("pidfd_open", -errno);
    if (fd != f.rec.fd) {
      if (dup3(fd, f.rec.fd, (f.rec.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) die("dup3", -errno);
      close(fd);
    } else {
      fcntl(fd, F_SETFD, f.rec.fd_flags & FD_CLOEXEC);
    }
  }
}

}  // namespace mosix::ckpt::restorer
