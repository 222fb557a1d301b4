#include "compat/agent/raw.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

namespace mosix::agent {

bool write_all(int fd, const void* buf, std::size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    long n = sys(SYS_write, fd, p, len);
    if (n == -EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

long read_file(const char* path, char* buf, std::size_t cap) {
  long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  std::size_t len = 0;
  long r = 0;
  while (len < cap) {
    r = sys(SYS_read, fd, buf + len, cap - len);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
  }
  sys(SYS_close, fd);
  if (r < 0) return r;
  if (len == cap) return -ENOSPC;
  return static_cast<long>(len);
}

Line& Line::sv(const char* text, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) {
    if (len_ + 1 >= cap_) {
      ok_ = false;
      break;
    }
    buf_[len_++] = text[k];
  }
  buf_[len_] = '\0';
  return *this;
}

Line& Line::s(const char* text) { return sv(text, cstr_len(text)); }

Line& Line::u(std::uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  char out[24];
  for (int k = 0; k < n; ++k) out[k] = tmp[n - 1 - k];
  return sv(out, static_cast<std::size_t>(n));
}

Line& Line::i(std::int64_t v) {
  if (v < 0) {
    s("-");
    return u(static_cast<std::uint64_t>(-(v + 1)) + 1);
  }
  return u(static_cast<std::uint64_t>(v));
}

Line& Line::x(std::uint64_t v) {
  char out[17];
  int n = 0;
  for (int shift = 60; shift >= 0; shift -= 4) {
    unsigned d = (v >> shift) & 0xf;
    if (n == 0 && d == 0 && shift != 0) continue;
    out[n++] = "0123456789abcdef"[d];
  }
  return sv(out, static_cast<std::size_t>(n));
}

std::size_t cstr_len(const char* s) {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

bool starts_with(const char* s, const char* prefix) {
  while (*prefix != '\0')
    if (*s++ != *prefix++) return false;
  return true;
}

bool cstr_eq(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

std::uint64_t parse_hex(const char*& p) {
  std::uint64_t v = 0;
  for (;; ++p) {
    char c = *p;
    if (c >= '0' && c <= '9')
      v = v * 16 + static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = v * 16 + static_cast<unsigned>(c - 'a' + 10);
    else
      return v;
  }
}

std::uint64_t parse_dec(const char*& p) {
  std::uint64_t v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<unsigned>(*p++ - '0');
  return v;
}

std::uint64_t user_dev(std::uint64_t kernel_dev) {
  return makedev(static_cast<unsigned>(kernel_dev >> 20), static_cast<unsigned>(kernel_dev & 0xfffff));
}

}  // namespace mosix::agent
