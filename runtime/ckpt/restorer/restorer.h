// What the parts of mosix-restore share: the image as read in phase 1, the
// plan phase 2 runs from, and the steps each part provides. See restorer.cpp
// for the two phases; every function named here either finishes or refuses
// (phase 1, refuse()) or dies (phase 2, die()).
#pragma once

#include <cstdint>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_reader.h"
#include "runtime/core/range_set.h"
#include "runtime/ckpt/restorer/trampoline.h"

namespace mosix::ckpt::restorer {

inline constexpr std::size_t kPage = 4096;
// Register slots of a thread's ucontext gregs.
inline constexpr int kRegRsp = 15;
inline constexpr int kRegRip = 16;

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
struct FileData {
  std::uint64_t offset;
  std::vector<std::uint8_t> bytes;
};
struct Fd {
  FdRecord rec;
  std::string path;
  std::vector<std::uint8_t> data;
  std::vector<FileData> contents;  // from its file data records: a ghost's, a pipe's rest
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
  std::vector<std::uint8_t> auxv;
  std::vector<Thread> threads;
  std::vector<Region> regions;
  std::vector<Fd> fds;
  std::vector<PosixTimerRecord> timers;
  std::vector<Pending> pending;
  std::vector<FileLockRecord> locks;
  std::vector<ThreadSchedRecord> sched;  // nice values and policies (none in an older image)
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

// What phase 2 runs from, in memory that phase 2 keeps.
struct Plan {
  Image* img;
  int image_fd;
  std::string pages_path;  // --pages: the pre-copied pages (kRegionPrecopied), else empty
  OwnMaps own;
  ReaderScratch* scratch;
  TrampShared* shared;
  TrampThread* threads;
};

// The image named in refuse()'s and die()'s lines.
extern char g_image_path[1024];

// Phase 1: one line on stderr naming the image and why, exit 2.
[[noreturn]] void refuse(const std::string& why);
// Phase 2: there is no process to go back to; err is a negative errno.
[[noreturn]] void die(const char* what, long err);

std::string hex(std::uint64_t v);
bool is_special(RegionKind k);
bool file_backed(RegionKind k);
const Mapping* own_mapping(const OwnMaps& own, const char* name);
// The name a ghost file had: its recorded path without " (deleted)".
std::string ghost_name(const Fd& f);
// The pid or tid a CPU-time clock id names (~id >> 3, 0 meaning the caller),
// or -1 for the other clocks.
std::int64_t cpu_clock_owner(std::int32_t clock);

// image_load.cpp: reading the image, the restorer's own maps, stdin.
void read_own_maps(OwnMaps* out);
Image read_image(int fd);
int spool_stdin();

// fifos.cpp: the program's named pipes opened again (made again when
// removed), refilled and put at their numbers, in phase 1 (refuses); their
// descriptors made meanwhile are placed at or above `above`.
void place_fifos(const Image& img, int above);
// One named pipe opened again (made again when removed: then true) for
// reading and writing, empty, given `capacity` (0: left) and refilled with
// `bytes`; its descriptor at or above `above`. finish_fifo gives a removed
// one its group and mode once the descriptors on it are open, and closes it.
std::pair<int, bool> open_fifo(const Fd& f, int above, const std::string& bytes, long capacity);
void finish_fifo(const Fd& f, int anchor, bool removed);

// checks.cpp: phase 1's checks beyond the reader's.
void check_restorable(const Image& img, const OwnMaps& own);

// An inotify instance's watches, from its fd record's data (image_format.h);
// refuses a malformed one.
struct InotifyWatch {
  std::int32_t wd;
  std::uint32_t mask;
  std::uint64_t inode, dev;
  std::string path;
};
struct InotifyState {
  std::uint32_t last_wd = 0;
  std::vector<InotifyWatch> watches;  // by wd
};
InotifyState inotify_state(const Fd& f);
// epoll.cpp: an epoll instance's watches, from its fd record's data
// (image_format.h); refuses a malformed one, or one on a descriptor the
// image does not hold. place_epoll makes the instance empty at its number
// (phase 1); add_epoll_watches adds the watches on descriptors placed before
// the point of no return (late false, phase 1: refuses) or on those
// restore_pipes makes (late true, phase 2: dies).
struct EpollWatch {
  std::int32_t fd;   // the number it was added under
  std::int32_t via;  // the descriptor of its file now (fd unless that was closed)
  std::uint32_t events;
  std::uint64_t data;
};
std::vector<EpollWatch> epoll_watches(const Image& img, const Fd& f);
void place_epoll(const Fd& f);
void add_epoll_watches(const Image& img, bool late);
// sockets.cpp: makes a socket of the image again at its number, bound,
// listening or connected as it was, or both ends of a socketpair with what
// was queued on them (phase 1: refuses when it cannot).
void place_socket(const Image& img, const Fd& f);
// --sockets: the unix socket the node daemon sends the forwarded sockets
// over (-1: none). receive_forwarded takes them all (each message: u64 id
// LE, one descriptor), each moved to a number at or above `above`, and
// returns the highest number it used (above - 1 when none came);
// place_forwarded puts the one a FdKind::forwarded record names at its
// number (phase 1: refuses when the daemon sent none for it).
extern int g_sockets_fd;
int receive_forwarded(int above);
void place_forwarded(const Fd& f);
void close_unplaced_forwarded();
void connect_sockets(const Image& img);

// files.cpp: the image's record of descriptor `fd` (or nullptr);
// descriptors and locks (before the point of no return), pipes (after it).
const Fd* fd_numbered(const Image& img, std::int32_t fd);
int place_files(const Image& img, int image_fd);
void plan_file_maps(Image& img);
void restore_pipes(const Image& img, int moved);

// early.cpp: `--early FD`, a live migration's restorer started during the
// pre-copy. run_early stages each round's pages in place (g_staged: what is
// mapped so far, left out of the restorer's own maps) until the daemon's go,
// and returns the descriptors that came with it; keep_staged_for unmaps the
// staged memory the image does not keep (phase 2, before the regions).
extern RangeSet g_staged;
struct EarlyGo {
  int image_fd = -1;
  int sockets_fd = -1;
};
EarlyGo run_early(int ctl, const std::string& pages_path);
void keep_staged_for(const Image& img);

// memory.cpp: the address space in phase 2.
void load_memory(Plan* p);
void set_mm_layout(const Image& img);

// threads.cpp: process state, signal frames, timers, signals, the hand-over.
void restore_session(const Image& img);
void restore_process_state(const Image& img);
// What build_frame() puts below a thread's stack pointer, at most.
std::uint64_t frame_room(const Thread& t);
[[noreturn]] void start_threads(Plan* p);

// tree.cpp: a process tree from its manifest (runtime/ckpt/tree_protocol.h).
// is_tree_manifest: whether fd (unread) holds one. start_tree: phase 1 for
// every member, then the tree's processes; returns in each member with its
// image in *img and its image descriptor. tree_barrier: in each member right
// before the point of no return, until all are there (exits 2 when one was
// refused); tree_refused: refuse() tells the others; finish_tree: after the
// memory is back, the tree's shared memory made one again and its new pids
// written into the agent's table. The last three do nothing outside a tree.
bool is_tree_manifest(int fd);
int start_tree(const std::string& manifest_path, int manifest_fd, Image* img);
void tree_barrier();
void tree_refused();
void finish_tree(const Image& img);
// The real pid of the tree's process `vpid` (after tree_barrier; before it,
// 1 for a process of the tree), 0 for none or outside a tree.
std::int32_t tree_real_pid(std::int32_t vpid, bool after_barrier);
// pidfds.cpp: the program's pidfds, checked in phase 1 (check_pidfds,
// refuses one of a process the restore does not make) and opened again on
// the new pids after the point of no return (place_pidfds, restore_pipes).
void check_pidfds(const Image& img);
void place_pidfds(const Image& img);
// removed_dirs.cpp: removed directories the program held. check_removed_dirs
// (phase 1's checks): their names free and their parents writable;
// make_removed_dirs (place_files): each made again once, the path to open
// fd f's through (f null: the working directory's, returns ""), its
// descriptor at or above `above`; finish_removed_dirs: each removed again
// once the program's descriptors are open; enter_removed_cwd (phase 2):
// the working directory entered, when it is one.
bool is_removed_dir(const Fd& f);
bool is_removed_cwd(const Image& img);
void check_removed_dirs(const Image& img);
std::string make_removed_dirs(const Image& img, const Fd* f, int above);
void finish_removed_dirs();
void enter_removed_cwd();
void check_ghost_name(const std::string& fd, const std::string& name);
// files.cpp: a deleted-but-open file or memfd made again from the record
// that carries its data (make_ghost: its descriptor, at or above `above`),
// and given its group, mode, modification time and seals once every
// descriptor on it is open (finish_ghost: closes the descriptor). Refuse.
int make_ghost(const Fd& f, int above);
void finish_ghost(const Fd& f, int fd);
// The tree's pipes (made before the forks): whether an inode is one;
// keep_tree_pipes moves the ends this member's image names right above
// `kept` (place_files; returns the highest), place_tree_pipes puts them at
// their numbers (restore_pipes).
bool is_tree_pipe(std::uint64_t inode);
int keep_tree_pipes(const Image& img, int kept);
void place_tree_pipes(const Image& img);
// The open files members share (opened before the forks): keep_tree_files
// moves this member's right above `kept` (place_files; returns the
// highest), tree_file gives the one to place at a program descriptor (-1:
// not one), close_tree_files closes them once placed.
int keep_tree_files(const Image& img, int kept);
int tree_file(std::int32_t fd);
bool is_tree_file(std::int32_t fd);  // even once closed
void close_tree_files();
// The socketpairs between members, likewise: tree_socket gives the end to
// place for a socket inode (-1: not one). make_tree_pair (sockets.cpp)
// makes one from its ends' records: options, queues, shutdown bits.
int tree_socket(std::uint64_t inode);
// A tree's process other than the root: its fds 0-2 that its image does not
// name (it had closed them) are closed (restore_pipes, last).
void close_unheld_std_streams(const Image& img);
void make_tree_pair(const Fd& a, const Fd& b, int ends[2]);

}  // namespace mosix::ckpt::restorer
