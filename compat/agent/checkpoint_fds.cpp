// A checkpoint's descriptors: which ones can be restored (check_fds), the
// files, pipes, socket pairs and anonymous-inode descriptors written into
// the image, with deleted-but-open files' data (ghosts) and the unread bytes
// of pipes and socket pairs.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>


#include "compat/agent/agent.h"
#include "compat/agent/epoll.h"
#include "compat/agent/forwarded.h"
#include "compat/agent/inotify.h"
#include "compat/agent/locks.h"
#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_writer.h"
#include "runtime/core/little_endian.h"

#include "compat/agent/session.h"

namespace mosix::agent::checkpoint {

namespace {

const char* anon_kind(const char* link) {
  static constexpr struct {
    const char* link;
    const char* kind;
  } kKinds[] = {{"anon_inode:[eventpoll]", "an epoll instance"}, {"anon_inode:inotify", "an inotify instance"},
                {"anon_inode:[fanotify]", "a fanotify instance"}, {"anon_inode:[eventfd]", "an eventfd"},
                {"anon_inode:[signalfd]", "a signalfd"},          {"anon_inode:[timerfd]", "a timerfd"},
                {"anon_inode:[pidfd]", "a pidfd"},                {"anon_inode:[io_uring]", "an io_uring instance"},
                {"anon_inode:[userfaultfd]", "a userfaultfd"},    {"anon_inode:[perf_event]", "a perf event"},
                {"anon_inode:bpf", "a BPF object"},               {"anon_inode:[aio]", "an AIO context"}};
  for (const auto& k : kKinds)
    if (starts_with(link, k.link)) return k.kind;
  if (starts_with(link, "anon_inode:")) return "an anonymous inode";
  return "of an unsupported kind";
}

}  // namespace

// anon_kind() of one of the process's own descriptors.
const char* anon_kind_of(long fd) {
  char path[64], link[64];
  Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
  long n = sys(SYS_readlinkat, AT_FDCWD, path, link, sizeof link - 1);
  link[n > 0 ? n : 0] = '\0';
  return anon_kind(link);
}

namespace {

bool is_pidfd(const char* link) { return cstr_eq(link, "anon_inode:[pidfd]") || starts_with(link, "pidfd:"); }

bool restorable_anon(const char* link) {
  return starts_with(link, "anon_inode:[signalfd]") || starts_with(link, "anon_inode:[eventfd]") ||
         starts_with(link, "anon_inode:[timerfd]") || cstr_eq(link, "anon_inode:inotify") ||
         cstr_eq(link, "anon_inode:[eventpoll]");
}

// Whether `what` stands on the line that starts at p.
bool contains_before_newline(const char* p, const char* what) {
  for (; *p != '\0' && *p != '\n'; ++p)
    if (starts_with(p, what)) return true;
  return false;
}

// The number after `key` on a line of a /proc fdinfo text (base 8, 10 or
// 16), or -1 when there is no such line.
long long fdinfo_number(const char* text, const char* key, int base) {
  for (const char* p = text; *p != '\0';) {
    if (starts_with(p, key)) {
      p += cstr_len(key);
      while (*p == ' ' || *p == '\t' || *p == '(') ++p;
      unsigned long long v = 0;
      for (;; ++p) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : 99;
        if (d >= base) break;
        v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
      }
      return static_cast<long long>(v);
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return -1;
}

bool is_plain_device(const char* link) {
  for (const char* d : {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"})
    if (cstr_eq(link, d)) return true;
  return false;
}

}  // namespace

bool ends_with_deleted(const char* s) {
  std::size_t n = cstr_len(s);
  return n >= 10 && cstr_eq(s + n - 10, " (deleted)");
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
}

namespace {

// Walks /proc/self/fd; for each descriptor of the program, calls fn(fd,
// link, stat). Stops and returns false when fn does.
template <typename Fn>
bool for_each_fd(Scratch* s, const long* skip, int nskip, Fn fn) {
  char dents[2048];
  return for_each_numbered_entry("/proc/self/fd", dents, sizeof dents, [&](std::uint64_t number, long dir) {
           auto fd = static_cast<long>(number);
           bool own = fd == dir;
           for (int i = 0; i < nskip; ++i) own = own || fd == skip[i];
           if (own) return true;
           char path[64];
           Line(path, sizeof path).s("/proc/self/fd/").u(number);
           long len = sys(SYS_readlinkat, AT_FDCWD, path, s->link, sizeof s->link - 1);
           if (len < 0) return true;
           s->link[len] = '\0';
           struct stat st{};
           if (sys(SYS_fstat, fd, &st) != 0) return true;
           return fn(fd, s->link, st);
         }) != 0;
}

}  // namespace

bool Session::check_fds() {
  // One descriptor table and one working directory for all the threads: a
  // thread made by clone() without CLONE_FILES or CLONE_FS has its own,
  // which the image (this thread's, through /proc/self) does not hold.
  long me = sys(SYS_gettid);
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    auto tid = static_cast<long>(s_->threads[i].tid);
    if (tid == 0 || tid == me) continue;
    for (long type : {2L /* KCMP_FILES */, 3L /* KCMP_FS */}) {
      if (sys(SYS_kcmp, me, tid, type, 0, 0) <= 0) continue;
      Line(s_->error, sizeof s_->error).s("thread ").u(static_cast<std::uint64_t>(tid))
          .s(type == 2 ? " has a descriptor table of its own (clone() without CLONE_FILES)"
                       : " has a working directory of its own (clone() without CLONE_FS)")
          .s(", which a restore does not give back");
      return false;
    }
  }
  long skip[] = {out_fd_, status_fd_, pagemap_fd_, track_fd_, tree_fd_};
  s_->npipes = 0;
  s_->socket.nown = 0;
  s_->socket.nelsewhere = 0;
  s_->socket.tree = tree_path_ != nullptr;
  for_each_fd(s_, skip, 5, [&](long fd, const char*, const struct stat& st) {
    if (S_ISSOCK(st.st_mode) && s_->socket.nown < kMaxOwnSockets) {
      s_->socket.own_ino[s_->socket.nown] = st.st_ino;
      s_->socket.own_fd[s_->socket.nown++] = fd;
    }
    if (fd > 2 && S_ISFIFO(st.st_mode) && s_->npipes < kMaxThreads) {
      s_->pipe_ino[s_->npipes] = st.st_ino;
      s_->pipe_reader[s_->npipes] = (sys(SYS_fcntl, fd, F_GETFL) & O_ACCMODE) == O_RDONLY;
      s_->pipe_fd[s_->npipes++] = fd;
    }
    return true;
  });
  s_->nfds = 0;
  s_->nghosts = 0;
  s_->nfifos = 0;
  s_->nanon = 0;
  bool ok = for_each_fd(s_, skip, 5, [&](long fd, const char* link, const struct stat& st) {
    if (fd <= 2) return true;
    Line e(s_->error, sizeof s_->error);
    e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" ");
    long fl = sys(SYS_fcntl, fd, F_GETFL);
    if (s_->nfds == kMaxFds) {
      e.s("is one descriptor too many: more than 8192 are open");
      return false;
    }
    s_->fd_num[s_->nfds] = fd;
    s_->fd_ino[s_->nfds] = st.st_ino;
    s_->fd_dev[s_->nfds] = st.st_dev;
    s_->fd_reader[s_->nfds++] = fl >= 0 && (fl & O_ACCMODE) == O_RDONLY;
    // A lease (which also makes the process the file's owner) is not taken
    // again, and signal-driven I/O (F_SETOWN, F_SETSIG, O_ASYNC) not set again.
    long lease = S_ISREG(st.st_mode) ? sys(SYS_fcntl, fd, F_GETLEASE) : -1;
    if (lease >= 0 && lease != F_UNLCK) {
      e.s("holds a file lease (").s(link).s("), which a restore does not take again");
      return false;
    }
    struct {
      int type;
      int pid;
    } owner = {0, 0};
    if ((fl >= 0 && (fl & O_ASYNC) != 0) || (sys(SYS_fcntl, fd, F_GETOWN_EX, &owner) == 0 && owner.pid != 0) ||
        sys(SYS_fcntl, fd, F_GETSIG) > 0) {
      e.s("has an owner for signal-driven I/O (F_SETOWN, F_SETSIG or O_ASYNC), which a restore does not set again");
      return false;
    }
    if (fl >= 0 && (fl & O_PATH) != 0) {
      // It names a file without opening it: a restore opens the name again
      // with O_PATH (and O_NOFOLLOW for a symlink).
      if (link[0] == '/' && !ends_with_deleted(link) && !starts_with(link, "/proc/")) return true;
      e.s("is an O_PATH descriptor on ").s(link).s(", which a restore cannot find again by its name");
      return false;
    }
    if (S_ISDIR(st.st_mode) && ends_with_deleted(link)) return check_removed_dir(fd, link, st);
    if (restorable_anon(link)) {
      // A signalfd's only state is its mask (the signals it reads are the
      // reader's), an eventfd's its count, a timerfd's its clock, time left,
      // interval and expirations not yet read, an inotify instance's its
      // watches (added again by path), an epoll instance's its watches
      // (added again by number): each is made again with it, unless
      // another process holds the same one too.
      if (s_->nanon < kMaxAnonFds) {
        s_->anon_fd[s_->nanon++] = fd;
        return true;
      }
      e.s("is one of more than 64 signalfds, eventfds, timerfds, inotify and epoll instances, more than a "
          "checkpoint carries");
    } else if (is_pidfd(link)) {
      return check_pidfd(fd, link);
    } else if (starts_with(link, "anon_inode:")) {
      e.s("is ").s(anon_kind(link)).s(" (").s(link).s("), which a restore cannot give back yet");
    } else if (starts_with(link, "/proc/")) {
      e.s("is a file in /proc (").s(link).s("), which names a process by its pid; the restored process has "
                                            "another pid");
    } else if (S_ISREG(st.st_mode) && starts_with(link, "/memfd:")) {
      return check_ghost(fd, link, st);
    } else if (S_ISREG(st.st_mode)) {
      if (link[0] == '/' && !ends_with_deleted(link)) return true;
      if (link[0] == '/' && st.st_nlink == 0) return check_ghost(fd, link, st);
      e.s("is a deleted file that still has another name, or an anonymous file (").s(link).s(")");
    } else if (S_ISDIR(st.st_mode)) {
      return true;
    } else if (S_ISCHR(st.st_mode)) {
      if (is_plain_device(link)) return true;
      if (starts_with(link, "/dev/pts/") || cstr_eq(link, "/dev/ptmx") || starts_with(link, "/dev/tty"))
        e.s("is the terminal ").s(link).s(", which a restore does not reconnect (only fds 0, 1 and 2 get the "
                                          "restarter's)");
      else
        e.s("is the character device ").s(link);
    } else if (S_ISFIFO(st.st_mode) && link[0] == '/') {
      return check_fifo(fd, link, st);
    } else if (S_ISFIFO(st.st_mode)) {
      if (starts_with(link, "pipe:") && (tree_path_ != nullptr ||  // a tree's requester takes its bytes
                                         (has_pipe_end(st.st_ino, true) && has_pipe_end(st.st_ino, false))))
        return true;
      e.s("is a pipe to another process or a named pipe (").s(link).s(")");
    } else if (S_ISSOCK(st.st_mode)) {
      char why[512];
      std::uint64_t id = 0;
      bool listening = false;
      int forward = forward_socket(fd, for_move_, &id, &listening, why, sizeof why);
      if (forward == 1) return true;
      if (forward == 0 && socket_image_data(fd, for_move_, &s_->socket, why, sizeof why) >= 0) {
        SocketScratch& k = s_->socket;
        if (k.partner == kPeerElsewhere && k.nelsewhere < kMaxOwnSockets) {  // named to the tree's requester
          k.elsewhere[k.nelsewhere][0] = st.st_ino;
          k.elsewhere[k.nelsewhere++][1] = k.peer_ino;
        }
        return true;
      }
      e.s(why).s(" (").s(link).s("). The process keeps running");
      return false;
    } else {
      e.s("is ").s(anon_kind(link)).s(" (").s(link).s(")");
    }
    e.s(": only regular files (deleted ones and memfds too), directories, O_PATH descriptors, named pipes, signalfds, "
        "eventfds, timerfds, inotify and epoll instances, unconnected inet and unix sockets, /dev/null-like devices and "
        "stdin/stdout/stderr can be checkpointed; close it before the checkpoint. The process keeps running");
    return false;
  });
  return ok && check_shared_descriptions();
}

int Session::ghost_index(const struct stat& st) const {
  for (int i = 0; i < s_->nghosts; ++i)
    if (s_->ghost_ino[i] == st.st_ino && s_->ghost_dev[i] == st.st_dev) return i;
  return -1;
}

// A regular file deleted while open and left with no name (a "ghost"), or a
// memfd: the image carries its contents (write_ghost_data) and the restore
// makes it again (a ghost under its old name, unlinked at once). Refused above kMaxGhostBytes
// of data, and when no descriptor of the program can read it (reading
// through a new open would release the program's POSIX locks on it at
// close).
bool Session::check_ghost(long fd, const char* link, const struct stat& st) {
  Line e(s_->error, sizeof s_->error);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is a deleted file (").s(link).s(")");
  if (static_cast<std::uint64_t>(st.st_blocks) * 512 > kMaxGhostBytes) {
    e.s(" with more than 64 MiB of data, more than a checkpoint carries; close it before the checkpoint");
    return false;
  }
  if (ghost_index(st) >= 0) return true;
  // write_process fills s_->exe later.
  if (!starts_with(link, "/memfd:") && !deleted_name_free(link, s_->exe, sizeof s_->exe, e)) return false;
  if (s_->nghosts == kMaxGhosts) {
    e.s(", one of more than 64 deleted files held open, more than a checkpoint carries");
    return false;
  }
  s_->ghost_ino[s_->nghosts] = st.st_ino;
  s_->ghost_dev[s_->nghosts] = st.st_dev;
  s_->ghost_written[s_->nghosts++] = false;
  return true;
}

// The state of a signalfd, eventfd, timerfd or inotify instance, from
// /proc/self/fdinfo, into r's kind and data (image_format.h says the layout).
bool Session::anon_state(long fd, const char* link, FdRecord* r) {
  char path[64];
  Line(path, sizeof path).s("/proc/self/fdinfo/").u(static_cast<std::uint64_t>(fd));
  bool epoll = cstr_eq(link, "anon_inode:[eventpoll]");
  if (epoll || cstr_eq(link, "anon_inode:inotify")) {
    // Its watches, added again by path (inotify.cpp kept the paths).
    long got = read_file(path, s_->fdinfo, sizeof s_->fdinfo - 1);
    if (got < 0) {
      Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
          .s(epoll ? " is an epoll instance" : " is an inotify instance").s(" with more watches than a checkpoint reads");
      return false;
    }
    s_->fdinfo[got] = '\0';
    long len = epoll ? epoll_image_data(fd, s_->fdinfo, s_->fd_num, s_->nfds, s_->watch_data, sizeof s_->watch_data,
                                        s_->error, sizeof s_->error)
                     : inotify_image_data(fd, s_->fdinfo, s_->watch_data, sizeof s_->watch_data, s_->error,
                                          sizeof s_->error);
    if (len < 0) return false;
    r->kind = epoll ? FdKind::epoll : FdKind::inotify;
    r->data = Blob(s_->watch_data, static_cast<std::size_t>(len));
    return true;
  }
  long n = read_file(path, s_->line, sizeof s_->line - 1);
  s_->line[n > 0 ? n : 0] = '\0';
  const char* t = s_->line;
  unsigned char* d = s_->anon_state;
  if (starts_with(link, "anon_inode:[signalfd]")) {
    r->kind = FdKind::signalfd;
    store_le<std::uint64_t>(d, static_cast<std::uint64_t>(fdinfo_number(t, "sigmask:", 16)));
    r->data = Blob(d, 8);
    return true;
  }
  if (starts_with(link, "anon_inode:[eventfd]")) {
    long long count = fdinfo_number(t, "eventfd-count:", 16), sem = fdinfo_number(t, "eventfd-semaphore:", 10);
    if (count < 0 || sem < 0) {
      Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
          .s(" is an eventfd, and this kernel does not show its count and mode (fdinfo)");
      return false;
    }
    r->kind = FdKind::eventfd;
    store_le<std::uint64_t>(d, static_cast<std::uint64_t>(count));
    store_le<std::uint32_t>(d + 8, sem != 0 ? 1 : 0);
    r->data = Blob(d, 12);
    return true;
  }
  // timerfd: "it_value: (sec, nsec)", the time left; "it_interval: (...)".
  long long clock = fdinfo_number(t, "clockid:", 10), ticks = fdinfo_number(t, "ticks:", 10),
            flags = fdinfo_number(t, "settime flags:", 8);
  auto pair_ns = [&](const char* key) -> long long {
    long long sec = fdinfo_number(t, key, 10);
    const char* p = t;
    while (*p != '\0' && !starts_with(p, key)) ++p;
    while (*p != '\0' && *p != ',') ++p;
    long long nsec = *p == ',' ? fdinfo_number(p, ",", 10) : -1;
    return sec < 0 || nsec < 0 ? -1 : sec * 1'000'000'000LL + nsec;
  };
  long long value = pair_ns("it_value:"), interval = pair_ns("it_interval:");
  if (clock < 0 || ticks < 0 || flags < 0 || value < 0 || interval < 0) {
    Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
        .s(" is a timerfd whose state this kernel does not show (fdinfo)");
    return false;
  }
  r->kind = FdKind::timerfd;
  store_le<std::uint32_t>(d, static_cast<std::uint32_t>(clock));
  store_le<std::uint32_t>(d + 4, static_cast<std::uint32_t>(flags));
  store_le<std::uint64_t>(d + 8, static_cast<std::uint64_t>(ticks));
  store_le<std::uint64_t>(d + 16, static_cast<std::uint64_t>(value));
  store_le<std::uint64_t>(d + 24, static_cast<std::uint64_t>(interval));
  r->data = Blob(d, 32);
  return true;
}

// The contents of the ghost file fd is open on, as file data records after
// its fd record (once per file: its other descriptors share them). Read with
// pread from a descriptor of the program open for reading, hole by hole
// (SEEK_DATA/SEEK_HOLE); that descriptor's offset is put back after.
bool Session::write_ghost_data(long fd, const struct stat& st) {
  int g = ghost_index(st);
  if (g < 0 || s_->ghost_written[g]) return true;
  s_->ghost_written[g] = true;
  long src = -1;
  for (int i = 0; i < s_->nfds && src < 0; ++i) {
    if (s_->fd_ino[i] != st.st_ino || s_->fd_dev[i] != st.st_dev) continue;
    long fl = sys(SYS_fcntl, s_->fd_num[i], F_GETFL);
    if (fl >= 0 && (fl & O_ACCMODE) != O_WRONLY) src = s_->fd_num[i];
  }
  // Only open for writing: read through a new open of it (/proc/self/fd),
  // closed again at once, unless the process holds POSIX locks on it (the
  // close would release them) or may not read it (its mode).
  long opened = -1;
  if (src < 0) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/fdinfo/").u(static_cast<std::uint64_t>(fd));
    long n = read_file(path, s_->line, sizeof s_->line - 1);
    s_->line[n > 0 ? n : 0] = '\0';
    bool posix_locked = false;
    for (const char* p = s_->line; *p != '\0'; ++p)
      posix_locked = posix_locked || (starts_with(p, "lock:") && contains_before_newline(p, "POSIX"));
    Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
    if (n > 0 && !posix_locked) opened = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOATIME);
    if (opened < 0 && n > 0 && !posix_locked) opened = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    src = opened;
  }
  if (src < 0) {
    Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
        .s(" is a deleted file open only for writing that the process holds POSIX locks on or may not read: a "
           "checkpoint cannot read its contents");
    return false;
  }
  long saved = opened >= 0 ? -1 : sys(SYS_lseek, src, 0, SEEK_CUR);
  auto size = static_cast<long>(st.st_size);
  std::uint64_t carried = 0;
  bool ok = true;
  for (long pos = 0; ok && pos < size;) {
    long data = sys(SYS_lseek, src, pos, SEEK_DATA);
    if (data < 0 || data >= size) break;  // -ENXIO: only a hole is left
    long hole = sys(SYS_lseek, src, data, SEEK_HOLE);
    if (hole < 0 || hole > size) hole = size;
    for (long at = data; ok && at < hole;) {
      auto want = static_cast<std::size_t>(hole - at < static_cast<long>(kMaxFileData) ? hole - at : kMaxFileData);
      long got = sys(SYS_pread64, src, s_->file_data, want, at);
      if (got <= 0) {
        Line(s_->error, sizeof s_->error).s("cannot read the deleted file of fd ").u(static_cast<std::uint64_t>(fd));
        ok = false;
        break;
      }
      carried += static_cast<std::uint64_t>(got);
      if (carried > kMaxGhostBytes) {
        Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
            .s(" is a deleted file with more than 64 MiB of data, more than a checkpoint carries");
        ok = false;
        break;
      }
      FileDataRecord d;
      d.fd = static_cast<std::int32_t>(fd);
      d.offset = static_cast<std::uint64_t>(at);
      d.data = Blob(s_->file_data, static_cast<std::size_t>(got));
      ok = check(writer_->file_data(d));
      at += got;
    }
    pos = hole;
  }
  if (saved >= 0) sys(SYS_lseek, src, saved, SEEK_SET);
  if (opened >= 0) sys(SYS_close, opened);
  return ok;
}

