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
#include "compat/agent/raw.h"
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

#include "compat/agent/session.h"

namespace mosix::agent::checkpoint {

std::size_t scratch_size(Compression c) {
  std::size_t head = (sizeof(Scratch) + 4095) & ~std::size_t{4095};
  return (head + WriterScratch::required_size(c) + 4095) & ~std::size_t{4095};
}

namespace {

std::atomic<Scratch*> g_scratch{nullptr};
// The real pid of a process in the middle of a checkpoint. A restored process
// has another real pid, so the value it finds in its memory means "idle".
std::atomic<pid_t> g_busy_pid{0};
// The same pid when a request signal came during that session: it is sent
// again once the session ends (on_request).
std::atomic<pid_t> g_missed_pid{0};

}  // namespace

long now_ns(clockid_t clock) {
  timespec ts{};
  sys(SYS_clock_gettime, clock, &ts);
  return ts.tv_sec * 1'000'000'000L + ts.tv_nsec;
}

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

void Session::status(const char* text) {
  if (status_fd_ < 0) return;
  write_all(static_cast<int>(status_fd_), text, cstr_len(text));
}

// The last status line ("ok <bytes>" or "error <why>"); the channel closes.
void Session::answer(bool ok) {
  char line[sizeof s_->error + 32];
  if (ok)
    Line(line, sizeof line).s("ok ").u(written_).s("\n");
  else
    Line(line, sizeof line).s("error ").s(s_->error).s("\n");
  status(line);
  sys(SYS_close, status_fd_);
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

namespace {

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

}  // namespace

// Reads and removes `<runtime dir>/ckpt-<pid>.req`; ignores a directory or
// file that another user could have written.
bool Session::read_request() {
  char dir[256];
  if (!mosix::agent::trusted_runtime_dir(dir, sizeof dir)) return false;
  struct stat st{};
  long uid = sys(SYS_getuid);
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
    } else if (cstr_eq(line, "precopy=1")) {
      precopied_ = true;
    } else if (cstr_eq(line, "track=start")) {
      track_ = Tracking::kStart;
    } else if (cstr_eq(line, "track=stop")) {
      track_ = Tracking::kStop;
    } else if (starts_with(line, "tree=")) {
      tree_path_ = line + 5;
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
    // Pre-copied: the target holds the region's pages as the last round
    // read them; only those written since are in the image.
    bool pre = precopied_ && g.tracked && g.has_pages &&
               (g.kind == RegionKind::anon || g.kind == RegionKind::heap || g.kind == RegionKind::stack);
    r.flags = (g.has_pages ? kRegionHasPages : 0) | (pre ? kRegionPrecopied : 0) | g.advice;
    r.offset = g.offset;
    r.path = g.path;
    r.file_dev = g.dev;
    r.file_inode = g.inode;
    r.file_size = g.file_size;
    r.file_mtime_ns = g.mtime_ns;
    ok = check(writer.region(r)) && (!g.has_pages || (pre ? write_written_pages(g) : write_pages(g)));
  }
  ok = ok && write_fds() && collect_timers() && take_process_signals() && write_signals_and_timers() &&
       check(writer.finish());
  writer_ = nullptr;
  return ok;
}

namespace {

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

}  // namespace

void Session::run() {
  if (!read_request()) {
    if (status_fd_ >= 0) {
      status("error the checkpoint request could not be read\n");
      sys(SYS_close, status_fd_);
    }
    return;
  }
  if (track_ != Tracking::kNone) {
    // No image and no thread stopped: the tracking starts or ends.
    if (long fd = take_tracking(); fd >= 0) sys(SYS_close, fd);
    answer(track_ == Tracking::kStop || start_tracking());
    return;
  }
  // The image for a move ends a tracking (the pre-copy's last step, or a
  // stop-and-copy after a pre-copy given up); another image leaves it on.
  track_fd_ = for_move_ ? take_tracking() : tracking_fd();
  // A child of clone() that never forked through libc takes its own
  // identity now: every thread is stopped, and the image must name it.
  current_vpid(true);
  // Every signal is blocked (on_request), so a reader that goes away fails
  // the write instead of killing the process.
  bool tree = tree_path_ != nullptr;  // a member of a tree (checkpoint_tree.cpp)
  bool ok = stop_threads() && (tree ? tree_children() : check_children()) && check_settings() && check_fds();
  if (ok) unmap_reserved_leftovers(s_);
  ok = ok && collect_regions() && read_smaps() && check_guard_pages() && check_held_elsewhere();
  ok = ok && (!tree || tree_hold());
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
  answer(ok);
  // Closing the tracking's userfaultfd clears the write protection of every
  // tracked page table entry (12 ms of a stopped 512 MiB guest): after the
  // answer, while the daemon reads and sends the image. The threads are still
  // held, and a guest that moved is killed, not resumed.
  if (for_move_ && track_fd_ >= 0) sys(SYS_close, track_fd_);
  // A tree member carries out its mode only once every member's image is in.
  if (ok && tree) ok = tree_word("end");
  if (tree_fd_ >= 0) sys(SYS_close, tree_fd_);
  if (ok && mode_ == AfterCheckpoint::kKill) sys(SYS_kill, real_pid(), SIGKILL);
  if (sys(SYS_gettid) == real_pid())
    put_back_pending(s_);
  else
    s_->put_back.store(1);  // the leader does it on its way out of on_stop
  if (ok && mode_ == AfterCheckpoint::kStop) sys(SYS_kill, real_pid(), SIGSTOP);
  release_threads();
}

namespace {

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
  // A request that finds a session under way (in another thread, or between
  // a session's answer and its end: a pre-copy's last request follows its
  // first by milliseconds) is noted and sent again when that session ends,
  // never run inside it. (Its requester also signals again after a silence:
  // request.cpp.) A session that finds no request file does nothing.
  if (g_busy_pid.load() == pid) {
    g_missed_pid.store(pid);
    return;
  }
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
  if (mem >= 0 || mem <= -4096) {
    auto* s = reinterpret_cast<Scratch*>(mem);
    g_scratch.store(s, std::memory_order_release);
    SessionArgs args{s, uc};
    mosix_agent_call_on_stack(run_session, &args, s->stack + sizeof s->stack);
    g_scratch.store(nullptr, std::memory_order_release);
    sys(SYS_munmap, mem, size);
  }
  g_busy_pid.store(0);
  // Taken once this handler returns and the mask is the program's again.
  if (g_missed_pid.exchange(0) == pid) sys(SYS_kill, pid, ckpt::kRequestSignal);
  errno = saved_errno;
}

}  // namespace

}  // namespace mosix::agent::checkpoint

namespace mosix::agent {

void note_runtime_dir() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr) {
    checkpoint::g_xdg_runtime_dir_too_long = !Line(checkpoint::g_xdg_runtime_dir, sizeof checkpoint::g_xdg_runtime_dir).s(xdg).ok();
  }
}

void install_checkpoint_handlers() {
  auto real = real_sigaction();
  if (real == nullptr) return;
  struct sigaction sa{};
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, ckpt::kRequestSignal);
  sigaddset(&sa.sa_mask, ckpt::kStopSignal);
  sa.sa_sigaction = checkpoint::on_request;
  real(ckpt::kRequestSignal, &sa, nullptr);
  sa.sa_sigaction = checkpoint::on_stop;
  real(ckpt::kStopSignal, &sa, nullptr);
}

bool trusted_runtime_dir(char* out, std::size_t size) {
  if (!checkpoint::runtime_dir(out, size)) return false;
  struct stat st{};
  return sys(SYS_lstat, out, &st) == 0 && S_ISDIR(st.st_mode) && static_cast<long>(st.st_uid) == sys(SYS_getuid) &&
         (st.st_mode & 022) == 0;
}

}  // namespace mosix::agent
