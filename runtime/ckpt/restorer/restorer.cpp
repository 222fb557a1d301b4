// mosix-restore IMAGE: turns this process into the one the image holds.
// IMAGE "-" reads the image from standard input (see spool_stdin).
//
// A static binary linked at kRestorerBase (protocol.h), far from anything a
// program maps, and with malloc kept to the brk heap next to it, so that the
// restorer's own memory never collides with the image's. It works in two
// phases:
//  1. Read the whole image, checking every checksum and record, and that it
//     can be restored here (CPU, kernel, files, offsets). Any problem: one
//     line on stderr and exit 2, with nothing touched.
//  2. Point of no return. Reopen the descriptors, switch to a stack in the
//     restorer's heap, unmap everything else, move the vDSO block to where
//     the program had it, map and fill every region, restore process state,
//     build one signal frame per thread on its own stack, clone the threads,
//     and leave through the trampoline (trampoline.S), which unmaps the
//     restorer and rt_sigreturns each thread into the program.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <string>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/restorer/protocol.h"
#include "runtime/ckpt/restorer/trampoline.h"

extern "C" {
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
}

// Linux 6.15's prctl for restorers; this libc's headers predate it.
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#define PR_TIMER_CREATE_RESTORE_IDS_GET 2
#endif

namespace mosix::ckpt {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kPhaseTwoStack = 512 << 10;
constexpr std::uint32_t kRseqSig = 0x53053053;

// A copy: argv lives on the stack that phase 2 unmaps.
char g_image_path[1024];

[[noreturn]] void refuse(const std::string& why) {
  std::string line = "mosix-restore: " + std::string(g_image_path) + ": " + why + "\n";
  ssize_t w = write(2, line.data(), line.size());
  (void)w;
  _exit(2);
}

// After the point of no return there is no process to go back to.
[[noreturn]] void die(const char* what, long err) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "mosix-restore: %s: restore failed after the point of no return: %s (%s)\n",
                   g_image_path, what, strerror(static_cast<int>(-err)));
  ssize_t w = write(2, buf, static_cast<std::size_t>(n));
  (void)w;
  syscall(SYS_exit_group, 2);
  __builtin_unreachable();
}

struct Thread {
  ThreadRecord rec;
  std::vector<std::uint8_t> regs, xstate;
  std::string name;
};
struct Region {
  RegionRecord rec;
  std::string path;
  int map_fd = -1;  // a placed descriptor to map the file through (see plan_file_maps)
};
struct Fd {
  FdRecord rec;
  std::string path;
  std::vector<std::uint8_t> data;
};
struct Pending {
  PendingSignalRecord rec;
  std::vector<std::uint8_t> info;
};

// Everything but the page data, copied out of the reader's buffers.
struct Image {
  HeaderRecord header;
  ProcessRecord process;
  std::string comm, cwd, exe;
  std::vector<Thread> threads;
  std::vector<Region> regions;
  std::vector<Fd> fds;
  std::vector<PosixTimerRecord> timers;
  std::vector<Pending> pending;
  std::vector<FileLockRecord> locks;
};

struct Mapping {
  std::uint64_t start, end;
  char name[32];
};

// The restorer's own mappings, read into fixed storage (no allocation while
// phase 2 unmaps them).
struct OwnMaps {
  Mapping m[256];
  int n = 0;
};

void read_own_maps(OwnMaps* out) {
  static char buf[64 << 10];
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) refuse("cannot read /proc/self/maps");
  std::size_t len = 0;
  for (ssize_t r; (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0;) len += static_cast<std::size_t>(r);
  close(fd);
  buf[len] = '\0';
  out->n = 0;
  for (char* line = buf; *line != '\0' && out->n < 256;) {
    char* eol = strchr(line, '\n');
    if (eol != nullptr) *eol = '\0';
    Mapping& m = out->m[out->n++];
    char* p = line;
    m.start = strtoull(p, &p, 16);
    m.end = strtoull(p + 1, &p, 16);
    const char* name = strrchr(line, ' ');
    snprintf(m.name, sizeof m.name, "%s", name != nullptr ? name + 1 : "");
    if (eol == nullptr) break;
    line = eol + 1;
  }
}

Image read_image(int fd) {
  static ReaderScratch scratch;
  if (ImageStatus s = scratch.map(); !s) refuse(s.message());
  ImageReader reader(fd_source(fd), &scratch);
  if (ImageStatus s = reader.open(); !s) refuse(s.message());
  Image img;
  img.header = reader.header();
  for (;;) {
    Record r;
    if (ImageStatus s = reader.next(&r); !s) refuse(s.message());
    if (r.process != nullptr) {
      img.process = *r.process;
      img.comm = std::string(r.process->comm);
      img.cwd = std::string(r.process->cwd);
      img.exe = std::string(r.process->exe);
    } else if (r.thread != nullptr) {
      Thread t{*r.thread, {r.thread->regs.begin(), r.thread->regs.end()},
               {r.thread->xstate.begin(), r.thread->xstate.end()}, std::string(r.thread->name)};
      img.threads.push_back(std::move(t));
    } else if (r.region != nullptr) {
      img.regions.push_back(Region{*r.region, std::string(r.region->path)});
    } else if (r.fd != nullptr) {
      img.fds.push_back(Fd{*r.fd, std::string(r.fd->path), {r.fd->data.begin(), r.fd->data.end()}});
    } else if (r.posix_timer != nullptr) {
      img.timers.push_back(*r.posix_timer);
    } else if (r.file_lock != nullptr) {
      img.locks.push_back(*r.file_lock);
    } else if (r.pending_signal != nullptr) {
      img.pending.push_back(Pending{*r.pending_signal, {r.pending_signal->siginfo.begin(), r.pending_signal->siginfo.end()}});
    } else if (r.end != nullptr) {
      break;
    }
  }
  char extra;
  if (read(fd, &extra, 1) != 0) refuse("data follows the end record (not an image, or two images concatenated)");
  scratch.unmap();
  // Views now point at our own copies.
  img.process.comm = img.comm;
  img.process.cwd = img.cwd;
  img.process.exe = img.exe;
  for (auto& t : img.threads) {
    t.rec.regs = Blob(t.regs.data(), t.regs.size());
    t.rec.xstate = Blob(t.xstate.data(), t.xstate.size());
    t.rec.name = t.name;
  }
  for (auto& g : img.regions) g.rec.path = g.path;
  for (auto& f : img.fds) {
    f.rec.path = f.path;
    f.rec.data = Blob(f.data.data(), f.data.size());
  }
  for (auto& q : img.pending) q.rec.siginfo = Blob(q.info.data(), q.info.size());
  return img;
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
}

bool is_special(RegionKind k) {
  return k == RegionKind::vvar || k == RegionKind::vvar_vclock || k == RegionKind::vdso ||
         k == RegionKind::vsyscall;
}

