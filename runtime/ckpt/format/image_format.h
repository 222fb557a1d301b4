// The checkpoint image format: constants, record types and the plain structs
// that the writer encodes and the reader decodes (docs/image-format.md).
//
// An image is a 16-byte preamble (magic, format version, CRC32C) followed by
// chunks, each one record: a 16-byte frame (payload length, record type,
// flags, chunk index, CRC32C of frame and payload) and a little-endian
// payload. The first chunk is the header record, the last the end record.
// Fields that hold text or bytes are views: when writing they point at the
// caller's memory, when reading into the reader's buffer (valid until the
// reader's next call). Nothing here allocates, throws or needs the C++ runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "runtime/ckpt/format/image_status.h"

namespace mosix::ckpt {

using Blob = std::span<const std::uint8_t>;

// The format version this code writes and the only one it reads. Bump it on
// any change that an older reader would misread; new optional records use a
// new type with the may-skip flag instead. Version 2 added the process's
// flags and auxiliary vector, the owner of an fd's file, deleted-but-open
// ("ghost") files and memfds, and their file data records. Version 4 added
// named pipes (FdKind::fifo) and pidfds.
inline constexpr std::uint32_t kFormatVersion = 4;
inline constexpr std::uint8_t kMagic[8] = {0x89, 'M', 'O', 'S', 'I', 'X', '\r', '\n'};
inline constexpr std::size_t kPreambleSize = 16;
inline constexpr std::size_t kFrameSize = 16;
// Page data is cut into chunks of at most this many bytes of the region.
inline constexpr std::size_t kPagesPerChunkBytes = 1 << 20;
// Largest payload a reader accepts; a larger length field is refused as corrupt.
inline constexpr std::size_t kMaxPayload = kPagesPerChunkBytes + (64 << 10);
// Limits on variable-size fields inside records other than pages.
inline constexpr std::size_t kMaxText = 4096;
inline constexpr std::size_t kMaxBlob = 32 << 10;
inline constexpr std::size_t kMaxRlimits = 16;
inline constexpr std::size_t kMaxSignals = 64;
inline constexpr std::size_t kMaxXstateComponents = 32;
// The kernel keeps at most AT_VECTOR_SIZE (a few dozen) auxv pairs.
inline constexpr std::size_t kMaxAuxv = 1024;
// Bytes of one file data record.
inline constexpr std::size_t kMaxFileData = 64 << 10;
// Most records of each kind an image may hold; the reader refuses more, so a
// restorer's memory and the work it does before its point of no return stay
// bounded. Above what a checkpointable process has (vm.max_map_count is
// 65530 by default; the agent takes at most 1024 threads).
inline constexpr std::uint32_t kMaxThreadRecords = 4096;
inline constexpr std::uint32_t kMaxRegionRecords = 65536;
inline constexpr std::uint32_t kMaxFdRecords = 65536;
inline constexpr std::uint32_t kMaxTimerRecords = 4096;
inline constexpr std::uint32_t kMaxPendingSignalRecords = 4096;
inline constexpr std::uint32_t kMaxFileLockRecords = 4096;
inline constexpr std::uint32_t kMaxThreadSchedRecords = 4096;
inline constexpr std::uint32_t kMaxFileDataRecords = 4096;

enum class Compression : std::uint8_t { none = 0, fast = 1, best = 2 };
// "none", "fast", "best"; nullptr for an unknown value.
const char* compression_name(Compression c);
// Parses "none|fast|best"; false for anything else.
bool parse_compression(std::string_view text, Compression* out);
// The zstd level used for a setting (0 for none).
int compression_level(Compression c);

enum class RecordType : std::uint16_t {
  header = 1,
  process = 2,
  thread = 3,
  region = 4,
  pages = 5,
  fd = 6,
  posix_timer = 7,
  pending_signal = 8,
  file_lock = 9,
  file_data = 10,
  thread_sched = 11,
  end = 15,
};
// "process", "thread", ...; "unknown" for a type this version does not know.
const char* record_type_name(std::uint16_t type);

// Chunk flag: a reader that does not know this record type may skip it.
// Unknown records without it are refused.
inline constexpr std::uint16_t kChunkMaySkip = 1u << 0;

// CPU features a restored program may depend on (glibc and many programs
// pick code paths once at start-up from CPUID). Bits of MachineInfo::cpu_features.
enum CpuFeature : std::uint64_t {
  kCpuSse3 = 1ull << 0,
  kCpuSsse3 = 1ull << 1,
  kCpuSse41 = 1ull << 2,
  kCpuSse42 = 1ull << 3,
  kCpuPopcnt = 1ull << 4,
  kCpuAes = 1ull << 5,
  kCpuPclmul = 1ull << 6,
  kCpuXsave = 1ull << 7,
  kCpuAvx = 1ull << 8,
  kCpuF16c = 1ull << 9,
  kCpuFma = 1ull << 10,
  kCpuMovbe = 1ull << 11,
  kCpuRdrand = 1ull << 12,
  kCpuBmi1 = 1ull << 13,
  kCpuAvx2 = 1ull << 14,
  kCpuBmi2 = 1ull << 15,
  kCpuErms = 1ull << 16,
  kCpuAvx512f = 1ull << 17,
  kCpuAvx512dq = 1ull << 18,
  kCpuRdseed = 1ull << 19,
  kCpuAdx = 1ull << 20,
  kCpuAvx512cd = 1ull << 21,
  kCpuSha = 1ull << 22,
  kCpuAvx512bw = 1ull << 23,
  kCpuAvx512vl = 1ull << 24,
  kCpuAvx512vbmi = 1ull << 25,
  kCpuAvx512vnni = 1ull << 26,
  kCpuVaes = 1ull << 27,
  kCpuVpclmulqdq = 1ull << 28,
  kCpuGfni = 1ull << 29,
  kCpuFsrm = 1ull << 30,
  kCpuLzcnt = 1ull << 31,
  kCpuXsaveopt = 1ull << 32,
  kCpuXsavec = 1ull << 33,
  kCpuXsaves = 1ull << 34,
  kCpuFsgsbase = 1ull << 35,
  kCpuAmxTile = 1ull << 36,
  kCpuAvx512bf16 = 1ull << 37,
  kCpuAvx512fp16 = 1ull << 38,
};
// Name of one feature bit ("avx2"), nullptr if unknown.
const char* cpu_feature_name(std::uint64_t bit);
// Features whose absence on the restoring CPU refuses an image (instruction
// set extensions; hints such as erms or fsrm are recorded but not required).
inline constexpr std::uint64_t kRequiredCpuFeatures =
    ~(std::uint64_t{kCpuErms} | kCpuFsrm | kCpuXsaveopt | kCpuXsavec | kCpuXsaves | kCpuFsgsbase);

// What a machine offers a restored process. Fixed arrays, NUL-terminated.
struct MachineInfo {
  char arch[16] = {};              // uname machine, "x86_64"
  char kernel_release[65] = {};    // uname release
  char libc_version[32] = {};      // gnu_get_libc_version(), "2.36"
  char cpu_vendor[13] = {};        // CPUID leaf 0 vendor string
  std::uint64_t xcr0 = 0;          // XGETBV(0): state components the OS enabled
  std::uint32_t xsave_size = 0;    // CPUID 0xD.0 EBX: XSAVE area size for XCR0
  // Standard-format offset and size of each state component i >= 2 enabled
  // in XCR0 (CPUID 0xD.i EBX, EAX); a restore needs the same layout.
  std::uint32_t xsave_offset[kMaxXstateComponents] = {};
  std::uint32_t xsave_component_size[kMaxXstateComponents] = {};
  std::uint64_t cpu_features = 0;  // CpuFeature bits
  std::uint32_t page_size = 0;
};
// Fills *out from uname, CPUID/XGETBV, gnu_get_libc_version and sysconf.
// Async-signal-safe in practice (no allocation).
void describe_this_machine(MachineInfo* out);

// First record of every image.
struct HeaderRecord {
  std::uint32_t format_version = kFormatVersion;  // set by the writer
  char mosix_version[32] = {};
  char hostname[65] = {};
  MachineInfo machine;
  std::int32_t pid = 0;           // the process's pid as the program sees it
  std::int32_t real_pid = 0;      // the kernel pid it had when checkpointed
  std::int64_t created_ns = 0;    // CLOCK_REALTIME at checkpoint, ns since epoch
  Compression compression = Compression::none;  // set by the writer
};

// Raw kernel k_sigaction for one signal (x86_64 layout, not glibc's).
struct KernelSigaction {
  std::uint64_t handler = 0;
  std::uint64_t flags = 0;
  std::uint64_t restorer = 0;
  std::uint64_t mask = 0;
};
struct Rlimit {
  std::uint64_t cur = 0;
  std::uint64_t max = 0;
};
// One of ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF; 0 means disarmed.
struct IntervalTimer {
  std::uint64_t interval_ns = 0;
  std::uint64_t value_ns = 0;
};

// Process-wide state. Exactly one per image, right after the header.
struct ProcessRecord {
  std::int32_t pid = 0;    // virtual (as the program sees it)
  std::int32_t ppid = 0;
  std::int32_t pgid = 0;
  std::int32_t sid = 0;
  std::uint32_t umask = 0;
  std::uint32_t personality = 0;
  std::string_view comm;   // /proc/self/comm, at most 15 bytes
  std::string_view cwd;
  std::string_view exe;    // /proc/self/exe
  std::uint64_t start_brk = 0;
  std::uint64_t brk = 0;
  std::uint64_t start_stack = 0;
  std::uint64_t arg_start = 0;
  std::uint64_t arg_end = 0;
  std::uint64_t env_start = 0;
  std::uint64_t env_end = 0;
  std::uint32_t rlimit_count = 0;        // RLIMIT_NLIMITS of the writer
  Rlimit rlimits[kMaxRlimits];           // indexed by resource
  std::uint32_t signal_count = 0;        // _NSIG - 1 of the writer (64)
  KernelSigaction sigactions[kMaxSignals];  // [signo - 1]
  std::uint64_t pending_shared = 0;      // process-wide pending set, bit signo-1
  IntervalTimer itimers[3];              // [ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF]
  std::uint32_t flags = 0;               // kProcess* bits
  Blob auxv;                             // /proc/self/auxv, given back with PR_SET_MM_MAP
};
// The process had PR_SET_NO_NEW_PRIVS set.
inline constexpr std::uint32_t kProcessNoNewPrivs = 1u << 0;
// It had disabled transparent huge pages (PR_SET_THP_DISABLE).
inline constexpr std::uint32_t kProcessThpDisabled = 1u << 1;
// It was a child subreaper (PR_SET_CHILD_SUBREAPER).
inline constexpr std::uint32_t kProcessChildSubreaper = 1u << 2;
// It had registered with membarrier() for the private expedited command,
// its SYNC_CORE and its RSEQ variants (the restorer registers them again).
inline constexpr std::uint32_t kProcessMembarrierExpedited = 1u << 3;
inline constexpr std::uint32_t kProcessMembarrierSyncCore = 1u << 4;
inline constexpr std::uint32_t kProcessMembarrierRseq = 1u << 5;
// And for MEMBARRIER_CMD_GLOBAL_EXPEDITED (as a target of others' barriers).
inline constexpr std::uint32_t kProcessMembarrierGlobal = 1u << 6;
// Each of those flags with its registration (MEMBARRIER_CMD_REGISTER_*: the
// bit MEMBARRIER_CMD_GET_REGISTRATIONS shows, and the command the restorer
// gives) and the command that answers EPERM without it, which a kernel
// older than 6.3 (no GET_REGISTRATIONS) is probed with (0: none).
struct MembarrierFlag {
  std::uint32_t flag;
  int registration;
  int probe;
};
inline constexpr MembarrierFlag kMembarrierFlags[] = {
    {kProcessMembarrierGlobal, 4, 0},      // REGISTER_GLOBAL_EXPEDITED
    {kProcessMembarrierExpedited, 16, 8},  // REGISTER_PRIVATE_EXPEDITED, PRIVATE_EXPEDITED
    {kProcessMembarrierSyncCore, 64, 32},  // ..._SYNC_CORE
    {kProcessMembarrierRseq, 256, 128},    // ..._RSEQ
};

enum class RegsKind : std::uint32_t {
  none = 0,
  x86_64_ucontext = 1,   // struct ucontext_t gregs as the kernel's signal frame has them
  x86_64_user_regs = 2,  // struct user_regs_struct
};
enum class XstateKind : std::uint32_t {
  none = 0,
  x86_64_xsave = 1,     // standard (non-compacted) XSAVE area, xsave_size bytes
  x86_64_fxsave = 2,    // 512-byte FXSAVE area
};

inline constexpr std::uint32_t kThreadLeader = 1u << 0;

// One thread. Registers are opaque to the format: a kind and bytes.
struct ThreadRecord {
  std::int32_t tid = 0;            // virtual tid as the program knows it
  std::uint32_t flags = 0;         // kThreadLeader
  std::string_view name;           // /proc/self/task/TID/comm
  RegsKind regs_kind = RegsKind::none;
  Blob regs;
  XstateKind xstate_kind = XstateKind::none;
  Blob xstate;
  std::uint64_t fs_base = 0;
  std::uint64_t gs_base = 0;
  std::uint64_t sigmask = 0;       // blocked set, bit signo-1
  std::uint64_t pending = 0;       // thread-directed pending set
  std::uint64_t altstack_sp = 0;
  std::uint64_t altstack_size = 0;
  std::int32_t altstack_flags = 0; // SS_DISABLE, SS_AUTODISARM
  std::uint64_t robust_list = 0;
  std::uint64_t robust_list_len = 0;
  std::uint64_t clear_child_tid = 0;
  std::uint64_t rseq_addr = 0;     // 0: none registered
  std::uint32_t rseq_len = 0;
  std::uint32_t rseq_sig = 0;
};

enum class RegionKind : std::uint16_t {
  anon = 1,          // private anonymous
  private_file = 2,  // MAP_PRIVATE of a file (pages stored if modified)
  shared_file = 3,   // MAP_SHARED of a file: re-mapped from the file
  shared_anon = 4,   // MAP_SHARED|MAP_ANONYMOUS (or memfd): pages stored
  stack = 5,         // [stack]
  heap = 6,          // [heap]
  vdso = 7,
  vvar = 8,
  vvar_vclock = 9,
  vsyscall = 10,
  guard = 11,        // PROT_NONE reservation
};
const char* region_kind_name(RegionKind kind);

// MAP_DROPPABLE (Linux 6.11) in a region's map_flags: an anonymous mapping
// whose pages the kernel may drop; the image carries none of them and the
// restore maps it droppable again, all zero (as after a drop). Version 4.
inline constexpr std::uint32_t kMapDroppable = 0x08;
inline constexpr std::uint32_t kRegionHasPages = 1u << 0;  // pages records follow
// madvise() advice the region had (its VmFlags in /proc/PID/smaps), given
// again after the restore.
inline constexpr std::uint32_t kRegionWipeOnFork = 1u << 8;    // MADV_WIPEONFORK
inline constexpr std::uint32_t kRegionDontFork = 1u << 9;      // MADV_DONTFORK
inline constexpr std::uint32_t kRegionDontDump = 1u << 10;     // MADV_DONTDUMP
inline constexpr std::uint32_t kRegionHugepage = 1u << 11;     // MADV_HUGEPAGE
inline constexpr std::uint32_t kRegionNoHugepage = 1u << 12;   // MADV_NOHUGEPAGE
inline constexpr std::uint32_t kRegionMergeable = 1u << 13;    // MADV_MERGEABLE
inline constexpr std::uint32_t kRegionSequential = 1u << 14;   // MADV_SEQUENTIAL
inline constexpr std::uint32_t kRegionRandom = 1u << 15;       // MADV_RANDOM
// A shared file mapping without PROT_WRITE whose file was opened for
// writing (VmFlags "mw"): mprotect() may add PROT_WRITE later, so the
// restore maps it from a descriptor open for writing too.
inline constexpr std::uint32_t kRegionMayWrite = 1u << 16;
// Pre-copied (a live migration, docs/migration.md): the restorer fills the
// region from the pages the target received while the process still ran
// (mosix-restore --pages), then each pages record replaces its range whole
// (a page it does not store is zero now). Only images of a move have it.
inline constexpr std::uint32_t kRegionPrecopied = 1u << 17;
// Locked in memory (mlock or MAP_LOCKED, VmFlags "lo"): locked again after
// mapping, within the restarter's RLIMIT_MEMLOCK (checked in phase 1).
// Version 4.
inline constexpr std::uint32_t kRegionLocked = 1u << 18;

// One mapping. prot and flags carry the kernel's PROT_* and MAP_* values.
struct RegionRecord {
  std::uint64_t start = 0;
  std::uint64_t end = 0;           // exclusive, page aligned
  std::uint32_t prot = 0;
  std::uint32_t map_flags = 0;     // MAP_PRIVATE/SHARED/GROWSDOWN/...
  RegionKind kind = RegionKind::anon;
  std::uint32_t flags = 0;         // kRegionHasPages, kRegion<advice>
  std::uint64_t offset = 0;        // file offset of start
  std::string_view path;           // empty for anonymous
  // Identity of the mapped file when checkpointed, to refuse a changed file.
  std::uint64_t file_dev = 0;
  std::uint64_t file_inode = 0;
  std::uint64_t file_size = 0;
  std::int64_t file_mtime_ns = 0;
};

// Up to kPagesPerChunkBytes of one region's contents. Pages that were all
// zero are not stored: bit i of `present` (LSB first) is set when page i of
// the chunk is stored. The stored pages, concatenated, are `data`, zstd
// compressed unless `compression` is none.
struct PagesRecord {
  std::uint64_t region_start = 0;
  std::uint64_t offset = 0;        // bytes from region_start, page aligned
  std::uint32_t page_count = 0;    // pages this chunk covers
  std::uint32_t stored_count = 0;  // set bits in present
  Compression compression = Compression::none;
  std::uint32_t raw_size = 0;      // stored_count * page size
  Blob present;                    // (page_count + 7) / 8 bytes
  Blob data;
};

enum class FdKind : std::uint16_t {
  regular = 1,
  directory = 2,
  char_device = 3,   // /dev/null, /dev/zero, /dev/urandom, ...
  tty = 4,
  pipe = 5,          // `data` holds unread bytes, inode pairs the ends
  std_stream = 6,    // 0/1/2 reconnected to whoever restarts the process
  other = 7,
  ghost = 8,         // a regular file deleted while open: file data records
                     // after it hold its contents (none for another fd on it)
  memfd = 9,         // memfd_create(): as ghost; `data` holds its seals (u32 LE)
  signalfd = 10,     // `data` holds its signal mask (u64 LE, bit signo-1)
  eventfd = 11,      // `data`: u64 count, u32 1 if EFD_SEMAPHORE (LE)
  timerfd = 12,      // `data`: i32 clock, u32 settime flags, u64 ticks not yet
                     // read, u64 ns left, u64 interval ns (LE)
  shared = 13,       // one open file with an fd recorded before it (dup, dup2,
                     // F_DUPFD, inherited together): `data` holds that fd's
                     // number (i32 LE); made again with dup3, so the two share
                     // offset, status flags and locks as before
  inotify = 14,      // `data`: u32 the highest wd handed out, u32 count, then
                     // per watch i32 wd, u32 mask (events, IN_ONESHOT,
                     // IN_EXCL_UNLINK, IN_DONT_FOLLOW), u64 inode, u64 dev,
                     // u32 path length, the absolute path (LE); added again by
                     // path, each at its wd
  socket = 15,       // an inet or unix socket with no connection of its own:
                     // `data` is a SocketRecord (encode/decode below)
  epoll = 16,        // `data`: u32 count, then per watch i32 fd it was added
                     // under, i32 fd of its file now (another when that number
                     // was closed since), u32 events (with EPOLLET,
                     // EPOLLONESHOT, EPOLLEXCLUSIVE), u64 data (LE); made
                     // empty, each watch added again under its number
  forwarded = 17,    // a socket whose real one stays on the node that holds
                     // it (docs/migration.md, forwarded sockets): `data`:
                     // u64 its forwarding id, u32 kForwardListening or 0
                     // (LE). Whoever restores it passes the descriptor to
                     // put at the number (mosix-restore --sockets)
  fifo = 18,         // a named pipe (FIFO) only this process holds, opened
                     // again by its path (a removed one made again with
                     // mkfifo and removed); `size` is its capacity, and file
                     // data records after its first fd record hold its
                     // unread bytes in order (offsets 0, 1, ... chunks)
  pidfd = 19,        // a pidfd of the process itself or of a process of its
                     // tree: `data`: i32 that process's virtual pid, u32 1 if
                     // it is the process itself (LE); opened again with
                     // pidfd_open after the point of no return
};
inline constexpr std::uint32_t kForwardListening = 1;
// The header the node daemon writes first on each connection it relays to a
// forwarded listener: u64 forwarding id, u32 0, u32 address length, then
// the client's address (kMaxForwardAddress bytes, LE). The agent's accept
// answers it with one byte (kForwardAck) before the daemon relays data.
inline constexpr std::size_t kMaxForwardAddress = 128;
inline constexpr std::size_t kForwardHeader = 16 + kMaxForwardAddress;
inline constexpr std::uint8_t kForwardAck = 'A';
const char* fd_kind_name(FdKind kind);

struct FdRecord {
  std::int32_t fd = 0;
  FdKind kind = FdKind::regular;
  std::uint32_t open_flags = 0;    // O_* from F_GETFL
  std::uint32_t fd_flags = 0;      // FD_CLOEXEC from F_GETFD
  std::string_view path;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;          // st_size when checkpointed
  std::int64_t mtime_ns = 0;
  std::uint64_t dev = 0;
  std::uint64_t inode = 0;
  std::uint32_t mode = 0;          // st_mode
  Blob data;
  std::uint32_t uid = 0;           // st_uid, st_gid
  std::uint32_t gid = 0;
};

// A socket that a restore makes again (FdKind::socket's `data`): unbound,
// bound, listening with nothing waiting to be accepted, a datagram socket
// connected to an address, or one end of a socketpair the process holds
// both ends of. Its options are those that differ from a new
// socket's of the same kind, set again before it is bound; the network
// namespace and boot id say where its addresses mean something.
inline constexpr std::uint32_t kMaxSocketOptions = 40;
inline constexpr std::size_t kMaxSocketAddress = 128;      // sizeof(sockaddr_storage)
inline constexpr std::size_t kMaxSocketOptionValue = 16;   // struct timeval
enum class SocketState : std::uint8_t {
  plain = 0,       // unbound or bound, not listening, not connected
  listening = 1,   // listen(backlog), its accept queue empty
  connected = 2,   // a datagram socket connect()ed to `peer`
  pair = 3,        // a unix socket connected to another of the process's,
                   // both unnamed (socketpair), or to one every process
                   // closed: `peer` holds that one's inode (u64 LE, 0 when
                   // closed) and this end's shutdown bits (u8: 1 reading,
                   // 2 writing), made again with socketpair(). What
                   // was queued to be read on this end follows its fd
                   // record as file data records: a stream's bytes at
                   // their offsets, else one message per record, `offset`
                   // its number from 0
};
struct SocketOption {
  std::int32_t level = 0;
  std::int32_t name = 0;
  Blob value;  // what getsockopt gave (SO_RCVBUF/SO_SNDBUF: the doubled size)
};
struct SocketRecord {
  std::uint32_t family = 0;    // AF_INET, AF_INET6, AF_UNIX
  std::uint32_t type = 0;      // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  std::uint32_t protocol = 0;
  SocketState state = SocketState::plain;
  std::uint32_t backlog = 0;   // listening: listen()'s backlog; 0 if not known
  std::uint64_t netns = 0;     // inode of the process's network namespace
  std::uint64_t boot_id[2] = {0, 0};  // /proc/sys/kernel/random/boot_id
  Blob local;                  // getsockname's address; empty when unbound
  Blob peer;                   // connected: getpeername's
  std::uint32_t option_count = 0;
  SocketOption options[kMaxSocketOptions];
};
// The 32 hex digits of /proc/sys/kernel/random/boot_id's text (dashes and
// the newline skipped) as SocketRecord::boot_id holds them.
void parse_boot_id(const char* text, std::size_t len, std::uint64_t out[2]);
ImageStatus encode(const SocketRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus decode(Blob payload, SocketRecord* r);

// Contents of a ghost file, after its fd record: `data` at `offset`. Holes
// (never written, or punched) are not stored; the file's size is the fd
// record's.
struct FileDataRecord {
  std::int32_t fd = 0;
  std::uint64_t offset = 0;
  Blob data;                       // 1 to kMaxFileData bytes
};

// A timer_create() timer and its state.
struct PosixTimerRecord {
  std::int32_t timer_id = 0;
  std::int32_t clock_id = 0;
  std::int32_t notify = 0;         // sigev_notify
  std::int32_t signo = 0;
  std::uint64_t sigev_value = 0;
  std::int32_t notify_tid = 0;     // SIGEV_THREAD_ID target
  std::int32_t overrun = 0;
  std::uint64_t interval_ns = 0;
  std::uint64_t value_ns = 0;
};

// A queued signal with its siginfo (raw 128-byte siginfo_t).
struct PendingSignalRecord {
  std::int32_t tid = 0;            // 0: process-wide queue
  std::int32_t signo = 0;
  Blob siginfo;
};

// A file lock the process held. Without the may-skip flag: a reader that
// does not know it refuses the image rather than restore the process
// without its locks.
enum class LockKind : std::uint8_t {
  posix = 1,  // fcntl F_SETLK: the process's, on the file
  ofd = 2,    // fcntl F_OFD_SETLK: the open file description's
  flock = 3,  // flock(): the open file description's, whole file
};
enum class LockType : std::uint8_t { read = 1, write = 2 };
// "posix", "ofd", "flock"; nullptr for an unknown value.
const char* lock_kind_name(LockKind kind);
inline constexpr std::uint64_t kLockToEnd = ~std::uint64_t{0};

struct FileLockRecord {
  std::int32_t fd = 0;             // a descriptor (recorded before) on the locked file:
                                   // for ofd/flock one of the open file description's
  LockKind kind = LockKind::posix;
  LockType type = LockType::read;
  std::uint64_t start = 0;         // first byte
  std::uint64_t end = kLockToEnd;  // last byte; kLockToEnd: to the end of the file, however long
};

// A thread's nice value and scheduling policy (SCHED_OTHER, SCHED_BATCH or
// SCHED_IDLE; the agent refuses a real-time one), given back to the thread
// the restore makes for it. Without it (an older image) the restored
// threads have the restarter's.
struct ThreadSchedRecord {
  std::uint32_t thread = 0;  // its thread record's place in the image, from 0
  std::int32_t nice = 0;     // -20 .. 19
  std::uint32_t policy = 0;
};

// Totals of everything before the end record, checked by the reader so a
// stream cut at a chunk boundary is still detected.
struct EndRecord {
  std::uint64_t chunk_count = 0;      // chunks before the end record
  std::uint64_t byte_count = 0;       // bytes before the end record's frame
  std::uint32_t thread_count = 0;
  std::uint32_t region_count = 0;
  std::uint32_t fd_count = 0;
  std::uint32_t skipped_count = 0;    // may-skip records of other types
  std::uint64_t pages_total = 0;      // pages covered by pages records
  std::uint64_t pages_stored = 0;     // of which stored (non-zero)
};

// Encoders append a record's payload to buf (capacity cap); on success set
// *len. Decoders parse exactly `payload` or fail naming the field. One
// symmetric field list per record type lives in records.cpp.
ImageStatus encode(const HeaderRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const ProcessRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const ThreadRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const RegionRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const FdRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const PosixTimerRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const PendingSignalRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const FileLockRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const FileDataRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const ThreadSchedRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
ImageStatus encode(const EndRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);
// Pages: encodes the fixed fields and `present`, not `data` (the writer
// sends data from where it lies).
ImageStatus encode_pages_head(const PagesRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len);

ImageStatus decode(Blob payload, HeaderRecord* r);
ImageStatus decode(Blob payload, ProcessRecord* r);
ImageStatus decode(Blob payload, ThreadRecord* r);
ImageStatus decode(Blob payload, RegionRecord* r);
ImageStatus decode(Blob payload, PagesRecord* r);
// Pages without their data: `head` is exactly what encode_pages_head()
// wrote, data_size the length of the data that follows it. r->data is empty.
ImageStatus decode_pages_head(Blob head, std::size_t data_size, PagesRecord* r);
ImageStatus decode(Blob payload, FdRecord* r);
ImageStatus decode(Blob payload, PosixTimerRecord* r);
ImageStatus decode(Blob payload, PendingSignalRecord* r);
ImageStatus decode(Blob payload, FileLockRecord* r);
ImageStatus decode(Blob payload, FileDataRecord* r);
ImageStatus decode(Blob payload, ThreadSchedRecord* r);
ImageStatus decode(Blob payload, EndRecord* r);

// Ok if an image with this header can be restored on `here`, else one line
// naming the first thing that is wrong: format version, architecture, page
// size, XSAVE state components (XCR0), XSAVE area size, a CPU feature, libc.
ImageStatus check_compatible(const HeaderRecord& image, const MachineInfo& here);

}  // namespace mosix::ckpt
