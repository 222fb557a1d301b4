// Phase 1's checks beyond the reader's: can this machine, this kernel and
// these files take the image? Each one refuses with the reason before
// anything is touched, for what would otherwise fail only after the point of
// no return.
#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/ckpt/restorer/restorer.h"
#include "runtime/core/little_endian.h"

// Linux 6.15's prctl for restorers; this libc's headers predate it.
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_GET 2
#endif

namespace mosix::ckpt::restorer {
namespace {

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
}

bool image_has_thread(const Image& img, std::int64_t tid) {
  for (const Thread& t : img.threads)
    if (t.rec.tid == tid) return true;
  return false;
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

bool in_my_groups(gid_t gid) {
  if (gid == getegid()) return true;
  gid_t groups[256];
  int n = getgroups(256, groups);
  for (int i = 0; i < n; ++i)
    if (groups[i] == gid) return true;
  return false;
}

// The restore sets every resource limit again. A hard limit above this
// process's is raised here (a privileged restorer may); where the kernel
// says no, the limit would come back lower, so the restore is refused.
void check_rlimits(const Image& img) {
  static const char* const kNames[] = {"cpu",     "fsize",   "data",   "stack",      "core",  "rss",
                                       "nproc",   "nofile",  "memlock", "as",        "locks", "sigpending",
                                       "msgqueue", "nice",   "rtprio", "rttime"};
  const ProcessRecord& p = img.process;
  for (std::uint32_t i = 0; i < p.rlimit_count && i < kMaxRlimits; ++i) {
    struct rlimit now{};
    if (getrlimit(static_cast<__rlimit_resource>(i), &now) != 0) continue;
    if (p.rlimits[i].max <= now.rlim_max) continue;
    struct rlimit raised{now.rlim_cur, p.rlimits[i].max};
    if (setrlimit(static_cast<__rlimit_resource>(i), &raised) == 0) continue;
    auto text = [](std::uint64_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v); };
    refuse(std::string("the process's hard limit of ") + (i < 16 ? kNames[i] : "resource " + std::to_string(i)) +
           " (RLIMIT " + std::to_string(i) + ") is " + text(p.rlimits[i].max) + ", above this process's " +
           text(now.rlim_max) + ", and cannot be raised without privileges: restart it where the limit is as high");
  }
}

}  // namespace

// A ghost file is made again under its name: the name must be free and its
// directory must take a new file from us.
void check_ghost_name(const std::string& fd, const std::string& name) {
  std::string dir = name.substr(0, name.rfind('/'));
  if (dir.empty()) dir = "/";
  struct stat st{};
  if (lstat(name.c_str(), &st) == 0)
    refuse(fd + ": a deleted file, and " + name + " exists again; the restore makes the file again under its "
           "name for a moment: rename that one, then restart");
  if (access(dir.c_str(), W_OK | X_OK) != 0)
    refuse(fd + ": a deleted file, and its directory " + dir + " cannot take a new file now: " + strerror(errno));
}

