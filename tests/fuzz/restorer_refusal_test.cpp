// The restorer's own checks, run through the real mosix-restore binary on
// crafted images. The base image is a whole program (a page of code that
// calls exit_group(42) and a stack) that the restorer really restores: the
// control case exits 42. Each other case changes one thing the restorer
// could only trip over after its point of no return (a descriptor number,
// a thread's stack or instruction pointer, a count) and must be refused in
// phase 1: exit status 2 and exactly one line on stderr naming the reason.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/ckpt/format/image_writer.h"

namespace mosix::ckpt {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr std::uint64_t kCode = 0x200000;
constexpr std::uint64_t kStack = 0x300000;
constexpr std::uint64_t kStackSize = 4 * 4096;
constexpr int kRegRsp = 15, kRegRip = 16, kRegEfl = 17, kRegCsgsfs = 18;

// mov edi, 42; mov eax, 231 (exit_group); syscall
constexpr std::uint8_t kExit42[] = {0xbf, 0x2a, 0, 0, 0, 0xb8, 0xe7, 0, 0, 0, 0x0f, 0x05};

struct Special {
  RegionKind kind;
  std::uint64_t start, end;
  std::uint32_t prot;
};

// This process's [vvar], [vvar_vclock] and [vdso]: the restorer moves its
// own to the image's addresses and wants the same sizes.
std::vector<Special> own_vdso() {
  std::vector<Special> out;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    RegionKind kind;
    if (line.ends_with(" [vvar]")) kind = RegionKind::vvar;
    else if (line.ends_with(" [vvar_vclock]")) kind = RegionKind::vvar_vclock;
    else if (line.ends_with(" [vdso]")) kind = RegionKind::vdso;
    else continue;
    Special s{kind, 0, 0, 0};
    char perms[5] = {};
    std::sscanf(line.c_str(), "%lx-%lx %4s", &s.start, &s.end, perms);
    s.prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) | (perms[2] == 'x' ? PROT_EXEC : 0);
    out.push_back(s);
  }
  return out;
}

// One thread of the crafted program.
struct CraftThread {
  std::int32_t tid;
  std::uint64_t ip = kCode, sp = kStack + kStackSize - 256;
};

// What a case changes in the base image.
struct Craft {
  std::vector<CraftThread> threads{{100}};
  bool stack_grows_down = false;
  std::vector<FdRecord> fds;
  std::size_t extra_regions = 0;   // one-page guard regions above the stack
  std::size_t extra_timers = 0;
  std::size_t pending_signals = 0;
  std::vector<FileLockRecord> locks;
  std::vector<FileDataRecord> file_data;  // after the fds
  std::vector<std::uint8_t> auxv;
};

