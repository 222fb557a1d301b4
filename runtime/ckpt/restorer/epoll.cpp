// Epoll instances: made empty at their numbers in phase 1 (place_epoll),
// then every watch added again on its descriptor number with its events and
// data word (add_epoll_watches). A watch on a descriptor made before the
// point of no return is added in phase 1, so one the kernel will not take
// now (the restarter's fd 1 is a regular file where it was a pipe, say)
// refuses the restore; one on a pipe end is added after restore_pipes.
//
// A level-triggered watch reports what is ready as before. An edge-triggered
// one whose file is ready reports it once more after the restore (adding a
// watch checks readiness): a program using EPOLLET reads until EAGAIN, so an
// extra wake-up costs it one empty read. A one-shot watch that fired shows
// no events and is added back disarmed, as it was.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <string>

#include "runtime/ckpt/restorer/restorer.h"
#include "runtime/core/little_endian.h"

namespace mosix::ckpt::restorer {
namespace {

// A descriptor restore_pipes makes, after the point of no return.
bool made_late(const Image& img, const Fd& f) {
  if (f.rec.kind == FdKind::pipe || f.rec.kind == FdKind::pidfd) return true;
  if (f.rec.kind != FdKind::shared || f.data.size() != 4) return false;
  const Fd* first = fd_numbered(img, static_cast<std::int32_t>(load_le<std::uint32_t>(f.data.data())));
  return first != nullptr && (first->rec.kind == FdKind::pipe || first->rec.kind == FdKind::pidfd);
}

}  // namespace

std::vector<EpollWatch> epoll_watches(const Image& img, const Fd& f) {
  std::string fd = "fd " + std::to_string(f.rec.fd) + " (an epoll instance)";
  const std::vector<std::uint8_t>& d = f.data;
  constexpr std::size_t kWatch = 20;
  if (d.size() < 4 || (d.size() - 4) % kWatch != 0 || load_le<std::uint32_t>(d.data()) != (d.size() - 4) / kWatch)
    refuse(fd + ": a malformed record");
  std::vector<EpollWatch> watches;
  for (std::size_t at = 4; at < d.size(); at += kWatch) {
    EpollWatch w{static_cast<std::int32_t>(load_le<std::uint32_t>(d.data() + at)),
                 static_cast<std::int32_t>(load_le<std::uint32_t>(d.data() + at + 4)),
                 load_le<std::uint32_t>(d.data() + at + 8), load_le<std::uint64_t>(d.data() + at + 12)};
    if (fd_numbered(img, w.via) == nullptr)
      refuse(fd + ": a watch on fd " + std::to_string(w.via) + ", which the image does not hold");
    const Fd* holder = fd_numbered(img, w.fd);
    if (w.via != w.fd && (w.fd < 3 || (holder != nullptr && (made_late(img, *holder) ||
                                                             made_late(img, *fd_numbered(img, w.via))))))
      refuse(fd + ": a watch under fd " + std::to_string(w.fd) + ", a number another descriptor has now, on a pipe "
                  "or a standard stream, which a restore does not juggle");
    watches.push_back(w);
  }
  return watches;
}

void place_epoll(const Fd& f) {
  const FdRecord& r = f.rec;
  int fd = epoll_create1((r.fd_flags & FD_CLOEXEC) ? EPOLL_CLOEXEC : 0);
  if (fd < 0) refuse("fd " + std::to_string(r.fd) + ": cannot make the epoll instance again: " + strerror(errno));
  if (fd != r.fd) {
    if (dup3(fd, r.fd, (r.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
      refuse("fd " + std::to_string(r.fd) + ": dup3: " + strerror(errno));
    close(fd);
  }
  fcntl(r.fd, F_SETFL, static_cast<int>(r.open_flags) & O_NONBLOCK);
}

void add_epoll_watches(const Image& img, bool late) {
  for (const Fd& f : img.fds) {
    if (f.rec.kind != FdKind::epoll) continue;
    for (const EpollWatch& w : epoll_watches(img, f)) {
      if (made_late(img, *fd_numbered(img, w.via)) != late) continue;
      std::string what = "fd " + std::to_string(f.rec.fd) + ": the epoll watch on fd " + std::to_string(w.fd) +
                         " cannot be added again";
      // A watch whose number the program closed (or gave another file)
      // while the file lives on under another: that one is put at the
      // number for the moment. A free number: no descriptor of the image
      // has it, and the restorer's own sit above them all (place_files). A
      // taken one (phase 1 only, before any lock is taken): its file is
      // kept aside and put back after.
      int aside = -1;
      if (w.via != w.fd) {
        bool taken = fd_numbered(img, w.fd) != nullptr;
        if (taken) aside = fcntl(w.fd, F_DUPFD_CLOEXEC, 3);
        if ((taken && aside < 0) || (!taken && fcntl(w.fd, F_GETFD) >= 0) ||
            dup3(w.via, w.fd, O_CLOEXEC) < 0) {
          if (late) die(what.c_str(), -EBUSY);
          refuse(what + ": its number cannot be used for the moment");
        }
      }
      struct epoll_event ev{};
      ev.events = w.events;
      ev.data.u64 = w.data;
      int rc = epoll_ctl(f.rec.fd, EPOLL_CTL_ADD, w.fd, &ev), err = errno;
      if (aside >= 0) {
        int flags = (fd_numbered(img, w.fd)->rec.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0;
        if (dup3(aside, w.fd, flags) < 0) refuse(what + ": its descriptor cannot be put back");
        close(aside);
      } else if (w.via != w.fd) {
        close(w.fd);
      }
      if (rc == 0) continue;
      if (late) die(what.c_str(), -err);
      refuse(what + ": " + strerror(err) +
             (w.fd <= 2 ? " (fds 0, 1 and 2 are whoever restarts the process's: give it ones that can be polled)"
                        : ""));
    }
  }
}

}  // namespace mosix::ckpt::restorer
