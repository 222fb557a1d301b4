// The program's descriptors: files, directories and devices reopened at
// their numbers and their locks taken again before the point of no return
// (so a missing file or a lock someone else holds now refuses the restore),
// file mappings planned around those locks, and pipes made anew after it.
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/restorer.h"

namespace mosix::ckpt::restorer {
namespace {

const Fd* fd_numbered(const Image& img, std::int32_t fd) {
  for (const Fd& f : img.fds)
    if (f.rec.fd == fd) return &f;
  return nullptr;
}

// The pids /proc/locks names as holding a lock of `kind` on the inode,
// other than ours ("" if none is known).
std::string lock_holders(const char* kind, const struct stat& st) {
  std::string out;
  FILE* f = fopen("/proc/locks", "re");
  if (f == nullptr) return out;
  char line[256];
  while (fgets(line, sizeof line, f) != nullptr) {
    char k[16], type[16];
    long pid = 0;
    unsigned maj = 0, min = 0;
    unsigned long ino = 0;
    if (strstr(line, "->") != nullptr) continue;  // a waiter, not a holder
    if (sscanf(line, "%*d: %15s %*s %15s %ld %x:%x:%lu", k, type, &pid, &maj, &min, &ino) != 6) continue;
    if (strcmp(k, kind) != 0 || ino != st.st_ino || makedev(maj, min) != st.st_dev || pid == getpid() || pid <= 0)
      continue;
    out += (out.empty() ? "" : ", ") + std::to_string(pid);
  }
  fclose(f);
  return out;
}

// Takes each of the program's file locks again, on its placed descriptors.
// Before the point of no return: if another process holds a conflicting lock
// now, the restore is refused (the image is kept) rather than the program
// going on without a lock it counts on. POSIX locks are the process's: they
// stay ours through the rest of the restore, as long as no descriptor on
// their file is closed (close() of any descriptor releases them, which is
// why files are placed, and mapped, without closing one; see plan_file_maps).
void take_locks(const Image& img) {
  for (const FileLockRecord& l : img.locks) {
    const Fd* f = fd_numbered(img, l.fd);
    if (f == nullptr || f->rec.kind == FdKind::pipe || f->rec.kind == FdKind::std_stream)
      refuse("a file lock is recorded on fd " + std::to_string(l.fd) + ", which is not a file the image reopens");
    constexpr std::uint64_t kMaxOff = static_cast<std::uint64_t>(INT64_MAX);
    if (l.start > kMaxOff || (l.end != kLockToEnd && l.end >= kMaxOff))
      refuse("a file lock on fd " + std::to_string(l.fd) + " has a range beyond what off_t holds");
    const char* type = l.type == LockType::write ? "write" : "read";
    std::string range = l.kind == LockKind::flock ? std::string("the whole file")
                        : "bytes " + std::to_string(l.start) + "-" +
                              (l.end == kLockToEnd ? std::string("EOF") : std::to_string(l.end));
    std::string what = std::string("the ") + lock_kind_name(l.kind) + " " + type + " lock on " + range + " of " +
                       f->path + " (fd " + std::to_string(l.fd) + ")";
    struct flock fl{};
    fl.l_type = static_cast<short>(l.type == LockType::write ? F_WRLCK : F_RDLCK);
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(l.start);
    fl.l_len = l.end == kLockToEnd ? 0 : static_cast<off_t>(l.end - l.start + 1);
    int r = l.kind == LockKind::posix ? fcntl(l.fd, F_SETLK, &fl)
            : l.kind == LockKind::ofd ? fcntl(l.fd, F_OFD_SETLK, &fl)
                                      : flock(l.fd, (l.type == LockType::write ? LOCK_EX : LOCK_SH) | LOCK_NB);
    if (r == 0) continue;
    int err = errno;
    if (err != EAGAIN && err != EACCES && err != EWOULDBLOCK)
      refuse("cannot take " + what + " again: " + strerror(err));
    // Who holds it now: F_GETLK names a POSIX holder's pid; an OFD lock has
    // none (-1), and flock locks are only in /proc/locks.
    std::string holder;
    if (l.kind != LockKind::flock) {
      struct flock probe = fl;
      probe.l_pid = 0;
      if (fcntl(l.fd, l.kind == LockKind::posix ? F_GETLK : F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK &&
          probe.l_pid > 0)
        holder = std::to_string(probe.l_pid);
    }
    struct stat st{};
    if (holder.empty() && fstat(l.fd, &st) == 0) {
      holder = lock_holders("POSIX", st);
      if (holder.empty()) holder = lock_holders("FLOCK", st);
    }
    refuse("cannot take " + what + " again: " +
           (holder.empty() ? std::string("another process holds a conflicting lock")
                           : "process " + holder + " holds a conflicting lock") +
           " now; the image is kept, restart it once that lock is released");
  }
}

}  // namespace

// Reopens the program's files, directories and devices at their numbers and
// takes their locks again, before the point of no return: a file that cannot
// be opened or a lock someone else holds now refuses the restore. 0, 1 and
// 2 stay the restorer's (whoever restarts the process provides them).
// Returns the image descriptor, moved above all of the program's.
int place_files(const Image& img, int image_fd) {
  int top = 3;
  for (const Fd& f : img.fds) top = f.rec.fd + 1 > top ? f.rec.fd + 1 : top;
  int moved = fcntl(image_fd, F_DUPFD_CLOEXEC, top);
  if (moved < 0) refuse("cannot move the image descriptor above the program's");
  // Whatever else was inherited is not the program's.
  for (int fd = 3; fd < moved; ++fd) close(fd);
  syscall(SYS_close_range, moved + 1, ~0U, 0);
  for (const Fd& f : img.fds) {
    const FdRecord& r = f.rec;
    if (r.kind == FdKind::std_stream || r.kind == FdKind::pipe) continue;
    int flags = static_cast<int>(r.open_flags) & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
    if (r.fd_flags & FD_CLOEXEC) flags |= O_CLOEXEC;
    int fd = open(f.path.c_str(), flags);
    if (fd < 0) refuse("fd " + std::to_string(r.fd) + ": cannot reopen " + f.path + ": " + strerror(errno));
    if (fd != r.fd) {
      if (dup3(fd, r.fd, flags & O_CLOEXEC) < 0) refuse("fd " + std::to_string(r.fd) + ": dup3: " + strerror(errno));
      close(fd);
    }
    if (r.kind == FdKind::regular && lseek(r.fd, static_cast<off_t>(r.offset), SEEK_SET) < 0)
      refuse("fd " + std::to_string(r.fd) + ": cannot seek " + f.path + ": " + strerror(errno));
  }
  take_locks(img);
  return moved;
}

// Phase 2 maps file regions with open() and close(), and a close() on a file
// releases the process's POSIX locks on it. A file the program has
// POSIX-locked is mapped through one of its placed descriptors instead, one
// opened for what the mapping needs; without one the restore is refused.
void plan_file_maps(Image& img) {
  for (Region& g : img.regions) {
    if (g.rec.kind != RegionKind::private_file && g.rec.kind != RegionKind::shared_file) continue;
    struct stat want{};
    if (stat(g.path.c_str(), &want) != 0) continue;
    bool locked = false;
    for (const FileLockRecord& l : img.locks) {
      struct stat st{};
      if (l.kind == LockKind::posix && fstat(l.fd, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
        locked = true;
    }
    if (!locked) continue;
    bool needs_write = g.rec.kind == RegionKind::shared_file && ((g.rec.prot & PROT_WRITE) || (g.rec.flags & kRegionMayWrite));
    for (const Fd& f : img.fds) {
      struct stat st{};
      int mode = static_cast<int>(f.rec.open_flags) & O_ACCMODE;
      if (f.rec.kind != FdKind::regular || fstat(f.rec.fd, &st) != 0 || st.st_dev != want.st_dev ||
          st.st_ino != want.st_ino || mode == O_WRONLY || (needs_write && mode != O_RDWR))
        continue;
      g.map_fd = f.rec.fd;
      break;
    }
    if (g.map_fd < 0)
      refuse("mapped file " + g.path + " holds a POSIX lock of the program, and no descriptor of the program is "
             "open on it as the mapping needs: mapping it would release the lock");
  }
}

// Restores the pipes between the program's own threads, after the point of
// no return. Takes the image descriptor, moved above all of the program's.
void restore_pipes(const Image& img, int moved) {
  // Pipes between the program's own threads: one new pipe per old one, its
  // unread bytes written back, each end duplicated to its numbers.
  for (std::size_t i = 0; i < img.fds.size(); ++i) {
    const FdRecord& r = img.fds[i].rec;
    if (r.kind != FdKind::pipe) continue;
    bool first = true;
    for (std::size_t j = 0; j < i; ++j)
      first = first && !(img.fds[j].rec.kind == FdKind::pipe && img.fds[j].rec.inode == r.inode);
    if (!first) continue;
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) die("pipe2", -errno);
    for (int k = 0; k < 2; ++k) {
      int high = fcntl(ends[k], F_DUPFD_CLOEXEC, moved + 1);
      close(ends[k]);
      ends[k] = high;
    }
    // The read end's record holds the first part of the unread bytes, the
    // write end's the rest.
    for (bool readers : {true, false}) {
      for (const Fd& g : img.fds) {
        const FdRecord& e = g.rec;
        if (e.kind != FdKind::pipe || e.inode != r.inode || e.data.empty() ||
            ((e.open_flags & O_ACCMODE) == O_RDONLY) != readers)
          continue;
        if (write(ends[1], e.data.data(), e.data.size()) != static_cast<ssize_t>(e.data.size()))
          die("refilling a pipe", -errno);
      }
    }
    for (const Fd& g : img.fds) {
      const FdRecord& e = g.rec;
      if (e.kind != FdKind::pipe || e.inode != r.inode) continue;
      bool reader = (e.open_flags & O_ACCMODE) == O_RDONLY;
      if (dup3(reader ? ends[0] : ends[1], e.fd, (e.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
        die("dup3", -errno);
      fcntl(e.fd, F_SETFL, static_cast<int>(e.open_flags) & (O_NONBLOCK | O_APPEND));
    }
    close(ends[0]);
    close(ends[1]);
  }
}

}  // namespace mosix::ckpt::restorer