std::vector<std::uint8_t> make_image(const Craft& c) {
  std::vector<std::uint8_t> out(16 << 20);
  MemorySinkState sink;
  WriterScratch scratch;
  EXPECT_TRUE(scratch.map(Compression::none).ok());
  ImageWriter w(memory_sink(&sink, out.data(), out.size()), Compression::none, &scratch);
  HeaderRecord h;
  describe_this_machine(&h.machine);
  std::strcpy(h.mosix_version, "crafted");
  h.pid = h.real_pid = 100;
  EXPECT_TRUE(w.header(h).ok());
  ProcessRecord p;
  p.pid = 100;
  p.comm = "crafted";
  p.cwd = "/";
  p.start_brk = p.brk = 0x400000;
  p.start_stack = p.arg_start = p.arg_end = p.env_start = p.env_end = kStack + kStackSize - 64;
  p.auxv = Blob(c.auxv.data(), c.auxv.size());
  EXPECT_TRUE(w.process(p).ok());
  for (std::size_t i = 0; i < c.threads.size(); ++i) {
    std::uint64_t regs[23] = {};
    regs[kRegRip] = c.threads[i].ip;
    regs[kRegRsp] = c.threads[i].sp;
    regs[kRegEfl] = 0x202;
    regs[kRegCsgsfs] = 0x33 | (std::uint64_t{0x2b} << 48);
    ThreadRecord t;
    t.tid = c.threads[i].tid;
    t.flags = i == 0 ? kThreadLeader : 0;
    t.name = "crafted";
    t.regs_kind = RegsKind::x86_64_ucontext;
    t.regs = Blob(reinterpret_cast<const std::uint8_t*>(regs), sizeof regs);
    t.altstack_flags = SS_DISABLE;
    EXPECT_TRUE(w.thread(t).ok());
  }
  std::vector<std::uint8_t> code(4096, 0xcc);
  std::memcpy(code.data(), kExit42, sizeof kExit42);
  RegionRecord r;
  r.start = kCode;
  r.end = kCode + 4096;
  r.prot = PROT_READ | PROT_EXEC;
  r.map_flags = MAP_PRIVATE | MAP_ANONYMOUS;
  r.kind = RegionKind::anon;
  r.flags = kRegionHasPages;
  EXPECT_TRUE(w.region(r).ok());
  EXPECT_TRUE(w.pages(0, code.data(), code.size()).ok());
  r = RegionRecord{};
  r.start = kStack;
  r.end = kStack + kStackSize;
  r.prot = PROT_READ | PROT_WRITE;
  r.map_flags = MAP_PRIVATE | MAP_ANONYMOUS | (c.stack_grows_down ? MAP_GROWSDOWN : 0);
  r.kind = RegionKind::anon;
  EXPECT_TRUE(w.region(r).ok());
  for (std::size_t i = 0; i < c.extra_regions; ++i) {
    r = RegionRecord{};
    r.start = 0x10000000 + i * 2 * 4096;
    r.end = r.start + 4096;
    r.kind = RegionKind::guard;
    EXPECT_TRUE(w.region(r).ok()) << w.status().message();
  }
  for (const Special& s : own_vdso()) {
    r = RegionRecord{};
    r.start = s.start;
    r.end = s.end;
    r.prot = s.prot;
    r.kind = s.kind;
    EXPECT_TRUE(w.region(r).ok());
  }
  for (const FdRecord& f : c.fds) EXPECT_TRUE(w.fd(f).ok());
  for (const FileDataRecord& d : c.file_data) EXPECT_TRUE(w.file_data(d).ok());
  for (const FileLockRecord& l : c.locks) EXPECT_TRUE(w.file_lock(l).ok());
  for (std::size_t i = 0; i < c.extra_timers; ++i) {
    PosixTimerRecord t;
    t.timer_id = static_cast<std::int32_t>(i);
    t.signo = SIGALRM;
    EXPECT_TRUE(w.posix_timer(t).ok());
  }
  std::uint8_t info[128] = {SIGUSR1};
  for (std::size_t i = 0; i < c.pending_signals; ++i) {
    PendingSignalRecord s;
    s.signo = SIGUSR1;
    s.siginfo = Blob(info, sizeof info);
    EXPECT_TRUE(w.pending_signal(s).ok());
  }
  EXPECT_TRUE(w.finish().ok()) << w.status().message();
  scratch.unmap();
  out.resize(sink.size);
  return out;
}

FdRecord fd_record(std::int32_t fd, FdKind kind = FdKind::char_device, const char* path = "/dev/null") {
  FdRecord f;
  f.fd = fd;
  f.kind = kind;
  f.open_flags = O_RDONLY;
  f.path = path;
  return f;
}

struct Outcome {
  int status = -1;  // exit status, or 128 + signal
  std::string err;
};

