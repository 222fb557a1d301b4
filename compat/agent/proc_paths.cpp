// /proc/<pid> paths of a restored process.
//
// After a restore the program's getpid() is still its first pid (agent.cpp),
// but the kernel knows the process by a new one, and so does /proc. A program
// that builds "/proc/<getpid()>/..." (fdinfo, fd, maps, status, exe) would
// open nothing, or the files of whatever process has that pid now: a silent
// wrong answer. The libc functions that take a path are interposed here and
// such a path is rewritten to /proc/<real pid>/...; every other path passes
// unchanged, and nothing is rewritten in a process that was never restored.
//
// What this does not cover (docs/mosixctl.md, known limits): paths given to
// syscall(2) directly, paths relative to a descriptor of /proc itself, and
// pids the kernel prints inside /proc files (the owner of a lock in
// fdinfo and /proc/locks, the first field of /proc/<pid>/stat), which are the
// new ones.
//
// The real functions are looked up once in the constructor, not on first
// use: open() may be called from a signal handler, where dlsym may not.
#undef _FORTIFY_SOURCE  // the interposed open must not meet glibc's inline one
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "compat/agent/smp.h"

namespace mosix::agent {
namespace {

constexpr char kProc[] = "/proc/";
constexpr size_t kProcLen = sizeof kProc - 1;

// Writes v in decimal at out (room for 11 characters); returns its length.
size_t write_decimal(char* out, pid_t v) {
  char digits[12];
  size_t n = 0;
  auto u = static_cast<unsigned>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  for (size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  return n;
}

// PATH, or its rewrite in buf when it names this process by its virtual pid,
// or a thread by its virtual tid, and that differs from the real one.
const char* real_proc_path(const char* path, char (&buf)[PATH_MAX]) {
  if (path == nullptr) return path;
  for (size_t i = 0; i < kProcLen; ++i)
    if (path[i] != kProc[i]) return path;
  const char* p = path + kProcLen;
  if (*p < '1' || *p > '9') return path;  // not a pid (self, a name, or a leading zero)
  long named = 0;
  while (*p >= '0' && *p <= '9') {
    named = named * 10 + (*p - '0');
    if (named > INT_MAX) return path;
    ++p;
  }
  if (*p != '\0' && *p != '/') return path;  // "/proc/12ab": not a pid directory
  // The process by its virtual pid, or one of its threads by its virtual
  // tid (tids.cpp).
  pid_t vpid = current_vpid();
  pid_t real = named == vpid ? real_pid() : tid_to_real(static_cast<pid_t>(named));
  if (real == named) real = to_real_pid(static_cast<pid_t>(named));  // a process of a restored tree
  if (real == named) return path;  // never restored, or not ours: /proc already agrees
  size_t rest = 0;
  while (p[rest] != '\0') ++rest;
  if (kProcLen + 11 + rest + 1 > sizeof buf) return path;  // too long either way
  for (size_t i = 0; i < kProcLen; ++i) buf[i] = kProc[i];
  size_t at = kProcLen + write_decimal(buf + kProcLen, real);
  for (size_t i = 0; i <= rest; ++i) buf[at + i] = p[i];  // with the terminating NUL
  return buf;
}

// The program's executable as the kernel named it when the agent started
// (a restore keeps it: it is in the image). After a restore the kernel's
// /proc/self/exe is the restorer, which an unprivileged process cannot
// change (PR_SET_MM_EXE_FILE needs CAP_SYS_RESOURCE); readlink of the
// process's own exe link answers with this instead.
char g_exe[PATH_MAX];

// Whether `path` is this process's own exe link: /proc/self/exe,
// /proc/thread-self/exe, or /proc/<its virtual or real pid>/exe.
bool own_exe_link(const char* path) {
  if (path == nullptr || !starts_with(path, kProc)) return false;
  const char* p = path + kProcLen;
  if (starts_with(p, "self/")) {
    p += 5;
  } else if (starts_with(p, "thread-self/")) {
    p += 12;
  } else {
    long named = 0;
    if (*p < '1' || *p > '9') return false;
    while (*p >= '0' && *p <= '9' && named <= INT_MAX) named = named * 10 + (*p++ - '0');
    if (*p++ != '/' || (named != current_vpid() && named != real_pid())) return false;
  }
  return cstr_eq(p, "exe");
}

// What readlink put in out (n bytes) for `path`, corrected: the program's
// executable where the kernel names the restorer.
ssize_t own_exe(const char* path, char* out, size_t size, ssize_t n) {
  if (n <= 0 || g_exe[0] == '\0' || !own_exe_link(path)) return n;
  auto k = static_cast<size_t>(n);
  constexpr char kRestorer[] = "/mosix-restore";
  constexpr size_t kRestorerLen = sizeof kRestorer - 1;
  auto ends_in_restorer = [&](const char* text, size_t len) {  // text: not NUL-terminated
    if (len < kRestorerLen) return false;
    for (size_t i = 0; i < kRestorerLen; ++i)
      if (text[len - kRestorerLen + i] != kRestorer[i]) return false;
    return true;
  };
  if (k >= size || !ends_in_restorer(out, k)) {
    // Not the restorer, or cut short: a longer answer is not ours to judge.
    if (k < size) return n;
    char whole[PATH_MAX];
    long m = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", whole, sizeof whole - 1);
    if (m <= 0 || !ends_in_restorer(whole, static_cast<size_t>(m))) return n;
  }
  size_t len = cstr_len(g_exe);
  if (len > size) len = size;  // readlink truncates, without a NUL
  for (size_t i = 0; i < len; ++i) out[i] = g_exe[i];
  return static_cast<ssize_t>(len);
}

// The interposed functions, one entry each, filled by the constructor (and
// by the first call if another library's constructor calls one before ours).
enum Fn {
  kOpen, kOpen64, kOpenat, kOpenat64, kOpen2, kOpen64_2, kOpenat2, kOpenat64_2,
  kFopen, kFopen64, kFreopen, kFreopen64, kOpendir,
  kReadlink, kReadlinkat, kAccess, kFaccessat,
  kStat, kStat64, kLstat, kLstat64, kFstatat, kFstatat64,
  kXstat, kXstat64, kLxstat, kLxstat64, kFxstatat, kFxstatat64,
  kStatx, kChdir, kCount
};

constexpr const char* kNames[kCount] = {
    "open", "open64", "openat", "openat64", "__open_2", "__open64_2", "__openat_2", "__openat64_2",
    "fopen", "fopen64", "freopen", "freopen64", "opendir",
    "readlink", "readlinkat", "access", "faccessat",
    "stat", "stat64", "lstat", "lstat64", "fstatat", "fstatat64",
    "__xstat", "__xstat64", "__lxstat", "__lxstat64", "__fxstatat", "__fxstatat64",
    "statx", "chdir"};

std::atomic<void*> g_real[kCount];

void* real(Fn f) {
  void* p = g_real[f].load(std::memory_order_acquire);
  if (p == nullptr) {
    p = dlsym(RTLD_NEXT, kNames[f]);
    g_real[f].store(p, std::memory_order_release);
  }
  return p;
}

template <typename T>
T real_as(Fn f) {
  return reinterpret_cast<T>(real(f));
}

__attribute__((constructor)) void resolve_path_functions() {
  for (int f = 0; f < kCount; ++f) real(static_cast<Fn>(f));
  long n = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", g_exe, sizeof g_exe - 1);
  g_exe[n > 0 ? n : 0] = '\0';
}

// open's mode argument is there only when the flags ask for a new file.
mode_t mode_argument(int flags, va_list& ap) {
  bool takes_mode = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
  return takes_mode ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

// When libc has no such function (never expected): fail as a missing call.
int missing() {
  errno = ENOSYS;
  return -1;
}

template <typename T>
T* missing_ptr() {
  errno = ENOSYS;
  return nullptr;
}

// fopen's answer for a descriptor smp_fopen gave (or -1 with errno).
FILE* stream_of(int fd, const char* mode) {
  if (fd < 0) return nullptr;
  FILE* f = fdopen(fd, mode);
  if (f == nullptr) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return f;
}

int open_path(Fn which, int dir, const char* path, int flags, mode_t mode) {
  if (int fd = smp_open(path, flags); fd != kNotServed) return fd;  // the SMP view's files
  char buf[PATH_MAX];
  const char* use = real_proc_path(path, buf);
  if (which == kOpen || which == kOpen64) {
    auto f = real_as<int (*)(const char*, int, ...)>(which);
    return f ? f(use, flags, mode) : missing();
  }
  auto f = real_as<int (*)(int, const char*, int, ...)>(which);
  return f ? f(dir, use, flags, mode) : missing();
}

}  // namespace
}  // namespace mosix::agent

using mosix::agent::real_as;
using mosix::agent::own_exe;
using mosix::agent::real_proc_path;
namespace fn = mosix::agent;

extern "C" {

#define MOSIX_EXPORT __attribute__((visibility("default")))

// open, open64, openat and openat64 (the same calls on a 64-bit system).
MOSIX_EXPORT int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = fn::mode_argument(flags, ap);
  va_end(ap);
  return fn::open_path(fn::kOpen, AT_FDCWD, path, flags, mode);
}

MOSIX_EXPORT int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = fn::mode_argument(flags, ap);
  va_end(ap);
  return fn::open_path(fn::kOpen64, AT_FDCWD, path, flags, mode);
}

MOSIX_EXPORT int openat(int dir, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = fn::mode_argument(flags, ap);
  va_end(ap);
  return fn::open_path(fn::kOpenat, dir, path, flags, mode);
}

MOSIX_EXPORT int openat64(int dir, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = fn::mode_argument(flags, ap);
  va_end(ap);
  return fn::open_path(fn::kOpenat64, dir, path, flags, mode);
}

// What _FORTIFY_SOURCE builds call instead of open when the flags are not
// known at compile time.
MOSIX_EXPORT int __open_2(const char* path, int flags) {
  char buf[PATH_MAX];
  if (int fd = fn::smp_open(path, flags); fd != fn::kNotServed) return fd;
  auto f = real_as<int (*)(const char*, int)>(fn::kOpen2);
  return f ? f(real_proc_path(path, buf), flags) : fn::missing();
}

MOSIX_EXPORT int __open64_2(const char* path, int flags) {
  char buf[PATH_MAX];
  if (int fd = fn::smp_open(path, flags); fd != fn::kNotServed) return fd;
  auto f = real_as<int (*)(const char*, int)>(fn::kOpen64_2);
  return f ? f(real_proc_path(path, buf), flags) : fn::missing();
}

MOSIX_EXPORT int __openat_2(int dir, const char* path, int flags) {
  char buf[PATH_MAX];
  if (int fd = fn::smp_open(path, flags); fd != fn::kNotServed) return fd;
  auto f = real_as<int (*)(int, const char*, int)>(fn::kOpenat2);
  return f ? f(dir, real_proc_path(path, buf), flags) : fn::missing();
}

MOSIX_EXPORT int __openat64_2(int dir, const char* path, int flags) {
  char buf[PATH_MAX];
  if (int fd = fn::smp_open(path, flags); fd != fn::kNotServed) return fd;
  auto f = real_as<int (*)(int, const char*, int)>(fn::kOpenat64_2);
  return f ? f(dir, real_proc_path(path, buf), flags) : fn::missing();
}

// glibc's fopen and opendir open through internal calls that no preloaded
// library sees, so they are interposed themselves.
MOSIX_EXPORT FILE* fopen(const char* path, const char* mode) {
  char buf[PATH_MAX];
  if (int fd = fn::smp_fopen(path, mode); fd != fn::kNotServed) return fn::stream_of(fd, mode);
  auto f = real_as<FILE* (*)(const char*, const char*)>(fn::kFopen);
  if (f == nullptr) return fn::missing_ptr<FILE>();
  return f(real_proc_path(path, buf), mode);
}

MOSIX_EXPORT FILE* fopen64(const char* path, const char* mode) {
  char buf[PATH_MAX];
  if (int fd = fn::smp_fopen(path, mode); fd != fn::kNotServed) return fn::stream_of(fd, mode);
  auto f = real_as<FILE* (*)(const char*, const char*)>(fn::kFopen64);
  if (f == nullptr) return fn::missing_ptr<FILE>();
  return f(real_proc_path(path, buf), mode);
}

MOSIX_EXPORT FILE* freopen(const char* path, const char* mode, FILE* stream) {
  char buf[PATH_MAX];
  auto f = real_as<FILE* (*)(const char*, const char*, FILE*)>(fn::kFreopen);
  if (f == nullptr) return fn::missing_ptr<FILE>();
  return f(real_proc_path(path, buf), mode, stream);
}

MOSIX_EXPORT FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  char buf[PATH_MAX];
  auto f = real_as<FILE* (*)(const char*, const char*, FILE*)>(fn::kFreopen64);
  if (f == nullptr) return fn::missing_ptr<FILE>();
  return f(real_proc_path(path, buf), mode, stream);
}

