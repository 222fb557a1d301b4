#include "runtime/daemon/orphan_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/daemon/cpu_cap.h"
#include "runtime/daemon/proc_stat_file.h"

namespace mosix {
namespace {

// What the parent sends, each message an int32 first: a process group
// (> 0), the release (0), or a kind of path message below, followed by two
// uint32 lengths and the two paths' bytes.
constexpr std::int32_t kRelease = 0;
constexpr std::int32_t kCgroup = -1;   // paths: the cgroup, the top it stops at
constexpr std::int32_t kSockets = -2;  // paths: the directory, ""

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

struct Paths {
  std::int32_t kind;
  std::string first, second;
};

// Reads exactly `n` bytes; false at EOF or on an error.
bool read_exact(int fd, void* into, std::size_t n) {
  auto* p = static_cast<char*>(into);
  while (n > 0) {
    ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

void nap_ms(long ms) {
  timespec t{ms / 1000, (ms % 1000) * 1000000};
  while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

// SIGKILL to every process listed in cgroup `dir` (made for the job alone:
// whatever is in it is the job's).
void kill_members(const std::string& dir) {
  int fd = ::open((dir + "/cgroup.procs").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  for (std::size_t at = 0; at < text.size();) {
    std::size_t eol = text.find('\n', at);
    if (eol == std::string::npos) eol = text.size();
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(text.data() + at, text.data() + eol, pid);
    if (ec == std::errc() && end == text.data() + eol && pid > 0) ::kill(pid, SIGKILL);
    at = eol + 1;
  }
}

// The cgroup goes once its killed processes have left it (they leave when
// they are reaped, by init now that their parent is gone); then the empty
// directories above it, up to `top`.
void remove_cgroup(const std::string& dir, const std::string& top) {
  for (int tries = 0;; ++tries) {
    kill_members(dir);
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
    if (errno != EBUSY || tries >= 2000) return;  // about 10 s: something holds it
    nap_ms(5);
  }
  remove_empty_parents(dir, top);
}

// The sockets in `dir`, then `dir` if that left it empty.
void remove_sockets(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> sockets;
    while (dirent* e = ::readdir(d)) {
      std::string path = dir + "/" + e->d_name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) sockets.push_back(path);
    }
    ::closedir(d);
    for (const std::string& s : sockets) ::unlink(s.c_str());
  }
  ::rmdir(dir.c_str());
}

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
  std::vector<Paths> paths;
  for (;;) {
    int32_t word;
    if (!read_exact(fd, &word, sizeof word)) break;  // EOF or error: the parent is gone without releasing us
    if (word == kRelease) ::_exit(0);
    if (word > 0) {
      groups.push_back(Group{word, start_time(word)});
      continue;
    }
    std::uint32_t sizes[2];
    if (!read_exact(fd, sizes, sizeof sizes) || sizes[0] > 65536 || sizes[1] > 65536) break;
    Paths p{word, std::string(sizes[0], '\0'), std::string(sizes[1], '\0')};
    if (!read_exact(fd, p.first.data(), sizes[0]) || !read_exact(fd, p.second.data(), sizes[1])) break;
    paths.push_back(std::move(p));
  }
  for (const Group& g : groups) {
    uint64_t now = start_time(g.pgid);
    if (now == 0 || now == g.leader_start) ::kill(-g.pgid, SIGKILL);
  }
  for (const Paths& p : paths) {
    if (p.kind == kCgroup) remove_cgroup(p.first, p.second);
    if (p.kind == kSockets) remove_sockets(p.first);
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

void OrphanWatcher::send_paths(std::int32_t kind, const std::string& a, const std::string& b) {
  if (fd_ < 0 || a.empty()) return;
  std::string message(sizeof kind + 2 * sizeof(std::uint32_t), '\0');
  const std::uint32_t sizes[2] = {static_cast<std::uint32_t>(a.size()), static_cast<std::uint32_t>(b.size())};
  std::memcpy(message.data(), &kind, sizeof kind);
  std::memcpy(message.data() + sizeof kind, sizes, sizeof sizes);
  message += a;
  message += b;
  for (std::size_t done = 0; done < message.size();) {
    ssize_t n = ::write(fd_, message.data() + done, message.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

void OrphanWatcher::remove_cgroup_at_death(const std::string& dir, const std::string& top) {
  send_paths(kCgroup, dir, top);
}

void OrphanWatcher::remove_sockets_at_death(const std::string& dir) { send_paths(kSockets, dir, ""); }

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