namespace {

// A ghost file is made again under its old name in its old directory and
// unlinked at once (files.cpp), a memfd with memfd_create: either must come
// out with its owner, and its data must lie within its size.
void check_ghost(const Fd& f) {
  const FdRecord& r = f.rec;
  std::string fd = "fd " + std::to_string(r.fd) + " (" + f.path + ")";
  std::string name = ghost_name(f);
  if (r.kind == FdKind::memfd) {
    if (name.rfind("/memfd:", 0) != 0 || name.size() - 7 > 249 || f.data.size() != 4)
      refuse(fd + ": a malformed memfd record");
    name.clear();
  }
  if (name.empty() && r.kind == FdKind::ghost) refuse(fd + ": a deleted file without a name");
  if (!name.empty() && name[0] != '/') refuse(fd + ": a deleted file without an absolute name");
  if (!name.empty()) check_ghost_name(fd, name);
  if (r.uid != geteuid())
    refuse(fd + ": a deleted file owned by uid " + std::to_string(r.uid) + "; restored by uid " +
           std::to_string(geteuid()) + " it would be theirs");
  if (!in_my_groups(static_cast<gid_t>(r.gid)))
    refuse(fd + ": a deleted file of group " + std::to_string(r.gid) + ", which this user is not in");
  for (const FileData& d : f.contents)
    if (d.offset > r.size || d.bytes.size() > r.size - d.offset)
      refuse(fd + ": its data at offset " + std::to_string(d.offset) + " lies past its size " +
             std::to_string(r.size));
}

// A named pipe is opened again by its path, which must be one now; a
// removed one is made again under its name (as a ghost file) by this user;
// its unread bytes, in order from offset 0, must fit in its capacity (64
// KiB when the image has none).
void check_fifo(const Fd& f) {
  const FdRecord& r = f.rec;
  std::string fd = "fd " + std::to_string(r.fd) + " (" + f.path + ")";
  std::string name = ghost_name(f);
  if (name.empty() || name[0] != '/') refuse(fd + ": a named pipe without an absolute name");
  if (name != f.path) {
    check_ghost_name(fd, name);
    if (r.uid != geteuid())
      refuse(fd + ": a removed named pipe owned by uid " + std::to_string(r.uid) + "; restored by uid " +
             std::to_string(geteuid()) + " it would be theirs");
  } else {
    struct stat st{};
    if (stat(name.c_str(), &st) != 0) refuse(fd + ": the named pipe is missing: " + strerror(errno));
    if (!S_ISFIFO(st.st_mode)) refuse(fd + ": " + name + " is no longer a named pipe");
  }
  std::uint64_t bytes = 0;
  for (const FileData& d : f.contents) {
    if (d.offset != bytes || d.bytes.empty())
      refuse(fd + ": the named pipe's bytes at offset " + std::to_string(d.offset) + " do not follow the " +
             std::to_string(bytes) + " before them");
    bytes += d.bytes.size();
  }
  if (bytes > (r.size != 0 ? r.size : 65536))
    refuse(fd + ": " + std::to_string(bytes) + " unread bytes, more than the named pipe's capacity");
}

// The restore gives the auxiliary vector back with PR_SET_MM_MAP after the
// point of no return. PR_SET_MM_MAP takes a layout with it, so the image's
// vector is given to the restorer itself here, with the restorer's own
// layout (/proc/self/stat): what the kernel refuses now it would refuse
// then. The restorer never reads its own auxv again.
// A pipe is made again after the point of no return with its capacity
// (fd record's size; 0 in images that did not record it): make one of that
// size now, so that a size above /proc/sys/fs/pipe-max-size or the user's
// pipe quota refuses the restore instead.
void check_pipe_capacity(const Fd& f) {
  std::uint64_t size = f.rec.size;
  if (size == 0) return;
  std::string fd = "fd " + std::to_string(f.rec.fd) + " (" + f.path + ")";
  if (size > static_cast<std::uint64_t>(INT32_MAX))
    refuse(fd + ": a pipe of " + std::to_string(size) + " bytes, more than F_SETPIPE_SZ takes");
  int trial[2];
  if (pipe2(trial, O_CLOEXEC) != 0) refuse(fd + ": cannot make a pipe: " + strerror(errno));
  int got = fcntl(trial[1], F_SETPIPE_SZ, static_cast<int>(size));
  int err = errno;
  close(trial[0]);
  close(trial[1]);
  if (got < 0)
    refuse(fd + ": a pipe of " + std::to_string(size) + " bytes (F_SETPIPE_SZ) cannot be made here: " +
           strerror(err) + " (see /proc/sys/fs/pipe-max-size and pipe-user-pages-soft)");
}

// A pipe's unread bytes are its read end's first record's, its write end's
// first record's, then its file data records' (after one of those two), which
// must continue them without a gap or overlap; all of them must fit in the
// pipe (its capacity, 64 KiB when the image has none), or refilling it after
// the point of no return would block for good.
void check_pipe_data(const Image& img, const Fd& f) {
  std::string fd = "fd " + std::to_string(f.rec.fd) + " (" + f.path + ")";
  std::uint64_t bytes = 0;
  bool seen[2] = {false, false};
  const Fd* rest = nullptr;
  for (const Fd& e : img.fds) {
    if (e.rec.kind != FdKind::pipe || e.rec.inode != f.rec.inode) continue;
    bool reader = (e.rec.open_flags & O_ACCMODE) == O_RDONLY;
    if (!seen[reader]) bytes += e.data.size();
    seen[reader] = true;
    if (!e.contents.empty()) {
      if (rest != nullptr) refuse(fd + ": two records of one pipe carry its further bytes");
      rest = &e;
    }
  }
  if (rest != nullptr) {
    for (const FileData& d : rest->contents) {
      if (d.offset != bytes || d.bytes.empty())
        refuse(fd + ": the pipe's bytes at offset " + std::to_string(d.offset) + " do not follow the " +
               std::to_string(bytes) + " before them");
      bytes += d.bytes.size();
    }
  }
  std::uint64_t capacity = f.rec.size != 0 ? f.rec.size : 65536;
  if (bytes > capacity)
    refuse(fd + ": " + std::to_string(bytes) + " unread bytes do not fit in a pipe of " +
           std::to_string(capacity) + " bytes");
}

// A shared fd is made with dup3 of the fd it names, once that one is in
// place (files.cpp; a pipe end's after the point of no return): it must
// name a descriptor the image places itself.
void check_shared(const Image& img, const Fd& f) {
  std::string fd = "fd " + std::to_string(f.rec.fd) + " (" + f.path + ")";
  if (f.data.size() != 4) refuse(fd + ": a malformed shared-descriptor record");
  auto first = static_cast<std::int32_t>(load_le<std::uint32_t>(f.data.data()));
  for (const Fd& g : img.fds) {
    if (g.rec.fd != first) continue;
    if (g.rec.kind == FdKind::shared || g.rec.kind == FdKind::std_stream)
      refuse(fd + " shares the open file of fd " + std::to_string(first) + ", a " + fd_kind_name(g.rec.kind) +
             ", which a restore does not share");
    return;
  }
  refuse(fd + " shares the open file of fd " + std::to_string(first) + ", which the image does not hold");
}

void check_auxv(const Image& img) {
  if (img.auxv.empty()) return;
  char buf[1024] = {};
  if (FILE* f = fopen("/proc/self/stat", "re")) {
    if (fgets(buf, sizeof buf, f) == nullptr) buf[0] = '\0';
    fclose(f);
  }
  std::uint64_t field[53] = {};
  const char* p = strrchr(buf, ')');
  for (int n = 3; p != nullptr && n <= 52; ++n) {
    p = strchr(p + 1, ' ');
    if (p != nullptr) field[n] = strtoull(p + 1, nullptr, 10);
  }
  struct prctl_mm_map m{};
  m.start_code = field[26];
  m.end_code = field[27];
  m.start_stack = field[28];
  m.start_data = field[45];
  m.end_data = field[46];
  m.start_brk = field[47];
  m.brk = reinterpret_cast<std::uint64_t>(sbrk(0));
  m.arg_start = field[48];
  m.arg_end = field[49];
  m.env_start = field[50];
  m.env_end = field[51];
  m.auxv = reinterpret_cast<decltype(m.auxv)>(const_cast<std::uint8_t*>(img.auxv.data()));
  m.auxv_size = static_cast<std::uint32_t>(img.auxv.size());
  m.exe_fd = static_cast<std::uint32_t>(-1);
  if (img.auxv.size() % 16 != 0)
    refuse("the image's auxiliary vector is not whole pairs (" + std::to_string(img.auxv.size()) + " bytes)");
  if (prctl(PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0) != 0)
    refuse("the kernel does not take the image's auxiliary vector (" + std::to_string(img.auxv.size()) +
           " bytes) back with PR_SET_MM_MAP: " + strerror(errno));
}
}  // namespace