MOSIX_EXPORT DIR* opendir(const char* path) {
  char buf[PATH_MAX];
  auto f = real_as<DIR* (*)(const char*)>(fn::kOpendir);
  if (f == nullptr) return fn::missing_ptr<DIR>();
  return f(real_proc_path(path, buf));
}

MOSIX_EXPORT ssize_t readlink(const char* path, char* out, size_t size) {
  char buf[PATH_MAX];
  auto f = real_as<ssize_t (*)(const char*, char*, size_t)>(fn::kReadlink);
  return f ? own_exe(path, out, size, f(real_proc_path(path, buf), out, size)) : fn::missing();
}

MOSIX_EXPORT ssize_t readlinkat(int dir, const char* path, char* out, size_t size) {
  char buf[PATH_MAX];
  auto f = real_as<ssize_t (*)(int, const char*, char*, size_t)>(fn::kReadlinkat);
  return f ? own_exe(path, out, size, f(dir, real_proc_path(path, buf), out, size)) : fn::missing();
}

MOSIX_EXPORT int access(const char* path, int how) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(const char*, int)>(fn::kAccess);
  return f ? f(real_proc_path(path, buf), how) : fn::missing();
}

MOSIX_EXPORT int faccessat(int dir, const char* path, int how, int flags) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, int, int)>(fn::kFaccessat);
  return f ? f(dir, real_proc_path(path, buf), how, flags) : fn::missing();
}