const Mapping* own_mapping(const OwnMaps& own, const char* name) {
  for (int i = 0; i < own.n; ++i)
    if (strcmp(own.m[i].name, name) == 0) return &own.m[i];
  return nullptr;
}

bool image_has_thread(const Image& img, std::int64_t tid) {
  for (const Thread& t : img.threads)
    if (t.rec.tid == tid) return true;
  return false;
}

// The pid or tid a CPU-time clock id names (~id >> 3, 0 meaning the caller),
// or -1 for the other clocks.
std::int64_t cpu_clock_owner(std::int32_t clock) {
  return clock < 0 ? ~static_cast<std::int64_t>(clock >> 3) : -1;
}

void check_timers_and_signals(const Image& img) {
  for (const PosixTimerRecord& t : img.timers) {
    std::string what = "POSIX timer " + std::to_string(t.timer_id);
    if (t.timer_id < 0) refuse(what + " has a negative id");
    if ((t.notify & SIGEV_THREAD_ID) && !image_has_thread(img, t.notify_tid))
      refuse(what + " signals thread " + std::to_string(t.notify_tid) + ", which the image does not hold");
    std::int64_t owner = cpu_clock_owner(t.clock_id);
    if (owner > 0 && owner != img.header.real_pid && !image_has_thread(img, owner))
      refuse(what + " runs on the CPU clock of process " + std::to_string(owner) + ", which is not in the image");
  }
  if (!img.timers.empty() && prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) < 0)
    refuse("the image holds POSIX timers, and this kernel cannot recreate a timer under a given id "
           "(prctl PR_TIMER_CREATE_RESTORE_IDS): " + std::string(strerror(errno)));
  for (const Pending& q : img.pending) {
    if (q.rec.signo < 1 || q.rec.signo > static_cast<std::int32_t>(kMaxSignals) || q.info.size() != 128)
      refuse("a pending signal record is malformed (signal " + std::to_string(q.rec.signo) + ")");
    if (q.rec.tid != 0 && !image_has_thread(img, q.rec.tid))
      refuse("signal " + std::to_string(q.rec.signo) + " is pending for thread " + std::to_string(q.rec.tid) +
             ", which the image does not hold");
  }
}

const Region* region_at(const Image& img, std::uint64_t addr) {
  for (const Region& g : img.regions)
    if (g.rec.start <= addr && addr < g.rec.end) return &g;
  return nullptr;
}

std::string hex(std::uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%#lx", static_cast<unsigned long>(v));
  return buf;
}

constexpr int kRegRsp = 15;
constexpr int kRegRip = 16;
// What build_frame() puts below a thread's stack pointer, at most.
std::uint64_t frame_room(const Thread& t);

// Every thread resumes at its instruction pointer, and build_frame() writes
// its signal frame below its stack pointer, both after the point of no
// return: the one must lie in executable memory of the image, the other in
// writable memory with room for the frame (a MAP_GROWSDOWN stack grows, as
// it would for a signal the kernel delivers).
void check_thread_addresses(const Image& img) {
  for (const Thread& t : img.threads) {
    std::string who = "thread " + std::to_string(t.rec.tid);
    std::uint64_t ip = 0, sp = 0;
    std::memcpy(&ip, t.regs.data() + kRegRip * 8, 8);
    std::memcpy(&sp, t.regs.data() + kRegRsp * 8, 8);
    const Region* code = region_at(img, ip);
    if (code == nullptr || !(code->rec.prot & PROT_EXEC))
      refuse(who + ": its instruction pointer " + hex(ip) + " is not in executable memory of the image");
    const Region* stack = sp == 0 ? nullptr : region_at(img, sp - 1);
    if (stack == nullptr || !(stack->rec.prot & PROT_WRITE) || is_special(stack->rec.kind))
      refuse(who + ": its stack pointer " + hex(sp) + " is not in writable memory of the image");
    if (!(stack->rec.map_flags & MAP_GROWSDOWN) && sp - stack->rec.start < frame_room(t))
      refuse(who + ": its stack pointer " + hex(sp) + " leaves no room for a signal frame in its region " +
             hex(stack->rec.start) + "-" + hex(stack->rec.end));
  }
}

// restore_fds() dup3()s each descriptor onto its number and moves the image
// descriptor and a pipe's two new ends above the highest: all after the
// point of no return, so every number must be valid, unique and fit this
// process's descriptor limit with three to spare.
void check_fd_numbers(const Image& img) {
  struct rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) refuse(std::string("getrlimit(RLIMIT_NOFILE): ") + strerror(errno));
  std::vector<std::int32_t> numbers;
  for (const Fd& f : img.fds) {
    std::int32_t fd = f.rec.fd;
    if (fd < 0) refuse("an fd record has the negative descriptor number " + std::to_string(fd));
    if (static_cast<rlim_t>(fd) + 3 >= nofile.rlim_cur)
      refuse("fd " + std::to_string(fd) + " is above this process's descriptor limit (ulimit -n " +
             std::to_string(nofile.rlim_cur) + "): raise it to " + std::to_string(static_cast<rlim_t>(fd) + 4) +
             " or more");
    if (f.rec.kind == FdKind::std_stream && fd > 2)
      refuse("fd " + std::to_string(fd) + " is recorded as a standard stream, which only 0, 1 and 2 can be");
    numbers.push_back(fd);
  }
  std::sort(numbers.begin(), numbers.end());
  for (std::size_t i = 1; i < numbers.size(); ++i)
    if (numbers[i] == numbers[i - 1]) refuse("fd " + std::to_string(numbers[i]) + " is recorded twice");
}