// A restore opens each file, directory and device descriptor anew, makes
// each signalfd, eventfd and timerfd again, and opens each pipe end once
// more for each of its separate opens. Descriptors that share one open file
// (dup, dup2, F_DUPFD, or inherited together) would part: their offset,
// status flags and locks would no longer be one. So each one after the
// first is recorded as a `shared` fd of the first, and the restore makes it
// with dup3. kcmp(KCMP_FILE) tells whether two descriptors share an open
// file; without it (a kernel without CONFIG_KCMP) two descriptors on one
// inode are refused, since nothing else can tell.
bool Session::check_shared_descriptions() {
  long self = real_pid();
  s_->nshared = 0;
  for (int k = 0; k < s_->nfds; ++k) s_->fd_shares[k] = -1;
  for (int k = 0; k < s_->nfds; ++k) {
    for (int i = 0; i < k && s_->fd_shares[k] < 0; ++i) {
      if (s_->fd_shares[i] >= 0) continue;  // the first of each open file stands for it
      if (s_->fd_ino[i] != s_->fd_ino[k] || s_->fd_dev[i] != s_->fd_dev[k]) continue;
      long a = s_->fd_num[i], b = s_->fd_num[k];
      struct stat st{};
      if (sys(SYS_fstat, a, &st) != 0) continue;
      bool pipe = S_ISFIFO(st.st_mode);
      if (pipe && s_->fd_reader[i] != s_->fd_reader[k]) continue;
      long same = sys(SYS_kcmp, self, self, 0 /* KCMP_FILE */, a, b);
      if (same < 0) {
        Line(s_->error, sizeof s_->error)
            .s("fds ").u(static_cast<std::uint64_t>(a)).s(" and ").u(static_cast<std::uint64_t>(b))
            .s(" are on one file and this kernel cannot tell whether they share its offset (no kcmp)");
        return false;
      }
      if (same == 0) {
        s_->fd_shares[k] = a;
        ++s_->nshared;
      }
    }
  }
  return true;
}

