// inotify_init, inotify_init1, inotify_add_watch and inotify_rm_watch,
// interposed to note the path (made absolute) and flags each watch was added
// by, in a table in the agent's memory; and the image data a checkpoint
// writes for an inotify descriptor (inotify.h).
//
// The calls themselves are made with raw system calls (libc's are thin
// wrappers), errno set as libc sets it. The table is guarded by a spin lock;
// a checkpoint, which runs while every other thread is stopped, reads it
// without one and refuses if a thread was stopped in the middle of a change.
// Not seen: watches added with syscall(2) directly, or by the program before
// an exec (the agent starts empty): their paths are unknown, and a
// checkpoint of such an instance is refused by name.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cstdint>

#include "compat/agent/inotify.h"
#include "compat/agent/raw.h"
#include "runtime/core/little_endian.h"

namespace mosix::agent {
namespace {

constexpr int kMaxWatches = 4096;
constexpr std::size_t kArenaSize = 256 << 10;
constexpr int kMaxInstances = 64;

struct Watch {
  int fd;
  int wd;
  bool dont_follow;
  bool live;
  std::uint32_t at;  // the path, in the arena
  std::uint32_t len;
};

struct Instance {
  int fd;
  int last_wd;  // the highest wd the kernel handed out: the next is above it
  bool lost;    // a watch could not be noted (the table was full)
};

struct Table {
  Watch watches[kMaxWatches];
  int nwatches;
  char arena[kArenaSize];
  std::size_t used;
  Instance instances[kMaxInstances];
  int ninstances;
  int lock;
  int busy;  // a change is under way
};

Table g_table;

class Guard {
 public:
  Guard() {
    while (__atomic_exchange_n(&g_table.lock, 1, __ATOMIC_ACQUIRE) != 0) sys(SYS_sched_yield);
    __atomic_store_n(&g_table.busy, 1, __ATOMIC_RELAXED);
  }
  ~Guard() {
    __atomic_store_n(&g_table.busy, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_table.lock, 0, __ATOMIC_RELEASE);
  }
};

Instance* instance(int fd, bool create) {
  for (int i = 0; i < g_table.ninstances; ++i)
    if (g_table.instances[i].fd == fd) return &g_table.instances[i];
  if (!create || g_table.ninstances == kMaxInstances) return nullptr;
  Instance* in = &g_table.instances[g_table.ninstances++];
  *in = Instance{fd, 0, false};
  return in;
}

Watch* find_watch(int fd, int wd) {
  for (int i = 0; i < g_table.nwatches; ++i) {
    Watch& w = g_table.watches[i];
    if (w.live && w.fd == fd && w.wd == wd) return &w;
  }
  return nullptr;
}

// Drops the watches noted for descriptor fd: a new instance has that number.
void forget(int fd) {
  for (int i = 0; i < g_table.nwatches; ++i)
    if (g_table.watches[i].fd == fd) g_table.watches[i].live = false;
  if (Instance* in = instance(fd, true)) *in = Instance{fd, 0, false};
}

// Room for n more bytes of path and one more watch, compacting if needed.
bool make_room(std::size_t n) {
  if (g_table.used + n <= kArenaSize && g_table.nwatches < kMaxWatches) return true;
  int kept = 0;
  std::size_t used = 0;
  for (int i = 0; i < g_table.nwatches; ++i) {
    Watch w = g_table.watches[i];
    if (!w.live) continue;
    __builtin_memmove(g_table.arena + used, g_table.arena + w.at, w.len);
    w.at = static_cast<std::uint32_t>(used);
    used += w.len;
    g_table.watches[kept++] = w;
  }
  g_table.nwatches = kept;
  g_table.used = used;
  return g_table.used + n <= kArenaSize && g_table.nwatches < kMaxWatches;
}

void note_watch(int fd, int wd, const char* path, std::uint32_t mask) {
  // The path as the kernel resolved it: made absolute from the working
  // directory now (the program may chdir later).
  char cwd[PATH_MAX];
  std::size_t cwd_len = 0;
  if (path[0] != '/') {
    long n = sys(SYS_getcwd, cwd, sizeof cwd);
    cwd_len = n > 0 ? static_cast<std::size_t>(n) - 1 : 0;  // without the NUL
  }
  std::size_t path_len = cstr_len(path), len = cwd_len + (cwd_len > 0 ? 1 : 0) + path_len;
  Guard guard;
  Instance* in = instance(fd, true);
  if (in == nullptr) return;  // more instances than noted: the checkpoint finds no path
  if (wd > in->last_wd) in->last_wd = wd;
  Watch* w = find_watch(fd, wd);  // the same inode added again: its new path and flags
  if (w != nullptr) w->live = false;
  if ((path[0] != '/' && cwd_len == 0) || len > PATH_MAX || !make_room(len)) {
    in->lost = true;
    return;
  }
  char* at = g_table.arena + g_table.used;
  if (cwd_len > 0) {
    __builtin_memcpy(at, cwd, cwd_len);
    at[cwd_len] = '/';
  }
  __builtin_memcpy(at + len - path_len, path, path_len);
  g_table.watches[g_table.nwatches++] =
      Watch{fd, wd, (mask & IN_DONT_FOLLOW) != 0, true, static_cast<std::uint32_t>(g_table.used),
            static_cast<std::uint32_t>(len)};
  g_table.used += len;
}

void note_removed(int fd, int wd) {
  Guard guard;
  if (Watch* w = find_watch(fd, wd)) w->live = false;
}

long fail(char* error, std::size_t cap, long fd, const char* what, const char* path = nullptr,
          std::size_t path_len = 0) {
  Line e(error, cap);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is an inotify instance ").s(what);
  if (path != nullptr) e.s(" (").sv(path, path_len).s(")");
  return -1;
}

}  // namespace

long inotify_image_data(long fd, const char* info, unsigned char* out, std::size_t cap, char* error,
                        std::size_t error_cap) {
  if (__atomic_load_n(&g_table.busy, __ATOMIC_RELAXED) != 0)
    return fail(error, error_cap, fd, "whose watches a thread was changing when the checkpoint came; try again");
  const Instance* in = instance(static_cast<int>(fd), false);
  if (in != nullptr && in->lost)
    return fail(error, error_cap, fd, "with more watches, or longer paths, than the agent notes (4096, 256 KiB)");
  int queued = 0;
  if (sys(SYS_ioctl, fd, FIONREAD, &queued) == 0 && queued > 0)
    return fail(error, error_cap, fd,
                "with events not read yet, which a restore cannot queue again; the process keeps running");
  // u32 last wd, u32 count, then per watch: i32 wd, u32 mask, u64 inode,
  // u64 dev, u32 path length, the path (image_format.h).
  std::size_t n = 8;
  std::uint32_t count = 0;
  for (const char* p = info; *p != '\0';) {
    if (starts_with(p, "inotify wd:")) {
      unsigned long long v[5] = {};
      const char* keys[5] = {"wd:", "ino:", "sdev:", "mask:", "ignored_mask:"};
      const char* q = p;
      for (int k = 0; k < 5; ++k) {
        while (*q != '\0' && *q != '\n' && !starts_with(q, keys[k])) ++q;
        if (!starts_with(q, keys[k])) return fail(error, error_cap, fd, "whose watches this kernel does not show");
        q += cstr_len(keys[k]);
        for (;; ++q) {
          int d = *q >= '0' && *q <= '9' ? *q - '0' : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10 : -1;
          if (d < 0) break;
          v[k] = v[k] * 16 + static_cast<unsigned>(d);
        }
      }
      int wd = static_cast<int>(v[0]);
      const Watch* w = find_watch(static_cast<int>(fd), wd);
      if (w == nullptr)
        return fail(error, error_cap, fd, "with a watch added outside libc's inotify_add_watch (its path is unknown)");
      const char* path = g_table.arena + w->at;
      char name[PATH_MAX + 1];
      __builtin_memcpy(name, path, w->len);
      name[w->len] = '\0';
      struct stat st{};
      std::uint64_t dev = user_dev(v[2]);
      if (sys(SYS_newfstatat, AT_FDCWD, name, &st, w->dont_follow ? AT_SYMLINK_NOFOLLOW : 0) != 0 ||
          st.st_ino != v[1] || st.st_dev != dev)
        return fail(error, error_cap, fd,
                    "watching a file that is no longer at the path it was watched by (renamed or removed)", name,
                    w->len);
      if (n + 28 + w->len > cap) return fail(error, error_cap, fd, "whose watch paths are more than an image carries");
      store_le(out + n, static_cast<std::uint32_t>(wd), 4);
      store_le(out + n + 4, static_cast<std::uint32_t>(v[3]) | (w->dont_follow ? IN_DONT_FOLLOW : 0), 4);
      store_le(out + n + 8, st.st_ino, 8);
      store_le(out + n + 16, st.st_dev, 8);
      store_le(out + n + 24, w->len, 4);
      __builtin_memcpy(out + n + 28, path, w->len);
      n += 28 + w->len;
      ++count;
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  store_le(out, static_cast<std::uint32_t>(in != nullptr ? in->last_wd : 0), 4);
  store_le(out + 4, count, 4);
  return static_cast<long>(n);
}

}  // namespace mosix::agent

extern "C" {

__attribute__((visibility("default"))) int inotify_init1(int flags) {
  long r = mosix::agent::sys(SYS_inotify_init1, flags);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  {
    mosix::agent::Guard guard;
    mosix::agent::forget(static_cast<int>(r));
  }
  return static_cast<int>(r);
}

__attribute__((visibility("default"))) int inotify_init() { return inotify_init1(0); }

__attribute__((visibility("default"))) int inotify_add_watch(int fd, const char* path, std::uint32_t mask) {
  long r = mosix::agent::sys(SYS_inotify_add_watch, fd, path, mask);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  mosix::agent::note_watch(fd, static_cast<int>(r), path, mask);
  return static_cast<int>(r);
}

__attribute__((visibility("default"))) int inotify_rm_watch(int fd, int wd) {
  long r = mosix::agent::sys(SYS_inotify_rm_watch, fd, wd);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  mosix::agent::note_removed(fd, wd);
  return 0;
}

}  // extern "C"