class RestorerRefusal : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mosix-restorer-refusal-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes the image and runs the restorer on it in a child, after `before`
  // (rlimits). stdout is /dev/null; stderr is captured.
  Outcome restore(const Craft& c, const std::function<void()>& before = {}) {
    std::string path = dir_ + "/image";
    auto image = make_image(c);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(image.data()),
                                                 static_cast<std::streamsize>(image.size()));
    path_ = path;
    int err[2];
    EXPECT_EQ(pipe(err), 0);
    pid_t pid = fork();
    if (pid == 0) {
      if (before) before();
      dup2(err[1], 2);
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      execl(MOSIX_RESTORER, MOSIX_RESTORER, path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(err[1]);
    Outcome o;
    char buf[4096];
    for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;) o.err.append(buf, static_cast<std::size_t>(n));
    close(err[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return o;
  }

  void expect_refused(const Outcome& o, const std::string& reason) {
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_THAT(o.err, StartsWith("mosix-restore: " + path_ + ": "));
    EXPECT_THAT(o.err, HasSubstr(reason));
    EXPECT_THAT(o.err, Not(HasSubstr("point of no return")));
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  }

  std::string dir_, path_;
};

TEST_F(RestorerRefusal, TheBaseImageIsRestoredAndRuns) {
  Outcome o = restore(Craft{});
  EXPECT_EQ(o.status, 42) << o.err;
  EXPECT_EQ(o.err, "");
  Craft c;
  c.fds = {fd_record(5)};
  c.threads = {{100, kCode, kStack + kStackSize - 256}};
  c.stack_grows_down = true;
  o = restore(c);
  EXPECT_EQ(o.status, 42) << o.err;
}

TEST_F(RestorerRefusal, NegativeDescriptor) {
  Craft c;
  c.fds = {fd_record(-1)};
  expect_refused(restore(c), "an fd record has the negative descriptor number -1");
}

TEST_F(RestorerRefusal, DescriptorThatOverflows) {
  Craft c;
  c.fds = {fd_record(INT32_MAX)};
  expect_refused(restore(c), "fd 2147483647 is above this process's descriptor limit (ulimit -n ");
}

TEST_F(RestorerRefusal, DescriptorAboveTheLimit) {
  Craft c;
  c.fds = {fd_record(60)};
  expect_refused(restore(c, [] {
                   struct rlimit l{32, 32};
                   setrlimit(RLIMIT_NOFILE, &l);
                 }),
                 "fd 60 is above this process's descriptor limit (ulimit -n 32): raise it to 64 or more");
}

TEST_F(RestorerRefusal, DescriptorRecordedTwice) {
  Craft c;
  c.fds = {fd_record(5), fd_record(5)};
  expect_refused(restore(c), "fd 5 is recorded twice");
}

TEST_F(RestorerRefusal, StandardStreamAboveTwo) {
  Craft c;
  c.fds = {fd_record(7, FdKind::std_stream)};
  expect_refused(restore(c), "fd 7 is recorded as a standard stream");
}

// A descriptor that shared another's open file names it: 4 bytes, LE.
FdRecord shared_record(std::int32_t fd, const std::uint8_t (&first)[4]) {
  FdRecord f = fd_record(fd, FdKind::shared);
  f.data = Blob(first, 4);
  return f;
}

TEST_F(RestorerRefusal, ASharedDescriptorIsMadeWithDup) {
  static const std::uint8_t five[4] = {5, 0, 0, 0};
  Craft c;
  c.fds = {fd_record(5), shared_record(6, five)};
  Outcome o = restore(c);
  EXPECT_EQ(o.status, 42) << o.err;
}

TEST_F(RestorerRefusal, ASharedDescriptorOfOneTheImageDoesNotHold) {
  static const std::uint8_t nine[4] = {9, 0, 0, 0};
  Craft c;
  c.fds = {fd_record(5), shared_record(6, nine)};
  expect_refused(restore(c), "fd 6 (/dev/null) shares the open file of fd 9, which the image does not hold");
}

TEST_F(RestorerRefusal, ASharedDescriptorOfAStandardStreamOrAnotherShared) {
  static const std::uint8_t one[4] = {1, 0, 0, 0}, five[4] = {5, 0, 0, 0}, six[4] = {6, 0, 0, 0};
  Craft c;
  c.fds = {fd_record(1, FdKind::std_stream), shared_record(6, one)};
  expect_refused(restore(c),
                 "fd 6 (/dev/null) shares the open file of fd 1, a standard stream, which a restore does not share");
  c.fds = {fd_record(4), shared_record(5, six), shared_record(6, five)};
  expect_refused(restore(c), "shares the open file of fd 6, a descriptor sharing an open file");
}

TEST_F(RestorerRefusal, APipeOfACapacityThatCannotBeMade) {
  Craft c;
  FdRecord f = fd_record(5, FdKind::pipe);
  f.size = std::uint64_t{3} << 30;
  c.fds = {f};
  expect_refused(restore(c), "fd 5 (/dev/null): a pipe of 3221225472 bytes, more than F_SETPIPE_SZ takes");
  if (geteuid() == 0) return;  // root may pass pipe-max-size
  f.size = 1u << 30;
  c.fds = {f};
  expect_refused(restore(c), "fd 5 (/dev/null): a pipe of 1073741824 bytes (F_SETPIPE_SZ) cannot be made here");
}

// A pipe's bytes past its two ends' records come as file data records,
// which must go on where the records' bytes end and fit in the pipe.
TEST_F(RestorerRefusal, PipeBytesWithAGapOrMoreThanThePipeHolds) {
  static const std::uint8_t abc[3] = {'a', 'b', 'c'};
  static std::uint8_t rest[4094] = {};
  Craft c;
  FdRecord reader = fd_record(5, FdKind::pipe), writer = fd_record(6, FdKind::pipe);
  reader.data = Blob(abc, 3);
  reader.size = writer.size = 4096;
  writer.open_flags = O_WRONLY;
  c.fds = {reader, writer};
  c.file_data = {FileDataRecord{6, 4, Blob(rest, 8)}};
  expect_refused(restore(c), "fd 5 (/dev/null): the pipe's bytes at offset 4 do not follow the 3 before them");
  c.file_data = {FileDataRecord{6, 3, Blob(rest, sizeof rest)}};
  expect_refused(restore(c), "fd 5 (/dev/null): 4097 unread bytes do not fit in a pipe of 4096 bytes");
}

// A named pipe is opened again by its path in phase 1: a path that is no
// named pipe now, or unread bytes with a gap or past its capacity, refuse.
TEST_F(RestorerRefusal, ANamedPipeThatIsNoneNowOrBytesWithAGap) {
  Craft c;
  c.fds = {fd_record(5, FdKind::fifo)};
  expect_refused(restore(c), "fd 5 (/dev/null): /dev/null is no longer a named pipe");
  std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  static std::uint8_t bytes[8] = {};
  FdRecord f = fd_record(5, FdKind::fifo, fifo.c_str());
  f.size = 4096;
  c.fds = {f};
  c.file_data = {FileDataRecord{5, 0, Blob(bytes, 3)}, FileDataRecord{5, 4, Blob(bytes, 8)}};
  expect_refused(restore(c), "fd 5 (" + fifo + "): the named pipe's bytes at offset 4 do not follow the 3 before them");
}

// A socket is made and bound again in phase 1: an address someone else
// holds now, or one of another network namespace or machine, refuses.
TEST_F(RestorerRefusal, ASocketWhoseAddressIsTakenOrFromElsewhere) {
  int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof in;
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&in), sizeof in), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  ASSERT_EQ(::getsockname(holder, reinterpret_cast<sockaddr*>(&in), &len), 0);
  SocketRecord sock;
  sock.family = AF_INET;
  sock.type = SOCK_STREAM;
  sock.protocol = IPPROTO_TCP;
  sock.state = SocketState::listening;
  sock.local = Blob(reinterpret_cast<const std::uint8_t*>(&in), sizeof in);
  struct stat ns{};
  ASSERT_EQ(::stat("/proc/self/ns/net", &ns), 0);
  sock.netns = ns.st_ino;
  std::string boot;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
  parse_boot_id(boot.data(), boot.size(), sock.boot_id);
  std::uint8_t data[512];
  std::size_t n = 0;
  ASSERT_TRUE(encode(sock, data, sizeof data, &n));
  Craft c;
  FdRecord f = fd_record(5, FdKind::socket, "socket:[1]");
  f.data = Blob(data, n);
  c.fds = {f};
  expect_refused(restore(c), "fd 5 (socket): cannot bind its address again: Address already in use");
  sock.netns = ns.st_ino + 1;
  ASSERT_TRUE(encode(sock, data, sizeof data, &n));
  f.data = Blob(data, n);
  c.fds = {f};
  expect_refused(restore(c), "fd 5 (socket): its addresses belong to the network of the machine and namespace");
  ::close(holder);
}