// The first fd of the open file `fd` shares with another, or -1.
long Session::shares_with(long fd) const {
  if (s_->nshared == 0) return -1;
  for (int k = 0; k < s_->nfds; ++k)
    if (s_->fd_num[k] == fd) return s_->fd_shares[k];
  return -1;
}

bool Session::write_fds() {
  long skip[] = {out_fd_, status_fd_, pagemap_fd_, track_fd_, tree_fd_};
  bool ok = true;
  for_each_fd(s_, skip, 5, [&](long fd, const char* link, const struct stat& st) {
    FdRecord r;
    r.fd = static_cast<std::int32_t>(fd);
    r.open_flags = static_cast<std::uint32_t>(sys(SYS_fcntl, fd, F_GETFL));
    r.fd_flags = static_cast<std::uint32_t>(sys(SYS_fcntl, fd, F_GETFD));
    r.path = link;
    r.mode = st.st_mode;
    r.dev = st.st_dev;
    r.inode = st.st_ino;
    r.size = static_cast<std::uint64_t>(st.st_size);
    r.mtime_ns = mtime_ns(st);
    long first = fd <= 2 ? -1 : shares_with(fd);
    std::uint64_t id = 0;
    bool listening = false;
    if (fd <= 2) {
      r.kind = FdKind::std_stream;
    } else if (first >= 0) {
      r.kind = FdKind::shared;
      store_le(s_->shared_of, static_cast<std::uint32_t>(first), 4);
      r.data = Blob(s_->shared_of, 4);
    } else if (restorable_anon(link)) {
      if (!anon_state(fd, link, &r)) return ok = false;
    } else if (is_pidfd(link)) {
      pid_t real = pidfd_target(fd);
      bool self = real == real_pid();
      r.kind = FdKind::pidfd;
      store_le(s_->anon_state, static_cast<std::uint32_t>(self ? current_vpid() : to_virtual_pid(real)), 4);
      store_le(s_->anon_state + 4, self ? 1u : 0u, 4);
      r.data = Blob(s_->anon_state, 8);
    } else if (r.open_flags & O_PATH) {
      r.kind = S_ISDIR(st.st_mode) ? FdKind::directory : S_ISREG(st.st_mode) ? FdKind::regular : FdKind::other;
    } else if (S_ISREG(st.st_mode)) {
      r.kind = ghost_index(st) < 0                ? FdKind::regular
               : starts_with(link, "/memfd:") ? FdKind::memfd
                                              : FdKind::ghost;
      // A memfd's seals (F_SEAL_SEAL alone: made without MFD_ALLOW_SEALING).
      std::uint32_t seals = 0;
      if (r.kind == FdKind::memfd) {
        long got = sys(SYS_fcntl, fd, F_GET_SEALS);
        seals = got < 0 ? 0 : static_cast<std::uint32_t>(got);
        __builtin_memcpy(s_->memfd_seals, &seals, 4);
        r.data = Blob(s_->memfd_seals, 4);
      }
      long off = sys(SYS_lseek, fd, 0, SEEK_CUR);
      r.offset = off < 0 ? 0 : static_cast<std::uint64_t>(off);
    } else if (S_ISDIR(st.st_mode)) {
      r.kind = FdKind::directory;
    } else if (S_ISFIFO(st.st_mode) && link[0] == '/') {
      r.kind = FdKind::fifo;  // its unread bytes follow its first record (write_fifo_data)
      long capacity = sys(SYS_fcntl, fd, F_GETPIPE_SZ);
      r.size = capacity > 0 ? static_cast<std::uint64_t>(capacity) : 0;
    } else if (S_ISFIFO(st.st_mode)) {
      r.kind = FdKind::pipe;
      // Its capacity (F_SETPIPE_SZ), which decides when a write blocks.
      long capacity = sys(SYS_fcntl, fd, F_GETPIPE_SZ);
      r.size = capacity > 0 ? static_cast<std::uint64_t>(capacity) : 0;
      if (tree_path_ == nullptr && !drain_pipe(st.st_ino, &r)) return ok = false;
    } else if (S_ISSOCK(st.st_mode) && forward_socket(fd, for_move_, &id, &listening, s_->error,
                                                      sizeof s_->error) == 1) {
      // Its id and kind, from the table check_fds filled (forwarded.h).
      r.kind = FdKind::forwarded;
      store_le(s_->socket.encoded, id, 8);
      store_le(s_->socket.encoded + 8, listening ? mosix::ckpt::kForwardListening : 0u, 4);
      r.data = Blob(s_->socket.encoded, 12);
    } else if (S_ISSOCK(st.st_mode)) {
      r.kind = FdKind::socket;
      long n = socket_image_data(fd, for_move_, &s_->socket, s_->error, sizeof s_->error);
      if (n < 0) return ok = false;
      r.data = Blob(s_->socket.encoded, static_cast<std::size_t>(n));
    } else {
      r.kind = FdKind::char_device;
    }
    r.uid = st.st_uid;
    r.gid = st.st_gid;
    bool ghost = r.kind == FdKind::ghost || r.kind == FdKind::memfd;
    // A shared fd's locks are its first's (the restore takes them there).
    bool pair = r.kind == FdKind::socket && s_->socket.partner != -1;
    ok = check(writer_->fd(r)) && (!ghost || write_ghost_data(fd, st)) &&
         (r.kind != FdKind::pipe || write_pipe_rest(st.st_ino, fd)) &&
         (r.kind != FdKind::fifo || write_fifo_data(fd, st)) && (!pair || write_pair_queue(fd)) &&
         (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || r.kind == FdKind::shared ||
                                   write_fd_locks(writer_, fd, st.st_ino, s_->error, sizeof s_->error));
    return ok;
  });
  return ok;
}