// The pid or tid a CPU-time clock id names (~id >> 3, 0 meaning the caller),
// or -1 for the other clocks.
std::int64_t cpu_clock_owner(std::int32_t clock) {
  return clock < 0 ? ~static_cast<std::int64_t>(clock >> 3) : -1;
}

std::string hex(std::uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%#lx", static_cast<unsigned long>(v));
  return buf;
}

// Phase 1 checks beyond the reader's: can this machine and file system take
// the image?
void check_restorable(const Image& img, const OwnMaps& own) {
  // Locked memory is locked again in phase 2: within RLIMIT_MEMLOCK.
  std::uint64_t locked = 0;
  for (const Region& g : img.regions)
    if (g.rec.flags & kRegionLocked) locked += g.rec.end - g.rec.start;
  struct rlimit memlock{};
  if (locked != 0 && geteuid() != 0 && getrlimit(RLIMIT_MEMLOCK, &memlock) == 0 &&
      memlock.rlim_cur != RLIM_INFINITY && locked > memlock.rlim_cur)
    refuse(std::to_string(locked) + " bytes of locked memory (mlock), more than this restart may lock (RLIMIT_MEMLOCK " +
           std::to_string(memlock.rlim_cur) + ")");
  // Droppable memory (kMapDroppable) is mapped so again in phase 2: this
  // kernel must know MAP_DROPPABLE (Linux 6.11).
  for (const Region& g : img.regions) {
    if (!(g.rec.map_flags & kMapDroppable)) continue;
    if (g.rec.kind != RegionKind::anon) refuse("region " + hex(g.rec.start) + ": droppable, and not anonymous memory");
    void* trial = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, static_cast<int>(kMapDroppable) | MAP_ANONYMOUS, -1, 0);
    if (trial == MAP_FAILED)
      refuse("region " + hex(g.rec.start) + " is droppable memory (MAP_DROPPABLE), which this kernel cannot map: " +
             strerror(errno));
    munmap(trial, kPage);
    break;
  }
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
  check_rlimits(img);
  check_auxv(img);
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
    if (r.kind == FdKind::pipe) {
      check_pipe_capacity(f);
      check_pipe_data(img, f);
      continue;
    }
    if (r.kind == FdKind::shared) {
      check_shared(img, f);
      continue;
    }
    if (r.kind == FdKind::pidfd) {
      if (f.data.size() != 8) refuse(fd + ": a malformed pidfd record");
      continue;  // its process checked in place_files, opened in restore_pipes
    }
    if (r.kind == FdKind::fifo) {
      check_pipe_capacity(f);
      check_fifo(f);
      continue;  // opened and refilled in place_files (fifos.cpp), still in phase 1
    }
    if (r.kind == FdKind::epoll) {
      (void)epoll_watches(img, f);  // made in place_files, still in phase 1
      continue;
    }
    if (r.kind == FdKind::inotify) {
      (void)inotify_state(f);  // its watches are added again in place_files, still in phase 1
      continue;
    }
    if (r.kind == FdKind::ghost || r.kind == FdKind::memfd) {
      check_ghost(f);
      continue;
    }
    if (r.kind == FdKind::socket) {
      SocketRecord s;
      if (ImageStatus st = decode(Blob(f.data.data(), f.data.size()), &s); !st)
        refuse(fd + ": a malformed socket record: " + std::string(st.message()));
      continue;  // made, bound and checked in place_files, still in phase 1
    }
    if (r.kind == FdKind::forwarded) {
      if (f.data.size() != 12) refuse(fd + ": a malformed forwarded socket record");
      continue;  // passed by the node daemon, put at its number in place_files
    }
    if (r.kind == FdKind::signalfd || r.kind == FdKind::eventfd || r.kind == FdKind::timerfd) {
      std::size_t want = r.kind == FdKind::signalfd ? 8 : r.kind == FdKind::eventfd ? 12 : 32;
      if (f.data.size() != want) refuse(fd + ": a malformed " + fd_kind_name(r.kind) + " record");
      continue;
    }
    if (is_removed_dir(f)) continue;  // check_removed_dirs
    bool path_only = (r.open_flags & O_PATH) != 0;
    if (r.kind != FdKind::regular && r.kind != FdKind::directory && r.kind != FdKind::char_device &&
        !(path_only && r.kind == FdKind::other))
      refuse(fd + ": a " + fd_kind_name(r.kind) + " cannot be restored");
    struct stat st{};
    if ((path_only ? lstat(f.path.c_str(), &st) : stat(f.path.c_str(), &st)) != 0)
      refuse(fd + " is missing: " + strerror(errno));
    if (r.kind == FdKind::regular && !path_only && static_cast<std::uint64_t>(st.st_size) < r.offset)
      refuse(fd + " is now " + std::to_string(st.st_size) + " bytes, shorter than its offset " +
             std::to_string(r.offset));
  }
  check_removed_dirs(img);
  struct stat st{};
  if (!is_removed_cwd(img) && (stat(img.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
    refuse("working directory " + img.cwd + " is missing");
  check_timers_and_signals(img);
  // Nice values the restorer may not go down to: the restarter's own, or
  // lower within RLIMIT_NICE (20 - its soft limit), or any with privileges.
  errno = 0;
  int own_nice = getpriority(PRIO_PROCESS, 0);
  struct rlimit nice_limit{};
  getrlimit(RLIMIT_NICE, &nice_limit);
  int floor = nice_limit.rlim_cur >= 40 ? -20 : 20 - static_cast<int>(nice_limit.rlim_cur);
  for (const ThreadSchedRecord& s : img.sched) {
    if (s.thread >= img.threads.size()) refuse("a scheduling record for thread " + std::to_string(s.thread) + ", which the image does not hold");
    if (s.nice < own_nice && s.nice < floor && geteuid() != 0)
      refuse("thread " + std::to_string(s.thread) + " ran at nice " + std::to_string(s.nice) +
             ", and this restart runs at nice " + std::to_string(own_nice) +
             " without leave to go lower (RLIMIT_NICE): restart it at its nice value or lower");
  }
}

}  // namespace mosix::ckpt::restorer
