// The SMP view (smp.h): the CPU count and memory total the program sees.
//
// Interposed: sysconf(_SC_NPROCESSORS_ONLN/_CONF), get_nprocs(),
// get_nprocs_conf(), sched_getaffinity() of this process or one of its
// threads, pthread_getaffinity_np(), sysinfo()'s totalram; and, through
// smp_open (called by the open and fopen interposers of proc_paths.cpp),
// /proc/cpuinfo, /proc/meminfo's MemTotal and the CPU lists under
// /sys/devices/system/cpu. The CPUs are numbered 0..N-1; the affinity mask
// has them all. What the kernel does is unchanged: sched_setaffinity, the
// scheduler, glibc's own internal counts (malloc's arenas) and what /proc and
// /sys show to a path this does not know (relative to a directory
// descriptor, /proc/stat, /sys/devices/system/cpu/cpuN/) are this node's.
//
// Generated contents go into a memfd, read through a read-only descriptor of
// its own; buffers come from mmap: open() may run in a signal handler.
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "compat/agent/smp.h"

namespace mosix::agent {
namespace {

constexpr int kMaxCpus = 8192;  // the kernel's largest NR_CPUS
constexpr std::uint64_t kMaxMemoryKib = std::uint64_t{1} << 50;

// The view: 0 is off. Set once by the constructor; a checkpoint carries them.
int g_cpus = 0;
std::uint64_t g_memory_kib = 0;

enum Fn { kSysconf, kGetNprocs, kGetNprocsConf, kSchedGetaffinity, kPthreadGetaffinity, kCount };
constexpr const char* kNames[kCount] = {"sysconf", "get_nprocs", "get_nprocs_conf", "sched_getaffinity",
                                        "pthread_getaffinity_np"};
std::atomic<void*> g_real[kCount];

template <typename T>
T real_as(Fn f) {
  void* p = g_real[f].load(std::memory_order_acquire);
  if (p == nullptr) {
    p = dlsym(RTLD_NEXT, kNames[f]);
    g_real[f].store(p, std::memory_order_release);
  }
  return reinterpret_cast<T>(p);
}

// NAME's value when it is a decimal number from 1 to max, else 0.
std::uint64_t env_number(const char* name, std::uint64_t max) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0' || *v == '0') return 0;
  const char* p = v;
  std::uint64_t n = 0;
  for (; *p >= '0' && *p <= '9'; ++p) {
    n = n * 10 + static_cast<unsigned>(*p - '0');
    if (n > max) return 0;
  }
  return *p == '\0' ? n : 0;
}

__attribute__((constructor)) void smp_init() {
  g_cpus = static_cast<int>(env_number("MOSIX_SMP_CPUS", kMaxCpus));
  g_memory_kib = env_number("MOSIX_SMP_MEMORY_KIB", kMaxMemoryKib);
  for (int f = 0; f < kCount; ++f) real_as<void*>(static_cast<Fn>(f));
}

// All N CPUs of the view in a mask of `size` bytes; EINVAL when they do not
// fit, as the kernel says when the mask is smaller than its CPUs.
int fill_mask(std::size_t size, cpu_set_t* set) {
  if (size * 8 < static_cast<std::size_t>(g_cpus)) return EINVAL;
  auto* bytes = reinterpret_cast<unsigned char*>(set);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = 0;
  for (int cpu = 0; cpu < g_cpus; ++cpu) CPU_SET_S(static_cast<std::size_t>(cpu), size, set);
  return 0;
}

// pid names this process or one of its threads.
bool is_self(pid_t pid) {
  if (pid == 0) return true;
  pid_t real = real_pid();
  if (pid == real || pid == current_vpid()) return true;
  return sys(SYS_tgkill, real, pid, 0) == 0;
}

// Anonymous memory from mmap, unmapped at the end of the scope.
class Buffer {
 public:
  ~Buffer() {
    if (data_ != nullptr) sys(SYS_munmap, data_, size_);
  }
  bool make(std::size_t size) {
    if (data_ != nullptr) sys(SYS_munmap, data_, size_);
    long p = sys(SYS_mmap, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data_ = p < 0 && p > -4096 ? nullptr : reinterpret_cast<char*>(p);
    size_ = data_ != nullptr ? size : 0;
    return data_ != nullptr;
  }
  char* data() { return data_; }
  std::size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

// The real contents of a /proc or /sys file, whatever its length (up to 64 MiB).
long read_real(const char* path, Buffer& out) {
  for (std::size_t cap = 64 << 10; cap <= (64u << 20); cap *= 4) {
    if (!out.make(cap)) return -ENOMEM;
    long n = read_file(path, out.data(), cap);
    if (n != -ENOSPC) return n;
  }
  return -EFBIG;
}

// Appends to a Buffer; ok() is false once something did not fit.
class Text {
 public:
  explicit Text(Buffer& b) : b_(b) {}
  Text& put(const char* s, std::size_t n) {
    if (len_ + n > b_.size()) {
      ok_ = false;
      return *this;
    }
    for (std::size_t i = 0; i < n; ++i) b_.data()[len_ + i] = s[i];
    len_ += n;
    return *this;
  }
  Text& put(const char* s) { return put(s, cstr_len(s)); }
  Text& num(std::uint64_t v) {
    char digits[24];
    std::size_t n = 0;
    do {
      digits[sizeof digits - 1 - n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    return put(digits + sizeof digits - n, n);
  }
  Text& spaces(int n) {
    for (int i = 0; i < n; ++i) put(" ", 1);
    return *this;
  }
  std::size_t size() const { return len_; }
  bool ok() const { return ok_; }

 private:
  Buffer& b_;
  std::size_t len_ = 0;
  bool ok_ = true;
};

int digits_of(std::uint64_t v) {
  int n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

// The key of a "key<tabs>: value" line of /proc/cpuinfo is `key`.
bool key_is(const char* line, std::size_t len, const char* key) {
  std::size_t k = cstr_len(key);
  if (len < k || !starts_with(line, key)) return false;
  for (std::size_t i = k; i < len; ++i) {
    if (line[i] == ':') return true;
    if (line[i] != ' ' && line[i] != '\t') return false;
  }
  return false;
}

// One line of a CPU's block, the CPU's own numbers made the view's: CPU
// `cpu` of `cpus` cores in one package, one thread each.
void cpuinfo_line(Text& t, const char* line, std::size_t len, int cpu, int cpus) {
  std::uint64_t value = 0;
  bool replace = true;
  if (key_is(line, len, "processor") || key_is(line, len, "core id") || key_is(line, len, "apicid") ||
      key_is(line, len, "initial apicid")) {
    value = static_cast<std::uint64_t>(cpu);
  } else if (key_is(line, len, "siblings") || key_is(line, len, "cpu cores")) {
    value = static_cast<std::uint64_t>(cpus);
  } else {
    replace = false;
  }
  std::size_t colon = 0;
  while (replace && colon < len && line[colon] != ':') ++colon;
  if (!replace || colon + 2 > len) {
    t.put(line, len).put("\n", 1);
    return;
  }
  t.put(line, colon + 2).num(value).put("\n", 1);
}

// /proc/cpuinfo with N blocks: block i is the real CPU i mod R's (R real
// CPUs), renumbered.
bool make_cpuinfo(Buffer& out, std::size_t& len) {
  Buffer real;
  long n = read_real("/proc/cpuinfo", real);
  if (n <= 0) return false;
  const char* text = real.data();
  const auto size = static_cast<std::size_t>(n);
  // The blocks: [start, end) spans, separated by an empty line.
  Buffer spans_buffer;
  if (!spans_buffer.make((size / 2 + 2) * 2 * sizeof(std::size_t))) return false;
  auto* spans = reinterpret_cast<std::size_t*>(spans_buffer.data());
  std::size_t blocks = 0, longest = 0, at = 0;
  while (at < size) {
    while (at < size && text[at] == '\n') ++at;
    if (at >= size) break;
    std::size_t end = at;
    while (end < size && !(text[end] == '\n' && (end + 1 == size || text[end + 1] == '\n'))) ++end;
    spans[2 * blocks] = at;
    spans[2 * blocks + 1] = end;
    if (end - at > longest) longest = end - at;
    ++blocks;
    at = end + 1;
  }
  if (blocks == 0) return false;
  if (!out.make(static_cast<std::size_t>(g_cpus) * (longest + 128) + 64)) return false;
  Text t(out);
  for (int cpu = 0; cpu < g_cpus; ++cpu) {
    std::size_t b = static_cast<std::size_t>(cpu) % blocks;
    const char* p = text + spans[2 * b];
    const char* end = text + spans[2 * b + 1];
    while (p < end) {
      const char* eol = p;
      while (eol < end && *eol != '\n') ++eol;
      cpuinfo_line(t, p, static_cast<std::size_t>(eol - p), cpu, g_cpus);
      p = eol + 1;
    }
    t.put("\n", 1);
  }
  len = t.size();
  return t.ok();
}

// /proc/meminfo with MemTotal the view's, laid out as the kernel does.
bool make_meminfo(Buffer& out, std::size_t& len) {
  Buffer real;
  long n = read_real("/proc/meminfo", real);
  if (n <= 0 || !out.make(static_cast<std::size_t>(n) + 64)) return false;
  Text t(out);
  const char* p = real.data();
  const char* end = p + n;
  while (p < end) {
    const char* eol = p;
    while (eol < end && *eol != '\n') ++eol;
    if (starts_with(p, "MemTotal:")) {
      t.put("MemTotal:").spaces(7 + (digits_of(g_memory_kib) < 8 ? 8 - digits_of(g_memory_kib) : 0));
      t.num(g_memory_kib).put(" kB\n");
    } else {
      t.put(p, static_cast<std::size_t>(eol - p)).put("\n", 1);
    }
    p = eol + 1;
  }
  len = t.size();
  return t.ok();
}

// "0-(N-1)", as /sys/devices/system/cpu/online shows a range.
bool make_cpu_list(Buffer& out, std::size_t& len) {
  if (!out.make(64)) return false;
  Text t(out);
  t.put("0");
  if (g_cpus > 1) t.put("-").num(static_cast<std::uint64_t>(g_cpus - 1));
  t.put("\n");
  len = t.size();
  return t.ok();
}

}  // namespace

// A read-only descriptor of data[0, len), or a negative errno.
long read_only_memfd(const char* name, const char* data, std::size_t len, bool cloexec) {
  long fd = sys(SYS_memfd_create, name, MFD_CLOEXEC);
  if (fd < 0) return fd;
  if (!write_all(static_cast<int>(fd), data, len)) {
    sys(SYS_close, fd);
    return -EIO;
  }
  char path[48];
  Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
  long ro = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | (cloexec ? O_CLOEXEC : 0));
  sys(SYS_close, fd);
  return ro;
}


int smp_open(const char* path, int flags) {
  if (int fd = pid_view_open(path, flags); fd != kNotServed) return fd;  // pid_views.cpp
  if ((g_cpus == 0 && g_memory_kib == 0) || path == nullptr || path[0] != '/') return kNotServed;
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_PATH | O_DIRECTORY | O_CREAT | O_TRUNC)) != 0) return kNotServed;
  bool (*make)(Buffer&, std::size_t&) = nullptr;
  const char* name = nullptr;
  if (g_cpus > 0 && cstr_eq(path, "/proc/cpuinfo")) {
    make = make_cpuinfo;
    name = "mosix-cpuinfo";
  } else if (g_memory_kib > 0 && cstr_eq(path, "/proc/meminfo")) {
    make = make_meminfo;
    name = "mosix-meminfo";
  } else if (g_cpus > 0 && (cstr_eq(path, "/sys/devices/system/cpu/online") ||
                            cstr_eq(path, "/sys/devices/system/cpu/possible") ||
                            cstr_eq(path, "/sys/devices/system/cpu/present"))) {
    make = make_cpu_list;
    name = "mosix-cpulist";
  } else {
    return kNotServed;
  }
  Buffer contents;
  std::size_t len = 0;
  // Where the real file cannot be read, the real open says why.
  if (!make(contents, len)) return kNotServed;
  long fd = read_only_memfd(name, contents.data(), len, (flags & O_CLOEXEC) != 0);
  if (fd < 0) {
    errno = static_cast<int>(-fd);
    return -1;
  }
  return static_cast<int>(fd);
}

int smp_fopen(const char* path, const char* mode) {
  if (mode == nullptr || mode[0] != 'r') return kNotServed;
  int flags = O_RDONLY;
  for (const char* m = mode + 1; *m != '\0' && *m != ','; ++m) {
    if (*m == '+') return kNotServed;
    if (*m == 'e') flags |= O_CLOEXEC;
  }
  return smp_open(path, flags);
}

}  // namespace mosix::agent

