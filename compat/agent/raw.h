// Raw Linux system calls for code that runs inside a signal handler of an
// arbitrary program: no errno, no locks, no interposable libc entry points.
// Each returns the kernel's value (negative errno on failure).
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>

#include <cstddef>
#include <cstdint>

namespace mosix::agent {

inline long sys6(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  register long r9 asm("r9") = f;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}

template <typename... A>
inline long sys(long n, A... args) {
  return sys6(n, ((long)args)...);
}

// Writes all of buf, retrying on EINTR and short writes. False on error.
bool write_all(int fd, const void* buf, std::size_t len);
// Reads a whole small file (e.g. under /proc) into buf; returns its length or
// a negative errno; -ENOSPC when it does not fit.
long read_file(const char* path, char* buf, std::size_t cap);

// Minimal formatting into fixed buffers (no snprintf inside a handler).
class Line {
 public:
  Line(char* buf, std::size_t cap) : buf_(buf), cap_(cap) { buf_[0] = '\0'; }
  Line& s(const char* text);
  Line& sv(const char* text, std::size_t n);
  Line& u(std::uint64_t v);
  Line& i(std::int64_t v);
  Line& x(std::uint64_t v);
  const char* c_str() const { return buf_; }
  std::size_t size() const { return len_; }
  bool ok() const { return ok_; }

 private:
  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool ok_ = true;
};

std::size_t cstr_len(const char* s);
bool starts_with(const char* s, const char* prefix);
bool cstr_eq(const char* a, const char* b);
// Parses hex or decimal digits at *p, advancing it.
std::uint64_t parse_hex(const char*& p);
std::uint64_t parse_dec(const char*& p);

// A device number as the kernel prints it in /proc files and sock_diag
// (s_dev: major << 20 | minor) as stat's st_dev has it (makedev's).
std::uint64_t user_dev(std::uint64_t kernel_dev);

// Lists the directory `path` with getdents64 into buf and calls
// fn(number, dir) for each entry whose name is a number (dir: the listing's
// own descriptor), until fn returns false. -1 when the directory cannot be
// opened, 0 when fn stopped, 1 when every entry was seen.
template <typename Fn>
int for_each_numbered_entry(const char* path, char* buf, std::size_t cap, Fn fn) {
  long dir = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  int result = 1;
  while (result == 1) {
    long n = sys(SYS_getdents64, dir, buf, cap);
    if (n <= 0) break;
    for (long off = 0; off < n && result == 1;) {
      unsigned short reclen;
      __builtin_memcpy(&reclen, buf + off + 16, 2);
      const char* name = buf + off + 19;
      off += reclen;
      if (name[0] < '0' || name[0] > '9') continue;
      const char* q = name;
      if (!fn(parse_dec(q), dir)) result = 0;
    }
  }
  sys(SYS_close, dir);
  return result;
}

}  // namespace mosix::agent