MOSIX_EXPORT int stat(const char* path, struct stat* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(const char*, struct stat*)>(fn::kStat);
  return f ? f(real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int stat64(const char* path, struct stat64* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(const char*, struct stat64*)>(fn::kStat64);
  return f ? f(real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int lstat(const char* path, struct stat* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(const char*, struct stat*)>(fn::kLstat);
  return f ? f(real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int lstat64(const char* path, struct stat64* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(const char*, struct stat64*)>(fn::kLstat64);
  return f ? f(real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int fstatat(int dir, const char* path, struct stat* st, int flags) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, struct stat*, int)>(fn::kFstatat);
  return f ? f(dir, real_proc_path(path, buf), st, flags) : fn::missing();
}

MOSIX_EXPORT int fstatat64(int dir, const char* path, struct stat64* st, int flags) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, struct stat64*, int)>(fn::kFstatat64);
  return f ? f(dir, real_proc_path(path, buf), st, flags) : fn::missing();
}

// Programs built against glibc before 2.33 call the stat family through these.
MOSIX_EXPORT int __xstat(int ver, const char* path, struct stat* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, struct stat*)>(fn::kXstat);
  return f ? f(ver, real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int __xstat64(int ver, const char* path, struct stat64* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, struct stat64*)>(fn::kXstat64);
  return f ? f(ver, real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int __lxstat(int ver, const char* path, struct stat* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, struct stat*)>(fn::kLxstat);
  return f ? f(ver, real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int __lxstat64(int ver, const char* path, struct stat64* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, struct stat64*)>(fn::kLxstat64);
  return f ? f(ver, real_proc_path(path, buf), st) : fn::missing();
}

MOSIX_EXPORT int __fxstatat(int ver, int dir, const char* path, struct stat* st, int flags) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, int, const char*, struct stat*, int)>(fn::kFxstatat);
  return f ? f(ver, dir, real_proc_path(path, buf), st, flags) : fn::missing();
}

MOSIX_EXPORT int __fxstatat64(int ver, int dir, const char* path, struct stat64* st, int flags) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, int, const char*, struct stat64*, int)>(fn::kFxstatat64);
  return f ? f(ver, dir, real_proc_path(path, buf), st, flags) : fn::missing();
}

MOSIX_EXPORT int statx(int dir, const char* path, int flags, unsigned mask, struct statx* st) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(int, const char*, int, unsigned, struct statx*)>(fn::kStatx);
  return f ? f(dir, real_proc_path(path, buf), flags, mask, st) : fn::missing();
}

// A program may change into its /proc directory and open from there.
MOSIX_EXPORT int chdir(const char* path) {
  char buf[PATH_MAX];
  auto f = real_as<int (*)(const char*)>(fn::kChdir);
  return f ? f(real_proc_path(path, buf)) : fn::missing();
}

}  // extern "C"
