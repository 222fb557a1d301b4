// Descriptors a checkpoint takes beyond files, pipes and sockets: pidfds of
// the process or its descendants (FdKind::pidfd) and directories removed
// while open (made again empty by the restore, restorer/removed_dirs.cpp).
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"

#include "compat/agent/session.h"

namespace mosix::agent::checkpoint {

// A directory removed while open: a restore makes an empty one again under
// its name, opens it and removes it again (removed, it is empty, and no
// file can be made in it), one for the working directory and the
// descriptors that were on one directory of that name. Refused: one in
// /proc (a process's), or two removed directories of one name.
bool Session::check_removed_dir(long fd, const char* link, const struct stat& st) {
  Line e(s_->error, sizeof s_->error);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is a directory that was removed (").s(link).s(")");
  if (starts_with(link, "/proc/")) {
    e.s(", a process's, which a restore cannot make again");
    return false;
  }
  char name[4096];
  if (!deleted_name_free(link, name, sizeof name, e)) return false;
  char cwd[4096];
  long len = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/cwd", cwd, sizeof cwd - 1);
  cwd[len < 0 ? 0 : len] = '\0';
  struct stat here{};
  if (cstr_eq(cwd, link) && sys(SYS_stat, "/proc/self/cwd", &here) == 0 &&
      (here.st_ino != st.st_ino || here.st_dev != st.st_dev)) {
    e.s(", and the working directory is another removed directory of that name, which a restore would make one");
    return false;
  }
  return true;
}

// The process a pidfd is of (its fdinfo's Pid line), or 0 when it has ended.
pid_t Session::pidfd_target(long fd) {
  char path[64];
  Line(path, sizeof path).s("/proc/self/fdinfo/").u(static_cast<std::uint64_t>(fd));
  long n = read_file(path, s_->line, sizeof s_->line - 1);
  s_->line[n > 0 ? n : 0] = '\0';
  for (const char* p = s_->line; *p != '\0';) {
    if (starts_with(p, "Pid:")) {
      p += 4;
      while (*p == ' ' || *p == '\t') ++p;
      if (*p < '1' || *p > '9') return 0;  // "-1": ended
      return static_cast<pid_t>(parse_dec(p));
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return 0;
}

// A pidfd of the process itself, or of one of its descendants (which a
// tree checkpoint takes along: the restore opens it again on that process's
// new pid). Another process's, a thread's (PIDFD_THREAD) or an ended
// process's is refused.
bool Session::check_pidfd(long fd, const char* link) {
  Line e(s_->error, sizeof s_->error);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is a pidfd (").s(link).s(")");
  long fl = sys(SYS_fcntl, fd, F_GETFL);
  if (fl < 0 || (fl & O_EXCL) != 0) {  // PIDFD_THREAD
    e.s(" of a thread, which a restore does not open again");
    return false;
  }
  pid_t real = pidfd_target(fd);
  if (real == 0) {
    e.s(" of a process that has ended, which a restore cannot give back");
    return false;
  }
  pid_t self = real_pid();
  bool below = real == self;
  std::uint64_t at = static_cast<std::uint64_t>(real);
  char stat[1024];  // s_->link holds the caller's link
  for (int depth = 0; depth < 64 && !below && at > 1; ++depth) {
    std::uint64_t parent = 0;
    if (proc_state(at, stat, sizeof stat, &parent) == 0) break;
    at = parent;
    below = at == static_cast<std::uint64_t>(self);
  }
  if (!below) {
    e.s(" of process ").u(static_cast<std::uint64_t>(real)).s(", which is not in the checkpoint: a restore cannot "
                                                               "open it again");
    return false;
  }
  if (real != self && tree_path_ == nullptr) {
    e.s(" of process ").u(static_cast<std::uint64_t>(real))
        .s(", a descendant: checkpoint the tree with --tree, which takes it along");
    return false;
  }
  if (s_->nanon == kMaxAnonFds) {
    e.s(", one descriptor too many of its kind for a checkpoint");
    return false;
  }
  s_->anon_fd[s_->nanon++] = fd;  // refused if another process holds it too
  return true;
}

}  // namespace mosix::agent::checkpoint