namespace smp = mosix::agent;

extern "C" {

#define MOSIX_EXPORT __attribute__((visibility("default")))

MOSIX_EXPORT long sysconf(int name) {
  if (smp::g_cpus > 0 && (name == _SC_NPROCESSORS_ONLN || name == _SC_NPROCESSORS_CONF)) return smp::g_cpus;
  auto real = smp::real_as<long (*)(int)>(smp::kSysconf);
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return real(name);
}

MOSIX_EXPORT long __sysconf(int name) { return sysconf(name); }

MOSIX_EXPORT int get_nprocs(void) {
  if (smp::g_cpus > 0) return smp::g_cpus;
  auto real = smp::real_as<int (*)()>(smp::kGetNprocs);
  return real != nullptr ? real() : 1;
}

MOSIX_EXPORT int get_nprocs_conf(void) {
  if (smp::g_cpus > 0) return smp::g_cpus;
  auto real = smp::real_as<int (*)()>(smp::kGetNprocsConf);
  return real != nullptr ? real() : 1;
}

MOSIX_EXPORT int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* set) {
  if (smp::g_cpus > 0 && smp::is_self(pid)) {
    int e = smp::fill_mask(size, set);
    if (e != 0) {
      errno = e;
      return -1;
    }
    return 0;
  }
  auto real = smp::real_as<int (*)(pid_t, size_t, cpu_set_t*)>(smp::kSchedGetaffinity);
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return real(pid, size, set);
}

MOSIX_EXPORT int pthread_getaffinity_np(pthread_t thread, size_t size, cpu_set_t* set) {
  if (smp::g_cpus > 0) return smp::fill_mask(size, set);
  auto real = smp::real_as<int (*)(pthread_t, size_t, cpu_set_t*)>(smp::kPthreadGetaffinity);
  return real != nullptr ? real(thread, size, set) : ENOSYS;
}

MOSIX_EXPORT int sysinfo(struct sysinfo* info) {
  long r = smp::sys(SYS_sysinfo, info);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  if (smp::g_memory_kib > 0) {
    std::uint64_t unit = info->mem_unit != 0 ? info->mem_unit : 1;
    info->totalram = static_cast<unsigned long>(smp::g_memory_kib * 1024 / unit);
  }
  return 0;
}

}  // extern "C"