// After a socketpair end's record: what was queued to be read on it, as
// file data records (image_format.h, SocketState::pair).
bool Session::write_pair_queue(long fd) {
  SocketScratch& k = s_->socket;
  if (!peek_pair_queue(fd, &k, s_->error, sizeof s_->error)) return false;
  int type = 0;
  socklen_t len = sizeof type;
  sys(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len);
  FileDataRecord d;
  d.fd = static_cast<std::int32_t>(fd);
  if (type == SOCK_STREAM) {
    for (std::size_t at = 0; at < k.queued; at += kMaxFileData) {
      d.offset = at;
      d.data = Blob(k.queue + at, k.queued - at < kMaxFileData ? k.queued - at : kMaxFileData);
      if (!check(writer_->file_data(d))) return false;
    }
    return true;
  }
  std::size_t at = 0;
  for (int i = 0; i < k.nmsgs; at += k.msg_len[i++]) {
    if (k.msg_len[i] > kMaxFileData) {
      Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
          .s(" is a socketpair end with a message of more than 64 KiB queued, which an image does not carry");
      return false;
    }
    d.offset = static_cast<std::uint64_t>(i);
    d.data = Blob(k.queue + at, k.msg_len[i]);
    if (!check(writer_->file_data(d))) return false;
  }
  return true;
}

}  // namespace mosix::agent::checkpoint