// Socketpair ends (SocketState::pair): the other end missing, and queued
// data with a gap, refuse before anything is made.
TEST_F(RestorerRefusal, ASocketpairWithoutItsOtherEndOrWithAGapInItsQueue) {
  auto pair_end = [](std::int32_t fd, std::uint64_t ino, std::uint64_t peer, std::uint8_t* buf, std::size_t cap) {
    SocketRecord sock;
    sock.family = AF_UNIX;
    sock.type = SOCK_STREAM;
    sock.state = SocketState::pair;
    std::uint8_t peer_bytes[9] = {};
    std::memcpy(peer_bytes, &peer, 8);
    sock.peer = Blob(peer_bytes, sizeof peer_bytes);
    std::size_t n = 0;
    EXPECT_TRUE(encode(sock, buf, cap, &n));
    FdRecord f = fd_record(fd, FdKind::socket, "socket:[1]");
    f.inode = ino;
    f.data = Blob(buf, n);
    return f;
  };
  std::uint8_t a[256], b[256];
  Craft c;
  c.fds = {pair_end(5, 1001, 1002, a, sizeof a)};
  expect_refused(restore(c), "fd 5 (socket): the other end of its socketpair is not in the image");
  c.fds = {pair_end(5, 1001, 1002, a, sizeof a), pair_end(6, 1002, 1001, b, sizeof b)};
  const std::uint8_t bytes[] = {'q'};
  c.file_data = {FileDataRecord{6, 1, Blob(bytes, sizeof bytes)}};
  expect_refused(restore(c), "fd 6 (socket): its queued data has a gap or is out of order");
}

