// What the parts of a checkpoint share (checkpoint.cpp runs the session;
// checkpoint_fds.cpp, checkpoint_memory.cpp and checkpoint_process.cpp each
// check and write one part of the process): the limits, the scratch memory
// mapped for one checkpoint and the Session that works in it. Private to the
// agent; nothing here allocates or takes a libc lock (see checkpoint.cpp).
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <ucontext.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_writer.h"
#include "runtime/ckpt/request_protocol.h"

namespace mosix::agent::checkpoint {

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
// Named pipes a checkpoint carries.
constexpr int kMaxFifos = 64;
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

// One run of pages as the PAGEMAP_SCAN ioctl (Linux 6.7) returns them:
// struct page_region of linux/fs.h, which older headers lack.
struct PageRun {
  std::uint64_t start, end, categories;
};
// Its argument (struct pm_scan_arg), the request, and the categories used.
struct PmScanArg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = 0xc0606610;  // _IOWR('f', 16, struct pm_scan_arg)
constexpr std::uint64_t kPageIsWritten = 1u << 1;
constexpr std::uint64_t kPageIsGuard = 1u << 8;  // Linux 6.14

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
  bool tracked;  // VmFlags "uw": its writes are tracked for a pre-copy (start_tracking)
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
  PageRun scan[kPagemapBatch];  // PAGEMAP_SCAN's answer: runs of written pages
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
  // Named pipes (checkpoint_pipes.cpp), and whether their unread bytes are
  // in the image yet.
  std::uint64_t fifo_ino[kMaxFifos], fifo_dev[kMaxFifos];
  bool fifo_written[kMaxFifos];
  int nfifos;
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
  bool check_pidfd(long fd, const char* link);
  bool check_removed_dir(long fd, const char* link, const struct stat& st);
  pid_t pidfd_target(long fd);
  bool check_shared_descriptions();
  long shares_with(long fd) const;
  bool collect_timers();
  bool take_process_signals();
  bool is_thread(std::uint64_t tid) const;
  bool write_signals_and_timers();
  // checkpoint_pipes.cpp: pipes between the process's own threads, and
  // named pipes only it holds.
  bool has_pipe_end(std::uint64_t ino, bool reader) const;
  bool drain_pipe(std::uint64_t ino, FdRecord* r);
  bool write_pipe_rest(std::uint64_t ino, long fd);
  bool check_fifo(long fd, const char* link, const struct stat& st);
  int fifo_index(const struct stat& st) const;
  bool write_fifo_data(long fd, const struct stat& st);
  bool write_pair_queue(long fd);
  bool write_fds();
  bool collect_regions();
  bool read_smaps();
  bool check_children();
  // Calls fn(pid, state) for each child of each thread
  // (/proc/self/task/TID/children), state the letter of its /proc/PID/stat
  // (a child gone meanwhile is left out), until fn returns false (then
  // false); -1 when the kernel has no such files (CONFIG_PROC_CHILDREN),
  // else 1. fn may not use s_->maps or s_->link.
  template <typename Fn>
  int for_each_child(Fn fn);
  // checkpoint_tree.cpp: a member of a tree checkpointed together
  // (runtime/ckpt/tree_protocol.h).
  bool tree_children();
  bool tree_hold();
  bool tree_word(const char* expect);
  bool check_settings();
  bool check_guard_pages();
  bool check_held_elsewhere();
  bool write_image();
  bool write_header();
  bool write_process();
  bool write_thread(const ThreadState& t, bool leader);
  bool write_thread_sched();
  bool write_pages(const Region& r);
  bool write_written_pages(const Region& r);
  bool start_tracking();
  bool check(const ImageStatus& st);
  void fail(const char* what) { Line(s_->error, sizeof s_->error).s(what); }
  void status(const char* text);
  void answer(bool ok);
  static ImageStatus sink_write(void* context, const struct iovec* iov, int count);

  Scratch* s_;
  void* uc_;
  ImageWriter* writer_ = nullptr;
  const char* out_path_ = nullptr;
  const char* status_path_ = nullptr;
  AfterCheckpoint mode_ = AfterCheckpoint::kLeaveRunning;
  Compression compression_ = Compression::none;
  bool for_move_ = false;  // "move=1": the image is for another node
  Tracking track_ = Tracking::kNone;  // "track=start|stop": no image
  bool precopied_ = false;            // "precopy=1"
  const char* tree_path_ = nullptr;   // "tree=<FIFO>": the requester's words to a tree member
  long tree_fd_ = -1;
  long track_fd_ = -1;                // the tracking's userfaultfd, left out of the image
  long out_fd_ = -1, status_fd_ = -1, pagemap_fd_ = -1;
  std::uint64_t written_ = 0, next_progress_ = kProgressStep;
};

// The state letter of /proc/PID/stat read into buf (and its parent's pid
// into *ppid), or 0 when the process is gone.
char proc_state(std::uint64_t pid, char* buf, std::size_t cap, std::uint64_t* ppid = nullptr);

template <typename Fn>
int Session::for_each_child(Fn fn) {
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/task/").u(s_->threads[i].tid).s("/children");
    long n = read_file(path, s_->maps, kMapsCap - 1);
    if (n == -ENOENT && i == 0) return -1;
    if (n < 0) continue;
    s_->maps[n] = '\0';
    for (const char* p = s_->maps; *p != '\0';) {
      while (*p == ' ' || *p == '\n') ++p;
      if (*p < '0' || *p > '9') break;
      std::uint64_t pid = parse_dec(p);
      char st = proc_state(pid, s_->link, sizeof s_->link);
      if (st != 0 && !fn(pid, st)) return 0;
    }
  }
  return 1;
}

// Calls fn(pid) for every process in /proc but `self`, listing /proc into
// buf (which fn must not use), until fn returns false; as above.
template <typename Fn>
int for_each_proc_pid(char* buf, std::size_t cap, std::uint64_t self, Fn fn) {
  return for_each_numbered_entry("/proc", buf, cap, [&](std::uint64_t pid, long) { return pid == self || fn(pid); });
}

long now_ns(clockid_t clock);
// The decimal number on the line `key` of a /proc status text; -1 if none.
long status_number(const char* text, const char* key);
// Takes the signals queued on `key`'s queue ("SigPnd:" or "ShdPnd:") into
// the scratch list, tagged with `tid` (0 for the process-wide queue).
void take_pending(Scratch* s, const char* key, std::int32_t tid, char* buf, std::size_t cap);
// Puts the signals take_pending() took back into their queues (the leader only).
void put_back_pending(Scratch* s);
// What kind of anonymous-inode descriptor the process's `fd` is, in words.
const char* anon_kind_of(long fd);
std::int64_t mtime_ns(const struct stat& st);
// Whether a /proc link or path ends with " (deleted)".
bool ends_with_deleted(const char* s);
// A restore makes a deleted file or named pipe again under its name (then
// removes it): its directory must still be there and writable, and the
// name free. Else false, with why appended to e. path: room for the name.
bool deleted_name_free(const char* link, char* path, std::size_t cap, Line& e);
// The scratch mapping's size for compression `c`: the Scratch, then the
// image writer's working memory.
std::size_t scratch_size(Compression c);
// The userfaultfd of a write tracking this process (or its parent, before a
// fork) started, or -1; take_tracking() also forgets it: the caller closes it.
long tracking_fd();
long take_tracking();

}  // namespace mosix::agent::checkpoint
