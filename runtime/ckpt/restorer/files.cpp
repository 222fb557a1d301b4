// The program's descriptors: files, directories and devices reopened at
// their numbers (a descriptor that shared another's open file made with
// dup3 of it), deleted-but-open files made again from the image, and their
// locks taken again before the point of no return (so a missing file or a
// lock someone else holds now refuses the restore), file mappings planned
// around those locks, and pipes made anew after it.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "runtime/ckpt/restorer/restorer.h"
#include "runtime/core/little_endian.h"

namespace mosix::ckpt::restorer {

const Fd* fd_numbered(const Image& img, std::int32_t fd) {
  for (const Fd& f : img.fds)
    if (f.rec.fd == fd) return &f;
  return nullptr;
}

namespace {

// Made by restore_pipes, after the point of no return.
bool made_after_return(FdKind kind) { return kind == FdKind::pipe || kind == FdKind::pidfd; }

// The fd whose open file a shared record's descriptor shares, else -1.
int shared_first(const Fd& f) {
  if (f.rec.kind != FdKind::shared) return -1;
  return static_cast<int>(static_cast<std::int32_t>(load_le<std::uint32_t>(f.data.data())));
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

// One ghost file made again, and the descriptor to open it through.
struct Ghost {
  std::uint64_t dev, inode;
  int fd;
  const Fd* rec;  // the record that carries its data, owner, mode and mtime
  bool given = false;  // a memfd's own file went to a descriptor of the program
};

}  // namespace

// Makes one ghost file again from the record that carries its data:
// created under its old name, unlinked at once, filled with its data and
// cut to its size, its descriptor placed at or above `above`. Refuses on
// any failure; nothing is left under the name.
int make_ghost(const Fd& f, int above) {
  std::string name = ghost_name(f), what = "fd " + std::to_string(f.rec.fd) + " (" + f.path + ")";
  int fd = -1;
  if (f.rec.kind == FdKind::memfd) {
    fd = static_cast<int>(syscall(SYS_memfd_create, name.c_str() + 7, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (fd < 0) refuse(what + ": cannot make the memfd again: " + strerror(errno));
  } else {
    fd = open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) refuse(what + ": cannot make the deleted file again as " + name + ": " + strerror(errno));
    if (unlink(name.c_str()) != 0) refuse(what + ": cannot unlink " + name + " again: " + strerror(errno));
  }
  int high = fcntl(fd, F_DUPFD_CLOEXEC, above);
  if (high < 0) refuse(what + ": cannot place the deleted file's descriptor: " + strerror(errno));
  close(fd);
  // The umask may have taken our own write permission; the program's
  // descriptors are opened through /proc with their own flags.
  if (fchmod(high, 0600) != 0) refuse(what + ": fchmod: " + strerror(errno));
  for (const FileData& d : f.contents) {
    ssize_t w = pwrite(high, d.bytes.data(), d.bytes.size(), static_cast<off_t>(d.offset));
    if (w != static_cast<ssize_t>(d.bytes.size()))
      refuse(what + ": writing the deleted file's data again: " + (w < 0 ? strerror(errno) : "short write"));
  }
  if (ftruncate(high, static_cast<off_t>(f.rec.size)) != 0)
    refuse(what + ": cannot give the deleted file its size again: " + strerror(errno));
  return high;
}

// Once the program's descriptors on a ghost are open (its mode may forbid
// opening it again), gives it its group, mode, modification time and a
// memfd its seals, and closes the descriptor it was made through.
void finish_ghost(const Fd& f, int fd) {
  const FdRecord& r = f.rec;
  std::string what = "fd " + std::to_string(r.fd) + " (" + f.path + ")";
  if (r.gid != getegid() && fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(r.gid)) != 0)
    refuse(what + ": cannot give the deleted file its group again: " + strerror(errno));
  if (fchmod(fd, static_cast<mode_t>(r.mode & 07777)) != 0)
    refuse(what + ": cannot give the deleted file its mode again: " + strerror(errno));
  struct timespec times[2] = {{0, UTIME_OMIT},
                              {static_cast<time_t>(r.mtime_ns / 1'000'000'000LL), r.mtime_ns % 1'000'000'000LL}};
  if (futimens(fd, times) != 0)
    refuse(what + ": cannot give the deleted file its modification time again: " + strerror(errno));
  std::uint32_t seals = 0;
  if (r.kind == FdKind::memfd) std::memcpy(&seals, f.data.data(), 4);
  if (seals != 0 && fcntl(fd, F_ADD_SEALS, static_cast<int>(seals)) != 0)
    refuse(what + ": cannot seal the memfd again: " + strerror(errno));
  close(fd);
}

namespace {

// Makes each ghost file again, once (its descriptors share it), but those
// another process of its tree holds too: the tree's restorer made them
// before the forks, with every descriptor on them (tree.cpp).
std::vector<Ghost> make_ghosts(const Image& img, int above) {
  std::vector<Ghost> out;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
  for (const Fd& f : img.fds) {
    if (f.rec.kind != FdKind::ghost && f.rec.kind != FdKind::memfd) continue;
    std::pair<std::uint64_t, std::uint64_t> id{f.rec.dev, f.rec.inode};
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    if (is_tree_file(f.rec.fd)) continue;
    out.push_back(Ghost{f.rec.dev, f.rec.inode, make_ghost(f, above), &f, false});
  }
  return out;
}

void finish_ghosts(const std::vector<Ghost>& ghosts) {
  for (const Ghost& g : ghosts) finish_ghost(*g.rec, g.fd);
}

// A signalfd, eventfd or timerfd made again with its state (image_format.h)
// and flags, at its number. A timer keeps running from here on: the time
// the rest of the restore takes counts as time passed.
void place_anon(const Fd& f) {
  const FdRecord& r = f.rec;
  const std::uint8_t* d = f.data.data();
  std::string what = "fd " + std::to_string(r.fd) + ": cannot make the " + fd_kind_name(r.kind) + " again: ";
  int flags = ((r.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) | static_cast<int>(r.open_flags & O_NONBLOCK);
  int fd = -1;
  if (r.kind == FdKind::signalfd) {
    std::uint64_t mask = load_le<std::uint64_t>(d);
    fd = static_cast<int>(syscall(SYS_signalfd4, -1, &mask, 8, flags));
    if (fd < 0) refuse(what + strerror(errno));
  } else if (r.kind == FdKind::eventfd) {
    fd = eventfd(0, flags | (load_le<std::uint32_t>(d + 8) != 0 ? EFD_SEMAPHORE : 0));
    std::uint64_t count = load_le<std::uint64_t>(d);
    if (fd < 0 || (count != 0 && write(fd, &count, 8) != 8)) refuse(what + strerror(errno));
  } else {
    auto clock = static_cast<clockid_t>(static_cast<std::int32_t>(load_le<std::uint32_t>(d)));
    int set_flags = static_cast<int>(load_le<std::uint32_t>(d + 4)) & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
    std::uint64_t ticks = load_le<std::uint64_t>(d + 8), left = load_le<std::uint64_t>(d + 16), interval = load_le<std::uint64_t>(d + 24);
    fd = timerfd_create(clock, flags);
    if (fd < 0) refuse(what + strerror(errno));
    // A periodic timer that fired and was not read since shows 0 left (the
    // kernel moves it on only when it is read): it is armed, one interval on.
    if (left == 0) left = interval;
    auto ts = [](std::uint64_t ns) {
      return timespec{static_cast<time_t>(ns / 1'000'000'000ULL), static_cast<long>(ns % 1'000'000'000ULL)};
    };
    struct itimerspec spec{ts(interval), ts(left)};
    if (set_flags & TFD_TIMER_ABSTIME) {  // what was left, from now on this clock
      struct timespec now{};
      clock_gettime(clock, &now);
      spec.it_value = ts(static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL +
                         static_cast<std::uint64_t>(now.tv_nsec) + left);
    }
    if (left != 0 && timerfd_settime(fd, set_flags, &spec, nullptr) != 0) refuse(what + strerror(errno));
    // TFD_IOC_SET_TICKS: expirations the program has not read yet.
    constexpr unsigned long kSetTicks = _IOW('T', 0, std::uint64_t);
    if (ticks != 0 && ioctl(fd, kSetTicks, &ticks) != 0)
      refuse(what + "its " + std::to_string(ticks) + " unread expirations cannot be set (TFD_IOC_SET_TICKS): " +
             strerror(errno));
  }
  if (fd != r.fd) {
    if (dup3(fd, r.fd, flags & O_CLOEXEC) < 0) refuse("fd " + std::to_string(r.fd) + ": dup3: " + strerror(errno));
    close(fd);
  }
}

// An inotify instance made again, at its number. The kernel hands out
// watch numbers in turn (idr_alloc_cyclic from 1, never the last one again),
// so each watch is added again in wd order, a watch on a file of none of
// them added and removed for each number to skip, and the same up to the
// last number the program was handed, so that its next watch gets the number
// it would have got. The removals queue IN_IGNORED events, which are read
// away: the instance had none queued (the agent refuses one that had).
// Phase 1: a file no longer at its path, or a number that comes out
// otherwise, refuses the restore.
void place_inotify(const Fd& f) {
  const FdRecord& r = f.rec;
  InotifyState state = inotify_state(f);
  std::string what = "fd " + std::to_string(r.fd) + " (inotify): ";
  int fd = static_cast<int>(syscall(SYS_inotify_init1, IN_NONBLOCK | IN_CLOEXEC));
  if (fd < 0) refuse(what + "cannot make the instance again: " + strerror(errno));
  const char* spare = nullptr;
  for (const char* candidate : {"/", "/dev/null", "/proc", "/tmp"}) {
    struct stat st{};
    bool watched = stat(candidate, &st) != 0;
    for (const InotifyWatch& w : state.watches) watched = watched || (w.inode == st.st_ino && w.dev == st.st_dev);
    if (!watched) {
      spare = candidate;
      break;
    }
  }
  auto skip_to = [&](std::uint32_t wd) {
    for (int before = 0;;) {
      int next = static_cast<int>(syscall(SYS_inotify_add_watch, fd, spare, IN_ACCESS));
      if (next < 0) refuse(what + "cannot skip watch numbers: " + strerror(errno));
      syscall(SYS_inotify_rm_watch, fd, next);
      if (next <= before)  // a kernel that gives numbers again: they cannot be skipped
        refuse(what + "this kernel gave watch number " + std::to_string(next) + " again after " +
               std::to_string(before) + ", so the watches cannot get their numbers back");
      before = next;
      if (static_cast<std::uint32_t>(next) >= wd) return;
    }
  };
  int last = 0;
  for (const InotifyWatch& w : state.watches) {
    struct stat st{};
    bool nofollow = (w.mask & IN_DONT_FOLLOW) != 0;
    if ((nofollow ? lstat(w.path.c_str(), &st) : stat(w.path.c_str(), &st)) != 0 || st.st_ino != w.inode ||
        st.st_dev != w.dev)
      refuse(what + "watch " + std::to_string(w.wd) + ": " + w.path + " is no longer the file it watched");
    if (w.wd > last + 1) {
      if (spare == nullptr) refuse(what + "no file to skip watch numbers with");
      skip_to(static_cast<std::uint32_t>(w.wd - 1));
    }
    int wd = static_cast<int>(syscall(SYS_inotify_add_watch, fd, w.path.c_str(), w.mask));
    if (wd < 0) refuse(what + "cannot watch " + w.path + " again: " + strerror(errno));
    if (wd != w.wd)
      refuse(what + "watch " + std::to_string(w.wd) + " of " + w.path + " came back as " + std::to_string(wd));
    last = wd;
  }
  if (state.last_wd > static_cast<std::uint32_t>(last)) {
    if (spare == nullptr) refuse(what + "no file to skip watch numbers with");
    skip_to(state.last_wd);
  }
  char events[4096];
  while (read(fd, events, sizeof events) > 0) {
  }
  if (fcntl(fd, F_SETFL, static_cast<int>(r.open_flags) & O_NONBLOCK) != 0)
    refuse(what + "fcntl: " + strerror(errno));
  if (fd == r.fd) {  // made at its own number
    if (fcntl(fd, F_SETFD, r.fd_flags & FD_CLOEXEC) != 0) refuse(what + "fcntl: " + strerror(errno));
    return;
  }
  if (dup3(fd, r.fd, (r.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) refuse(what + "dup3: " + strerror(errno));
  close(fd);
}

}  // namespace

InotifyState inotify_state(const Fd& f) {
  std::string what = "fd " + std::to_string(f.rec.fd) + ": a malformed inotify record";
  const std::vector<std::uint8_t>& d = f.data;
  if (d.size() < 8) refuse(what);
  InotifyState s;
  s.last_wd = load_le<std::uint32_t>(d.data());
  std::uint32_t count = load_le<std::uint32_t>(d.data() + 4);
  std::size_t at = 8;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (d.size() - at < 28) refuse(what);
    InotifyWatch w;
    w.wd = static_cast<std::int32_t>(load_le<std::uint32_t>(d.data() + at));
    w.mask = load_le<std::uint32_t>(d.data() + at + 4);
    w.inode = load_le<std::uint64_t>(d.data() + at + 8);
    w.dev = load_le<std::uint64_t>(d.data() + at + 16);
    std::uint32_t len = load_le<std::uint32_t>(d.data() + at + 24);
    at += 28;
    if (len == 0 || len > PATH_MAX || d.size() - at < len) refuse(what);
    w.path.assign(reinterpret_cast<const char*>(d.data() + at), len);
    at += len;
    if (w.path[0] != '/' || w.path.find('\0') != std::string::npos || w.wd <= 0) refuse(what);
    s.watches.push_back(std::move(w));
  }
  if (at != d.size()) refuse(what);
  std::sort(s.watches.begin(), s.watches.end(),
            [](const InotifyWatch& a, const InotifyWatch& b) { return a.wd < b.wd; });
  for (std::size_t i = 1; i < s.watches.size(); ++i)
    if (s.watches[i].wd == s.watches[i - 1].wd) refuse(what);
  if (!s.watches.empty() && s.last_wd < static_cast<std::uint32_t>(s.watches.back().wd)) refuse(what);
  if (s.last_wd > (1u << 20)) refuse("fd " + std::to_string(f.rec.fd) + ": an inotify instance that was handed " +
                                     std::to_string(s.last_wd) + " watch numbers, more than a restore skips");
  return s;
}

// Reopens the program's files, directories and devices at their numbers,
// makes its deleted-but-open files again, and takes their locks again,
// before the point of no return: a file that cannot be opened or a lock
// someone else holds now refuses the restore. 0, 1 and 2 stay the
// restorer's (whoever restarts the process provides them). Returns the
// image descriptor, moved above all of the program's.
int place_files(const Image& img, int image_fd) {
  int top = 3;
  for (const Fd& f : img.fds) {
    top = f.rec.fd + 1 > top ? f.rec.fd + 1 : top;
    // An epoll watch's number, closed since but taken again for a moment.
    if (f.rec.kind == FdKind::epoll)
      for (const EpollWatch& w : epoll_watches(img, f)) top = w.fd + 1 > top ? w.fd + 1 : top;
  }
  int moved = fcntl(image_fd, F_DUPFD_CLOEXEC, top);
  if (moved < 0) refuse("cannot move the image descriptor above the program's");
  // The forwarded sockets, right above it (their channel may be below).
  int kept = keep_tree_files(img, keep_tree_pipes(img, receive_forwarded(moved + 1)));
  // Whatever else was inherited is not the program's.
  for (int fd = 3; fd < moved; ++fd) close(fd);
  syscall(SYS_close_range, kept + 1, ~0U, 0);
  std::vector<Ghost> ghosts = make_ghosts(img, moved + 1);
  make_removed_dirs(img, nullptr, moved + 1);
  for (const Fd& f : img.fds) {
    const FdRecord& r = f.rec;
    if (r.kind == FdKind::std_stream || r.kind == FdKind::pipe || r.kind == FdKind::shared ||
        (r.kind == FdKind::fifo && !is_tree_file(r.fd)) || r.kind == FdKind::pidfd)
      continue;
    int flags = static_cast<int>(r.open_flags) & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
    if (r.fd_flags & FD_CLOEXEC) flags |= O_CLOEXEC;
    bool path_only = (flags & O_PATH) != 0;
    if (path_only && S_ISLNK(r.mode)) flags |= O_NOFOLLOW;  // the symlink itself
    if (r.kind == FdKind::signalfd || r.kind == FdKind::eventfd || r.kind == FdKind::timerfd) {
      place_anon(f);
      continue;
    }
    if (r.kind == FdKind::inotify) {
      place_inotify(f);
      continue;
    }
    if (r.kind == FdKind::socket) {
      place_socket(img, f);
      continue;
    }
    if (r.kind == FdKind::epoll) {
      place_epoll(f);
      continue;
    }
    if (r.kind == FdKind::forwarded) {
      place_forwarded(f);
      continue;
    }
    // One open file with another process of its tree: its offset and flags
    // are the open file's, set once for the tree (tree.cpp).
    if (int shared = tree_file(r.fd); shared >= 0) {
      if (dup3(shared, r.fd, flags & O_CLOEXEC) < 0) refuse("fd " + std::to_string(r.fd) + ": dup3: " + strerror(errno));
      continue;
    }
    std::string path = is_removed_dir(f) ? make_removed_dirs(img, &f, moved + 1) : f.path;
    int fd = -1;
    for (Ghost& g : ghosts) {
      if ((r.kind != FdKind::ghost && r.kind != FdKind::memfd) || g.dev != r.dev || g.inode != r.inode) continue;
      path = "/proc/self/fd/" + std::to_string(g.fd);
      // memfd_create's own file, as the program's was: a memfd reopened
      // through /proc holds write access, and exec of it fails (ETXTBSY).
      if (r.kind == FdKind::memfd && !g.given && (flags & O_ACCMODE) == O_RDWR) {
        g.given = true;
        fd = fcntl(g.fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) fcntl(fd, F_SETFL, flags & (O_APPEND | O_NONBLOCK));
        if (fd >= 0 && !(flags & O_CLOEXEC)) fcntl(fd, F_SETFD, 0);
      }
    }
    if (fd < 0) fd = open(path.c_str(), flags);
    if (fd < 0) refuse("fd " + std::to_string(r.fd) + ": cannot reopen " + f.path + ": " + strerror(errno));
    if (fd != r.fd) {
      if (dup3(fd, r.fd, flags & O_CLOEXEC) < 0) refuse("fd " + std::to_string(r.fd) + ": dup3: " + strerror(errno));
      close(fd);
    }
    bool file = r.kind == FdKind::regular || r.kind == FdKind::ghost || r.kind == FdKind::memfd;
    if (file && !path_only && lseek(r.fd, static_cast<off_t>(r.offset), SEEK_SET) < 0)
      refuse("fd " + std::to_string(r.fd) + ": cannot seek " + f.path + ": " + strerror(errno));
  }
  close_tree_files();
  place_fifos(img, moved + 1);
  check_pidfds(img);
  // Descriptors of an open file placed above share it again (checks.cpp
  // made sure each names one); a pipe end's or pidfd's, once it is made.
  for (const Fd& f : img.fds) {
    int first = shared_first(f);
    if (first < 0 || made_after_return(fd_numbered(img, first)->rec.kind)) continue;
    if (dup3(first, f.rec.fd, (f.rec.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
      refuse("fd " + std::to_string(f.rec.fd) + ": dup3 of fd " + std::to_string(first) + ": " + strerror(errno));
  }
  close_unplaced_forwarded();
  connect_sockets(img);
  add_epoll_watches(img, false);
  finish_ghosts(ghosts);
  finish_removed_dirs();
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
      if (f.rec.kind != FdKind::regular || (f.rec.open_flags & O_PATH) || fstat(f.rec.fd, &st) != 0 ||
          st.st_dev != want.st_dev ||
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
// no return, and the descriptors that shared a pipe end's open file. Takes
// the image descriptor, moved above all of the program's.
void restore_pipes(const Image& img, int moved) {
  // A tree's pipes (tree.cpp) were made before the tree's processes.
  place_tree_pipes(img);
  place_pidfds(img);
  // Pipes between the program's own threads: one new pipe per old one, its
  // unread bytes written back, each end duplicated to its numbers.
  for (std::size_t i = 0; i < img.fds.size(); ++i) {
    const FdRecord& r = img.fds[i].rec;
    if (r.kind != FdKind::pipe || is_tree_pipe(r.inode)) continue;
    bool first = true;
    for (std::size_t j = 0; j < i; ++j)
      first = first && !(img.fds[j].rec.kind == FdKind::pipe && img.fds[j].rec.inode == r.inode);
    if (!first) continue;
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) die("pipe2", -errno);
    // Its capacity (checks.cpp made one of that size in phase 1).
    if (r.size != 0 && fcntl(ends[1], F_SETPIPE_SZ, static_cast<int>(r.size)) < 0) die("F_SETPIPE_SZ", -errno);
    for (int k = 0; k < 2; ++k) {
      int high = fcntl(ends[k], F_DUPFD_CLOEXEC, moved + 1);
      close(ends[k]);
      ends[k] = high;
    }
    // The read end's record holds the first part of the unread bytes, the
    // write end's the next, file data records after one of them the rest
    // (checks.cpp made sure they follow on and fit).
    auto refill = [&](const std::vector<std::uint8_t>& bytes) {
      if (!bytes.empty() && write(ends[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
        die("refilling a pipe", -errno);
    };
    for (bool readers : {true, false}) {
      for (const Fd& g : img.fds) {
        const FdRecord& e = g.rec;
        if (e.kind == FdKind::pipe && e.inode == r.inode && ((e.open_flags & O_ACCMODE) == O_RDONLY) == readers)
          refill(g.data);
      }
    }
    for (const Fd& g : img.fds) {
      if (g.rec.kind != FdKind::pipe || g.rec.inode != r.inode) continue;
      for (const FileData& d : g.contents) refill(d.bytes);
    }
    // The first record of each end takes the new end; each further one was
    // an open of its own (through /proc/self/fd, with flags of its own) and
    // is opened again the same way. Those that shared one's open file
    // follow below.
    bool placed[2] = {false, false};
    for (const Fd& g : img.fds) {
      const FdRecord& e = g.rec;
      if (e.kind != FdKind::pipe || e.inode != r.inode) continue;
      bool reader = (e.open_flags & O_ACCMODE) == O_RDONLY;
      int end = reader ? ends[0] : ends[1], fd = end;
      if (placed[reader]) {
        std::string again = "/proc/self/fd/" + std::to_string(end);
        fd = open(again.c_str(), (reader ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
        if (fd < 0) die("opening a pipe end again", -errno);
      }
      placed[reader] = true;
      if (fd == e.fd) {  // the open took the lowest free number, its own
        fcntl(fd, F_SETFD, e.fd_flags & FD_CLOEXEC);
      } else {
        if (dup3(fd, e.fd, (e.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) die("dup3", -errno);
        if (fd != end) close(fd);
      }
      fcntl(e.fd, F_SETFL, static_cast<int>(e.open_flags) & (O_NONBLOCK | O_APPEND));
    }
    close(ends[0]);
    close(ends[1]);
  }
  for (const Fd& f : img.fds) {
    int first = shared_first(f);
    if (first < 0 || !made_after_return(fd_numbered(img, first)->rec.kind)) continue;
    if (dup3(first, f.rec.fd, (f.rec.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) die("dup3", -errno);
  }
  add_epoll_watches(img, true);
  close_unheld_std_streams(img);
}

}  // namespace mosix::ckpt::restorer