// An epoll watch on a descriptor the image does not hold refuses.
TEST_F(RestorerRefusal, AnEpollWatchOnADescriptorTheImageDoesNotHold) {
  std::uint8_t data[4 + 20] = {1, 0, 0, 0};
  const std::int32_t fd = 9;
  const std::uint32_t events = 1;  // EPOLLIN
  std::memcpy(data + 4, &fd, 4);
  std::memcpy(data + 8, &fd, 4);
  std::memcpy(data + 12, &events, 4);
  Craft c;
  FdRecord f = fd_record(5, FdKind::epoll, "anon_inode:[eventpoll]");
  f.data = Blob(data, sizeof data);
  c.fds = {f};
  expect_refused(restore(c), "a watch on fd 9, which the image does not hold");
}

TEST_F(RestorerRefusal, AMalformedSharedDescriptor) {
  Craft c;
  FdRecord f = fd_record(6, FdKind::shared);
  static const std::uint8_t three[3] = {5, 0, 0};
  f.data = Blob(three, 3);
  c.fds = {fd_record(5), f};
  expect_refused(restore(c), "fd 6 (/dev/null): a malformed shared-descriptor record");
}

TEST_F(RestorerRefusal, InstructionPointerInDataMemory) {
  Craft c;
  c.threads[0].ip = kStack + 64;
  expect_refused(restore(c), "thread 100: its instruction pointer 0x300040 is not in executable memory of the image");
}

TEST_F(RestorerRefusal, InstructionPointerUnmapped) {
  Craft c;
  c.threads[0].ip = 0x1234000;
  expect_refused(restore(c), "thread 100: its instruction pointer 0x1234000 is not in executable memory");
}

