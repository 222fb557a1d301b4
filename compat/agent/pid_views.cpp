// /proc files that print this process's pid, as a restored process sees
// them: the kernel prints its new pid where the program expects the one
// getpid() gives (agent.cpp). Served, in a restored process only, from a
// read-only memfd with the owner pid of each lock line changed:
//   /proc/self/fdinfo/N (also thread-self, and /proc/<virtual pid>/):
//     "lock:\t1: FLOCK  ADVISORY  WRITE <pid> 00:2f:1234 0 EOF", and a
//     pidfd's "Pid:\t<pid>" and "NSpid:\t<pid>"
//   /proc/locks: "1: POSIX  ADVISORY  WRITE <pid> 00:2f:1234 0 EOF"
// Other pids in /proc files stay the kernel's (docs/mosixctl.md).
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "compat/agent/smp.h"

namespace mosix::agent {
namespace {

constexpr std::size_t kMaxView = 1 << 20;

// Whether `path` is one of this process's fdinfo files, one of another
// process of a restored tree's (by its virtual pid, tree.cpp), or /proc/locks.
bool is_pid_view(const char* path, pid_t vpid) {
  if (cstr_eq(path, "/proc/locks")) return true;
  if (!starts_with(path, "/proc/")) return false;
  const char* p = path + 6;
  if (starts_with(p, "self/")) {
    p += 5;
  } else if (starts_with(p, "thread-self/")) {
    p += 12;
  } else {
    const char* q = p;
    if (*q < '1' || *q > '9') return false;
    auto named = static_cast<pid_t>(parse_dec(q));
    if ((named != vpid && to_real_pid(named) == named) || *q != '/') return false;
    p = q + 1;
  }
  if (!starts_with(p, "fdinfo/")) return false;
  p += 7;
  if (*p < '0' || *p > '9') return false;
  parse_dec(p);
  return *p == '\0';
}

// Copies `line` (n bytes, its newline included) to out, with the pid after
// a lock line's three words (kind, advisory/mandatory, type) changed from
// the kernel's to the virtual one (this process's, or a restored tree's
// process's). Returns the bytes written, or 0 when out is too small.
std::size_t rewrite_line(const char* line, std::size_t n, char* out, std::size_t cap) {
  std::size_t at = 0;
  const char* body = line;
  if (n >= 6 && starts_with(line, "lock:\t")) body = line + 6;
  bool lock = body != line || (n > 0 && line[0] >= '0' && line[0] <= '9');
  // Fields of the body: "1:", kind, advisory, type, pid.
  std::size_t pid_from = n, pid_to = n;
  if (lock) {
    std::size_t i = static_cast<std::size_t>(body - line);
    for (int field = 0; field < 5 && i < n; ++field) {
      while (i < n && line[i] == ' ') ++i;
      std::size_t start = i;
      while (i < n && line[i] != ' ' && line[i] != '\n') ++i;
      if (field == 4) pid_from = start, pid_to = i;
    }
    if (line[0] != 'l' && pid_from < n && line[pid_from] == '-') pid_from = pid_to = n;  // "->" blocked waiter
  }
  // A pidfd's process: "Pid:\t<pid>" and the first pid of "NSpid:\t<pid> ...".
  static const char* const kPidKeys[] = {"Pid:\t", "NSpid:\t"};
  for (const char* key : kPidKeys) {
    std::size_t k = cstr_len(key);
    if (lock || n <= k || !starts_with(line, key)) continue;
    pid_from = pid_to = k;
    while (pid_to < n && line[pid_to] >= '0' && line[pid_to] <= '9') ++pid_to;
  }
  const char* p = line + pid_from;
  pid_t real = pid_from < pid_to ? static_cast<pid_t>(parse_dec(p)) : 0;
  pid_t vpid = real > 0 && p == line + pid_to ? to_virtual_pid(real) : real;
  bool is_real = vpid != real;
  char digits[12];
  std::size_t nd = 0;
  if (is_real) {
    auto v = static_cast<unsigned>(vpid);
    do {
      digits[sizeof digits - 1 - nd++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
  }
  std::size_t need = is_real ? n - (pid_to - pid_from) + nd : n;
  if (need > cap) return 0;
  if (!is_real) {
    for (std::size_t i = 0; i < n; ++i) out[i] = line[i];
    return n;
  }
  for (std::size_t i = 0; i < pid_from; ++i) out[at++] = line[i];
  for (std::size_t i = 0; i < nd; ++i) out[at++] = digits[sizeof digits - nd + i];
  for (std::size_t i = pid_to; i < n; ++i) out[at++] = line[i];
  return at;
}

}  // namespace

int pid_view_open(const char* path, int flags) {
  if (path == nullptr || (flags & O_ACCMODE) != O_RDONLY || (flags & (O_PATH | O_DIRECTORY)) != 0) return kNotServed;
  pid_t vpid = current_vpid(), real = real_pid();
  if (!is_pid_view(path, vpid)) return kNotServed;
  if (vpid == real && tree_pid_count() == 0) return kNotServed;  // never restored: the kernel agrees
  // The real file: this process's own by its real pid.
  char real_path[64];
  const char* src = path;
  if (!cstr_eq(path, "/proc/locks")) {
    const char* fd = path;
    for (const char* p = path; *p != '\0'; ++p)
      if (*p == '/') fd = p + 1;
    // The process the path names: this one, or another of its tree.
    const char* q = path + 6;
    pid_t owner = real;
    if (*q >= '1' && *q <= '9') owner = to_real_pid(static_cast<pid_t>(parse_dec(q)));
    Line(real_path, sizeof real_path).s("/proc/").u(static_cast<std::uint64_t>(owner)).s("/fdinfo/").s(fd);
    src = real_path;
  }
  long mem = sys(SYS_mmap, 0, 2 * kMaxView, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem < 0 && mem > -4096) return kNotServed;
  char* in = reinterpret_cast<char*>(mem);
  char* out = in + kMaxView;
  long n = read_file(src, in, kMaxView);
  int result = kNotServed;  // unreadable or too large: the real open answers
  if (n >= 0) {
    std::size_t len = 0;
    bool fits = true;
    for (long at = 0; at < n && fits;) {
      long end = at;
      while (end < n && in[end] != '\n') ++end;
      if (end < n) ++end;
      std::size_t w = rewrite_line(in + at, static_cast<std::size_t>(end - at), out + len, kMaxView - len);
      fits = w != 0;
      len += w;
      at = end;
    }
    if (fits) {
      long fd = read_only_memfd("mosix-proc", out, len, (flags & O_CLOEXEC) != 0);
      if (fd < 0) {
        errno = static_cast<int>(-fd);
        result = -1;
      } else {
        result = static_cast<int>(fd);
      }
    }
  }
  sys(SYS_munmap, mem, 2 * kMaxView);
  return result;
}

}  // namespace mosix::agent
