// Named pipes (FIFOs), before the point of no return: each opened again by
// its path (a removed one made again under its name with mkfifo and removed
// at once), refilled with its unread bytes, and each descriptor of the
// program on it opened through it with its own flags at its number.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/restorer.h"

namespace mosix::ckpt::restorer {

std::pair<int, bool> open_fifo(const Fd& f, int above, const std::string& bytes, long capacity) {
  const FdRecord& r = f.rec;
  std::string what = "fd " + std::to_string(r.fd) + " (" + f.path + ")";
  std::string name = ghost_name(f);
  bool removed = name != f.path;
  // Opened for reading and writing, it never blocks, and holds both ends
  // while the program's own opens are made through it.
  if (removed && mkfifo(name.c_str(), 0600) != 0)
    refuse(what + ": cannot make the removed named pipe again as " + name + ": " + strerror(errno));
  struct stat st{};
  if (!removed && (stat(name.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode)))
    refuse(what + ": " + name + " is no longer a named pipe");
  int opened = open(name.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  int err = errno;
  if (removed && unlink(name.c_str()) != 0) refuse(what + ": cannot remove " + name + " again: " + strerror(errno));
  if (opened < 0) refuse(what + ": cannot open the named pipe again: " + strerror(err));
  int anchor = fcntl(opened, F_DUPFD_CLOEXEC, above);
  if (anchor < 0) refuse(what + ": cannot place the named pipe's descriptor: " + strerror(errno));
  close(opened);
  if (fstat(anchor, &st) != 0 || !S_ISFIFO(st.st_mode)) refuse(what + ": " + name + " is no longer a named pipe");
  // Bytes in it now are another process's: it is not the program's alone.
  int unread = 0;
  if (ioctl(anchor, FIONREAD, &unread) != 0 || unread != 0)
    refuse(what + ": the named pipe holds bytes another process wrote since the checkpoint");
  if (capacity != 0 && fcntl(anchor, F_SETPIPE_SZ, static_cast<int>(capacity)) < 0)
    refuse(what + ": cannot give the named pipe its capacity again (F_SETPIPE_SZ): " + strerror(errno));
  if (!bytes.empty() && write(anchor, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    refuse(what + ": cannot put the named pipe's unread bytes back: " + strerror(errno));
  return {anchor, removed};
}

void finish_fifo(const Fd& f, int anchor, bool removed) {
  const FdRecord& r = f.rec;
  std::string what = "fd " + std::to_string(r.fd) + " (" + f.path + ")";
  // Its group and mode once the opens are made (the mode may forbid them).
  if (removed) {
    if (r.gid != getegid() && fchown(anchor, static_cast<uid_t>(-1), static_cast<gid_t>(r.gid)) != 0)
      refuse(what + ": cannot give the removed named pipe its group again: " + strerror(errno));
    if (fchmod(anchor, static_cast<mode_t>(r.mode & 07777)) != 0)
      refuse(what + ": cannot give the removed named pipe its mode again: " + strerror(errno));
  }
  close(anchor);
}

void place_fifos(const Image& img, int above) {
  for (const Fd& f : img.fds) {
    const FdRecord& r = f.rec;
    // One of the tree's named pipes, made before the forks and placed with
    // the tree's open files (place_files).
    if (r.kind != FdKind::fifo || is_tree_file(r.fd)) continue;
    bool first = true;
    for (const Fd& e : img.fds) {
      if (&e == &f) break;
      first = first && !(e.rec.kind == FdKind::fifo && e.rec.dev == r.dev && e.rec.inode == r.inode);
    }
    if (!first) continue;
    std::string bytes;
    for (const FileData& d : f.contents) bytes.append(reinterpret_cast<const char*>(d.bytes.data()), d.bytes.size());
    auto [anchor, removed] = open_fifo(f, above, bytes, static_cast<long>(r.size));
    std::string again = "/proc/self/fd/" + std::to_string(anchor);
    for (const Fd& e : img.fds) {
      const FdRecord& o = e.rec;
      if (o.kind != FdKind::fifo || o.dev != r.dev || o.inode != r.inode) continue;
      std::string at = "fd " + std::to_string(o.fd) + " (" + e.path + ")";
      int fd = open(again.c_str(), static_cast<int>(o.open_flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) refuse(at + ": cannot open the named pipe again: " + strerror(errno));
      if (fcntl(fd, F_SETFL, static_cast<int>(o.open_flags) & (O_NONBLOCK | O_APPEND)) != 0)
        refuse(at + ": fcntl: " + strerror(errno));
      if (fd == o.fd) {  // the open took the lowest free number, its own
        if (fcntl(fd, F_SETFD, o.fd_flags & FD_CLOEXEC) != 0) refuse(at + ": fcntl: " + strerror(errno));
        continue;
      }
      if (dup3(fd, o.fd, (o.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) refuse(at + ": dup3: " + strerror(errno));
      close(fd);
    }
    finish_fifo(f, anchor, removed);
  }
}

}  // namespace mosix::ckpt::restorer