TEST_F(RestorerRefusal, StackPointerInCode) {
  Craft c;
  c.threads[0].sp = kCode + 2048;
  expect_refused(restore(c), "thread 100: its stack pointer 0x200800 is not in writable memory of the image");
}

TEST_F(RestorerRefusal, StackPointerZero) {
  Craft c;
  c.threads[0].sp = 0;
  expect_refused(restore(c), "thread 100: its stack pointer 0 is not in writable memory");
}

TEST_F(RestorerRefusal, StackPointerUnmapped) {
  Craft c;
  c.threads[0].sp = 0x7000000;
  expect_refused(restore(c), "thread 100: its stack pointer 0x7000000 is not in writable memory");
}

TEST_F(RestorerRefusal, SecondThreadsStackPointerInTheVdso) {
  auto vdso = own_vdso();
  ASSERT_FALSE(vdso.empty());
  Craft c;
  c.threads.push_back({101, kCode, vdso.back().start + 1024});
  expect_refused(restore(c), "thread 101: its stack pointer");
}

TEST_F(RestorerRefusal, NoRoomForTheSignalFrame) {
  Craft c;
  c.threads[0].sp = kStack + 64;
  expect_refused(restore(c), "thread 100: its stack pointer 0x300040 leaves no room for a signal frame");
}

TEST_F(RestorerRefusal, TooManyRegionRecords) {
  Craft c;
  c.extra_regions = kMaxRegionRecords;
  expect_refused(restore(c), "more than 65536 region records");
}

TEST_F(RestorerRefusal, MoreRegionsThanMaxMapCount) {
  long max_maps = 0;
  std::ifstream("/proc/sys/vm/max_map_count") >> max_maps;
  // The base image has 5 regions besides the extra ones; the restorer wants 8 to spare.
  if (max_maps < 16 || max_maps > static_cast<long>(kMaxRegionRecords)) GTEST_SKIP() << "vm.max_map_count is " << max_maps;
  Craft c;
  c.extra_regions = static_cast<std::size_t>(max_maps) - 8;
  expect_refused(restore(c), "memory regions, more than vm.max_map_count");
}

TEST_F(RestorerRefusal, TooManyThreadRecords) {
  Craft c;
  for (std::int32_t i = 1; i <= static_cast<std::int32_t>(kMaxThreadRecords); ++i) c.threads.push_back({100 + i});
  expect_refused(restore(c), "more than 4096 thread records");
}

TEST_F(RestorerRefusal, TooManyFdRecords) {
  Craft c;
  for (std::int32_t i = 0; i <= static_cast<std::int32_t>(kMaxFdRecords); ++i) c.fds.push_back(fd_record(3 + i));
  expect_refused(restore(c), "more than 65536 fd records");
}

TEST_F(RestorerRefusal, TooManyTimerRecords) {
  Craft c;
  c.extra_timers = kMaxTimerRecords + 1;
  expect_refused(restore(c), "more than 4096 posix timer records");
}

TEST_F(RestorerRefusal, MorePendingSignalsThanTheUserMayQueue) {
  Craft c;
  c.pending_signals = 3;
  expect_refused(restore(c, [] {
                   struct rlimit l{2, 2};
                   setrlimit(RLIMIT_SIGPENDING, &l);
                 }),
                 "the image has 3 pending signals, more than this user may queue (ulimit -i 2)");
}

TEST_F(RestorerRefusal, MoreThreadsThanTheUserMayRun) {
  Craft c;
  c.threads.push_back({101});
  c.threads.push_back({102});
  expect_refused(restore(c, [] {
                   struct rlimit l{2, 2};
                   setrlimit(RLIMIT_NPROC, &l);
                 }),
                 "the image has 3 threads, more than this user may run (ulimit -u 2)");
}

