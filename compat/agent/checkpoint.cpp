// The checkpoint itself, run inside the signal handler of the thread that took
// the request signal (the coordinator). It stops every other thread inside a
// handler of its own (so each one's registers are in its kernel signal frame),
// writes the image, then lets them go, stops the process or kills it.
//
// Nothing here allocates with malloc or takes a libc lock: another thread may
// have been stopped holding one. Working memory is one anonymous mapping made
// for the checkpoint and unmapped after it (the agent costs nothing resident
// while idle), and its range is left out of the image.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>
#include <ucontext.h>

#include <atomic>

#include "compat/agent/agent.h"
#include "compat/agent/epoll.h"
#include "compat/agent/inotify.h"
#include "compat/agent/locks.h"
#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_writer.h"
#include "runtime/ckpt/request_protocol.h"
#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/core/little_endian.h"
#include "runtime/sys/runtime_dir_rule.h"

// glibc 2.35+ publishes where each thread's rseq area is (thread pointer +
// __rseq_offset) and its size (0 when rseq is not registered). Weak, so the
// agent still loads under an older glibc.
extern "C" {
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
}

namespace mosix::agent {
namespace {

using namespace mosix::ckpt;

constexpr int kMaxThreads = 1024;
constexpr int kMaxRegions = 16384;
constexpr std::size_t kMapsCap = 4u << 20;
constexpr std::size_t kPagemapBatch = 4096;     // pages per pagemap read
constexpr std::size_t kPageSize = 4096;
constexpr std::uint32_t kRseqSig = 0x53053053;  // glibc's RSEQ_SIG on x86
constexpr std::uint32_t kRseqLen = 32;          // ORIG_RSEQ_SIZE, what glibc 2.36 registers
constexpr long kStopTimeoutNs = 10'000'000'000L;
constexpr std::uint64_t kProgressStep = 256u << 20;
constexpr int kMaxPipes = 1024;
constexpr std::size_t kPipeArenaBytes = 64 << 20;  // all their unread bytes together
constexpr std::size_t kMaxPipeBytes = 1 << 20;
constexpr int kMaxFds = 8192;
// Deleted-but-open files a checkpoint carries, and their data in all.
constexpr int kMaxGhosts = 64;
// Signalfds, eventfds and timerfds a checkpoint carries.
constexpr int kMaxAnonFds = 64;
constexpr std::uint64_t kMaxGhostBytes = 64ULL << 20;
constexpr int kMaxPending = 1024;
constexpr int kMaxTimers = 4096;
constexpr std::size_t kStatusCap = 4096;
constexpr std::size_t kSiginfoSize = 128;
// Signals the agent never takes out of a queue: its own, and the two that
// cannot be waited for.
constexpr std::uint64_t kUntakeable = (1ULL << (kRequestSignal - 1)) | (1ULL << (kStopSignal - 1)) |
                                      (1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1));

// What each stopped thread leaves for the coordinator. Its registers stay in
// its signal frame (at uc, on its own stack) while it is parked.
struct ThreadState {
  std::uint64_t tid, fs_base, gs_base, tid_address, robust_list, robust_len, rseq;
  bool rseq_foreign;  // an rseq area glibc did not register
  ucontext_t* uc;
  char name[16];
};

// A signal taken out of a pending queue, with its siginfo: tid 0 for the
// process-wide queue, else the thread whose private queue held it. signo 0
// marks a slot that was claimed but stayed empty.
struct PendingSignal {
  std::int32_t tid, signo;
  alignas(8) std::uint8_t info[kSiginfoSize];
};

struct Region {
  std::uint64_t start, end, offset, dev, inode, file_size;
  std::int64_t mtime_ns;
  std::uint32_t prot, map_flags;
  RegionKind kind;
  bool has_pages;
  bool dump_all;  // file gone or replaced: every page goes into the image
  // Shared anonymous memory: the device and inode of its shmem object, and
  // whether the page cache (mincore), not this process's page table, says
  // which pages exist.
  std::uint64_t shm_dev;
  bool shm;
  std::uint32_t advice;  // kRegion<advice> flags
  const char* path;
};

struct Scratch {
  std::atomic<int> arrived;  // threads parked in the stop handler
  std::atomic<int> inside;   // threads not yet out of the stop handler
  std::atomic<int> release;  // 0 while the threads must wait
  std::atomic<int> slots;
  ThreadState threads[kMaxThreads];
  char thread_status[kMaxThreads][kStatusCap];  // each thread's /proc/thread-self/status
  PendingSignal pending[kMaxPending];
  std::atomic<int> npending;
  std::atomic<int> put_back;  // set when the leader must put the pending signals back
  std::atomic<int> pending_overflow;
  PosixTimerRecord timers[kMaxTimers];
  int ntimers;
  std::uint64_t signalled[kMaxThreads];
  int nsignalled;
  Region regions[kMaxRegions];
  int nregions;
  std::uint64_t pagemap[kPagemapBatch];
  unsigned char incore[kPagemapBatch];
  char maps[kMapsCap];
  char smaps[2 * kMapsCap];
  char cwd[4096];
  char exe[4096];
  char link[4096];
  char line[4096];
  char request[4096];
  char error[ImageStatus::kCapacity + 512];
  // Pipes whose both ends this process holds (they can be recreated).
  std::uint64_t pipe_ino[kMaxThreads];
  bool pipe_reader[kMaxThreads];
  long pipe_fd[kMaxThreads];
  int npipes;
  // Every descriptor of the program above 2, to find shared open files.
  long fd_num[kMaxFds];
  std::uint64_t fd_ino[kMaxFds], fd_dev[kMaxFds];
  bool fd_reader[kMaxFds];
  long fd_shares[kMaxFds];  // the first fd of the same open file, else -1
  int nfds;
  int nshared;
  unsigned char shared_of[4];
  // Regular files deleted while open (ghosts): their identity, and whether
  // their data is in the image yet.
  std::uint64_t ghost_ino[kMaxGhosts], ghost_dev[kMaxGhosts];
  bool ghost_written[kMaxGhosts];
  int nghosts;
  unsigned char file_data[kMaxFileData];
  unsigned char memfd_seals[4];
  long anon_fd[kMaxAnonFds];
  int nanon;
  unsigned char anon_state[32];
  char fdinfo[256 << 10];  // an inotify or epoll instance's: a line per watch
  unsigned char watch_data[kMaxBlob];  // an inotify or epoll instance's image data
  unsigned char auxv[kMaxAuxv];
  // Unread bytes of up to kMaxPipes such pipes, read out and put back. An fd
  // record holds at most kMaxBlob bytes: the read end's record carries the
  // first part, the write end's the next, and file data records after the
  // second of those two the rest. Untouched pages of the scratch mapping
  // cost nothing, so each pipe may hold the most an unprivileged
  // F_SETPIPE_SZ allows (1 MiB, pipe-max-size's default), in one arena that
  // holds 64 MiB of them together.
  std::uint64_t drained[kMaxPipes];
  std::size_t drained_len[kMaxPipes];
  bool carried[kMaxPipes][2];  // the first record of each end carries data
  bool rest_written[kMaxPipes];
  int ndrained;
  std::size_t pipe_at[kMaxPipes];  // where each pipe's bytes start in the arena
  std::size_t arena_used;
  unsigned char pipe_arena[kPipeArenaBytes];
  SocketScratch socket;
  alignas(64) char stack[256 << 10];
};

std::size_t scratch_size(Compression c) {
  std::size_t head = (sizeof(Scratch) + 4095) & ~std::size_t{4095};
  return (head + WriterScratch::required_size(c) + 4095) & ~std::size_t{4095};
}

std::atomic<Scratch*> g_scratch{nullptr};
// The real pid of a process in the middle of a checkpoint. A restored process
// has another real pid, so the value it finds in its memory means "idle".
std::atomic<pid_t> g_busy_pid{0};

long now_ns(clockid_t clock) {
  timespec ts{};
  sys(SYS_clock_gettime, clock, &ts);
  return ts.tv_sec * 1'000'000'000L + ts.tv_nsec;
}

void futex_wake(std::atomic<int>* word) {
  sys(SYS_futex, word, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
}

void futex_wait(std::atomic<int>* word, int expected, long timeout_ns) {
  timespec ts{timeout_ns / 1'000'000'000L, timeout_ns % 1'000'000'000L};
  sys(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_ns > 0 ? &ts : nullptr, 0, 0);
}

void fill_thread_state(ThreadState& t, void* uc) {
  t = ThreadState{};
  t.tid = static_cast<std::uint64_t>(sys(SYS_gettid));
  t.uc = static_cast<ucontext_t*>(uc);
  sys(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &t.fs_base);
  sys(SYS_arch_prctl, 0x1004 /* ARCH_GET_GS */, &t.gs_base);
  sys(SYS_prctl, PR_GET_TID_ADDRESS, &t.tid_address);
  std::size_t len = 0;
  sys(SYS_get_robust_list, 0, &t.robust_list, &len);
  t.robust_len = len;
  // glibc registers each thread's rseq area inside its TCB, and the restore
  // registers that area again. The kernel offers no unprivileged way to ask
  // which area a thread registered, but rseq() answers a registration
  // attempt: EBUSY when exactly this area (and length and signature) is
  // registered, EINVAL when another one is (a program that replaced
  // glibc's, which a restore would not bring back: refused), and success
  // when none was, undone at once. The length is what glibc 2.36 registers;
  // a glibc that registers another length would be refused here, never
  // restored wrong.
  alignas(32) std::uint8_t probe_area[32] = {};  // registered for an instant at most
  std::uint64_t area = &__rseq_size != nullptr && __rseq_size > 0
                           ? t.fs_base + static_cast<std::uint64_t>(__rseq_offset)
                           : reinterpret_cast<std::uint64_t>(probe_area);
  long r = sys(SYS_rseq, area, kRseqLen, 0, kRseqSig);
  if (r == 0) {
    sys(SYS_rseq, area, kRseqLen, 1 /* RSEQ_FLAG_UNREGISTER */, kRseqSig);
  } else if (r == -EBUSY && area != reinterpret_cast<std::uint64_t>(probe_area)) {
    t.rseq = area;
  } else if (r != -ENOSYS) {
    t.rseq_foreign = true;
  }
  sys(SYS_prctl, PR_GET_NAME, t.name);
}

// Blocks every signal in the calling thread for the rest of the handler: a
// handler of the program that ran in the middle of a checkpoint would change
// memory while it is being written. The handler's return (rt_sigreturn)
// restores the mask the program had, which the frame keeps. A signal that
// arrives meanwhile stays pending and is taken into the image like the others.
void block_all_signals() {
  std::uint64_t all = ~std::uint64_t{0};
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &all, nullptr, 8);
}

// The pending set on the line `key` ("SigPnd:" for the thread's own queue,
// "ShdPnd:" for the process's) of /proc/thread-self/status; 0 if unreadable.
std::uint64_t pending_set(const char* key, char* buf, std::size_t cap) {
  long n = read_file("/proc/thread-self/status", buf, cap - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  for (const char* p = buf; *p != '\0';) {
    if (starts_with(p, key)) {
      p += cstr_len(key);
      while (*p == ' ' || *p == '\t') ++p;
      return parse_hex(p);
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return 0;
}

// The decimal number on the line `key` of a /proc status text; -1 if none.
long status_number(const char* text, const char* key) {
  for (const char* p = text; *p != '\0';) {
    if (starts_with(p, key)) {
      p += cstr_len(key);
      while (*p == ' ' || *p == '\t') ++p;
      return static_cast<long>(parse_dec(p));
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return -1;
}

// Takes the signals queued on `key`'s queue out of the kernel into the
// scratch list, siginfo and all, in queue order, tagged with `tid` (0 for the
// process-wide queue). There is no unprivileged way to read a queued
// siginfo without dequeuing it (PTRACE_PEEKSIGINFO needs ptrace), so they are
// dequeued with rt_sigtimedwait and put back after the image is written.
// The kernel dequeues a thread's private queue before the process's, so a
// thread takes its private signals first, and only the coordinator, after
// its own, takes the process-wide ones. All signals are blocked by now, so
// only a signal sent from outside meanwhile can move between the two.
void take_pending(Scratch* s, const char* key, std::int32_t tid, char* buf, std::size_t cap) {
  for (;;) {
    std::uint64_t set = pending_set(key, buf, cap) & ~kUntakeable;
    if (set == 0) return;
    int slot = s->npending.fetch_add(1);
    if (slot >= kMaxPending) {
      s->pending_overflow.store(1);
      return;
    }
    PendingSignal& p = s->pending[slot];
    timespec zero{};
    long sig = sys(SYS_rt_sigtimedwait, &set, p.info, &zero, 8);
    p.tid = tid;
    p.signo = sig > 0 ? static_cast<std::int32_t>(sig) : 0;
    if (sig <= 0) return;
  }
}

void put_back_pending(Scratch* s);

// Handler of kStopSignal in every thread but the coordinator.
void on_stop(int, siginfo_t*, void* uc) {
  Scratch* s = g_scratch.load(std::memory_order_acquire);
  if (s == nullptr || g_busy_pid.load() != real_pid()) return;
  int saved_errno = errno;
  block_all_signals();
  // Before the image is written, so that a restored process sees it too.
  __atomic_add_fetch(&g_stops, 1, __ATOMIC_RELAXED);
  note_thread_id();  // its tid stays what it was (tids.cpp)
  s->inside.fetch_add(1);
  int slot = s->slots.fetch_add(1);
  if (slot < kMaxThreads) {
    fill_thread_state(s->threads[slot], uc);
    take_pending(s, "SigPnd:", static_cast<std::int32_t>(s->threads[slot].tid), s->thread_status[slot],
                 kStatusCap);
  }
  s->arrived.fetch_add(1);
  futex_wake(&s->arrived);
  while (s->release.load(std::memory_order_acquire) == 0) futex_wait(&s->release, 0, 0);
  if (s->put_back.load() != 0 && sys(SYS_gettid) == real_pid()) put_back_pending(s);
  s->inside.fetch_sub(1);
  futex_wake(&s->inside);
  errno = saved_errno;
}

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

// Calls fn(pid) for every process in /proc but `self`, listing /proc into
// buf (which fn must not use), until fn returns false; as above.
template <typename Fn>
int for_each_proc_pid(char* buf, std::size_t cap, std::uint64_t self, Fn fn) {
  return for_each_numbered_entry("/proc", buf, cap, [&](std::uint64_t pid, long) { return pid == self || fn(pid); });
}

class Session {
 public:
  Session(Scratch* s, void* uc) : s_(s), uc_(uc) {}
  void run();

 private:
  bool read_request();
  bool stop_threads();
  void release_threads();
  int gone_threads();
  bool check_fds();
  bool check_ghost(long fd, const char* link, const struct stat& st);
  int ghost_index(const struct stat& st) const;
  bool write_ghost_data(long fd, const struct stat& st);
  bool anon_state(long fd, const char* link, FdRecord* r);
  bool check_shared_descriptions();
  long shares_with(long fd) const;
  bool collect_timers();
  bool take_process_signals();
  bool is_thread(std::uint64_t tid) const;
  bool write_signals_and_timers();
  bool has_pipe_end(std::uint64_t ino, bool reader) const;
  bool drain_pipe(std::uint64_t ino, FdRecord* r);
  bool write_pair_queue(long fd);
  bool write_pipe_rest(std::uint64_t ino, long fd);
  bool write_fds();
  bool collect_regions();
  bool read_smaps();
  bool check_children();
  bool check_settings();
  bool check_guard_pages();
  bool check_held_elsewhere();
  bool write_image();
  bool write_header();
  bool write_process();
  bool write_thread(const ThreadState& t, bool leader);
  bool write_thread_sched();
  bool write_pages(const Region& r);
  bool check(const ImageStatus& st);
  void fail(const char* what) { Line(s_->error, sizeof s_->error).s(what); }
  void status(const char* text);
  static ImageStatus sink_write(void* context, const struct iovec* iov, int count);

  Scratch* s_;
  void* uc_;
  ImageWriter* writer_ = nullptr;
  const char* out_path_ = nullptr;
  const char* status_path_ = nullptr;
  AfterCheckpoint mode_ = AfterCheckpoint::kLeaveRunning;
  Compression compression_ = Compression::none;
  bool for_move_ = false;  // "move=1": the image is for another node
  long out_fd_ = -1, status_fd_ = -1, pagemap_fd_ = -1;
  std::uint64_t written_ = 0, next_progress_ = kProgressStep;
};

void Session::status(const char* text) {
  if (status_fd_ < 0) return;
  write_all(static_cast<int>(status_fd_), text, cstr_len(text));
}

bool Session::check(const ImageStatus& st) {
  if (st) return true;
  Line(s_->error, sizeof s_->error).s(st.message());
  return false;
}

// Writes to the image descriptor with raw system calls and reports progress
// on the status FIFO. Not libc's writev: it would write errno and the
// thread's cancellation state, memory that is part of the image and is being
// checksummed and written at that very moment.
ImageStatus Session::sink_write(void* context, const struct iovec* iov, int count) {
  auto* self = static_cast<Session*>(context);
  // writev of the whole chunk (frame, head and runs of pages), up to 64
  // parts a call: a pipe reader is woken once, not once per part. A short
  // write resumes where it stopped.
  constexpr int kWindow = 64;
  int at = 0;
  std::size_t skip = 0;  // bytes of iov[at] already written
  while (at < count) {
    struct iovec window[kWindow];
    int n_parts = 0;
    for (int i = at; i < count && n_parts < kWindow; ++i, ++n_parts) {
      window[n_parts] = iov[i];
      if (i == at) {
        window[0].iov_base = static_cast<char*>(iov[i].iov_base) + skip;
        window[0].iov_len -= skip;
      }
    }
    long n = sys(SYS_writev, self->out_fd_, window, n_parts);
    if (n == -EINTR) continue;
    if (n <= 0) {
      MessageBuilder m;
      m.text("writing the image failed: ").errno_text(n == 0 ? EIO : static_cast<int>(-n));
      return m.status();
    }
    self->written_ += static_cast<std::uint64_t>(n);
    auto done = static_cast<std::size_t>(n) + skip;
    while (at < count && done >= iov[at].iov_len) done -= iov[at++].iov_len;
    skip = done;
  }
  if (self->written_ >= self->next_progress_) {
    char l[64];
    Line(l, sizeof l).s("progress ").u(self->written_).s("\n");
    self->status(l);
    self->next_progress_ += kProgressStep;
  }
  return ImageStatus::Ok();
}

// XDG_RUNTIME_DIR as the program had it when the agent was loaded (empty:
// unset): the handler reads no environment that the program may be changing.
char g_xdg_runtime_dir[256];
bool g_xdg_runtime_dir_too_long = false;

// The runtime directory by the rule mosixctl follows too
// (runtime/sys/runtime_dir_rule.h); false if it does not fit in `out`.
bool runtime_dir(char* out, std::size_t size) {
  if (g_xdg_runtime_dir_too_long) return false;
  auto is_dir = [](const char* path) {
    struct stat st{};
    return sys(SYS_stat, path, &st) == 0 && S_ISDIR(st.st_mode);
  };
  return mosix::sys::runtime_dir_path(out, size, g_xdg_runtime_dir[0] != '\0' ? g_xdg_runtime_dir : nullptr,
                                      static_cast<std::uint64_t>(sys(SYS_getuid)), is_dir);
}

// Reads and removes `<runtime dir>/ckpt-<pid>.req`; ignores a directory or
// file that another user could have written.
bool Session::read_request() {
  char dir[256];
  if (!runtime_dir(dir, sizeof dir)) return false;
  struct stat st{};
  long uid = sys(SYS_getuid);
  if (sys(SYS_lstat, dir, &st) != 0 || !S_ISDIR(st.st_mode) || static_cast<long>(st.st_uid) != uid ||
      (st.st_mode & 022) != 0)
    return false;
  char path[320];
  Line p(path, sizeof path);
  p.s(dir).s("/ckpt-").u(static_cast<std::uint64_t>(real_pid())).s(".req");
  long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool owned = sys(SYS_fstat, fd, &st) == 0 && static_cast<long>(st.st_uid) == uid &&
               S_ISREG(st.st_mode);
  long n = owned ? sys(SYS_read, fd, s_->request, sizeof s_->request - 1) : -1;
  sys(SYS_close, fd);
  sys(SYS_unlinkat, AT_FDCWD, path, 0);
  if (n <= 0) return false;
  s_->request[n] = '\0';
  for (char* line = s_->request; *line != '\0';) {
    char* end = line;
    while (*end != '\0' && *end != '\n') ++end;
    bool last = *end == '\0';
    *end = '\0';
    if (starts_with(line, "out=")) {
      out_path_ = line + 4;
    } else if (starts_with(line, "status=")) {
      status_path_ = line + 7;
    } else if (starts_with(line, "mode=")) {
      for (int m = 0; m < 3; ++m)
        if (cstr_eq(line + 5, kModeNames[m])) mode_ = static_cast<AfterCheckpoint>(m);
    } else if (starts_with(line, "compress=")) {
      parse_compression(line + 9, &compression_);
    } else if (cstr_eq(line, "move=1")) {
      for_move_ = true;
    }
    if (last) break;
    line = end + 1;
  }
  if (status_path_ != nullptr) {
    status_fd_ = sys(SYS_openat, AT_FDCWD, status_path_, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (status_fd_ >= 0) sys(SYS_fcntl, status_fd_, F_SETFL, 0);
  }
  return out_path_ != nullptr && status_fd_ >= 0;
}

// Signals every other thread until a pass over /proc/self/task finds none
// new, then waits for all of them to be parked.
bool Session::stop_threads() {
  pid_t pid = real_pid();
  long self = sys(SYS_gettid);
  fill_thread_state(s_->threads[0], uc_);
  s_->slots.store(1);
  bool found_new = true;
  while (found_new) {
    found_new = false;
    bool too_many = false;
    int listed = for_each_numbered_entry("/proc/self/task", s_->line, sizeof s_->line, [&](std::uint64_t tid, long) {
      if (static_cast<long>(tid) == self) return true;
      bool seen = false;
      for (int i = 0; i < s_->nsignalled; ++i) seen = seen || s_->signalled[i] == tid;
      if (seen) return true;
      if (s_->nsignalled + 1 >= kMaxThreads) return !(too_many = true);
      s_->signalled[s_->nsignalled++] = tid;
      if (sys(SYS_tgkill, pid, tid, kStopSignal) == 0)
        found_new = true;
      else
        --s_->nsignalled;  // it exited meanwhile
      return true;
    });
    if (listed < 0) return fail("cannot list /proc/self/task"), false;
    if (too_many) return fail("more than 1024 threads"), false;
  }
  long deadline = now_ns(CLOCK_MONOTONIC) + kStopTimeoutNs;
  for (;;) {
    int arrived = s_->arrived.load();
    if (arrived >= s_->nsignalled - gone_threads()) break;
    long left = deadline - now_ns(CLOCK_MONOTONIC);
    if (left <= 0) {
      Line(s_->error, sizeof s_->error)
          .s("only ")
          .u(static_cast<std::uint64_t>(arrived))
          .s(" of ")
          .u(static_cast<std::uint64_t>(s_->nsignalled))
          .s(" other threads stopped within 10 s (a thread blocks signal ")
          .u(kStopSignal)
          .s(" or is stopped)");
      return false;
    }
    futex_wait(&s_->arrived, arrived, left < 100'000'000L ? left : 100'000'000L);
  }
  // The thread-group leader goes first: the restorer's own main thread
  // becomes it.
  for (int i = 1; i < s_->slots.load(); ++i) {
    if (static_cast<pid_t>(s_->threads[i].tid) == pid) {
      ThreadState t = s_->threads[0];
      s_->threads[0] = s_->threads[i];
      s_->threads[i] = t;
    }
  }
  if (static_cast<pid_t>(s_->threads[0].tid) != pid)
    return fail("the main thread has exited; only processes with a live main thread are supported"),
           false;
  return true;
}

// Signalled threads that exited before they took the signal (a thread
// pool that shrinks): they will never arrive.
int Session::gone_threads() {
  int gone = 0;
  int slots = s_->slots.load();
  for (int i = 0; i < s_->nsignalled; ++i) {
    bool arrived = false;
    for (int k = 1; k < slots && k < kMaxThreads && !arrived; ++k) arrived = s_->threads[k].tid == s_->signalled[i];
    if (arrived) continue;
    char path[64];
    Line(path, sizeof path).s("/proc/self/task/").u(s_->signalled[i]);
    struct stat st{};
    if (sys(SYS_stat, path, &st) != 0) ++gone;
  }
  return gone;
}

void Session::release_threads() {
  s_->release.store(1, std::memory_order_release);
  futex_wake(&s_->release);
  for (;;) {
    int in = s_->inside.load();
    if (in == 0) break;
    futex_wait(&s_->inside, in, 100'000'000L);
  }
}

const char* anon_kind(const char* link) {
  static constexpr struct {
    const char* link;
    const char* kind;
  } kKinds[] = {{"anon_inode:[eventpoll]", "an epoll instance"}, {"anon_inode:inotify", "an inotify instance"},
                {"anon_inode:[fanotify]", "a fanotify instance"}, {"anon_inode:[eventfd]", "an eventfd"},
                {"anon_inode:[signalfd]", "a signalfd"},          {"anon_inode:[timerfd]", "a timerfd"},
                {"anon_inode:[pidfd]", "a pidfd"},                {"anon_inode:[io_uring]", "an io_uring instance"},
                {"anon_inode:[userfaultfd]", "a userfaultfd"},    {"anon_inode:[perf_event]", "a perf event"},
                {"anon_inode:bpf", "a BPF object"},               {"anon_inode:[aio]", "an AIO context"}};
  for (const auto& k : kKinds)
    if (starts_with(link, k.link)) return k.kind;
  if (starts_with(link, "anon_inode:")) return "an anonymous inode";
  return "of an unsupported kind";
}

// anon_kind() of one of the process's own descriptors.
const char* anon_kind_of(long fd) {
  char path[64], link[64];
  Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
  long n = sys(SYS_readlinkat, AT_FDCWD, path, link, sizeof link - 1);
  link[n > 0 ? n : 0] = '\0';
  return anon_kind(link);
}

bool restorable_anon(const char* link) {
  return starts_with(link, "anon_inode:[signalfd]") || starts_with(link, "anon_inode:[eventfd]") ||
         starts_with(link, "anon_inode:[timerfd]") || cstr_eq(link, "anon_inode:inotify") ||
         cstr_eq(link, "anon_inode:[eventpoll]");
}

// Whether `what` stands on the line that starts at p.
bool contains_before_newline(const char* p, const char* what) {
  for (; *p != '\0' && *p != '\n'; ++p)
    if (starts_with(p, what)) return true;
  return false;
}

// The number after `key` on a line of a /proc fdinfo text (base 8, 10 or
// 16), or -1 when there is no such line.
long long fdinfo_number(const char* text, const char* key, int base) {
  for (const char* p = text; *p != '\0';) {
    if (starts_with(p, key)) {
      p += cstr_len(key);
      while (*p == ' ' || *p == '\t' || *p == '(') ++p;
      unsigned long long v = 0;
      for (;; ++p) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : 99;
        if (d >= base) break;
        v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
      }
      return static_cast<long long>(v);
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return -1;
}

bool is_plain_device(const char* link) {
  for (const char* d : {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"})
    if (cstr_eq(link, d)) return true;
  return false;
}

bool ends_with_deleted(const char* s) {
  std::size_t n = cstr_len(s);
  return n >= 10 && cstr_eq(s + n - 10, " (deleted)");
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
}

// Walks /proc/self/fd; for each descriptor of the program, calls fn(fd,
// link, stat). Stops and returns false when fn does.
template <typename Fn>
bool for_each_fd(Scratch* s, const long* skip, int nskip, Fn fn) {
  char dents[2048];
  return for_each_numbered_entry("/proc/self/fd", dents, sizeof dents, [&](std::uint64_t number, long dir) {
           auto fd = static_cast<long>(number);
           bool own = fd == dir;
           for (int i = 0; i < nskip; ++i) own = own || fd == skip[i];
           if (own) return true;
           char path[64];
           Line(path, sizeof path).s("/proc/self/fd/").u(number);
           long len = sys(SYS_readlinkat, AT_FDCWD, path, s->link, sizeof s->link - 1);
           if (len < 0) return true;
           s->link[len] = '\0';
           struct stat st{};
           if (sys(SYS_fstat, fd, &st) != 0) return true;
           return fn(fd, s->link, st);
         }) != 0;
}

bool Session::has_pipe_end(std::uint64_t ino, bool reader) const {
  for (int i = 0; i < s_->npipes; ++i)
    if (s_->pipe_ino[i] == ino && s_->pipe_reader[i] == reader) return true;
  return false;
}

bool Session::check_fds() {
  long skip[] = {out_fd_, status_fd_, pagemap_fd_};
  s_->npipes = 0;
  s_->socket.nown = 0;
  for_each_fd(s_, skip, 3, [&](long fd, const char*, const struct stat& st) {
    if (S_ISSOCK(st.st_mode) && s_->socket.nown < kMaxOwnSockets) {
      s_->socket.own_ino[s_->socket.nown] = st.st_ino;
      s_->socket.own_fd[s_->socket.nown++] = fd;
    }
    if (fd > 2 && S_ISFIFO(st.st_mode) && s_->npipes < kMaxThreads) {
      s_->pipe_ino[s_->npipes] = st.st_ino;
      s_->pipe_reader[s_->npipes] = (sys(SYS_fcntl, fd, F_GETFL) & O_ACCMODE) == O_RDONLY;
      s_->pipe_fd[s_->npipes++] = fd;
    }
    return true;
  });
  s_->nfds = 0;
  s_->nghosts = 0;
  s_->nanon = 0;
  bool ok = for_each_fd(s_, skip, 3, [&](long fd, const char* link, const struct stat& st) {
    if (fd <= 2) return true;
    Line e(s_->error, sizeof s_->error);
    e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" ");
    long fl = sys(SYS_fcntl, fd, F_GETFL);
    if (s_->nfds == kMaxFds) {
      e.s("is one descriptor too many: more than 8192 are open");
      return false;
    }
    s_->fd_num[s_->nfds] = fd;
    s_->fd_ino[s_->nfds] = st.st_ino;
    s_->fd_dev[s_->nfds] = st.st_dev;
    s_->fd_reader[s_->nfds++] = fl >= 0 && (fl & O_ACCMODE) == O_RDONLY;
    // A lease (which also makes the process the file's owner) is not taken
    // again, and signal-driven I/O (F_SETOWN, F_SETSIG, O_ASYNC) not set again.
    long lease = S_ISREG(st.st_mode) ? sys(SYS_fcntl, fd, F_GETLEASE) : -1;
    if (lease >= 0 && lease != F_UNLCK) {
      e.s("holds a file lease (").s(link).s("), which a restore does not take again");
      return false;
    }
    struct {
      int type;
      int pid;
    } owner = {0, 0};
    if ((fl >= 0 && (fl & O_ASYNC) != 0) || (sys(SYS_fcntl, fd, F_GETOWN_EX, &owner) == 0 && owner.pid != 0) ||
        sys(SYS_fcntl, fd, F_GETSIG) > 0) {
      e.s("has an owner for signal-driven I/O (F_SETOWN, F_SETSIG or O_ASYNC), which a restore does not set again");
      return false;
    }
    if (fl >= 0 && (fl & O_PATH) != 0) {
      // It names a file without opening it: a restore opens the name again
      // with O_PATH (and O_NOFOLLOW for a symlink).
      if (link[0] == '/' && !ends_with_deleted(link) && !starts_with(link, "/proc/")) return true;
      e.s("is an O_PATH descriptor on ").s(link).s(", which a restore cannot find again by its name");
      return false;
    }
    if (S_ISDIR(st.st_mode) && ends_with_deleted(link)) {
      e.s("is a directory that was removed (").s(link).s(")");
      return false;
    }
    if (restorable_anon(link)) {
      // A signalfd's only state is its mask (the signals it reads are the
      // reader's), an eventfd's its count, a timerfd's its clock, time left,
      // interval and expirations not yet read, an inotify instance's its
      // watches (added again by path), an epoll instance's its watches
      // (added again by number): each is made again with it, unless
      // another process holds the same one too.
      if (s_->nanon < kMaxAnonFds) {
        s_->anon_fd[s_->nanon++] = fd;
        return true;
      }
      e.s("is one of more than 64 signalfds, eventfds, timerfds, inotify and epoll instances, more than a "
          "checkpoint carries");
    } else if (starts_with(link, "anon_inode:")) {
      e.s("is ").s(anon_kind(link)).s(" (").s(link).s("), which a restore cannot give back yet");
    } else if (starts_with(link, "/proc/")) {
      e.s("is a file in /proc (").s(link).s("), which names a process by its pid; the restored process has "
                                            "another pid");
    } else if (S_ISREG(st.st_mode) && starts_with(link, "/memfd:")) {
      return check_ghost(fd, link, st);
    } else if (S_ISREG(st.st_mode)) {
      if (link[0] == '/' && !ends_with_deleted(link)) return true;
      if (link[0] == '/' && st.st_nlink == 0) return check_ghost(fd, link, st);
      e.s("is a deleted file that still has another name, or an anonymous file (").s(link).s(")");
    } else if (S_ISDIR(st.st_mode)) {
      return true;
    } else if (S_ISCHR(st.st_mode)) {
      if (is_plain_device(link)) return true;
      if (starts_with(link, "/dev/pts/") || cstr_eq(link, "/dev/ptmx") || starts_with(link, "/dev/tty"))
        e.s("is the terminal ").s(link).s(", which a restore does not reconnect (only fds 0, 1 and 2 get the "
                                          "restarter's)");
      else
        e.s("is the character device ").s(link);
    } else if (S_ISFIFO(st.st_mode)) {
      if (starts_with(link, "pipe:") && has_pipe_end(st.st_ino, true) &&
          has_pipe_end(st.st_ino, false))
        return true;
      e.s("is a pipe to another process or a named pipe (").s(link).s(")");
    } else if (S_ISSOCK(st.st_mode)) {
      char why[512];
      if (socket_image_data(fd, for_move_, &s_->socket, why, sizeof why) >= 0) return true;
      e.s(why).s(" (").s(link).s("). The process keeps running");
      return false;
    } else {
      e.s("is ").s(anon_kind(link)).s(" (").s(link).s(")");
    }
    e.s(": only regular files (deleted ones and memfds too), directories, O_PATH descriptors, signalfds, "
        "eventfds, timerfds, inotify and epoll instances, unconnected inet and unix sockets, /dev/null-like devices and "
        "stdin/stdout/stderr can be checkpointed; close it before the checkpoint. The process keeps running");
    return false;
  });
  return ok && check_shared_descriptions();
}

int Session::ghost_index(const struct stat& st) const {
  for (int i = 0; i < s_->nghosts; ++i)
    if (s_->ghost_ino[i] == st.st_ino && s_->ghost_dev[i] == st.st_dev) return i;
  return -1;
}

// A regular file deleted while open and left with no name (a "ghost"), or a
// memfd: the image carries its contents (write_ghost_data) and the restore
// makes it again (a ghost under its old name, unlinked at once). Refused above kMaxGhostBytes
// of data, and when no descriptor of the program can read it (reading
// through a new open would release the program's POSIX locks on it at
// close).
bool Session::check_ghost(long fd, const char* link, const struct stat& st) {
  Line e(s_->error, sizeof s_->error);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is a deleted file (").s(link).s(")");
  if (static_cast<std::uint64_t>(st.st_blocks) * 512 > kMaxGhostBytes) {
    e.s(" with more than 64 MiB of data, more than a checkpoint carries; close it before the checkpoint");
    return false;
  }
  if (ghost_index(st) >= 0) return true;
  // A restore makes a deleted file again under its name (then unlinks it):
  // the directory must still be there and writable, and the name free.
  if (!starts_with(link, "/memfd:")) {
    std::size_t n = cstr_len(link) - 10;  // without " (deleted)"
    std::size_t slash = n;
    while (slash > 0 && link[slash] != '/') --slash;
    char* path = s_->exe;  // write_process fills it later
    if (n >= sizeof s_->exe) {
      e.s(" whose name is too long to make it again");
      return false;
    }
    __builtin_memcpy(path, link, n);
    path[n] = '\0';
    struct stat now{};
    if (sys(SYS_newfstatat, AT_FDCWD, path, &now, AT_SYMLINK_NOFOLLOW) == 0) {
      e.s(": a file of that name exists again, and a restore makes the deleted one again under its name; "
          "rename one of them");
      return false;
    }
    path[slash == 0 ? 1 : slash] = '\0';
    if (sys(SYS_faccessat, AT_FDCWD, path, W_OK | X_OK, 0) != 0) {
      e.s(": its directory ").s(path).s(" is gone or not writable, and a restore makes the file again there");
      return false;
    }
  }
  if (s_->nghosts == kMaxGhosts) {
    e.s(", one of more than 64 deleted files held open, more than a checkpoint carries");
    return false;
  }
  s_->ghost_ino[s_->nghosts] = st.st_ino;
  s_->ghost_dev[s_->nghosts] = st.st_dev;
  s_->ghost_written[s_->nghosts++] = false;
  return true;
}

// The state of a signalfd, eventfd, timerfd or inotify instance, from
// /proc/self/fdinfo, into r's kind and data (image_format.h says the layout).
bool Session::anon_state(long fd, const char* link, FdRecord* r) {
  char path[64];
  Line(path, sizeof path).s("/proc/self/fdinfo/").u(static_cast<std::uint64_t>(fd));
  bool epoll = cstr_eq(link, "anon_inode:[eventpoll]");
  if (epoll || cstr_eq(link, "anon_inode:inotify")) {
    // Its watches, added again by path (inotify.cpp kept the paths).
    long got = read_file(path, s_->fdinfo, sizeof s_->fdinfo - 1);
    if (got < 0) {
      Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
          .s(epoll ? " is an epoll instance" : " is an inotify instance").s(" with more watches than a checkpoint reads");
      return false;
    }
    s_->fdinfo[got] = '\0';
    long len = epoll ? epoll_image_data(fd, s_->fdinfo, s_->fd_num, s_->nfds, s_->watch_data, sizeof s_->watch_data,
                                        s_->error, sizeof s_->error)
                     : inotify_image_data(fd, s_->fdinfo, s_->watch_data, sizeof s_->watch_data, s_->error,
                                          sizeof s_->error);
    if (len < 0) return false;
    r->kind = epoll ? FdKind::epoll : FdKind::inotify;
    r->data = Blob(s_->watch_data, static_cast<std::size_t>(len));
    return true;
  }
  long n = read_file(path, s_->line, sizeof s_->line - 1);
  s_->line[n > 0 ? n : 0] = '\0';
  const char* t = s_->line;
  unsigned char* d = s_->anon_state;
  if (starts_with(link, "anon_inode:[signalfd]")) {
    r->kind = FdKind::signalfd;
    store_le<std::uint64_t>(d, static_cast<std::uint64_t>(fdinfo_number(t, "sigmask:", 16)));
    r->data = Blob(d, 8);
    return true;
  }
  if (starts_with(link, "anon_inode:[eventfd]")) {
    long long count = fdinfo_number(t, "eventfd-count:", 16), sem = fdinfo_number(t, "eventfd-semaphore:", 10);
    if (count < 0 || sem < 0) {
      Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
          .s(" is an eventfd, and this kernel does not show its count and mode (fdinfo)");
      return false;
    }
    r->kind = FdKind::eventfd;
    store_le<std::uint64_t>(d, static_cast<std::uint64_t>(count));
    store_le<std::uint32_t>(d + 8, sem != 0 ? 1 : 0);
    r->data = Blob(d, 12);
    return true;
  }
  // timerfd: "it_value: (sec, nsec)", the time left; "it_interval: (...)".
  long long clock = fdinfo_number(t, "clockid:", 10), ticks = fdinfo_number(t, "ticks:", 10),
            flags = fdinfo_number(t, "settime flags:", 8);
  auto pair_ns = [&](const char* key) -> long long {
    long long sec = fdinfo_number(t, key, 10);
    const char* p = t;
    while (*p != '\0' && !starts_with(p, key)) ++p;
    while (*p != '\0' && *p != ',') ++p;
    long long nsec = *p == ',' ? fdinfo_number(p, ",", 10) : -1;
    return sec < 0 || nsec < 0 ? -1 : sec * 1'000'000'000LL + nsec;
  };
  long long value = pair_ns("it_value:"), interval = pair_ns("it_interval:");
  if (clock < 0 || ticks < 0 || flags < 0 || value < 0 || interval < 0) {
    Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
        .s(" is a timerfd whose state this kernel does not show (fdinfo)");
    return false;
  }
  r->kind = FdKind::timerfd;
  store_le<std::uint32_t>(d, static_cast<std::uint32_t>(clock));
  store_le<std::uint32_t>(d + 4, static_cast<std::uint32_t>(flags));
  store_le<std::uint64_t>(d + 8, static_cast<std::uint64_t>(ticks));
  store_le<std::uint64_t>(d + 16, static_cast<std::uint64_t>(value));
  store_le<std::uint64_t>(d + 24, static_cast<std::uint64_t>(interval));
  r->data = Blob(d, 32);
  return true;
}

// The contents of the ghost file fd is open on, as file data records after
// its fd record (once per file: its other descriptors share them). Read with
// pread from a descriptor of the program open for reading, hole by hole
// (SEEK_DATA/SEEK_HOLE); that descriptor's offset is put back after.
bool Session::write_ghost_data(long fd, const struct stat& st) {
  int g = ghost_index(st);
  if (g < 0 || s_->ghost_written[g]) return true;
  s_->ghost_written[g] = true;
  long src = -1;
  for (int i = 0; i < s_->nfds && src < 0; ++i) {
    if (s_->fd_ino[i] != st.st_ino || s_->fd_dev[i] != st.st_dev) continue;
    long fl = sys(SYS_fcntl, s_->fd_num[i], F_GETFL);
    if (fl >= 0 && (fl & O_ACCMODE) != O_WRONLY) src = s_->fd_num[i];
  }
  // Only open for writing: read through a new open of it (/proc/self/fd),
  // closed again at once, unless the process holds POSIX locks on it (the
  // close would release them) or may not read it (its mode).
  long opened = -1;
  if (src < 0) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/fdinfo/").u(static_cast<std::uint64_t>(fd));
    long n = read_file(path, s_->line, sizeof s_->line - 1);
    s_->line[n > 0 ? n : 0] = '\0';
    bool posix_locked = false;
    for (const char* p = s_->line; *p != '\0'; ++p)
      posix_locked = posix_locked || (starts_with(p, "lock:") && contains_before_newline(p, "POSIX"));
    Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
    if (n > 0 && !posix_locked) opened = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOATIME);
    if (opened < 0 && n > 0 && !posix_locked) opened = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    src = opened;
  }
  if (src < 0) {
    Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
        .s(" is a deleted file open only for writing that the process holds POSIX locks on or may not read: a "
           "checkpoint cannot read its contents");
    return false;
  }
  long saved = opened >= 0 ? -1 : sys(SYS_lseek, src, 0, SEEK_CUR);
  auto size = static_cast<long>(st.st_size);
  std::uint64_t carried = 0;
  bool ok = true;
  for (long pos = 0; ok && pos < size;) {
    long data = sys(SYS_lseek, src, pos, SEEK_DATA);
    if (data < 0 || data >= size) break;  // -ENXIO: only a hole is left
    long hole = sys(SYS_lseek, src, data, SEEK_HOLE);
    if (hole < 0 || hole > size) hole = size;
    for (long at = data; ok && at < hole;) {
      auto want = static_cast<std::size_t>(hole - at < static_cast<long>(kMaxFileData) ? hole - at : kMaxFileData);
      long got = sys(SYS_pread64, src, s_->file_data, want, at);
      if (got <= 0) {
        Line(s_->error, sizeof s_->error).s("cannot read the deleted file of fd ").u(static_cast<std::uint64_t>(fd));
        ok = false;
        break;
      }
      carried += static_cast<std::uint64_t>(got);
      if (carried > kMaxGhostBytes) {
        Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
            .s(" is a deleted file with more than 64 MiB of data, more than a checkpoint carries");
        ok = false;
        break;
      }
      FileDataRecord d;
      d.fd = static_cast<std::int32_t>(fd);
      d.offset = static_cast<std::uint64_t>(at);
      d.data = Blob(s_->file_data, static_cast<std::size_t>(got));
      ok = check(writer_->file_data(d));
      at += got;
    }
    pos = hole;
  }
  if (saved >= 0) sys(SYS_lseek, src, saved, SEEK_SET);
  if (opened >= 0) sys(SYS_close, opened);
  return ok;
}

// A restore opens each file, directory and device descriptor anew, makes
// each signalfd, eventfd and timerfd again, and opens each pipe end once
// more for each of its separate opens. Descriptors that share one open file
// (dup, dup2, F_DUPFD, or inherited together) would part: their offset,
// status flags and locks would no longer be one. So each one after the
// first is recorded as a `shared` fd of the first, and the restore makes it
// with dup3. kcmp(KCMP_FILE) tells whether two descriptors share an open
// file; without it (a kernel without CONFIG_KCMP) two descriptors on one
// inode are refused, since nothing else can tell.
bool Session::check_shared_descriptions() {
  long self = real_pid();
  s_->nshared = 0;
  for (int k = 0; k < s_->nfds; ++k) s_->fd_shares[k] = -1;
  for (int k = 0; k < s_->nfds; ++k) {
    for (int i = 0; i < k && s_->fd_shares[k] < 0; ++i) {
      if (s_->fd_shares[i] >= 0) continue;  // the first of each open file stands for it
      if (s_->fd_ino[i] != s_->fd_ino[k] || s_->fd_dev[i] != s_->fd_dev[k]) continue;
      long a = s_->fd_num[i], b = s_->fd_num[k];
      struct stat st{};
      if (sys(SYS_fstat, a, &st) != 0) continue;
      bool pipe = S_ISFIFO(st.st_mode);
      if (pipe && s_->fd_reader[i] != s_->fd_reader[k]) continue;
      long same = sys(SYS_kcmp, self, self, 0 /* KCMP_FILE */, a, b);
      if (same < 0) {
        Line(s_->error, sizeof s_->error)
            .s("fds ").u(static_cast<std::uint64_t>(a)).s(" and ").u(static_cast<std::uint64_t>(b))
            .s(" are on one file and this kernel cannot tell whether they share its offset (no kcmp)");
        return false;
      }
      if (same == 0) {
        s_->fd_shares[k] = a;
        ++s_->nshared;
      }
    }
  }
  return true;
}

// The first fd of the open file `fd` shares with another, or -1.
long Session::shares_with(long fd) const {
  if (s_->nshared == 0) return -1;
  for (int k = 0; k < s_->nfds; ++k)
    if (s_->fd_num[k] == fd) return s_->fd_shares[k];
  return -1;
}

bool Session::write_fds() {
  long skip[] = {out_fd_, status_fd_, pagemap_fd_};
  bool ok = true;
  for_each_fd(s_, skip, 3, [&](long fd, const char* link, const struct stat& st) {
    FdRecord r;
    r.fd = static_cast<std::int32_t>(fd);
    r.open_flags = static_cast<std::uint32_t>(sys(SYS_fcntl, fd, F_GETFL));
    r.fd_flags = static_cast<std::uint32_t>(sys(SYS_fcntl, fd, F_GETFD));
    r.path = link;
    r.mode = st.st_mode;
    r.dev = st.st_dev;
    r.inode = st.st_ino;
    r.size = static_cast<std::uint64_t>(st.st_size);
    r.mtime_ns = mtime_ns(st);
    long first = fd <= 2 ? -1 : shares_with(fd);
    if (fd <= 2) {
      r.kind = FdKind::std_stream;
    } else if (first >= 0) {
      r.kind = FdKind::shared;
      store_le(s_->shared_of, static_cast<std::uint32_t>(first), 4);
      r.data = Blob(s_->shared_of, 4);
    } else if (restorable_anon(link)) {
      if (!anon_state(fd, link, &r)) return ok = false;
    } else if (r.open_flags & O_PATH) {
      r.kind = S_ISDIR(st.st_mode) ? FdKind::directory : S_ISREG(st.st_mode) ? FdKind::regular : FdKind::other;
    } else if (S_ISREG(st.st_mode)) {
      r.kind = ghost_index(st) < 0                ? FdKind::regular
               : starts_with(link, "/memfd:") ? FdKind::memfd
                                              : FdKind::ghost;
      // A memfd's seals (F_SEAL_SEAL alone: made without MFD_ALLOW_SEALING).
      std::uint32_t seals = 0;
      if (r.kind == FdKind::memfd) {
        long got = sys(SYS_fcntl, fd, F_GET_SEALS);
        seals = got < 0 ? 0 : static_cast<std::uint32_t>(got);
        __builtin_memcpy(s_->memfd_seals, &seals, 4);
        r.data = Blob(s_->memfd_seals, 4);
      }
      long off = sys(SYS_lseek, fd, 0, SEEK_CUR);
      r.offset = off < 0 ? 0 : static_cast<std::uint64_t>(off);
    } else if (S_ISDIR(st.st_mode)) {
      r.kind = FdKind::directory;
    } else if (S_ISFIFO(st.st_mode)) {
      r.kind = FdKind::pipe;
      // Its capacity (F_SETPIPE_SZ), which decides when a write blocks.
      long capacity = sys(SYS_fcntl, fd, F_GETPIPE_SZ);
      r.size = capacity > 0 ? static_cast<std::uint64_t>(capacity) : 0;
      if (!drain_pipe(st.st_ino, &r)) return ok = false;
    } else if (S_ISSOCK(st.st_mode)) {
      r.kind = FdKind::socket;
      long n = socket_image_data(fd, for_move_, &s_->socket, s_->error, sizeof s_->error);
      if (n < 0) return ok = false;
      r.data = Blob(s_->socket.encoded, static_cast<std::size_t>(n));
    } else {
      r.kind = FdKind::char_device;
    }
    r.uid = st.st_uid;
    r.gid = st.st_gid;
    bool ghost = r.kind == FdKind::ghost || r.kind == FdKind::memfd;
    // A shared fd's locks are its first's (the restore takes them there).
    bool pair = r.kind == FdKind::socket && s_->socket.partner != -1;
    ok = check(writer_->fd(r)) && (!ghost || write_ghost_data(fd, st)) &&
         (r.kind != FdKind::pipe || write_pipe_rest(st.st_ino, fd)) && (!pair || write_pair_queue(fd)) &&
         (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || r.kind == FdKind::shared ||
                                   write_fd_locks(writer_, fd, st.st_ino, s_->error, sizeof s_->error));
    return ok;
  });
  return ok;
}

// Takes the unread bytes out of a pipe between the process's own threads
// and puts them back, so the pipe is as it was; the fd records of its two
// ends carry them.
bool Session::drain_pipe(std::uint64_t ino, FdRecord* r) {
  int slot = -1;
  for (int i = 0; i < s_->ndrained; ++i)
    if (s_->drained[i] == ino) slot = i;
  if (slot < 0) {
    if (s_->ndrained == kMaxPipes) return fail("more than 1024 pipes between the process's threads"), false;
    slot = s_->ndrained++;
    s_->drained[slot] = ino;
    s_->carried[slot][0] = s_->carried[slot][1] = false;
    s_->rest_written[slot] = false;
    long reader = -1, writer = -1;
    for (int i = 0; i < s_->npipes; ++i) {
      if (s_->pipe_ino[i] != ino) continue;
      (s_->pipe_reader[i] ? reader : writer) = s_->pipe_fd[i];
    }
    int avail = 0;
    sys(SYS_ioctl, reader, 0x541B /* FIONREAD */, &avail);
    if (avail > static_cast<int>(kMaxPipeBytes) || s_->arena_used + static_cast<std::size_t>(avail) > kPipeArenaBytes) {
      Line(s_->error, sizeof s_->error)
          .s("fd ")
          .u(static_cast<std::uint64_t>(reader))
          .s(avail > static_cast<int>(kMaxPipeBytes) ? " is a pipe holding more than 1 MiB of unread data"
                                                      : " is a pipe, and the process's pipes hold more than 64 MiB "
                                                        "of unread data together");
      return false;
    }
    s_->pipe_at[slot] = s_->arena_used;
    s_->arena_used += static_cast<std::size_t>(avail);
    unsigned char* data = s_->pipe_arena + s_->pipe_at[slot];
    long n = 0;
    while (n < avail) {
      long got = sys(SYS_read, reader, data + n, static_cast<std::size_t>(avail - n));
      if (got <= 0) break;
      n += got;
    }
    if (n > 0 && !write_all(static_cast<int>(writer), data, static_cast<std::size_t>(n)))
      return fail("cannot put the bytes read from a pipe back"), false;
    s_->drained_len[slot] = static_cast<std::size_t>(n);
  }
  std::size_t len = s_->drained_len[slot];
  std::size_t first = len < kMaxBlob ? len : kMaxBlob;
  std::size_t second = len - first < kMaxBlob ? len - first : kMaxBlob;
  bool reader_end = (r->open_flags & O_ACCMODE) == O_RDONLY;
  if (s_->carried[slot][reader_end]) return true;
  s_->carried[slot][reader_end] = true;
  const unsigned char* data = s_->pipe_arena + s_->pipe_at[slot];
  r->data = reader_end ? Blob(data, first) : Blob(data + first, second);
  return true;
}

// After a pipe end's record: once both ends' first records are written,
// the pipe's unread bytes past the two records' share, as file data
// records at their offsets in the pipe (the restorer checks that they
// continue the records' bytes without a gap).
bool Session::write_pipe_rest(std::uint64_t ino, long fd) {
  for (int slot = 0; slot < s_->ndrained; ++slot) {
    if (s_->drained[slot] != ino || s_->rest_written[slot] || !s_->carried[slot][0] || !s_->carried[slot][1])
      continue;
    s_->rest_written[slot] = true;
    for (std::size_t at = 2 * kMaxBlob; at < s_->drained_len[slot]; at += kMaxFileData) {
      std::size_t n = s_->drained_len[slot] - at < kMaxFileData ? s_->drained_len[slot] - at : kMaxFileData;
      FileDataRecord d;
      d.fd = static_cast<std::int32_t>(fd);
      d.offset = at;
      d.data = Blob(s_->pipe_arena + s_->pipe_at[slot] + at, n);
      if (!check(writer_->file_data(d))) return false;
    }
  }
  return true;
}

// After a socketpair end's record: what was queued to be read on it, as
// file data records (image_format.h, SocketState::pair).
bool Session::write_pair_queue(long fd) {
  SocketScratch& k = s_->socket;
  if (!peek_pair_queue(fd, &k, s_->error, sizeof s_->error)) return false;
  int type = 0;
  socklen_t len = sizeof type;
  sys(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len);
  FileDataRecord d;
  d.fd = static_cast<std::int32_t>(fd);
  if (type == SOCK_STREAM) {
    for (std::size_t at = 0; at < k.queued; at += kMaxFileData) {
      d.offset = at;
      d.data = Blob(k.queue + at, k.queued - at < kMaxFileData ? k.queued - at : kMaxFileData);
      if (!check(writer_->file_data(d))) return false;
    }
    return true;
  }
  std::size_t at = 0;
  for (int i = 0; i < k.nmsgs; at += k.msg_len[i++]) {
    if (k.msg_len[i] > kMaxFileData) {
      Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
          .s(" is a socketpair end with a message of more than 64 KiB queued, which an image does not carry");
      return false;
    }
    d.offset = static_cast<std::uint64_t>(i);
    d.data = Blob(k.queue + at, k.msg_len[i]);
    if (!check(writer_->file_data(d))) return false;
  }
  return true;
}

// The coordinator's own queue and the process's, taken last so that what
// arrived while the memory was written (timers keep firing, all blocked) is
// in the image too. The other threads took theirs when they stopped.
bool Session::take_process_signals() {
  auto self = static_cast<std::int32_t>(sys(SYS_gettid));
  take_pending(s_, "SigPnd:", self, s_->line, sizeof s_->line);
  take_pending(s_, "ShdPnd:", 0, s_->line, sizeof s_->line);
  if (s_->pending_overflow.load() == 0) return true;
  Line(s_->error, sizeof s_->error)
      .s("more than ")
      .u(kMaxPending)
      .s(" signals are pending; the process keeps running with them");
  return false;
}

// Puts the signals take_pending() took back into their queues, in their
// order. rt_sigqueueinfo accepts any siginfo (SI_TIMER, SI_USER, ...) when
// a process queues to itself, but the kernel checks "itself" against the
// calling thread's tid: only the thread-group leader may do it.
void put_back_pending(Scratch* s) {
  long pid = real_pid();
  int n = s->npending.load();
  for (int i = 0; i < n && i < kMaxPending; ++i) {
    const PendingSignal& p = s->pending[i];
    if (p.signo == 0) continue;
    if (p.tid == 0)
      sys(SYS_rt_sigqueueinfo, pid, p.signo, p.info);
    else
      sys(SYS_rt_tgsigqueueinfo, pid, p.tid, p.signo, p.info);
  }
}

bool Session::is_thread(std::uint64_t tid) const {
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i)
    if (s_->threads[i].tid == tid) return true;
  return false;
}

// Reads the process's POSIX timers (timer_create) from /proc/self/timers:
//   ID: <id>
//   signal: <signo>/<sigev_value, hex>
//   notify: signal|none|thread/pid|tid.<n>
//   ClockID: <clock>
// and their settings from timer_gettime. A timer on the CPU clock of
// another process cannot be recreated: refused.
bool Session::collect_timers() {
  s_->ntimers = 0;
  long n = read_file("/proc/self/timers", s_->maps, kMapsCap);
  if (n == -ENOENT) return true;  // a kernel without CONFIG_CHECKPOINT_RESTORE has no timers file
  if (n < 0) return fail("cannot read /proc/self/timers"), false;
  s_->maps[n] = '\0';
  PosixTimerRecord* t = nullptr;
  for (const char* p = s_->maps; *p != '\0';) {
    if (starts_with(p, "ID: ")) {
      if (s_->ntimers == kMaxTimers) return fail("more than 4096 POSIX timers"), false;
      t = &s_->timers[s_->ntimers++];
      *t = PosixTimerRecord{};
      p += 4;
      t->timer_id = static_cast<std::int32_t>(parse_dec(p));
    } else if (t != nullptr && starts_with(p, "signal: ")) {
      p += 8;
      t->signo = static_cast<std::int32_t>(parse_dec(p));
      if (*p == '/') ++p;
      if (starts_with(p, "0x")) p += 2;
      t->sigev_value = parse_hex(p);
    } else if (t != nullptr && starts_with(p, "notify: ")) {
      p += 8;
      t->notify = starts_with(p, "none") ? SIGEV_NONE : starts_with(p, "thread") ? SIGEV_THREAD : SIGEV_SIGNAL;
      while (*p != '/' && *p != '\n' && *p != '\0') ++p;
      if (starts_with(p, "/tid.")) {
        t->notify |= SIGEV_THREAD_ID;
        p += 5;
        t->notify_tid = static_cast<std::int32_t>(parse_dec(p));
      }
    } else if (t != nullptr && starts_with(p, "ClockID: ")) {
      p += 9;
      bool negative = *p == '-';
      if (negative) ++p;
      auto v = static_cast<std::int64_t>(parse_dec(p));
      t->clock_id = static_cast<std::int32_t>(negative ? -v : v);
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  for (int i = 0; i < s_->ntimers; ++i) {
    PosixTimerRecord& r = s_->timers[i];
    // A CPU-time clock id encodes a pid or tid (~id >> 3; 0 is "self").
    if (r.clock_id < 0) {
      auto owner = static_cast<std::uint64_t>(~(r.clock_id >> 3));
      if (owner != 0 && owner != static_cast<std::uint64_t>(real_pid()) && !is_thread(owner)) {
        Line(s_->error, sizeof s_->error)
            .s("POSIX timer ")
            .i(r.timer_id)
            .s(" runs on the CPU clock of process ")
            .u(owner)
            .s(", which a restore cannot bring along");
        return false;
      }
    }
    long spec[4] = {};
    if (sys(SYS_timer_gettime, r.timer_id, spec) != 0) return fail("timer_gettime failed"), false;
    r.interval_ns = static_cast<std::uint64_t>(spec[0] * 1'000'000'000L + spec[1]);
    r.value_ns = static_cast<std::uint64_t>(spec[2] * 1'000'000'000L + spec[3]);
    long overrun = sys(SYS_timer_getoverrun, r.timer_id);
    r.overrun = overrun > 0 ? static_cast<std::int32_t>(overrun) : 0;
  }
  return true;
}

bool Session::write_signals_and_timers() {
  for (int i = 0; i < s_->ntimers; ++i)
    if (!check(writer_->posix_timer(s_->timers[i]))) return false;
  int n = s_->npending.load();
  for (int i = 0; i < n && i < kMaxPending; ++i) {
    const PendingSignal& p = s_->pending[i];
    if (p.signo == 0) continue;
    PendingSignalRecord r;
    r.tid = p.tid;
    r.signo = p.signo;
    r.siginfo = Blob(p.info, kSiginfoSize);
    if (!check(writer_->pending_signal(r))) return false;
  }
  return true;
}

// Parses /proc/self/maps into s_->regions, classifying each mapping; refuses
// mappings that cannot be restored (devices, System V shared memory, memfd).
bool Session::collect_regions() {
  long n = read_file("/proc/self/maps", s_->maps, kMapsCap);
  if (n < 0) return fail("cannot read /proc/self/maps (more than 4 MiB of mappings?)"), false;
  s_->maps[n] = '\0';
  auto scratch_lo = reinterpret_cast<std::uint64_t>(s_);
  auto scratch_hi = scratch_lo + scratch_size(Compression::best);
  s_->nregions = 0;
  for (char* line = s_->maps; *line != '\0';) {
    char* eol = line;
    while (*eol != '\n' && *eol != '\0') ++eol;
    bool last = *eol == '\0';
    *eol = '\0';
    const char* p = line;
    Region r{};
    r.start = parse_hex(p);
    ++p;
    r.end = parse_hex(p);
    ++p;
    r.prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
             (p[2] == 'x' ? PROT_EXEC : 0);
    bool shared = p[3] == 's';
    r.map_flags = shared ? MAP_SHARED : MAP_PRIVATE;
    p += 5;
    r.offset = parse_hex(p);
    ++p;
    std::uint64_t dev_major = parse_hex(p);  // files: from stat() below instead
    ++p;
    std::uint64_t dev_minor = parse_hex(p);
    ++p;
    std::uint64_t inode = parse_dec(p);
    while (*p == ' ') ++p;
    r.path = p;
    line = eol + 1;
    bool skip = (r.start >= kReservedLow && r.end <= kReservedHigh) ||
                cstr_eq(r.path, "[vsyscall]");
    if (!skip) {
      if (cstr_eq(r.path, "[vvar]")) {
        r.kind = RegionKind::vvar;
      } else if (cstr_eq(r.path, "[vvar_vclock]")) {
        r.kind = RegionKind::vvar_vclock;
      } else if (cstr_eq(r.path, "[vdso]")) {
        r.kind = RegionKind::vdso;
      } else if (inode == 0) {
        r.has_pages = true;
        if (shared) r.kind = RegionKind::shared_anon;
        else if (cstr_eq(r.path, "[heap]")) r.kind = RegionKind::heap;
        else if (cstr_eq(r.path, "[stack]")) r.kind = RegionKind::stack;
        else r.kind = RegionKind::anon;
        if (r.kind == RegionKind::stack) r.map_flags |= MAP_GROWSDOWN;
      } else {
        struct stat st{};
        bool same = r.path[0] == '/' && !ends_with_deleted(r.path) &&
                    sys(SYS_stat, r.path, &st) == 0 && st.st_ino == inode;
        if (same) {
          r.dev = st.st_dev;
          r.inode = st.st_ino;
          r.file_size = static_cast<std::uint64_t>(st.st_size);
          r.mtime_ns = mtime_ns(st);
        }
        if (shared && starts_with(r.path, "/dev/zero")) {
          r.kind = RegionKind::shared_anon;
          r.has_pages = true;
          r.shm = true;
          r.shm_dev = dev_major << 32 | dev_minor;
          r.inode = inode;
        } else if (shared) {
          if (!same || !S_ISREG(st.st_mode)) {
            const char* what = starts_with(r.path, "/SYSV")      ? "System V shared memory (shmat)"
                               : starts_with(r.path, "/[aio]")   ? "an AIO context's ring (io_setup)"
                               : starts_with(r.path, "/memfd:")  ? "a memfd"
                               : starts_with(r.path, "anon_inode:[io_uring]") ? "an io_uring ring"
                               : ends_with_deleted(r.path)       ? "a deleted file"
                                                                 : "not a regular file that still exists";
            Line(s_->error, sizeof s_->error)
                .s("shared mapping of ")
                .s(r.path)
                .s(" at 0x")
                .x(r.start)
                .s(" cannot be checkpointed (")
                .s(what)
                .s("); a restore cannot give it back");
            return false;
          }
          r.kind = RegionKind::shared_file;
        } else if (same && S_ISREG(st.st_mode)) {
          r.kind = RegionKind::private_file;
          r.has_pages = true;
        } else if (same && S_ISCHR(st.st_mode) && !starts_with(r.path, "/dev/zero")) {
          Line(s_->error, sizeof s_->error)
              .s("mapping of the device ")
              .s(r.path)
              .s(" at 0x")
              .x(r.start)
              .s(" cannot be checkpointed");
          return false;
        } else {
          // A private mapping of a deleted file comes back as anonymous
          // memory: pages it has not copied yet would no longer follow
          // writes through a descriptor the process holds on that file.
          for (int i = 0; i < s_->nfds; ++i) {
            if (s_->fd_ino[i] != inode) continue;
            long fl = sys(SYS_fcntl, s_->fd_num[i], F_GETFL);
            if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) continue;
            Line(s_->error, sizeof s_->error)
                .s("the mapping at 0x")
                .x(r.start)
                .s(" is of a deleted file that fd ")
                .u(static_cast<std::uint64_t>(s_->fd_num[i]))
                .s(" has open for writing, which a restore would part (writes would no longer show in the "
                   "mapping)");
            return false;
          }
          r.kind = RegionKind::anon;
          r.has_pages = true;
          r.dump_all = true;
        }
      }
      // The kernel may have merged the scratch mapping with a neighbour:
      // keep only what lies outside it.
      Region pieces[2] = {r, r};
      pieces[0].end = r.end < scratch_lo ? r.end : (r.start < scratch_lo ? scratch_lo : r.start);
      pieces[1].start = r.start > scratch_hi ? r.start : (r.end > scratch_hi ? scratch_hi : r.end);
      if (pieces[1].start > r.start) pieces[1].offset += pieces[1].start - r.start;
      for (const Region& piece : pieces) {
        if (piece.start >= piece.end) continue;
        if (s_->nregions == kMaxRegions) return fail("more than 16384 memory mappings"), false;
        s_->regions[s_->nregions++] = piece;
      }
    }
    if (last) break;
  }
  return true;
}

Region* find_region(Region* regions, int n, std::uint64_t start) {
  for (int i = 0; i < n; ++i)
    if (regions[i].start == start) return &regions[i];
  return nullptr;
}

bool is_special(RegionKind k) {
  return k == RegionKind::vvar || k == RegionKind::vvar_vclock || k == RegionKind::vdso;
}

// VmFlags of /proc/self/smaps that madvise() sets: the image carries them
// and the restore gives the advice again. Those it cannot give (flag 0) are
// refused: the restored process would behave differently.
struct AdviceFlag {
  char code[3];
  std::uint32_t flag;
  const char* what;
};
constexpr AdviceFlag kAdviceFlags[] = {
    {"wf", kRegionWipeOnFork, "MADV_WIPEONFORK"}, {"dc", kRegionDontFork, "MADV_DONTFORK"},
    {"dd", kRegionDontDump, "MADV_DONTDUMP"},     {"hg", kRegionHugepage, "MADV_HUGEPAGE"},
    {"nh", kRegionNoHugepage, "MADV_NOHUGEPAGE"}, {"mg", kRegionMergeable, "MADV_MERGEABLE"},
    {"sr", kRegionSequential, "MADV_SEQUENTIAL"}, {"rr", kRegionRandom, "MADV_RANDOM"},
    // A sealed mapping cannot be sealed before its pages are written, nor
    // written after: not restorable by a process in user space. Locked
    // memory may exceed the restarter's RLIMIT_MEMLOCK; droppable memory
    // is a mapping type the restorer does not make.
    {"sl", 0, "mseal()"},
    {"lo", 0, "mlock() or MAP_LOCKED"},
    {"dp", 0, "MAP_DROPPABLE"},
};

// Reads /proc/self/smaps once: marks the regions the kernel lets grow
// downwards (VmFlags "gd": not only [stack], programs make such mappings
// too), marks shared anonymous regions with swapped-out pages for a full
// dump (mincore() does not see shmem pages in swap), records each region's
// madvise() advice, and refuses a sealed region.
bool Session::read_smaps() {
  long n = read_file("/proc/self/smaps", s_->smaps, sizeof s_->smaps);
  if (n < 0) return fail("cannot read /proc/self/smaps (more than 8 MiB of it?)"), false;
  s_->smaps[n] = '\0';
  Region* r = nullptr;
  for (const char* p = s_->smaps; *p != '\0';) {
    const char* q = p;
    std::uint64_t v = parse_hex(q);
    if (*q == '-') {
      r = find_region(s_->regions, s_->nregions, v);
    } else if (r != nullptr && starts_with(p, "Swap:")) {
      q = p + 5;
      while (*q == ' ') ++q;
      if (r->shm && parse_dec(q) > 0) r->dump_all = true;
    } else if (r != nullptr && starts_with(p, "VmFlags:")) {
      for (const char* f = p + 8; *f != '\n' && *f != '\0'; ++f) {
        if (f[0] != ' ' || f[1] == '\0' || f[2] == '\0' || (f[3] != ' ' && f[3] != '\n')) continue;
        if (f[1] == 'g' && f[2] == 'd') r->map_flags |= MAP_GROWSDOWN;
        if (f[1] == 'n' && f[2] == 'r') r->map_flags |= MAP_NORESERVE;
        if (f[1] == 'm' && f[2] == 'w' && r->kind == RegionKind::shared_file && (r->prot & PROT_WRITE) == 0)
          r->advice |= kRegionMayWrite;
        if (is_special(r->kind)) continue;
        for (const AdviceFlag& a : kAdviceFlags) {
          if (f[1] != a.code[0] || f[2] != a.code[1]) continue;
          if (a.flag != 0) {
            r->advice |= a.flag;
            continue;
          }
          Line(s_->error, sizeof s_->error)
              .s("the mapping at 0x")
              .x(r->start)
              .s(" has ")
              .s(a.what)
              .s(" set, which a restore does not bring back");
          return false;
        }
      }
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return true;
}

// pagemap bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr int kPmPresent = 63, kPmSwapped = 62, kPmFile = 61, kPmGuard = 58;

// Refuses guard pages (madvise MADV_GUARD_INSTALL): the kernel shows them in
// pagemap as swapped pages, but reading one faults, and a restore does not
// install them again. Checked before any page is read: a checkpoint must
// never fault in the process it reads.
bool Session::check_guard_pages() {
  long fd = sys(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("cannot open /proc/self/pagemap"), false;
  bool ok = true;
  for (int k = 0; k < s_->nregions && ok; ++k) {
    const Region& r = s_->regions[k];
    if (is_special(r.kind)) continue;
    for (std::uint64_t base = r.start; base < r.end && ok; base += kPagemapBatch * kPageSize) {
      std::uint64_t pages = (r.end - base) / kPageSize;
      if (pages > kPagemapBatch) pages = kPagemapBatch;
      long got = sys(SYS_pread64, fd, s_->pagemap, pages * 8, (base / kPageSize) * 8);
      if (got != static_cast<long>(pages * 8)) {
        ok = false;
        fail("cannot read /proc/self/pagemap");
        break;
      }
      for (std::uint64_t i = 0; i < pages; ++i) {
        if (((s_->pagemap[i] >> kPmGuard) & 1) == 0) continue;
        Line(s_->error, sizeof s_->error)
            .s("the mapping at 0x")
            .x(r.start)
            .s(" has a guard page (madvise MADV_GUARD_INSTALL) at 0x")
            .x(base + i * kPageSize)
            .s(", which a restore does not bring back");
        ok = false;
        break;
      }
    }
  }
  sys(SYS_close, fd);
  return ok;
}

// Shared anonymous memory is restored as a new object that only the
// restored process maps, and a ghost file as a new file only it holds. So
// each is refused when another live process maps the same object or holds
// the same file (a parent or child it was inherited from or by: their writes
// would no longer be seen), and shared anonymous memory when this process
// maps one part of the object twice (after the restore the two views would
// be separate).
bool Session::check_held_elsewhere() {
  bool any = s_->nghosts > 0 || s_->nanon > 0;
  for (int i = 0; i < s_->nregions; ++i) {
    const Region& a = s_->regions[i];
    if (!a.shm) continue;
    any = true;
    for (int k = i + 1; k < s_->nregions; ++k) {
      const Region& b = s_->regions[k];
      if (!b.shm || b.inode != a.inode || b.shm_dev != a.shm_dev) continue;
      std::uint64_t a_end = a.offset + (a.end - a.start), b_end = b.offset + (b.end - b.start);
      if (a.offset < b_end && b.offset < a_end) {
        Line(s_->error, sizeof s_->error)
            .s("the shared anonymous mappings at 0x")
            .x(a.start)
            .s(" and 0x")
            .x(b.start)
            .s(" show the same memory, which a restore would make two");
        return false;
      }
    }
  }
  if (!any) return true;
  auto self = static_cast<std::uint64_t>(real_pid());
  int listed = for_each_proc_pid(s_->line, sizeof s_->line, self, [&](std::uint64_t pid) {
    char path[64];
    Line(path, sizeof path).s("/proc/").u(pid).s("/maps");
    // Another user's process (EACCES) cannot have inherited it from us.
    long len = read_file(path, s_->smaps, sizeof s_->smaps - 1);
    if (len == -ENOSPC) {
      Line(s_->error, sizeof s_->error).s("cannot tell whether process ").u(pid)
          .s(" shares memory with this one (its maps are larger than 8 MiB)");
      return false;
    }
    if (len <= 0) return true;
    s_->smaps[len] = '\0';
    for (const char* p = s_->smaps; *p != '\0';) {
      // start-end perms offset major:minor inode path
      const char* f = p;
      for (int field = 0; field < 3 && *f != '\n' && *f != '\0'; ++field) {
        while (*f != ' ' && *f != '\n' && *f != '\0') ++f;
        while (*f == ' ') ++f;
      }
      std::uint64_t major = parse_hex(f);
      if (*f == ':') ++f;
      std::uint64_t minor = parse_hex(f);
      while (*f == ' ') ++f;
      std::uint64_t inode = parse_dec(f);
      for (int i = 0; i < s_->nregions && inode != 0; ++i) {
        const Region& r = s_->regions[i];
        if (!r.shm || r.inode != inode || r.shm_dev != (major << 32 | minor)) continue;
        Line(s_->error, sizeof s_->error)
            .s("the shared anonymous mapping at 0x")
            .x(r.start)
            .s(" is shared with process ")
            .u(pid)
            .s(", which the checkpoint does not take along");
        return false;
      }
      for (int i = 0; i < s_->nghosts && inode != 0; ++i) {
        if (s_->ghost_ino[i] != inode) continue;
        Line(s_->error, sizeof s_->error).s("a deleted file the process holds open (inode ").u(inode)
            .s(") is mapped by process ").u(pid).s(", which the checkpoint does not take along");
        return false;
      }
      while (*p != '\n' && *p != '\0') ++p;
      if (*p == '\n') ++p;
    }
    if (s_->nghosts == 0 && s_->nanon == 0) return true;
    char fd_dir[64], dents[1024];
    Line(fd_dir, sizeof fd_dir).s("/proc/").u(pid).s("/fd");
    return for_each_numbered_entry(fd_dir, dents, sizeof dents, [&](std::uint64_t fd, long) {
             char link[96];
             Line(link, sizeof link).s(fd_dir).s("/").u(fd);
             // A signalfd, eventfd or timerfd of another process is ours
             // when kcmp says it is one open file with one of ours.
             for (int i = 0; i < s_->nanon; ++i) {
               long same = sys(SYS_kcmp, self, pid, 0 /* KCMP_FILE */, s_->anon_fd[i], fd);
               if (same != 0) continue;
               Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(s_->anon_fd[i]))
                   .s(" (").s(anon_kind_of(s_->anon_fd[i])).s(") is held by process ").u(pid)
                   .s(" too, which the checkpoint does not take along");
               return false;
             }
             struct stat st{};
             if (sys(SYS_stat, link, &st) != 0 || ghost_index(st) < 0) return true;
             Line(s_->error, sizeof s_->error).s("a deleted file the process holds open (inode ")
                 .u(static_cast<std::uint64_t>(st.st_ino)).s(") is open in process ").u(pid)
                 .s(" too, which the checkpoint does not take along");
             return false;
           }) != 0;
  });
  if (listed < 0) return fail("cannot list /proc"), false;
  return listed == 1;
}

// Settings of the process that the restore does not set again: refused
// when they differ from what a restored process would have.
bool Session::check_settings() {
  if (__atomic_load_n(&g_sem_undo, __ATOMIC_RELAXED) != 0)
    return fail("the process used SEM_UNDO on a System V semaphore (semop): the kernel keeps an undo entry for "
                "it that a restore cannot recreate, and applies it when this process ends"),
           false;
  long len = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/cwd", s_->cwd, sizeof s_->cwd - 1);
  s_->cwd[len < 0 ? 0 : len] = '\0';
  if (ends_with_deleted(s_->cwd) || starts_with(s_->cwd, "/proc/")) {
    Line(s_->error, sizeof s_->error).s("the working directory ").s(s_->cwd)
        .s(ends_with_deleted(s_->cwd) ? " was removed" : " is in /proc, named by a pid")
        .s(", and a restore could not enter it; change directory before the checkpoint");
    return false;
  }
  // Seccomp filters and no_new_privs belong to each thread. A filter cannot
  // be read back without privileges, so it cannot be installed again: a
  // thread with more filters than its parent process (whose filters a
  // restarter started the same way inherits too: a container's) is refused.
  // no_new_privs is given back (write_process) when every thread has it.
  char parent_status[64];
  Line(parent_status, sizeof parent_status).s("/proc/").u(static_cast<std::uint64_t>(sys(SYS_getppid))).s("/status");
  long parent_filters = 0;
  if (long n = read_file(parent_status, s_->maps, kMapsCap - 1); n > 0) {
    s_->maps[n] = '\0';
    parent_filters = status_number(s_->maps, "Seccomp_filters:");
  }
  long nnp_threads = 0;
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/task/").u(s_->threads[i].tid).s("/status");
    long n = read_file(path, s_->maps, kMapsCap - 1);
    if (n <= 0) continue;
    s_->maps[n] = '\0';
    long mode = status_number(s_->maps, "Seccomp:");
    long filters = status_number(s_->maps, "Seccomp_filters:");
    if (mode == 1 || (mode == 2 && (filters < 0 || filters > parent_filters))) {
      Line(s_->error, sizeof s_->error).s("thread ").u(s_->threads[i].tid)
          .s(mode == 2 ? " installed a seccomp filter" : " runs in seccomp strict mode")
          .s(", which a restore cannot install again (the kernel does not show a filter without privileges)");
      return false;
    }
    if (status_number(s_->maps, "NoNewPrivs:") == 1) ++nnp_threads;
  }
  if (nnp_threads != 0 && nnp_threads != s_->slots.load())
    return fail("some threads set no_new_privs (PR_SET_NO_NEW_PRIVS) and others not, which a restore does not "
                "give back"),
           false;
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    if (!s_->threads[i].rseq_foreign) continue;
    Line(s_->error, sizeof s_->error)
        .s("thread ")
        .u(s_->threads[i].tid)
        .s(" registered an rseq area of its own (not glibc's), which a restore does not register again");
    return false;
  }
  // membarrier() registrations of the process: an expedited command answers
  // EPERM until the process registered for it (probing costs one barrier).
  struct {
    int cmd;
    const char* what;
  } const barriers[] = {{8, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED"},
                        {32, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE"},
                        {128, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ"}};
  for (const auto& b : barriers) {
    if (sys(SYS_membarrier, b.cmd, 0, 0) != 0) continue;
    Line(s_->error, sizeof s_->error)
        .s("the process registered with membarrier (")
        .s(b.what)
        .s("), which a restore does not register again");
    return false;
  }
  int subreaper = 0;
  if (sys(SYS_prctl, PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0 && subreaper != 0)
    return fail("the process is a child subreaper (PR_SET_CHILD_SUBREAPER), which a restore does not set again"),
           false;
  if (sys(SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0) > 0)
    return fail("the process disabled transparent huge pages (PR_SET_THP_DISABLE), which a restore does not set again"),
           false;
  // oom_score_adj and loginuid are inherited: a restored process gets its
  // restarter's, which, for one started the same way, is its parent's. Only
  // a value the process (or one for it) changed is refused; neither can be
  // set back without privileges.
  for (const char* name : {"oom_score_adj", "loginuid"}) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/").s(name);
    long own = read_file(path, s_->line, 64);
    Line(path, sizeof path).s("/proc/").u(static_cast<std::uint64_t>(sys(SYS_getppid))).s("/").s(name);
    long parent = read_file(path, s_->link, 64);
    if (own > 0 && parent > 0 &&
        (own != parent || __builtin_memcmp(s_->line, s_->link, static_cast<std::size_t>(own)) != 0)) {
      s_->line[s_->line[own - 1] == '\n' ? own - 1 : own] = '\0';
      Line(s_->error, sizeof s_->error)
          .s("the process's ")
          .s(name)
          .s(" is ")
          .s(s_->line)
          .s(", not its parent's, and a restore cannot set it again");
      return false;
    }
  }
  return true;
}

// A checkpoint takes one process. Its children, live or not yet waited for,
// would not be in the image: after a restore wait() would say "no child
// processes" and signals to them would go nowhere. Refused until whole
// trees are supported. The children of each thread are in
// /proc/self/task/TID/children (CONFIG_PROC_CHILDREN); without that file,
// /proc is scanned for processes whose parent is this one.
bool Session::check_children() {
  std::uint64_t live = 0, zombies = 0;
  char pids[160];
  Line list(pids, sizeof pids);
  auto count = [&](std::uint64_t pid, char state) {
    if (state == 'Z' || state == 'X') {
      ++zombies;
    } else {
      ++live;
      if (live <= 8) list.s(live == 1 ? "" : " ").u(pid);
    }
  };
  auto state_of = [&](std::uint64_t pid, std::uint64_t* ppid) -> char {
    char path[64];
    Line(path, sizeof path).s("/proc/").u(pid).s("/stat");
    long n = read_file(path, s_->link, sizeof s_->link - 1);
    if (n <= 0) return 0;
    s_->link[n] = '\0';
    const char* close = nullptr;
    for (const char* c = s_->link; *c != '\0'; ++c)
      if (*c == ')') close = c;
    if (close == nullptr || close[1] == '\0' || close[2] == '\0') return 0;
    const char* q = close + 4;
    if (ppid != nullptr) *ppid = parse_dec(q);
    return close[2];
  };
  bool have_children_files = true;
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/task/").u(s_->threads[i].tid).s("/children");
    long n = read_file(path, s_->maps, kMapsCap - 1);
    if (n == -ENOENT && i == 0) {
      have_children_files = false;
      break;
    }
    if (n < 0) continue;
    s_->maps[n] = '\0';
    for (const char* p = s_->maps; *p != '\0';) {
      while (*p == ' ' || *p == '\n') ++p;
      if (*p < '0' || *p > '9') break;
      std::uint64_t pid = parse_dec(p);
      char st = state_of(pid, nullptr);
      if (st != 0) count(pid, st);
    }
  }
  if (!have_children_files) {
    auto self = static_cast<std::uint64_t>(real_pid());
    int listed = for_each_proc_pid(s_->line, sizeof s_->line, self, [&](std::uint64_t pid) {
      std::uint64_t ppid = 0;
      char st = state_of(pid, &ppid);
      if (st != 0 && ppid == self) count(pid, st);
      return true;
    });
    if (listed < 0) return fail("cannot list /proc"), false;
  }
  if (live == 0 && zombies == 0) return true;
  Line e(s_->error, sizeof s_->error);
  e.s("has ");
  if (live > 0) e.u(live).s(live == 1 ? " live child (pid " : " live children (pids ").s(pids).s(live > 8 ? " ...)" : ")");
  if (live > 0 && zombies > 0) e.s(" and ");
  if (zombies > 0) e.u(zombies).s(zombies == 1 ? " ended child" : " ended children").s(" not yet waited for");
  e.s(": a checkpoint takes one process and would lose them");
  return false;
}

bool Session::write_header() {
  HeaderRecord h;
  describe_this_machine(&h.machine);
  Line(h.mosix_version, sizeof h.mosix_version).s(MOSIX_VERSION_STRING);
  struct utsname u{};
  sys(SYS_uname, &u);
  Line(h.hostname, sizeof h.hostname).s(u.nodename);
  h.pid = g_vpid;
  h.real_pid = real_pid();
  h.created_ns = now_ns(CLOCK_REALTIME);
  return check(writer_->header(h));
}

// Fields of /proc/self/stat after the command name, numbered as in proc(5).
// Fields 3-52 of a /proc stat file (a negative one as its two's complement).
bool read_stat_fields(const char* path, char* buf, std::size_t cap, std::uint64_t out[53]) {
  long n = read_file(path, buf, cap);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* close = nullptr;
  for (const char* q = buf; *q != '\0'; ++q)
    if (*q == ')') close = q;
  if (close == nullptr) return false;
  const char* p = close + 2;
  for (int field = 3; field <= 52 && *p != '\0'; ++field) {
    bool negative = *p == '-';
    if (negative) ++p;
    std::uint64_t v = parse_dec(p);
    out[field] = negative ? ~v + 1 : v;
    while (*p != ' ' && *p != '\0') ++p;
    if (*p == ' ') ++p;
  }
  return true;
}

// Each thread's nice value and policy (/proc/self/task/TID/stat fields 19
// and 41), given back by the restore; a real-time policy is refused (an
// unprivileged restore could not set it again).
bool Session::write_thread_sched() {
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    char path[64];
    std::uint64_t f[53] = {};
    Line(path, sizeof path).s("/proc/self/task/").u(s_->threads[i].tid).s("/stat");
    if (!read_stat_fields(path, s_->line, sizeof s_->line - 1, f)) continue;  // the thread is gone
    auto nice = static_cast<std::int32_t>(f[19]);
    auto policy = static_cast<std::uint32_t>(f[41]);
    if (policy != SCHED_OTHER && policy != SCHED_BATCH && policy != SCHED_IDLE) {
      Line(s_->error, sizeof s_->error).s("thread ").u(s_->threads[i].tid)
          .s(" runs under a real-time scheduling policy (").u(policy)
          .s("), which a restore without privileges cannot set again");
      return false;
    }
    ThreadSchedRecord r;
    r.thread = static_cast<std::uint32_t>(i);
    r.nice = nice;
    r.policy = policy;
    if (!check(writer_->thread_sched(r))) return false;
  }
  return true;
}

bool Session::write_process() {
  ProcessRecord r;
  r.pid = g_vpid;
  r.ppid = g_vppid;
  r.pgid = static_cast<std::int32_t>(sys(SYS_getpgid, 0));
  r.sid = static_cast<std::int32_t>(sys(SYS_getsid, 0));
  long old = sys(SYS_umask, 0);
  sys(SYS_umask, old);
  r.umask = static_cast<std::uint32_t>(old);
  r.personality = static_cast<std::uint32_t>(sys(SYS_personality, 0xffffffffUL));
  static_assert(sizeof(ThreadState::name) == 16);
  r.comm = s_->threads[0].name;
  long len = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/cwd", s_->cwd, sizeof s_->cwd - 1);
  if (len < 0) return fail("cannot read the working directory"), false;
  s_->cwd[len] = '\0';
  r.cwd = s_->cwd;
  if (sys(SYS_prctl, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) r.flags |= kProcessNoNewPrivs;
  // The auxiliary vector as /proc/self/auxv shows it; the restore gives it
  // back (PR_SET_MM_MAP), since the restorer's own differs.
  long auxv = read_file("/proc/self/auxv", reinterpret_cast<char*>(s_->auxv), sizeof s_->auxv);
  if (auxv < 0 || auxv == static_cast<long>(sizeof s_->auxv))
    return fail("cannot read /proc/self/auxv (or it is larger than 1 KiB)"), false;
  r.auxv = Blob(s_->auxv, static_cast<std::size_t>(auxv));
  len = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", s_->exe, sizeof s_->exe - 1);
  s_->exe[len < 0 ? 0 : len] = '\0';
  r.exe = s_->exe;
  std::uint64_t f[53] = {};
  if (!read_stat_fields("/proc/self/stat", s_->line, sizeof s_->line - 1, f))
    return fail("cannot read /proc/self/stat"), false;
  r.start_brk = f[47];
  r.brk = static_cast<std::uint64_t>(sys(SYS_brk, 0));
  r.start_stack = f[28];
  r.arg_start = f[48];
  r.arg_end = f[49];
  r.env_start = f[50];
  r.env_end = f[51];
  r.rlimit_count = kMaxRlimits;
  for (std::uint32_t i = 0; i < kMaxRlimits; ++i) {
    std::uint64_t lim[2] = {};
    sys(SYS_prlimit64, 0, i, nullptr, lim);
    r.rlimits[i] = Rlimit{lim[0], lim[1]};
  }
  r.signal_count = kMaxSignals;
  for (std::uint32_t sig = 1; sig <= kMaxSignals; ++sig) {
    std::uint64_t raw[4] = {};
    if (sys(SYS_rt_sigaction, sig, nullptr, raw, 8) == 0)
      r.sigactions[sig - 1] = KernelSigaction{raw[0], raw[1], raw[2], raw[3]};
  }
  for (int which = 0; which < 3; ++which) {
    long it[4] = {};
    sys(SYS_getitimer, which, it);
    r.itimers[which].interval_ns = static_cast<std::uint64_t>(it[0] * 1'000'000'000L + it[1] * 1000);
    r.itimers[which].value_ns = static_cast<std::uint64_t>(it[2] * 1'000'000'000L + it[3] * 1000);
    // A periodic ITIMER_REAL whose SIGALRM is still queued reads 0: the
    // kernel re-arms it only when the signal is taken. It is armed all the
    // same; it fires again one interval on.
    if (r.itimers[which].value_ns == 0) r.itimers[which].value_ns = r.itimers[which].interval_ns;
  }
  return check(writer_->process(r));
}

// The kernel's x86-64 layout of the FXSAVE area's software bytes, which say
// whether an XSAVE area follows and how large it is.
constexpr std::size_t kSwBytesOffset = 464;
constexpr std::uint32_t kFpXstateMagic1 = 0x46505853;

bool Session::write_thread(const ThreadState& t, bool leader) {
  ThreadRecord r;
  r.tid = static_cast<std::int32_t>(t.tid);
  r.flags = leader ? kThreadLeader : 0;
  r.name = t.name;
  // The registers as the kernel saved them in the signal frame: after an
  // interrupted system call they already say "restart" (SA_RESTART) or hold
  // -EINTR, exactly what the kernel would resume with.
  r.regs_kind = RegsKind::x86_64_ucontext;
  r.regs = Blob(reinterpret_cast<const std::uint8_t*>(t.uc->uc_mcontext.gregs),
                sizeof t.uc->uc_mcontext.gregs);
  // The FPU/SSE/AVX state in the frame: an XSAVE area in the standard format
  // when the kernel's software bytes say so, else the legacy FXSAVE area.
  const auto* fp = reinterpret_cast<const std::uint8_t*>(t.uc->uc_mcontext.fpregs);
  if (fp != nullptr) {
    std::uint32_t magic1, xstate_size;
    __builtin_memcpy(&magic1, fp + kSwBytesOffset, 4);
    __builtin_memcpy(&xstate_size, fp + kSwBytesOffset + 16, 4);
    if (magic1 == kFpXstateMagic1) {
      r.xstate_kind = XstateKind::x86_64_xsave;
      r.xstate = Blob(fp, xstate_size);
    } else {
      r.xstate_kind = XstateKind::x86_64_fxsave;
      r.xstate = Blob(fp, 512);
    }
  }
  r.fs_base = t.fs_base;
  r.gs_base = t.gs_base;
  __builtin_memcpy(&r.sigmask, &t.uc->uc_sigmask, 8);
  r.altstack_sp = reinterpret_cast<std::uint64_t>(t.uc->uc_stack.ss_sp);
  r.altstack_size = t.uc->uc_stack.ss_size;
  r.altstack_flags = t.uc->uc_stack.ss_flags;
  r.robust_list = t.robust_list;
  r.robust_list_len = t.robust_len;
  r.clear_child_tid = t.tid_address;
  if (t.rseq != 0) {
    r.rseq_addr = t.rseq;
    r.rseq_len = kRseqLen;
    r.rseq_sig = kRseqSig;
  }
  return check(writer_->thread(r));
}

// Writes the pages of one region that cannot be had otherwise: present or
// swapped pages of anonymous memory (the writer leaves out all-zero ones),
// and of private file mappings only the pages the program changed (no longer
// the file's page cache page).
bool Session::write_pages(const Region& r) {
  bool unreadable = (r.prot & PROT_READ) == 0;
  bool ok = true;
  bool mprotected = false;
  std::uint64_t run_start = 0, run_len = 0;
  auto flush_run = [&]() {
    if (run_len == 0) return true;
    if (unreadable && !mprotected) {
      sys(SYS_mprotect, r.start, r.end - r.start, r.prot | PROT_READ);
      mprotected = true;
    }
    bool w = check(writer_->pages(run_start - r.start, reinterpret_cast<const void*>(run_start),
                                  run_len));
    run_len = 0;
    return w;
  };
  for (std::uint64_t base = r.start; base < r.end && ok; base += kPagemapBatch * kPageSize) {
    std::uint64_t pages = (r.end - base) / kPageSize;
    if (pages > kPagemapBatch) pages = kPagemapBatch;
    long got = sys(SYS_pread64, pagemap_fd_, s_->pagemap, pages * 8, (base / kPageSize) * 8);
    if (got != static_cast<long>(pages * 8)) {
      fail("cannot read /proc/self/pagemap");
      ok = false;
      break;
    }
    // A shared anonymous page may exist without being in this process's
    // page table (another process wrote it, or this one only after a
    // fork): the shmem object's page cache says which exist.
    if (r.shm && sys(SYS_mincore, base, pages * kPageSize, s_->incore) != 0) {
      fail("mincore() failed on a shared anonymous mapping");
      ok = false;
      break;
    }
    for (std::uint64_t i = 0; i < pages && ok; ++i) {
      std::uint64_t pm = s_->pagemap[i];
      bool present = (pm >> kPmPresent) & 1, swapped = (pm >> kPmSwapped) & 1, file = (pm >> kPmFile) & 1;
      std::uint64_t addr = base + i * kPageSize;
      bool dump;
      if (r.dump_all) dump = true;
      else if (r.shm) dump = present || swapped || (s_->incore[i] & 1) != 0;
      else if (r.kind == RegionKind::private_file) dump = (present && !file) || swapped;
      else dump = present || swapped;
      if (dump && run_len > 0 && run_start + run_len == addr) {
        run_len += kPageSize;
        continue;
      }
      ok = flush_run();
      if (dump) {
        run_start = addr;
        run_len = kPageSize;
      }
    }
  }
  ok = ok && flush_run();
  if (mprotected) sys(SYS_mprotect, r.start, r.end - r.start, r.prot);
  return ok;
}

bool Session::write_image() {
  out_fd_ = sys(SYS_openat, AT_FDCWD, out_path_, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out_fd_ < 0) return fail("cannot create the image file"), false;
  // A FIFO (an image streamed to a reader) gets a 1 MiB buffer, one chunk:
  // four times fewer switches to the reader than the default 64 KiB.
  sys(SYS_fcntl, out_fd_, F_SETPIPE_SZ, 1 << 20);
  pagemap_fd_ = sys(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap_fd_ < 0) return fail("cannot open /proc/self/pagemap"), false;
  WriterScratch ws;
  std::size_t head = (sizeof(Scratch) + 4095) & ~std::size_t{4095};
  if (!ws.attach(compression_, reinterpret_cast<char*>(s_) + head,
                 WriterScratch::required_size(compression_)))
    return fail("the image writer's working memory is too small"), false;
  ImageWriter writer(Sink{this, &Session::sink_write}, compression_, &ws);
  writer_ = &writer;
  bool ok = write_header() && write_process();
  for (int i = 0; ok && i < s_->slots.load(); ++i) ok = write_thread(s_->threads[i], i == 0);
  ok = ok && write_thread_sched();
  for (int i = 0; ok && i < s_->nregions; ++i) {
    const Region& g = s_->regions[i];
    RegionRecord r;
    r.start = g.start;
    r.end = g.end;
    r.prot = g.prot;
    r.map_flags = g.map_flags;
    r.kind = g.kind;
    r.flags = (g.has_pages ? kRegionHasPages : 0) | g.advice;
    r.offset = g.offset;
    r.path = g.path;
    r.file_dev = g.dev;
    r.file_inode = g.inode;
    r.file_size = g.file_size;
    r.file_mtime_ns = g.mtime_ns;
    ok = check(writer.region(r)) && (!g.has_pages || write_pages(g));
  }
  ok = ok && write_fds() && collect_timers() && take_process_signals() && write_signals_and_timers() &&
       check(writer.finish());
  writer_ = nullptr;
  return ok;
}

// Unmaps what a restorer left behind in its reserved range (its hand-over
// trampoline): no thread runs there any more, and the next restorer needs
// the range.
void unmap_reserved_leftovers(Scratch* s) {
  long n = read_file("/proc/self/maps", s->maps, kMapsCap);
  if (n < 0) return;
  s->maps[n] = '\0';
  for (const char* p = s->maps; *p != '\0';) {
    std::uint64_t lo = parse_hex(p);
    ++p;
    std::uint64_t hi = parse_hex(p);
    if (lo >= kReservedLow && hi <= kReservedHigh) sys(SYS_munmap, lo, hi - lo);
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
}

void Session::run() {
  if (!read_request()) {
    if (status_fd_ >= 0) {
      status("error the checkpoint request could not be read\n");
      sys(SYS_close, status_fd_);
    }
    return;
  }
  // A child of clone() that never forked through libc takes its own
  // identity now: every thread is stopped, and the image must name it.
  current_vpid(true);
  // Every signal is blocked (on_request), so a reader that goes away fails
  // the write instead of killing the process.
  bool ok = stop_threads() && check_children() && check_settings() && check_fds();
  if (ok) unmap_reserved_leftovers(s_);
  ok = ok && collect_regions() && read_smaps() && check_guard_pages() && check_held_elsewhere();
  // The image carries this mark; the process restored from it sees it and
  // knows its new real pid is still g_vpid (current_vpid()).
  g_image_real = g_vpid_real;
  ok = ok && write_image();
  g_image_real = 0;
  if (out_fd_ >= 0) sys(SYS_close, out_fd_);
  if (pagemap_fd_ >= 0) sys(SYS_close, pagemap_fd_);
  // A SIGPIPE queued now came from writing the image (the program's own
  // were taken out above): drop it.
  std::uint64_t pipe_mask = 1ULL << (SIGPIPE - 1);
  timespec zero{};
  while (sys(SYS_rt_sigtimedwait, &pipe_mask, nullptr, &zero, 8) == SIGPIPE) {
  }
  char line[sizeof s_->error + 32];
  if (ok)
    Line(line, sizeof line).s("ok ").u(written_).s("\n");
  else
    Line(line, sizeof line).s("error ").s(s_->error).s("\n");
  status(line);
  sys(SYS_close, status_fd_);
  if (ok && mode_ == AfterCheckpoint::kKill) sys(SYS_kill, real_pid(), SIGKILL);
  if (sys(SYS_gettid) == real_pid())
    put_back_pending(s_);
  else
    s_->put_back.store(1);  // the leader does it on its way out of on_stop
  if (ok && mode_ == AfterCheckpoint::kStop) sys(SYS_kill, real_pid(), SIGSTOP);
  release_threads();
}

// Runs fn(arg) on another stack. The coordinator works on a stack inside
// its scratch mapping: its own stack is part of the image and must not
// change while it is being written.
extern "C" void mosix_agent_call_on_stack(void (*fn)(void*), void* arg, void* top)
    __attribute__((visibility("hidden")));
asm(R"(
    .text
    .globl mosix_agent_call_on_stack
    .hidden mosix_agent_call_on_stack
    .type mosix_agent_call_on_stack, @function
mosix_agent_call_on_stack:
    push %rbp
    mov %rsp, %rbp
    mov %rdx, %rsp
    mov %rdi, %rax
    mov %rsi, %rdi
    call *%rax
    mov %rbp, %rsp
    pop %rbp
    ret
    .size mosix_agent_call_on_stack, .-mosix_agent_call_on_stack
)");

struct SessionArgs {
  Scratch* s;
  void* uc;
};

void run_session(void* arg) {
  auto* a = static_cast<SessionArgs*>(arg);
  Session(a->s, a->uc).run();
}

// Handler of kRequestSignal: this thread becomes the coordinator.
void on_request(int, siginfo_t*, void* uc) {
  pid_t pid = real_pid();
  if (g_busy_pid.load() == pid) return;
  g_busy_pid.store(pid);
  int saved_errno = errno;
  block_all_signals();
  // Before the image is written: a wait this cut short is resumed, for what
  // was left at this moment in a restored process (waits.cpp).
  __atomic_add_fetch(&g_stops, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&g_stop_mono_ns, now_ns(CLOCK_MONOTONIC), __ATOMIC_RELAXED);
  note_thread_id();
  // Sized for the most demanding compression; untouched pages cost nothing.
  std::size_t size = scratch_size(Compression::best);
  long mem = sys(SYS_mmap, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem < 0 && mem > -4096) {
    g_busy_pid.store(0);
    errno = saved_errno;
    return;
  }
  auto* s = reinterpret_cast<Scratch*>(mem);
  g_scratch.store(s, std::memory_order_release);
  SessionArgs args{s, uc};
  mosix_agent_call_on_stack(run_session, &args, s->stack + sizeof s->stack);
  g_scratch.store(nullptr, std::memory_order_release);
  sys(SYS_munmap, mem, size);
  g_busy_pid.store(0);
  errno = saved_errno;
}

}  // namespace

void install_checkpoint_handlers() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr) {
    g_xdg_runtime_dir_too_long = !Line(g_xdg_runtime_dir, sizeof g_xdg_runtime_dir).s(xdg).ok();
  }
  auto real = real_sigaction();
  if (real == nullptr) return;
  struct sigaction sa{};
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, kRequestSignal);
  sigaddset(&sa.sa_mask, kStopSignal);
  sa.sa_sigaction = on_request;
  real(kRequestSignal, &sa, nullptr);
  sa.sa_sigaction = on_stop;
  real(kStopSignal, &sa, nullptr);
}

}  // namespace mosix::agent