// Counts the kernel would refuse only after the point of no return.
void check_counts(const Image& img) {
  long max_maps = 65530;
  if (FILE* f = fopen("/proc/sys/vm/max_map_count", "re")) {
    if (fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    fclose(f);
  }
  // The trampoline's two mappings and the vDSO block are there too.
  if (static_cast<long>(img.regions.size()) + 8 > max_maps)
    refuse("the image has " + std::to_string(img.regions.size()) + " memory regions, more than vm.max_map_count (" +
           std::to_string(max_maps) + ") allows");
  struct rlimit lim{};
  if (getrlimit(RLIMIT_SIGPENDING, &lim) == 0 && img.pending.size() > lim.rlim_cur)
    refuse("the image has " + std::to_string(img.pending.size()) + " pending signals, more than this user may queue "
           "(ulimit -i " + std::to_string(lim.rlim_cur) + ")");
  if (getrlimit(RLIMIT_NPROC, &lim) == 0 && img.threads.size() > lim.rlim_cur)
    refuse("the image has " + std::to_string(img.threads.size()) + " threads, more than this user may run "
           "(ulimit -u " + std::to_string(lim.rlim_cur) + ")");
}

// Phase 1 checks beyond the reader's: can this machine and file system take
// the image?
void check_restorable(const Image& img, const OwnMaps& own) {
  MachineInfo here;
  describe_this_machine(&here);
  if (ImageStatus s = check_compatible(img.header, here); !s) refuse(s.message());
  // The program keeps pointers into its vDSO (glibc looks the functions up
  // once): the vDSO mapped here must be the very same code.
  if (strcmp(img.header.machine.kernel_release, here.kernel_release) != 0)
    refuse(std::string("image was made under kernel ") + img.header.machine.kernel_release +
           ", this is " + here.kernel_release + ": the vDSO the program uses would differ");
  if (img.threads.empty() || !(img.threads[0].rec.flags & kThreadLeader))
    refuse("the image's first thread is not the thread-group leader");
  for (const Thread& t : img.threads) {
    if (t.rec.regs_kind != RegsKind::x86_64_ucontext || t.regs.size() != 23 * 8)
      refuse("thread " + std::to_string(t.rec.tid) + " has registers in a form this restorer cannot load");
    if (t.rec.xstate_kind == XstateKind::x86_64_xsave && t.xstate.size() > here.xsave_size)
      refuse("thread " + std::to_string(t.rec.tid) + " has a larger XSAVE area than this CPU");
  }
  check_thread_addresses(img);
  check_fd_numbers(img);
  check_counts(img);
  for (const char* name : {"[vvar]", "[vvar_vclock]", "[vdso]"}) {
    const Mapping* m = own_mapping(own, name);
    RegionKind kind = name[2] == 'd' ? RegionKind::vdso
                      : strcmp(name, "[vvar]") == 0 ? RegionKind::vvar
                                                    : RegionKind::vvar_vclock;
    const Region* r = nullptr;
    for (const Region& g : img.regions)
      if (g.rec.kind == kind) r = &g;
    if ((m == nullptr) != (r == nullptr) || (m && m->end - m->start != r->rec.end - r->rec.start))
      refuse(std::string("the image's ") + name + " differs from this kernel's");
  }
  for (const Region& g : img.regions) {
    const RegionRecord& r = g.rec;
    if (r.end > kReservedLow && r.start < kReservedHigh)
      refuse("the image has memory in the range the restorer reserves for itself");
    if (r.kind == RegionKind::private_file || r.kind == RegionKind::shared_file) {
      struct stat st{};
      if (stat(g.path.c_str(), &st) != 0)
        refuse("mapped file " + g.path + " is missing: " + strerror(errno));
      if (static_cast<std::uint64_t>(st.st_size) != r.file_size || mtime_ns(st) != r.file_mtime_ns)
        refuse("mapped file " + g.path + " changed since the checkpoint (size or modification time)");
      if (r.kind == RegionKind::shared_file && ((r.prot & PROT_WRITE) || (r.flags & kRegionMayWrite)) &&
          access(g.path.c_str(), W_OK) != 0)
        refuse("mapped file " + g.path + " was open for writing and cannot be now: " + strerror(errno));
    }
  }
  for (const Fd& f : img.fds) {
    const FdRecord& r = f.rec;
    std::string fd = "fd " + std::to_string(r.fd) + " (" + f.path + ")";
    if (r.kind == FdKind::std_stream) continue;
    if (r.kind == FdKind::pipe) continue;
    if (r.kind != FdKind::regular && r.kind != FdKind::directory && r.kind != FdKind::char_device)
      refuse(fd + ": a " + fd_kind_name(r.kind) + " cannot be restored");
    struct stat st{};
    if (stat(f.path.c_str(), &st) != 0) refuse(fd + " is missing: " + strerror(errno));
    if (r.kind == FdKind::regular && static_cast<std::uint64_t>(st.st_size) < r.offset)
      refuse(fd + " is now " + std::to_string(st.st_size) + " bytes, shorter than its offset " +
             std::to_string(r.offset));
  }
  struct stat st{};
  if (stat(img.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    refuse("working directory " + img.cwd + " is missing");
  check_timers_and_signals(img);
}

const Fd* fd_numbered(const Image& img, std::int32_t fd) {
  for (const Fd& f : img.fds)
    if (f.rec.fd == fd) return &f;
  return nullptr;
}

// The pids /proc/locks names as holding a lock of `kind` on the inode,
// other than ours ("" if none is known).
std::string lock_holders(const char* kind, const struct stat& st) {
  std::string out;
  FILE* f = fopen("/proc/locks", "re");
  if (f == nullptr) return out;
  char line[256];
  while (fgets(line, sizeof line, f) != nullptr) {
    char k[16], type[16];
    long pid = 0;
    unsigned maj = 0, min = 0;
    unsigned long ino = 0;
    if (strstr(line, "->") != nullptr) continue;  // a waiter, not a holder
    if (sscanf(line, "%*d: %15s %*s %15s %ld %x:%x:%lu", k, type, &pid, &maj, &min, &ino) != 6) continue;
    if (strcmp(k, kind) != 0 || ino != st.st_ino || makedev(maj, min) != st.st_dev || pid == getpid() || pid <= 0)
      continue;
    out += (out.empty() ? "" : ", ") + std::to_string(pid);
  }
  fclose(f);
  return out;
}

// Takes each of the program's file locks again, on its placed descriptors.
// Before the point of no return: if another process holds a conflicting lock
// now, the restore is refused (the image is kept) rather than the program
// going on without a lock it counts on. POSIX locks are the process's: they
// stay ours through the rest of the restore, as long as no descriptor on
// their file is closed (close() of any descriptor releases them, which is
// why files are placed, and mapped, without closing one; see plan_file_maps).
void take_locks(const Image& img) {
  for (const FileLockRecord& l : img.locks) {
    const Fd* f = fd_numbered(img, l.fd);
    if (f == nullptr || f->rec.kind == FdKind::pipe || f->rec.kind == FdKind::std_stream)
      refuse("a file lock is recorded on fd " + std::to_string(l.fd) + ", which is not a file the image reopens");
    constexpr std::uint64_t kMaxOff = static_cast<std::uint64_t>(INT64_MAX);
    if (l.start > kMaxOff || (l.end != kLockToEnd && l.end >= kMaxOff))
      refuse("a file lock on fd " + std::to_string(l.fd) + " has a range beyond what off_t holds");
    const char* type = l.type == LockType::write ? "write" : "read";
    std::string range = l.kind == LockKind::flock ? std::string("the whole file")
                        : "bytes " + std::to_string(l.start) + "-" +
                              (l.end == kLockToEnd ? std::string("EOF") : std::to_string(l.end));
    std::string what = std::string("the ") + lock_kind_name(l.kind) + " " + type + " lock on " + range + " of " +
                       f->path + " (fd " + std::to_string(l.fd) + ")";
    struct flock fl{};
    fl.l_type = static_cast<short>(l.type == LockType::write ? F_WRLCK : F_RDLCK);
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(l.start);
    fl.l_len = l.end == kLockToEnd ? 0 : static_cast<off_t>(l.end - l.start + 1);
    int r = l.kind == LockKind::posix ? fcntl(l.fd, F_SETLK, &fl)
            : l.kind == LockKind::ofd ? fcntl(l.fd, F_OFD_SETLK, &fl)
                                      : flock(l.fd, (l.type == LockType::write ? LOCK_EX : LOCK_SH) | LOCK_NB);
    if (r == 0) continue;
    int err = errno;
    if (err != EAGAIN && err != EACCES && err != EWOULDBLOCK)
      refuse("cannot take " + what + " again: " + strerror(err));
    // Who holds it now: F_GETLK names a POSIX holder's pid; an OFD lock has
    // none (-1), and flock locks are only in /proc/locks.
    std::string holder;
    if (l.kind != LockKind::flock) {
      struct flock probe = fl;
      probe.l_pid = 0;
      if (fcntl(l.fd, l.kind == LockKind::posix ? F_GETLK : F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK &&
          probe.l_pid > 0)
        holder = std::to_string(probe.l_pid);
    }
    struct stat st{};
    if (holder.empty() && fstat(l.fd, &st) == 0) {
      holder = lock_holders("POSIX", st);
      if (holder.empty()) holder = lock_holders("FLOCK", st);
    }
    refuse("cannot take " + what + " again: " +
           (holder.empty() ? std::string("another process holds a conflicting lock")
                           : "process " + holder + " holds a conflicting lock") +
           " now; the image is kept, restart it once that lock is released");
  }
}

// A process that led its session, or its process group, leads one again
// under its new pid: left in the restarter's group, its kill(0, sig) would
// hit whoever restarted it. setsid() fails when the restorer already leads
// its group (a shell's job): that group, its own, is kept. A member of
// another group joins the restarter's, as a child of the restarter would.
void restore_session(const Image& img) {
  pid_t was = img.header.real_pid;
  if (img.process.sid == was && getsid(0) != getpid()) setsid();
  if (img.process.pgid == was && getpgrp() != getpid()) setpgid(0, 0);
}

// Reopens the program's files, directories and devices at their numbers and
// takes their locks again, before the point of no return: a file that cannot
// be opened or a lock someone else holds now refuses the restore. 0, 1 and
// 2 stay the restorer's (whoever restarts the process provides them).
// Returns the image descriptor, moved above all of the program's.
int place_files(const Image& img, int image_fd) {
  int top = 3;
  for (const Fd& f : img.fds) top = f.rec.fd + 1 > top ? f.rec.fd + 1 : top;
  int moved = fcntl(image_fd, F_DUPFD_CLOEXEC, top);
  if (moved < 0) refuse("cannot move the image descriptor above the program's");
  // Whatever else was inherited is not the program's.
  for (int fd = 3; fd < moved; ++fd) close(fd);
  syscall(SYS_close_range, moved + 1, ~0U, 0);
  for (const Fd& f : img.fds) {
    const FdRecord& r = f.rec;
    if (r.kind == FdKind::std_stream || r.kind == FdKind::pipe) continue;
    int flags = static_cast<int>(r.open_flags) & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
    if (r.fd_flags & FD_CLOEXEC) flags |= O_CLOEXEC;
    int fd = open(f.path.c_str(), flags);
    if (fd < 0) refuse("fd " + std::to_string(r.fd) + ": cannot reopen " + f.path + ": " + strerror(errno));
    if (fd != r.fd) {
      if (dup3(fd, r.fd, flags & O_CLOEXEC) < 0) refuse("fd " + std::to_string(r.fd) + ": dup3: " + strerror(errno));
      close(fd);
    }
    if (r.kind == FdKind::regular && lseek(r.fd, static_cast<off_t>(r.offset), SEEK_SET) < 0)
      refuse("fd " + std::to_string(r.fd) + ": cannot seek " + f.path + ": " + strerror(errno));
  }
  take_locks(img);
  return moved;
}

// Phase 2 maps file regions with open() and close(), and a close() on a file
// releases the process's POSIX locks on it. A file the program has
// POSIX-locked is mapped through one of its placed descriptors instead, one
// opened for what the mapping needs; without one the restore is refused.
void plan_file_maps(Image& img) {
  for (Region& g : img.regions) {
    if (g.rec.kind != RegionKind::private_file && g.rec.kind != RegionKind::shared_file) continue;
    struct stat want{};
    if (stat(g.path.c_str(), &want) != 0) continue;
    bool locked = false;
    for (const FileLockRecord& l : img.locks) {
      struct stat st{};
      if (l.kind == LockKind::posix && fstat(l.fd, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
        locked = true;
    }
    if (!locked) continue;
    bool needs_write = g.rec.kind == RegionKind::shared_file && ((g.rec.prot & PROT_WRITE) || (g.rec.flags & kRegionMayWrite));
    for (const Fd& f : img.fds) {
      struct stat st{};
      int mode = static_cast<int>(f.rec.open_flags) & O_ACCMODE;
      if (f.rec.kind != FdKind::regular || fstat(f.rec.fd, &st) != 0 || st.st_dev != want.st_dev ||
          st.st_ino != want.st_ino || mode == O_WRONLY || (needs_write && mode != O_RDWR))
        continue;
      g.map_fd = f.rec.fd;
      break;
    }
    if (g.map_fd < 0)
      refuse("mapped file " + g.path + " holds a POSIX lock of the program, and no descriptor of the program is "
             "open on it as the mapping needs: mapping it would release the lock");
  }
}

// Restores the pipes between the program's own threads, after the point of
// no return. Takes the image descriptor, moved above all of the program's.
void restore_pipes(const Image& img, int moved) {
  // Pipes between the program's own threads: one new pipe per old one, its
  // unread bytes written back, each end duplicated to its numbers.
  for (std::size_t i = 0; i < img.fds.size(); ++i) {
    const FdRecord& r = img.fds[i].rec;
    if (r.kind != FdKind::pipe) continue;
    bool first = true;
    for (std::size_t j = 0; j < i; ++j)
      first = first && !(img.fds[j].rec.kind == FdKind::pipe && img.fds[j].rec.inode == r.inode);
    if (!first) continue;
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) die("pipe2", -errno);
    for (int k = 0; k < 2; ++k) {
      int high = fcntl(ends[k], F_DUPFD_CLOEXEC, moved + 1);
      close(ends[k]);
      ends[k] = high;
    }
    // The read end's record holds the first part of the unread bytes, the
    // write end's the rest.
    for (bool readers : {true, false}) {
      for (const Fd& g : img.fds) {
        const FdRecord& e = g.rec;
        if (e.kind != FdKind::pipe || e.inode != r.inode || e.data.empty() ||
            ((e.open_flags & O_ACCMODE) == O_RDONLY) != readers)
          continue;
        if (write(ends[1], e.data.data(), e.data.size()) != static_cast<ssize_t>(e.data.size()))
          die("refilling a pipe", -errno);
      }
    }
    for (const Fd& g : img.fds) {
      const FdRecord& e = g.rec;
      if (e.kind != FdKind::pipe || e.inode != r.inode) continue;
      bool reader = (e.open_flags & O_ACCMODE) == O_RDONLY;
      if (dup3(reader ? ends[0] : ends[1], e.fd, (e.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
        die("dup3", -errno);
      fcntl(e.fd, F_SETFL, static_cast<int>(e.open_flags) & (O_NONBLOCK | O_APPEND));
    }
    close(ends[0]);
    close(ends[1]);
  }
}

// The kernel's x86-64 struct rt_sigframe (arch/x86/include/asm/sigframe.h):
// the return address, then struct ucontext (whose uc_sigmask is the
// kernel's 8-byte set, not glibc's 128-byte one), then siginfo.
struct KernelUcontext {
  std::uint64_t flags;
  std::uint64_t link;
  std::uint64_t ss_sp;
  std::int32_t ss_flags;
  std::int32_t ss_pad;
  std::uint64_t ss_size;
  std::uint64_t gregs[23];
  std::uint64_t fpstate;
  std::uint64_t reserved[8];
  std::uint64_t sigmask;
};
static_assert(sizeof(KernelUcontext) == 304);
struct KernelSigframe {
  std::uint64_t pretcode;
  KernelUcontext uc;
  std::uint8_t siginfo[128];
};
constexpr std::uint64_t kUcFpXstate = 1, kUcSigcontextSs = 2, kUcStrictRestoreSs = 4;

std::uint64_t frame_room(const Thread& t) {
  return 128 + t.xstate.size() + 4 + 64 + sizeof(KernelSigframe) + 16 + 8;
}
constexpr std::uint32_t kFpXstateMagic2 = 0x46505845;

// Builds a signal frame below the thread's stack pointer (past the red zone),
// as the kernel would when delivering a signal, and returns the address of
// its ucontext. rt_sigreturn from there loads every register, the FPU/SSE/AVX
// state, the signal mask and the sigaltstack.
std::uint64_t build_frame(const Thread& t) {
  std::uint64_t sp = 0;
  std::memcpy(&sp, t.regs.data() + kRegRsp * 8, 8);
  sp -= 128;
  std::uint64_t fp = 0;
  if (t.rec.xstate_kind != XstateKind::none) {
    sp -= t.xstate.size() + 4;
    sp &= ~std::uint64_t{63};
    fp = sp;
    std::memcpy(reinterpret_cast<void*>(fp), t.xstate.data(), t.xstate.size());
    if (t.rec.xstate_kind == XstateKind::x86_64_xsave)
      std::memcpy(reinterpret_cast<void*>(fp + t.xstate.size()), &kFpXstateMagic2, 4);
  }
  sp -= sizeof(KernelSigframe);
  sp = (sp & ~std::uint64_t{15}) - 8;
  auto* frame = reinterpret_cast<KernelSigframe*>(sp);
  std::memset(frame, 0, sizeof *frame);
  KernelUcontext& uc = frame->uc;
  uc.flags = kUcSigcontextSs | kUcStrictRestoreSs |
             (t.rec.xstate_kind == XstateKind::x86_64_xsave ? kUcFpXstate : 0);
  uc.ss_sp = t.rec.altstack_sp;
  uc.ss_flags = t.rec.altstack_flags;
  uc.ss_size = t.rec.altstack_size;
  std::memcpy(uc.gregs, t.regs.data(), sizeof uc.gregs);
  uc.fpstate = fp;
  uc.sigmask = t.rec.sigmask;
  return reinterpret_cast<std::uint64_t>(&frame->uc);
}

struct Plan {
  Image* img;
  int image_fd;
  OwnMaps own;
  ReaderScratch* scratch;
  TrampShared* shared;
  TrampThread* threads;
};

bool file_backed(RegionKind k) {
  return k == RegionKind::private_file || k == RegionKind::shared_file;
}

// The madvise() advice the region had; none needs a privilege.
void apply_advice(const RegionRecord& r) {
  static constexpr struct {
    std::uint32_t flag;
    int advice;
  } kAdvice[] = {{kRegionWipeOnFork, MADV_WIPEONFORK}, {kRegionDontFork, MADV_DONTFORK},
                 {kRegionDontDump, MADV_DONTDUMP},     {kRegionHugepage, MADV_HUGEPAGE},
                 {kRegionNoHugepage, MADV_NOHUGEPAGE}, {kRegionMergeable, MADV_MERGEABLE},
                 {kRegionSequential, MADV_SEQUENTIAL}, {kRegionRandom, MADV_RANDOM}};
  for (const auto& a : kAdvice) {
    if ((r.flags & a.flag) == 0) continue;
    if (madvise(reinterpret_cast<void*>(r.start), r.end - r.start, a.advice) != 0) {
      char what[96];
      snprintf(what, sizeof what, "madvise(%d) of region %#lx", a.advice, static_cast<unsigned long>(r.start));
      die(what, -errno);
    }
  }
}

void map_region(const Region& g) {
  const RegionRecord& r = g.rec;
  std::size_t len = r.end - r.start;
  int prot = static_cast<int>(r.prot);
  if (r.flags & kRegionHasPages) prot |= PROT_READ | PROT_WRITE;
  int flags = MAP_FIXED_NOREPLACE | (static_cast<int>(r.map_flags) & (MAP_GROWSDOWN | MAP_NORESERVE));
  int fd = -1;
  if (g.map_fd >= 0) {
    fd = g.map_fd;
    flags |= r.kind == RegionKind::shared_file ? MAP_SHARED : MAP_PRIVATE;
  } else if (r.kind == RegionKind::shared_file) {
    fd = open(g.path.c_str(), ((r.prot & PROT_WRITE) || (r.flags & kRegionMayWrite) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    flags |= MAP_SHARED;
  } else if (r.kind == RegionKind::private_file) {
    fd = open(g.path.c_str(), O_RDONLY | O_CLOEXEC);
    flags |= MAP_PRIVATE;
  } else if (r.kind == RegionKind::shared_anon) {
    flags |= MAP_SHARED | MAP_ANONYMOUS;
  } else {
    flags |= MAP_PRIVATE | MAP_ANONYMOUS;
  }
  if (file_backed(r.kind) && fd < 0) die(("opening " + g.path).c_str(), -errno);
  void* at = mmap(reinterpret_cast<void*>(r.start), len, prot, flags, fd, static_cast<off_t>(r.offset));
  if (at == MAP_FAILED || reinterpret_cast<std::uint64_t>(at) != r.start) {
    char what[128];
    snprintf(what, sizeof what, "mapping region %#lx-%#lx", static_cast<unsigned long>(r.start),
             static_cast<unsigned long>(r.end));
    die(what, at == MAP_FAILED ? -errno : -EEXIST);
  }
  if (fd >= 0 && fd != g.map_fd) close(fd);
  apply_advice(r);
}

// Moves this process's [vvar], [vvar_vclock] and [vdso] to where the image
// had them. The three move together and keep their distances: the vDSO code
// reads the vvar pages at fixed offsets from itself. glibc cached the vDSO's
// function addresses at start-up, so the program finds clock_gettime where
// it left it and keeps reading the clock without a system call.
void move_vdso(const Plan& p) {
  struct Move {
    const Mapping* from;
    std::uint64_t to;
  } moves[3];
  int n = 0;
  for (const Region& g : p.img->regions) {
    const char* name = g.rec.kind == RegionKind::vvar          ? "[vvar]"
                       : g.rec.kind == RegionKind::vvar_vclock ? "[vvar_vclock]"
                       : g.rec.kind == RegionKind::vdso        ? "[vdso]"
                                                               : nullptr;
    if (name != nullptr) moves[n++] = Move{own_mapping(p.own, name), g.rec.start};
  }
  // A target may overlap where another of the three still is: go through a
  // free spot in the reserved range first.
  std::uint64_t parking = kTrampolineBase + (std::uint64_t{64} << 20);
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < n; ++i) {
      std::uint64_t len = moves[i].from->end - moves[i].from->start;
      std::uint64_t from = pass == 0 ? moves[i].from->start : parking + (moves[i].from->start - moves[0].from->start);
      std::uint64_t to = pass == 0 ? parking + (moves[i].from->start - moves[0].from->start) : moves[i].to;
      void* r = mremap(reinterpret_cast<void*>(from), len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
                       reinterpret_cast<void*>(to));
      if (r == MAP_FAILED) die("moving the vDSO", -errno);
    }
  }
}

void set_mm_layout(const Image& img) {
  const ProcessRecord& p = img.process;
  // start_code..end_data only label /proc output and feed the RLIMIT_DATA
  // check; take them from the executable's mappings.
  std::uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  for (const Region& g : img.regions) {
    if (g.path != img.exe) continue;
    if ((g.rec.prot & PROT_EXEC) && start_code == 0) {
      start_code = g.rec.start;
      end_code = g.rec.end;
    }
    if ((g.rec.prot & PROT_WRITE) && start_data == 0) {
      start_data = g.rec.start;
      end_data = g.rec.end;
    }
  }
  if (start_code == 0) {
    start_code = 0x10000;
    end_code = 0x11000;
  }
  if (start_data == 0) start_data = end_data = end_code;
  struct prctl_mm_map m{};
  m.start_code = start_code;
  m.end_code = end_code;
  m.start_data = start_data;
  m.end_data = end_data;
  m.start_brk = p.start_brk;
  m.brk = p.brk;
  m.start_stack = p.start_stack;
  m.arg_start = p.arg_start;
  m.arg_end = p.arg_end;
  m.env_start = p.env_start;
  m.env_end = p.env_end;
  m.exe_fd = static_cast<std::uint32_t>(-1);
  // Unprivileged since Linux 4.x as long as exe_fd is not changed: the brk
  // (so the program's malloc keeps growing its heap) and the argument and
  // environment areas (so ps shows the program's command line).
  if (prctl(PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0) != 0) die("prctl(PR_SET_MM_MAP)", -errno);
}

void restore_process_state(const Image& img) {
  const ProcessRecord& p = img.process;
  if (chdir(img.cwd.c_str()) != 0) die("chdir", -errno);
  umask(static_cast<mode_t>(p.umask));
  for (std::uint32_t i = 0; i < p.rlimit_count && i < kMaxRlimits; ++i) {
    struct rlimit now{};
    if (getrlimit(static_cast<__rlimit_resource>(i), &now) != 0) continue;
    struct rlimit want{p.rlimits[i].cur, p.rlimits[i].max};
    // An unprivileged process cannot raise a hard limit: keep ours then.
    if (want.rlim_max > now.rlim_max) want.rlim_max = now.rlim_max;
    if (want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
    setrlimit(static_cast<__rlimit_resource>(i), &want);
  }
  prctl(PR_SET_NAME, img.comm.c_str(), 0, 0, 0);
  personality(p.personality);
  for (std::uint32_t sig = 1; sig <= p.signal_count && sig <= kMaxSignals; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    const KernelSigaction& k = p.sigactions[sig - 1];
    std::uint64_t raw[4] = {k.handler, k.flags, k.restorer, k.mask};
    syscall(SYS_rt_sigaction, sig, raw, nullptr, 8);
  }
}

void arm_itimers(const Image& img) {
  for (int which = 0; which < 3; ++which) {
    IntervalTimer t = img.process.itimers[which];
    // An image may say 0 left for a periodic timer whose signal was queued
    // (ITIMER_REAL is re-armed only when SIGALRM is taken): it is armed.
    if (t.value_ns == 0) t.value_ns = t.interval_ns;
    if (t.value_ns == 0) continue;
    struct itimerval v{};
    v.it_interval.tv_sec = static_cast<time_t>(t.interval_ns / 1'000'000'000ULL);
    v.it_interval.tv_usec = static_cast<suseconds_t>(t.interval_ns % 1'000'000'000ULL / 1000);
    v.it_value.tv_sec = static_cast<time_t>(t.value_ns / 1'000'000'000ULL);
    v.it_value.tv_usec = static_cast<suseconds_t>(t.value_ns % 1'000'000'000ULL / 1000);
    if (v.it_value.tv_sec == 0 && v.it_value.tv_usec == 0) v.it_value.tv_usec = 1;
    setitimer(which, &v, nullptr);
  }
}

// A thread comes back with a new tid, but robust mutexes it holds have the
// old one in their futex word, and the kernel marks a mutex owner-dead at
// thread exit only when the word holds the exiting tid. Rewrite the words
// on the thread's robust list (user memory, restored already).
void retag_robust_mutexes(const Thread& t, long new_tid) {
  struct ListHead {
    std::uint64_t next;
    std::int64_t futex_offset;
    std::uint64_t pending;
  };
  constexpr std::uint32_t kTidMask = 0x3fffffff;
  auto old_tid = static_cast<std::uint32_t>(t.rec.tid);
  if (t.rec.robust_list == 0 || static_cast<std::uint32_t>(new_tid) == old_tid) return;
  const auto* head = reinterpret_cast<const ListHead*>(t.rec.robust_list);
  auto retag = [&](std::uint64_t entry) {
    auto* word = reinterpret_cast<std::uint32_t*>(entry + static_cast<std::uint64_t>(head->futex_offset));
    if ((*word & kTidMask) == old_tid) *word = (*word & ~kTidMask) | static_cast<std::uint32_t>(new_tid);
  };
  std::uint64_t entry = head->next;
  for (int n = 0; entry != t.rec.robust_list && entry != 0 && n < 4096; ++n) {
    retag(entry);
    entry = reinterpret_cast<const ListHead*>(entry)->next;
  }
  if (head->pending != 0) retag(head->pending);
}

// The tid that thread `old` of the image has now (the leader's is the pid).
long new_tid(const Image& img, const std::vector<long>& new_tids, std::int64_t old) {
  for (std::size_t i = 0; i < img.threads.size(); ++i)
    if (img.threads[i].rec.tid == old) return new_tids[i];
  return getpid();
}

// Recreates the POSIX timers under their old ids: the program holds them in
// its memory (glibc's timer_t is the kernel's id, or points at a block that
// holds it for SIGEV_THREAD timers), while timer_create picks the id itself.
// The kernel offers exactly one way to choose it, for restorers: in
// PR_TIMER_CREATE_RESTORE_IDS mode, timer_create takes the wanted id from
// where it would store the new one. Timers are re-armed relative to now with
// what was left; overrun counts start again from 0 (the kernel has no way to
// set them). Thread-directed timers follow their thread to its new tid.
void create_timers(const Image& img, const std::vector<long>& new_tids) {
  if (img.timers.empty()) return;
  if (prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0) != 0)
    die("prctl(PR_TIMER_CREATE_RESTORE_IDS)", -errno);
  for (const PosixTimerRecord& t : img.timers) {
    struct sigevent sev{};
    sev.sigev_notify = t.notify;
    sev.sigev_signo = t.signo;
    sev.sigev_value.sival_ptr = reinterpret_cast<void*>(t.sigev_value);
    if (t.notify & SIGEV_THREAD_ID) sev._sigev_un._tid = static_cast<pid_t>(new_tid(img, new_tids, t.notify_tid));
    std::int32_t clock = t.clock_id;
    std::int64_t owner = cpu_clock_owner(clock);
    if (owner > 0) {
      std::int64_t now = owner == img.header.real_pid ? getpid() : new_tid(img, new_tids, owner);
      clock = static_cast<std::int32_t>((~now << 3) | (clock & 7));
    }
    int id = t.timer_id;
    if (syscall(SYS_timer_create, clock, &sev, &id) != 0) die("timer_create", -errno);
    if (id != t.timer_id) die("timer_create gave another id", -EBUSY);
    if (t.value_ns == 0) continue;
    struct itimerspec spec{};
    spec.it_interval.tv_sec = static_cast<time_t>(t.interval_ns / 1'000'000'000ULL);
    spec.it_interval.tv_nsec = static_cast<long>(t.interval_ns % 1'000'000'000ULL);
    spec.it_value.tv_sec = static_cast<time_t>(t.value_ns / 1'000'000'000ULL);
    spec.it_value.tv_nsec = static_cast<long>(t.value_ns % 1'000'000'000ULL);
    if (syscall(SYS_timer_settime, id, 0, &spec, nullptr) != 0) die("timer_settime", -errno);
  }
  prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0);
}

// Queues the signals that were pending, siginfo and all, in their order, on
// the process or on their thread's new tid. Every thread still blocks all
// signals here; each gets them once rt_sigreturn restores its mask. A
// process may queue any siginfo to itself (SI_TIMER, SI_USER with the old
// sender's pid, ...); only to others does the kernel refuse codes >= 0.
void queue_pending_signals(const Image& img, const std::vector<long>& new_tids) {
  for (const Pending& q : img.pending) {
    long r = q.rec.tid == 0
                 ? syscall(SYS_rt_sigqueueinfo, getpid(), q.rec.signo, q.info.data())
                 : syscall(SYS_rt_tgsigqueueinfo, getpid(), new_tid(img, new_tids, q.rec.tid), q.rec.signo,
                           q.info.data());
    if (r != 0) die("queueing a pending signal", -errno);
  }
}

void populate_stored(const PagesRecord& pg, void* dst) {
  constexpr int kMadvPopulateWrite = 23;
  auto* base = static_cast<char*>(dst);
  std::uint32_t i = 0;
  while (i < pg.page_count) {
    auto stored = [&](std::uint32_t k) { return (pg.present[k / 8] >> (k % 8)) & 1; };
    if (!stored(i)) {
      ++i;
      continue;
    }
    std::uint32_t j = i;
    while (j < pg.page_count && stored(j)) ++j;
    madvise(base + std::size_t{i} * kPage, std::size_t{j - i} * kPage, kMadvPopulateWrite);
    i = j;
  }
}

// Phase 2, on a stack inside the restorer's heap. Never returns.
[[noreturn]] void phase_two(Plan* p) {
  Image& img = *p->img;
  // glibc registered an rseq area for this thread inside the restorer's TLS.
  // A thread has at most one registration, and the program's must replace
  // it; the restorer's memory also disappears at the end, and a registered
  // area that is unmapped gets the thread killed at its next preemption.
  if (&__rseq_size != nullptr && __rseq_size > 0) {
    std::uint64_t tp;
    asm("mov %%fs:0, %0" : "=r"(tp));
    syscall(SYS_rseq, tp + static_cast<std::uint64_t>(__rseq_offset), 32, 1 /* UNREGISTER */, kRseqSig);
  }
  for (int i = 0; i < p->own.n; ++i) {
    const Mapping& m = p->own.m[i];
    bool keep = (m.start >= kReservedLow && m.end <= kReservedHigh) || strcmp(m.name, "[vvar]") == 0 ||
                strcmp(m.name, "[vvar_vclock]") == 0 || strcmp(m.name, "[vdso]") == 0 ||
                strcmp(m.name, "[vsyscall]") == 0;
    if (!keep) munmap(reinterpret_cast<void*>(m.start), m.end - m.start);
  }
  move_vdso(*p);

  if (lseek(p->image_fd, 0, SEEK_SET) != 0) die("rewinding the image", -errno);
  ImageReader reader(fd_source(p->image_fd), p->scratch);
  if (ImageStatus s = reader.open(); !s) die(s.message(), -EIO);
  // Phase 1 verified the image: uncompressed pages can be read straight
  // into place (their checksums are still checked, after the fact).
  reader.set_direct_pages(true);
  const Region* current = nullptr;
  std::size_t next_region = 0;
  for (;;) {
    Record r;
    if (ImageStatus s = reader.next(&r); !s) die(s.message(), -EIO);
    if (r.region != nullptr) {
      current = &img.regions[next_region++];
      if (!is_special(current->rec.kind)) map_region(*current);
    } else if (r.pages != nullptr) {
      const PagesRecord& pg = *r.pages;
      void* dst = reinterpret_cast<void*>(pg.region_start + pg.offset);
      // Restoring memory is bound by allocating pages: fault in the chunk's
      // stored pages in one call (MADV_POPULATE_WRITE, Linux 5.14) rather
      // than one page fault each. Zero pages stay unallocated.
      if (!file_backed(current->rec.kind)) populate_stored(pg, dst);
      if (ImageStatus s = reader.read_pages(pg, dst, std::size_t{pg.page_count} * kPage,
                                            file_backed(current->rec.kind));
          !s)
        die(s.message(), -EIO);
    } else if (r.end != nullptr) {
      break;
    }
  }
  for (const Region& g : img.regions) {
    if ((g.rec.flags & kRegionHasPages) && g.rec.prot != (PROT_READ | PROT_WRITE) && !is_special(g.rec.kind))
      if (mprotect(reinterpret_cast<void*>(g.rec.start), g.rec.end - g.rec.start, static_cast<int>(g.rec.prot)) != 0)
        die("mprotect", -errno);
  }
  set_mm_layout(img);
  restore_process_state(img);

  for (std::size_t i = 0; i < img.threads.size(); ++i) {
    const Thread& t = img.threads[i];
    TrampThread& tt = p->threads[i];
    tt = TrampThread{};
    tt.ucontext = build_frame(t);
    tt.fs_base = t.rec.fs_base;
    tt.tid_address = t.rec.clear_child_tid;
    tt.robust_list = t.rec.robust_list;
    tt.robust_len = t.rec.robust_list_len;
    tt.rseq = t.rec.rseq_addr;
    tt.rseq_len = t.rec.rseq_len;
    tt.rseq_sig = t.rec.rseq_sig;
  }
  p->shared->need = static_cast<std::uint32_t>(img.threads.size() - 1);
  p->shared->unmap_addr = kRestorerBase;
  p->shared->unmap_len = kReservedHigh - kRestorerBase;
  close(p->image_fd);

  using CloneFn = long (*)(unsigned long, void*, void*, void*, unsigned long, TrampThread*, TrampShared*);
  auto tramp = [](const char* sym) { return kTrampolineBase + static_cast<std::uint64_t>(sym - mosix_tramp_begin); };
  auto clone_fn = reinterpret_cast<CloneFn>(tramp(mosix_tramp_clone));
  std::vector<long> new_tids(img.threads.size(), getpid());
  for (std::size_t i = 1; i < img.threads.size(); ++i) {
    TrampThread& tt = p->threads[i];
    unsigned long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                          CLONE_SYSVSEM | CLONE_SETTLS;
    // CHILD_SETTID stores the new tid where glibc keeps the thread's tid
    // (pthread_kill, mutex owners); CHILD_CLEARTID lets pthread_join work.
    if (tt.tid_address != 0) flags |= CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
    long tid = clone_fn(flags, reinterpret_cast<void*>(tt.ucontext), nullptr,
                        reinterpret_cast<void*>(tt.tid_address), tt.fs_base, &tt, p->shared);
    if (tid < 0) die("clone", tid);
    new_tids[i] = tid;
    retag_robust_mutexes(img.threads[i], tid);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/comm", tid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t w = write(fd, img.threads[i].name.data(), img.threads[i].name.size());
      (void)w;
      close(fd);
    }
  }
  retag_robust_mutexes(img.threads[0], getpid());
  arm_itimers(img);
  create_timers(img, new_tids);
  queue_pending_signals(img, new_tids);
  using MainFn = void (*)(TrampThread*, TrampShared*);
  reinterpret_cast<MainFn>(tramp(mosix_tramp_main))(&p->threads[0], p->shared);
  __builtin_unreachable();
}

// An image on standard input (a pipe, a socket: migration streams it) is
// read twice, once to verify it and once to restore it, so it is first
// copied into memory: a memfd, never a file on disk. Returns the memfd, at
// offset 0. The program then finds its standard input at end of file.
int spool_stdin() {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "mosix-image", MFD_CLOEXEC));
  if (fd < 0) refuse(std::string("cannot create a memfd for the image: ") + strerror(errno));
  static char buf[1 << 20];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) refuse(std::string("reading the image from standard input: ") + strerror(errno));
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(fd, buf + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) refuse(std::string("copying the image into memory: ") + strerror(errno));
      done += w;
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0) refuse(std::string("rewinding the memfd: ") + strerror(errno));
  return fd;
}

void call_on_stack(void (*fn)(Plan*), Plan* arg, void* top) {
  asm volatile(
      "mov %2, %%rsp\n\t"
      "call *%0\n\t"
      "ud2"
      :
      : "r"(fn), "D"(arg), "r"(top)
      : "memory");
  __builtin_unreachable();
}

}  // namespace
}  // namespace mosix::ckpt

int main(int argc, char** argv) {
  using namespace mosix::ckpt;
  // All of malloc's memory from the brk heap, which sits right after the
  // restorer's image inside the reserved range: an mmap()ed chunk could land
  // where the program had memory.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  if (argc != 2) {
    fprintf(stderr, "usage: mosix-restore IMAGE|-\n");
    return 2;
  }
  snprintf(g_image_path, sizeof g_image_path, "%s", argv[1]);
  auto heap = reinterpret_cast<std::uint64_t>(sbrk(0));
  if (heap < kRestorerBase || heap >= kReservedHigh)
    refuse("the restorer's heap at " + std::to_string(heap) + " is outside its reserved range");
  bool from_stdin = strcmp(argv[1], "-") == 0;
  if (from_stdin) snprintf(g_image_path, sizeof g_image_path, "%s", "standard input");
  int fd = from_stdin ? spool_stdin() : open(argv[1], O_RDONLY | O_CLOEXEC);
  if (fd < 0) refuse(strerror(errno));

  static Image img = read_image(fd);
  static OwnMaps own;
  read_own_maps(&own);
  check_restorable(img, own);
  restore_session(img);
  int image_fd = place_files(img, fd);
  plan_file_maps(img);

  // Point of no return.
  sigset_t all;
  sigfillset(&all);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, 8);
  restore_pipes(img, image_fd);

  std::size_t tramp_code = static_cast<std::size_t>(mosix_tramp_end - mosix_tramp_begin);
  std::size_t code_len = (tramp_code + kPage - 1) & ~(kPage - 1);
  std::size_t data_len = kPage + ((img.threads.size() * sizeof(TrampThread) + kPage - 1) & ~(kPage - 1));
  void* t = mmap(reinterpret_cast<void*>(kTrampolineBase), code_len + data_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (t == MAP_FAILED) die("mapping the trampoline", -errno);
  std::memcpy(t, mosix_tramp_begin, tramp_code);
  if (mprotect(t, code_len, PROT_READ | PROT_EXEC) != 0) die("mprotect of the trampoline", -errno);

  static Plan plan;
  plan.img = &img;
  plan.image_fd = image_fd;
  plan.shared = reinterpret_cast<TrampShared*>(kTrampolineBase + code_len);
  plan.threads = reinterpret_cast<TrampThread*>(kTrampolineBase + code_len + kPage);
  std::size_t scratch_len = ReaderScratch::required_size();
  plan.scratch = new ReaderScratch;
  if (!plan.scratch->attach(aligned_alloc(64, (scratch_len + 63) & ~std::size_t{63}), scratch_len))
    die("allocating the reader's memory", -ENOMEM);
  auto* stack = static_cast<char*>(aligned_alloc(64, kPhaseTwoStack));
  // The snapshot must be the last thing before the switch: everything
  // outside the reserved range it lists is unmapped.
  read_own_maps(&plan.own);
  call_on_stack(phase_two, &plan, stack + kPhaseTwoStack - 64);
}