// A file lock of the image that another process holds now refuses the
// restore, naming the lock and the holder (this test process); free, it is
// taken and the program runs.
TEST_F(RestorerRefusal, AFileLockSomeoneElseHolds) {
  std::string file = dir_ + "/locked";
  int fd = open(file.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  Craft c;
  FdRecord f = fd_record(5, FdKind::regular, file.c_str());
  f.open_flags = O_RDWR;
  c.fds = {f};
  c.locks = {FileLockRecord{5, LockKind::posix, LockType::write, 0, 9}};
  Outcome o = restore(c);
  EXPECT_EQ(o.status, 42) << o.err;
  struct flock fl{};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 5;
  fl.l_len = 1;
  ASSERT_EQ(fcntl(fd, F_SETLK, &fl), 0);
  expect_refused(restore(c), "cannot take the posix write lock on bytes 0-9 of " + file +
                                 " (fd 5) again: process " + std::to_string(getpid()) +
                                 " holds a conflicting lock now; the image is kept");
  close(fd);
}

TEST_F(RestorerRefusal, AFileLockOnADescriptorTheImageDoesNotReopen) {
  Craft c;
  c.locks = {FileLockRecord{7, LockKind::flock, LockType::read, 0, kLockToEnd}};
  expect_refused(restore(c), "a file lock is recorded on fd 7, which is not a file the image reopens");
}

TEST_F(RestorerRefusal, ADeletedFileIsMadeAgainAndLeavesNoName) {
  std::string name = dir_ + "/ghost";
  std::string path = name + " (deleted)";
  Craft c;
  FdRecord f = fd_record(5, FdKind::ghost, path.c_str());
  f.open_flags = O_RDWR;
  f.size = 8192;
  f.mode = S_IFREG | 0640;
  f.uid = static_cast<std::uint32_t>(geteuid());
  f.gid = static_cast<std::uint32_t>(getegid());
  c.fds = {f};
  const std::uint8_t bytes[] = {'g', 'h', 'o', 's', 't'};
  c.file_data = {FileDataRecord{5, 4096, Blob(bytes, sizeof bytes)}};
  Outcome o = restore(c);
  EXPECT_EQ(o.status, 42) << o.err;
  EXPECT_FALSE(std::filesystem::exists(name));
}

TEST_F(RestorerRefusal, ADeletedFileWhoseNameIsTakenAgain) {
  std::string name = dir_ + "/ghost";
  std::string path = name + " (deleted)";
  std::ofstream(name) << "someone else's";
  Craft c;
  FdRecord f = fd_record(5, FdKind::ghost, path.c_str());
  f.uid = static_cast<std::uint32_t>(geteuid());
  f.gid = static_cast<std::uint32_t>(getegid());
  c.fds = {f};
  expect_refused(restore(c), "fd 5 (" + path + "): a deleted file, and " + name + " exists again");
  std::ifstream in(name);
  std::string kept;
  std::getline(in, kept);
  EXPECT_EQ(kept, "someone else's");
}

TEST_F(RestorerRefusal, FileDataThatFollowsNoDeletedFile) {
  Craft c;
  c.fds = {fd_record(5)};
  const std::uint8_t bytes[] = {'x'};
  c.file_data = {FileDataRecord{5, 0, Blob(bytes, sizeof bytes)}};
  expect_refused(restore(c),
                 "file data for fd 5 does not follow that descriptor's deleted-file, memfd, pipe, named pipe or socket "
                 "record");
}

TEST_F(RestorerRefusal, AnAuxiliaryVectorTheKernelDoesNotTake) {
  Craft c;
  c.auxv.assign(1008, 0);  // 63 pairs ending in AT_NULL: more than the kernel keeps
  c.auxv[0] = 6;           // AT_PAGESZ
  expect_refused(restore(c), "the kernel does not take the image's auxiliary vector (1008 bytes) back");
}

TEST_F(RestorerRefusal, TheImagesAuxiliaryVectorIsTaken) {
  Craft c;
  c.auxv.assign(32, 0);
  c.auxv[0] = 6;  // AT_PAGESZ 4096, then AT_NULL
  c.auxv[9] = 0x10;
  Outcome o = restore(c);
  EXPECT_EQ(o.status, 42) << o.err;
}

}  // namespace
}  // namespace mosix::ckpt
