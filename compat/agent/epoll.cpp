// The image data a checkpoint writes for an epoll descriptor (epoll.h).
#include "compat/agent/epoll.h"

#include <sys/stat.h>
#include <sys/syscall.h>

#include <cstdint>

#include "compat/agent/raw.h"
#include "runtime/core/little_endian.h"

namespace mosix::agent {
namespace {

constexpr int kKcmpEpollTfd = 7;  // KCMP_EPOLL_TFD (linux/kcmp.h)
constexpr std::size_t kWatchSize = 20;

struct KcmpEpollSlot {
  std::uint32_t efd, tfd, toff;
};

long fail(char* error, std::size_t cap, long fd, const char* what, long target = -1) {
  Line e(error, cap);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is an epoll instance ").s(what);
  if (target >= 0) e.s(" (fd ").u(static_cast<std::uint64_t>(target)).s(")");
  return -1;
}

// The hex number after `key` on the line at p; false when the line has none.
bool hex_after(const char* p, const char* key, std::uint64_t* out) {
  while (*p != '\0' && *p != '\n' && !starts_with(p, key)) ++p;
  if (!starts_with(p, key)) return false;
  p += cstr_len(key);
  while (*p == ' ') ++p;
  const char* start = p;
  *out = parse_hex(p);
  return p != start;
}

// kcmp of descriptor `fd` with the file epoll `efd` watches under `target`
// (its `nth` watch under that number, in the order fdinfo lists them, which
// is the kernel's tree order kcmp counts in): 0 the same file, > 0 another,
// < 0 an error (-EBADF: fd is not open).
long same_as_watched(long self, long fd, long efd, long target, std::uint32_t nth) {
  KcmpEpollSlot slot{static_cast<std::uint32_t>(efd), static_cast<std::uint32_t>(target), nth};
  return sys(SYS_kcmp, self, self, kKcmpEpollTfd, fd, &slot);
}

}  // namespace

long epoll_image_data(long fd, const char* info, const long* fds, int nfds, unsigned char* out, std::size_t cap,
                      char* error, std::size_t error_cap) {
  std::size_t n = 4;
  std::uint32_t count = 0;
  long self = sys(SYS_getpid);
  for (const char* p = info; *p != '\0';) {
    if (starts_with(p, "tfd:")) {
      const char* q = p + 4;
      while (*q == ' ') ++q;
      const char* start = q;
      long target = static_cast<long>(parse_dec(q));
      std::uint64_t events = 0, data = 0;
      if (q == start || !hex_after(q, "events:", &events) || !hex_after(q, "data:", &data))
        return fail(error, error_cap, fd, "whose watches this kernel does not show");
      // The watch is on (file, number). Where the number is still that
      // file's, it is added again through it. Where it was closed, or taken
      // by another file since, and the file lives on under another number (a
      // dup), it is added again through that one put at the old number for
      // the moment.
      // Several watches under one number (each added, then the number
      // closed and used again) are told apart by their order.
      std::uint32_t nth = 0;
      for (std::size_t at = 4; at < n; at += kWatchSize)
        nth += load_le<std::uint32_t>(out + at) == static_cast<std::uint32_t>(target) ? 1 : 0;
      long via = target;
      long same = same_as_watched(self, target, fd, target, nth);
      if (same < 0 && same != -9 /* EBADF */)
        return fail(error, error_cap, fd, "whose watches this kernel cannot match to descriptors (no kcmp)");
      bool taken = same > 0;
      if (same != 0) {
        via = -1;
        for (int i = 0; i < nfds && via < 0; ++i)
          if (same_as_watched(self, fds[i], fd, target, nth) == 0) via = fds[i];
      }
      if (via < 0)
        return fail(error, error_cap, fd,
                    "watching a file no descriptor of the process holds (another process's, or a mapping's)",
                    target);
      // A restore can put the file at a taken number for a moment only
      // before its point of no return, where pipes are not made yet.
      struct stat a{}, b{};
      if (taken && (target <= 2 || sys(SYS_fstat, target, &a) != 0 || sys(SYS_fstat, via, &b) != 0 ||
                    S_ISFIFO(a.st_mode) || S_ISFIFO(b.st_mode)))
        return fail(error, error_cap, fd,
                    "watching a pipe, or under a pipe's or standard stream's number, that another file has taken "
                    "since",
                    target);
      if (n + kWatchSize > cap) return fail(error, error_cap, fd, "with more watches than an image carries");
      store_le(out + n, static_cast<std::uint32_t>(target), 4);
      store_le(out + n + 4, static_cast<std::uint32_t>(via), 4);
      store_le(out + n + 8, static_cast<std::uint32_t>(events), 4);
      store_le(out + n + 12, data, 8);
      n += kWatchSize;
      ++count;
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  store_le(out, count, 4);
  return static_cast<long>(n);
}

}  // namespace mosix::agent
