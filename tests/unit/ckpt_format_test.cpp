// The checkpoint image format: every record round-trips, zero pages are
// elided, compression settings work, and damaged, truncated, foreign or
// incompatible images are refused with a message naming the problem.
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "runtime/ckpt/format/crc32c.h"
#include "runtime/ckpt/format/image_file.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_writer.h"
#include "runtime/core/little_endian.h"
#include "runtime/sys/atomic_file.h"

namespace mosix::ckpt {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::size_t kPage = 4096;

Blob bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct WriterBox {
  explicit WriterBox(Compression c, std::size_t capacity = 64 << 20) : out(capacity) {
    EXPECT_TRUE(scratch.map(c).ok());
    writer.emplace(memory_sink(&sink_state, out.data(), out.size()), c, &scratch);
  }
  ~WriterBox() { scratch.unmap(); }
  std::vector<std::uint8_t> image() const {
    return {out.begin(), out.begin() + static_cast<std::ptrdiff_t>(sink_state.size)};
  }
  std::vector<std::uint8_t> out;
  MemorySinkState sink_state;
  WriterScratch scratch;
  std::optional<ImageWriter> writer;
};

struct ReaderBox {
  explicit ReaderBox(const std::vector<std::uint8_t>& image) {
    EXPECT_TRUE(scratch.map().ok());
    reader.emplace(memory_source(&state, image.data(), image.size()), &scratch);
  }
  ~ReaderBox() { scratch.unmap(); }
  MemorySourceState state;
  ReaderScratch scratch;
  std::optional<ImageReader> reader;
};

ImageStatus verify_bytes(const std::vector<std::uint8_t>& image, ImageSummary* summary = nullptr) {
  ReaderScratch scratch;
  if (ImageStatus s = scratch.map(); !s) return s;
  MemorySourceState st;
  ImageStatus s = verify_image(memory_source(&st, image.data(), image.size()), &scratch, true, summary);
  scratch.unmap();
  return s;
}

HeaderRecord sample_header() {
  HeaderRecord h;
  describe_this_machine(&h.machine);
  std::strcpy(h.mosix_version, "0.1.0");
  std::strcpy(h.hostname, "node7");
  h.pid = 4242;
  h.real_pid = 31337;
  h.created_ns = 1'700'000'000'123'456'789;
  return h;
}

ProcessRecord sample_process() {
  ProcessRecord p;
  p.pid = 4242;
  p.ppid = 1;
  p.pgid = 4242;
  p.sid = 4000;
  p.umask = 022;
  p.personality = 0x40000;
  p.comm = "bc";
  p.cwd = "/home/user/work dir";
  p.exe = "/usr/bin/bc";
  p.start_brk = 0x555555560000;
  p.brk = 0x555555581000;
  p.start_stack = 0x7ffc0000f000;
  p.arg_start = 0x7ffc0000e000;
  p.arg_end = 0x7ffc0000e010;
  p.env_start = 0x7ffc0000e010;
  p.env_end = 0x7ffc0000eff0;
  p.rlimit_count = 16;
  for (std::uint32_t i = 0; i < 16; ++i) p.rlimits[i] = {i * 10, ~std::uint64_t{0} - i};
  p.signal_count = 64;
  for (std::uint32_t i = 0; i < 64; ++i) p.sigactions[i] = {0x401000u + i, 0x04000000u | i, 0x7f0000001000ull + i, 1ull << i};
  p.pending_shared = (1ull << 9) | (1ull << 33);
  p.itimers[0] = {1'000'000, 250'000};
  p.itimers[2] = {5, 7};
  p.flags = kProcessNoNewPrivs | kProcessThpDisabled | kProcessMembarrierRseq;
  static const std::uint8_t auxv[] = {33, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0xff, 0xf7, 0xff, 0x7f, 0, 0,  // AT_SYSINFO_EHDR
                                      0,  0, 0, 0, 0, 0, 0, 0, 0, 0,    0,    0,    0,    0,    0, 0};  // AT_NULL
  p.auxv = Blob(auxv, sizeof auxv);
  return p;
}

ThreadRecord sample_thread(std::int32_t tid, const std::vector<std::uint8_t>& regs,
                           const std::vector<std::uint8_t>& xstate) {
  ThreadRecord t;
  t.tid = tid;
  t.flags = tid == 4242 ? kThreadLeader : 0;
  t.name = "worker";
  t.regs_kind = RegsKind::x86_64_ucontext;
  t.regs = Blob(regs.data(), regs.size());
  t.xstate_kind = XstateKind::x86_64_xsave;
  t.xstate = Blob(xstate.data(), xstate.size());
  t.fs_base = 0x7f0000002000 + static_cast<std::uint64_t>(tid);
  t.gs_base = 3;
  t.sigmask = 0xfffffffe;
  t.pending = 1ull << 10;
  t.altstack_sp = 0x7f0000100000;
  t.altstack_size = 65536;
  t.altstack_flags = 2;
  t.robust_list = 0x7f0000002920;
  t.robust_list_len = 24;
  t.clear_child_tid = 0x7f00000029d0;
  t.rseq_addr = 0x7f0000002fe0;
  t.rseq_len = 32;
  t.rseq_sig = 0x53053053;
  return t;
}

RegionRecord sample_region(std::uint64_t start, std::size_t pages, RegionKind kind, bool with_pages) {
  RegionRecord r;
  r.start = start;
  r.end = start + pages * kPage;
  r.prot = 3;
  r.map_flags = kind == RegionKind::shared_file ? 0x01 : 0x02;
  r.kind = kind;
  r.flags = with_pages ? kRegionHasPages : 0;
  if (kind == RegionKind::private_file || kind == RegionKind::shared_file) {
    r.offset = 0x3000;
    r.path = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    r.file_dev = 0x803;
    r.file_inode = 123456;
    r.file_size = 1922136;
    r.file_mtime_ns = 1'690'000'000'000'000'001;
  }
  return r;
}

FdRecord sample_fd() {
  FdRecord f;
  f.fd = 3;
  f.kind = FdKind::regular;
  f.open_flags = 02 | 02000;
  f.fd_flags = 1;
  f.path = "/tmp/out.txt";
  f.offset = 8192;
  f.size = 10000;
  f.mtime_ns = -5;
  f.dev = 0x803;
  f.inode = 99;
  f.mode = 0100644;
  return f;
}

PosixTimerRecord sample_timer() {
  PosixTimerRecord t;
  t.timer_id = 1;
  t.clock_id = 1;
  t.notify = 4;
  t.signo = 34;
  t.sigev_value = 0xdeadbeef;
  t.notify_tid = 4243;
  t.overrun = 2;
  t.interval_ns = 10'000'000;
  t.value_ns = 3'000'000;
  return t;
}

// Region contents: pages with a pattern, every `zero_every`-th page zero.
std::vector<std::uint8_t> pattern_pages(std::size_t pages, std::size_t zero_every, std::uint32_t seed) {
  std::vector<std::uint8_t> v(pages * kPage);
  std::mt19937 rng(seed);
  for (std::size_t p = 0; p < pages; ++p) {
    if (zero_every && p % zero_every == 0) continue;
    for (std::size_t i = 0; i < kPage; i += 8) {
      std::uint64_t w = (p << 20) ^ (i * 0x9e3779b97f4a7c15ull) ^ (rng() & 0xff);
      std::memcpy(&v[p * kPage + i], &w, 8);
    }
  }
  return v;
}

// A complete image: two threads, an anonymous region with pages, a file
// region without, a private-file region with pages, an fd, a timer, a
// pending signal and a skippable extension.
struct SampleImage {
  std::vector<std::uint8_t> regs = std::vector<std::uint8_t>(936, 0x11);
  std::vector<std::uint8_t> xstate = std::vector<std::uint8_t>(2696, 0x22);
  std::vector<std::uint8_t> siginfo = std::vector<std::uint8_t>(128, 0x33);
  std::vector<std::uint8_t> anon = pattern_pages(300, 3, 1);
  std::vector<std::uint8_t> file_pages = pattern_pages(4, 2, 2);
  std::vector<std::uint8_t> bytes;

  explicit SampleImage(Compression c) {
    WriterBox w(c);
    ImageWriter& iw = *w.writer;
    EXPECT_TRUE(iw.header(sample_header()).ok());
    EXPECT_TRUE(iw.process(sample_process()).ok());
    EXPECT_TRUE(iw.thread(sample_thread(4242, regs, xstate)).ok());
    EXPECT_TRUE(iw.thread(sample_thread(4243, regs, xstate)).ok());
    EXPECT_TRUE(iw.region(sample_region(0x400000, 4, RegionKind::private_file, true)).ok());
    EXPECT_TRUE(iw.pages(0, file_pages.data(), file_pages.size()).ok());
    EXPECT_TRUE(iw.region(sample_region(0x10000000, 300, RegionKind::anon, true)).ok());
    EXPECT_TRUE(iw.pages(0, anon.data(), anon.size()).ok());
    EXPECT_TRUE(iw.region(sample_region(0x7f0000000000, 8, RegionKind::shared_file, false)).ok());
    EXPECT_TRUE(iw.fd(sample_fd()).ok());
    EXPECT_TRUE(iw.posix_timer(sample_timer()).ok());
    PendingSignalRecord ps;
    ps.tid = 4243;
    ps.signo = 34;
    ps.siginfo = Blob(siginfo.data(), siginfo.size());
    EXPECT_TRUE(iw.pending_signal(ps).ok());
    EXPECT_TRUE(iw.extension(0x4001, true, bytes_of("future stuff")).ok());
    EXPECT_TRUE(iw.finish().ok()) << iw.status().message();
    bytes = w.image();
  }
};

// A small image (a few KB) for exhaustive truncation and corruption.
std::vector<std::uint8_t> small_image(Compression c) {
  static const std::vector<std::uint8_t> regs(64, 7);
  static const std::vector<std::uint8_t> pages = pattern_pages(3, 2, 9);
  WriterBox w(c, 1 << 20);
  ImageWriter& iw = *w.writer;
  EXPECT_TRUE(iw.header(sample_header()).ok());
  ProcessRecord p;
  p.comm = "small";
  EXPECT_TRUE(iw.process(p).ok());
  EXPECT_TRUE(iw.thread(sample_thread(1, regs, {})).ok());
  EXPECT_TRUE(iw.region(sample_region(0x1000000, 3, RegionKind::anon, true)).ok());
  EXPECT_TRUE(iw.pages(0, pages.data(), pages.size()).ok());
  EXPECT_TRUE(iw.fd(sample_fd()).ok());
  EXPECT_TRUE(iw.finish().ok()) << iw.status().message();
  return w.image();
}

TEST(Crc32c, KnownVectorAndImplementationsAgree) {
  const char* v = "123456789";
  EXPECT_EQ(crc32c(0, v, 9), 0xe3069283u);
  EXPECT_EQ(crc32c_portable(0, v, 9), 0xe3069283u);
  std::mt19937 rng(5);
  std::vector<std::uint8_t> buf(40000);
  for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
  // Around the hardware path's block boundaries (three streams of 256 and of
  // 8192 bytes, then 8, 4 and 1 bytes at a time), at an odd address too.
  for (std::size_t len : {0u, 1u, 3u, 4u, 7u, 8u, 9u, 12u, 63u, 767u, 768u, 769u, 4096u, 24575u, 24576u,
                          24577u, 25344u, 39998u}) {
    for (std::size_t split : {std::size_t{0}, len / 3, len}) {
      for (const std::uint8_t* p : {buf.data(), buf.data() + 1}) {
        std::uint32_t whole = crc32c_portable(0, p, len);
        EXPECT_EQ(crc32c(crc32c(0, p, split), p + split, len - split), whole) << len << " " << split;
      }
    }
  }
}

TEST(Records, ProcessRoundTrip) {
  ProcessRecord in = sample_process();
  std::vector<std::uint8_t> buf(1 << 16);
  std::size_t len = 0;
  ASSERT_TRUE(encode(in, buf.data(), buf.size(), &len).ok());
  ProcessRecord out;
  ASSERT_TRUE(decode(Blob(buf.data(), len), &out).ok());
  EXPECT_EQ(out.pid, in.pid);
  EXPECT_EQ(out.ppid, in.ppid);
  EXPECT_EQ(out.pgid, in.pgid);
  EXPECT_EQ(out.sid, in.sid);
  EXPECT_EQ(out.umask, in.umask);
  EXPECT_EQ(out.personality, in.personality);
  EXPECT_EQ(out.comm, in.comm);
  EXPECT_EQ(out.cwd, in.cwd);
  EXPECT_EQ(out.exe, in.exe);
  EXPECT_EQ(out.start_brk, in.start_brk);
  EXPECT_EQ(out.brk, in.brk);
  EXPECT_EQ(out.start_stack, in.start_stack);
  EXPECT_EQ(out.arg_start, in.arg_start);
  EXPECT_EQ(out.arg_end, in.arg_end);
  EXPECT_EQ(out.env_start, in.env_start);
  EXPECT_EQ(out.env_end, in.env_end);
  ASSERT_EQ(out.rlimit_count, 16u);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(out.rlimits[i].cur, in.rlimits[i].cur);
    EXPECT_EQ(out.rlimits[i].max, in.rlimits[i].max);
  }
  ASSERT_EQ(out.signal_count, 64u);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(out.sigactions[i].handler, in.sigactions[i].handler);
    EXPECT_EQ(out.sigactions[i].flags, in.sigactions[i].flags);
    EXPECT_EQ(out.sigactions[i].restorer, in.sigactions[i].restorer);
    EXPECT_EQ(out.sigactions[i].mask, in.sigactions[i].mask);
  }
  EXPECT_EQ(out.pending_shared, in.pending_shared);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(out.itimers[i].interval_ns, in.itimers[i].interval_ns);
    EXPECT_EQ(out.itimers[i].value_ns, in.itimers[i].value_ns);
  }
  EXPECT_EQ(out.flags, kProcessNoNewPrivs | kProcessThpDisabled | kProcessMembarrierRseq);
  EXPECT_TRUE(std::equal(out.auxv.begin(), out.auxv.end(), in.auxv.begin(), in.auxv.end()));
}

TEST(Records, FieldsAreLittleEndianInOrder) {
  PosixTimerRecord t;
  t.timer_id = 0x01020304;
  t.clock_id = -1;
  std::uint8_t buf[128];
  std::size_t len = 0;
  ASSERT_TRUE(encode(t, buf, sizeof buf, &len).ok());
  EXPECT_EQ(len, 4u * 6 + 8u * 3);
  EXPECT_EQ(buf[0], 0x04);
  EXPECT_EQ(buf[3], 0x01);
  EXPECT_EQ(buf[4], 0xff);
  EXPECT_EQ(buf[7], 0xff);
}

TEST(Records, DecodeRefusesShortLongAndOversizedFields) {
  FdRecord f = sample_fd();
  std::vector<std::uint8_t> buf(1 << 16);
  std::size_t len = 0;
  ASSERT_TRUE(encode(f, buf.data(), buf.size(), &len).ok());
  FdRecord out;
  ImageStatus s = decode(Blob(buf.data(), len - 1), &out);
  EXPECT_THAT(s.message(), HasSubstr("fd record: ends inside field gid"));
  buf[len] = 0;
  s = decode(Blob(buf.data(), len + 1), &out);
  EXPECT_THAT(s.message(), HasSubstr("fd record: 1 unexpected bytes after the last field"));

  std::string long_path(kMaxText + 1, 'x');
  f.path = long_path;
  s = encode(f, buf.data(), buf.size(), &len);
  EXPECT_THAT(s.message(), HasSubstr("field path is too long (4097 bytes)"));

  ProcessRecord p;
  p.signal_count = 65;
  s = encode(p, buf.data(), buf.size(), &len);
  EXPECT_THAT(s.message(), HasSubstr("signal count is out of range (65)"));
}

TEST(Records, FileLocksRoundTripAndNonsenseIsRefused) {
  std::vector<std::uint8_t> buf(256);
  std::size_t len = 0;
  for (FileLockRecord in : {FileLockRecord{3, LockKind::posix, LockType::write, 0, 99},
                            FileLockRecord{4, LockKind::ofd, LockType::read, 200, kLockToEnd},
                            FileLockRecord{5, LockKind::flock, LockType::write, 0, kLockToEnd}}) {
    ASSERT_TRUE(encode(in, buf.data(), buf.size(), &len).ok());
    EXPECT_EQ(len, 4u + 1 + 1 + 8 + 8);
    FileLockRecord out;
    ASSERT_TRUE(decode(Blob(buf.data(), len), &out).ok());
    EXPECT_EQ(out.fd, in.fd);
    EXPECT_EQ(out.kind, in.kind);
    EXPECT_EQ(out.type, in.type);
    EXPECT_EQ(out.start, in.start);
    EXPECT_EQ(out.end, in.end);
  }
  struct Bad {
    FileLockRecord r;
    const char* why;
  };
  for (const Bad& b : {Bad{{3, static_cast<LockKind>(9), LockType::read, 0, 1}, "unknown kind (9)"},
                       Bad{{3, LockKind::posix, static_cast<LockType>(0), 0, 1}, "unknown type (0)"},
                       Bad{{3, LockKind::posix, LockType::read, 10, 9}, "end before start (9)"},
                       Bad{{3, LockKind::flock, LockType::read, 0, 100}, "a flock lock that is not on the whole file"}}) {
    ASSERT_TRUE(encode(b.r, buf.data(), buf.size(), &len).ok());
    FileLockRecord out;
    EXPECT_THAT(decode(Blob(buf.data(), len), &out).message(), HasSubstr(b.why));
  }
}

TEST(Records, SocketsRoundTripInEveryStateAndAnUnknownStateIsRefused) {
  std::vector<std::uint8_t> buf(2048);
  std::size_t len = 0;
  const std::uint8_t peer_ino[8] = {0x34, 0x12, 0, 0, 0, 0, 0, 0};
  const std::uint8_t rcvbuf[4] = {0x00, 0x10, 0, 0};
  for (SocketState state : {SocketState::plain, SocketState::listening, SocketState::connected, SocketState::pair}) {
    SocketRecord in;
    in.family = AF_UNIX;
    in.type = SOCK_DGRAM;
    in.state = state;
    in.netns = 77;
    in.boot_id[0] = 1;
    in.boot_id[1] = 2;
    in.peer = Blob(peer_ino, sizeof peer_ino);
    in.option_count = 1;
    in.options[0] = SocketOption{SOL_SOCKET, SO_RCVBUF, Blob(rcvbuf, sizeof rcvbuf)};
    ASSERT_TRUE(encode(in, buf.data(), buf.size(), &len).ok());
    SocketRecord out;
    ASSERT_TRUE(decode(Blob(buf.data(), len), &out).ok());
    EXPECT_EQ(out.state, state);
    EXPECT_EQ(out.family, in.family);
    EXPECT_EQ(out.type, in.type);
    EXPECT_EQ(out.netns, 77u);
    EXPECT_EQ(std::vector<std::uint8_t>(out.peer.begin(), out.peer.end()),
              std::vector<std::uint8_t>(peer_ino, peer_ino + 8));
    ASSERT_EQ(out.option_count, 1u);
    EXPECT_EQ(out.options[0].name, SO_RCVBUF);
  }
  SocketRecord bad;
  bad.state = static_cast<SocketState>(4);
  ASSERT_TRUE(encode(bad, buf.data(), buf.size(), &len).ok());
  SocketRecord out;
  EXPECT_THAT(decode(Blob(buf.data(), len), &out).message(), HasSubstr("bad state (4)"));
}

TEST(Records, ThreadSchedulingRoundTripsAndARealTimePolicyIsRefused) {
  std::vector<std::uint8_t> buf(64);
  std::size_t len = 0;
  ThreadSchedRecord in{2, -5, 3 /* SCHED_BATCH */};
  ASSERT_TRUE(encode(in, buf.data(), buf.size(), &len).ok());
  EXPECT_EQ(len, 12u);
  ThreadSchedRecord out;
  ASSERT_TRUE(decode(Blob(buf.data(), len), &out).ok());
  EXPECT_EQ(out.thread, 2u);
  EXPECT_EQ(out.nice, -5);
  EXPECT_EQ(out.policy, 3u);
  for (ThreadSchedRecord bad : {ThreadSchedRecord{0, 0, 1 /* SCHED_FIFO */}, ThreadSchedRecord{0, 20, 0}}) {
    ASSERT_TRUE(encode(bad, buf.data(), buf.size(), &len).ok());
    EXPECT_FALSE(decode(Blob(buf.data(), len), &out).ok());
  }
}

TEST(Records, FileDataRoundTripsAndEmptyOrOverflowingIsRefused) {
  std::vector<std::uint8_t> buf(kMaxFileData + 64);
  std::size_t len = 0;
  std::vector<std::uint8_t> data(kMaxFileData, 0x5a);
  FileDataRecord in{7, 1ull << 40, Blob(data.data(), data.size())};
  ASSERT_TRUE(encode(in, buf.data(), buf.size(), &len).ok());
  FileDataRecord out;
  ASSERT_TRUE(decode(Blob(buf.data(), len), &out).ok());
  EXPECT_EQ(out.fd, 7);
  EXPECT_EQ(out.offset, 1ull << 40);
  EXPECT_TRUE(std::equal(out.data.begin(), out.data.end(), data.begin(), data.end()));
  for (FileDataRecord bad : {FileDataRecord{7, 0, Blob()}, FileDataRecord{7, ~0ull - 3, Blob(data.data(), 8)}}) {
    ASSERT_TRUE(encode(bad, buf.data(), buf.size(), &len).ok());
    EXPECT_FALSE(decode(Blob(buf.data(), len), &out).ok());
  }
  data.push_back(0);
  EXPECT_THAT(encode(FileDataRecord{7, 0, Blob(data.data(), data.size())}, buf.data(), buf.size(), &len).message(),
              HasSubstr("too long"));
}

TEST(Records, EncodeFailsWhenTheBufferIsTooSmall) {
  std::uint8_t buf[20];
  std::size_t len = 0;
  ImageStatus s = encode(sample_fd(), buf, sizeof buf, &len);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("does not fit"));
}

class ImageRoundTrip : public ::testing::TestWithParam<Compression> {};

TEST_P(ImageRoundTrip, EveryRecordComesBackAsWritten) {
  SampleImage img(GetParam());
  ReaderBox rb(img.bytes);
  ImageReader& r = *rb.reader;
  ASSERT_TRUE(r.open().ok()) << r.status().message();
  HeaderRecord want_h = sample_header();
  const HeaderRecord& h = r.header();
  EXPECT_EQ(h.format_version, kFormatVersion);
  EXPECT_STREQ(h.mosix_version, "0.1.0");
  EXPECT_STREQ(h.hostname, "node7");
  EXPECT_EQ(h.pid, 4242);
  EXPECT_EQ(h.real_pid, 31337);
  EXPECT_EQ(h.created_ns, want_h.created_ns);
  EXPECT_EQ(h.compression, GetParam());
  EXPECT_STREQ(h.machine.kernel_release, want_h.machine.kernel_release);
  EXPECT_STREQ(h.machine.libc_version, want_h.machine.libc_version);
  EXPECT_STREQ(h.machine.cpu_vendor, want_h.machine.cpu_vendor);
  EXPECT_EQ(h.machine.xcr0, want_h.machine.xcr0);
  EXPECT_EQ(h.machine.xsave_size, want_h.machine.xsave_size);
  EXPECT_EQ(h.machine.cpu_features, want_h.machine.cpu_features);
  EXPECT_EQ(0, std::memcmp(h.machine.xsave_offset, want_h.machine.xsave_offset, sizeof h.machine.xsave_offset));

  Record rec;
  ASSERT_TRUE(r.next(&rec).ok()) << r.status().message();
  ASSERT_NE(rec.process, nullptr);
  EXPECT_EQ(rec.process->cwd, "/home/user/work dir");
  EXPECT_EQ(rec.process->sigactions[63].mask, 1ull << 63);

  for (std::int32_t tid : {4242, 4243}) {
    ASSERT_TRUE(r.next(&rec).ok()) << r.status().message();
    ASSERT_NE(rec.thread, nullptr);
    ThreadRecord want = sample_thread(tid, img.regs, img.xstate);
    const ThreadRecord& t = *rec.thread;
    EXPECT_EQ(t.tid, tid);
    EXPECT_EQ(t.flags, want.flags);
    EXPECT_EQ(t.name, "worker");
    EXPECT_EQ(t.regs_kind, RegsKind::x86_64_ucontext);
    EXPECT_EQ(std::vector<std::uint8_t>(t.regs.begin(), t.regs.end()), img.regs);
    EXPECT_EQ(t.xstate_kind, XstateKind::x86_64_xsave);
    EXPECT_EQ(std::vector<std::uint8_t>(t.xstate.begin(), t.xstate.end()), img.xstate);
    EXPECT_EQ(t.fs_base, want.fs_base);
    EXPECT_EQ(t.gs_base, want.gs_base);
    EXPECT_EQ(t.sigmask, want.sigmask);
    EXPECT_EQ(t.pending, want.pending);
    EXPECT_EQ(t.altstack_sp, want.altstack_sp);
    EXPECT_EQ(t.altstack_size, want.altstack_size);
    EXPECT_EQ(t.altstack_flags, want.altstack_flags);
    EXPECT_EQ(t.robust_list, want.robust_list);
    EXPECT_EQ(t.robust_list_len, want.robust_list_len);
    EXPECT_EQ(t.clear_child_tid, want.clear_child_tid);
    EXPECT_EQ(t.rseq_addr, want.rseq_addr);
    EXPECT_EQ(t.rseq_len, want.rseq_len);
    EXPECT_EQ(t.rseq_sig, want.rseq_sig);
  }

  // Private file region: all chunks recorded, zeros included.
  ASSERT_TRUE(r.next(&rec).ok());
  ASSERT_NE(rec.region, nullptr);
  RegionRecord want_file = sample_region(0x400000, 4, RegionKind::private_file, true);
  EXPECT_EQ(rec.region->start, want_file.start);
  EXPECT_EQ(rec.region->end, want_file.end);
  EXPECT_EQ(rec.region->kind, RegionKind::private_file);
  EXPECT_EQ(rec.region->path, want_file.path);
  EXPECT_EQ(rec.region->offset, want_file.offset);
  EXPECT_EQ(rec.region->file_dev, want_file.file_dev);
  EXPECT_EQ(rec.region->file_inode, want_file.file_inode);
  EXPECT_EQ(rec.region->file_size, want_file.file_size);
  EXPECT_EQ(rec.region->file_mtime_ns, want_file.file_mtime_ns);
  ASSERT_TRUE(r.next(&rec).ok());
  ASSERT_NE(rec.pages, nullptr);
  EXPECT_EQ(rec.pages->page_count, 4u);
  EXPECT_EQ(rec.pages->stored_count, 2u);
  std::vector<std::uint8_t> got(4 * kPage, 0xee);
  ASSERT_TRUE(r.read_pages(*rec.pages, got.data(), got.size(), true).ok()) << r.status().message();
  EXPECT_EQ(got, img.file_pages);

  ASSERT_TRUE(r.next(&rec).ok());
  ASSERT_NE(rec.region, nullptr);
  EXPECT_EQ(rec.region->kind, RegionKind::anon);
  std::vector<std::uint8_t> anon(img.anon.size(), 0);
  std::uint64_t covered = 0;
  for (;;) {
    ASSERT_TRUE(r.next(&rec).ok()) << r.status().message();
    if (!rec.pages) break;
    ASSERT_TRUE(r.read_pages(*rec.pages, anon.data() + rec.pages->offset, anon.size() - rec.pages->offset, false).ok());
    covered += rec.pages->page_count;
  }
  EXPECT_EQ(covered, 300u);
  EXPECT_EQ(anon, img.anon);

  ASSERT_NE(rec.region, nullptr);
  EXPECT_EQ(rec.region->kind, RegionKind::shared_file);
  EXPECT_EQ(rec.region->flags & kRegionHasPages, 0u);

  ASSERT_TRUE(r.next(&rec).ok());
  ASSERT_NE(rec.fd, nullptr);
  FdRecord want_fd = sample_fd();
  EXPECT_EQ(rec.fd->fd, want_fd.fd);
  EXPECT_EQ(rec.fd->kind, want_fd.kind);
  EXPECT_EQ(rec.fd->open_flags, want_fd.open_flags);
  EXPECT_EQ(rec.fd->fd_flags, want_fd.fd_flags);
  EXPECT_EQ(rec.fd->path, want_fd.path);
  EXPECT_EQ(rec.fd->offset, want_fd.offset);
  EXPECT_EQ(rec.fd->size, want_fd.size);
  EXPECT_EQ(rec.fd->mtime_ns, want_fd.mtime_ns);
  EXPECT_EQ(rec.fd->dev, want_fd.dev);
  EXPECT_EQ(rec.fd->inode, want_fd.inode);
  EXPECT_EQ(rec.fd->mode, want_fd.mode);

  ASSERT_TRUE(r.next(&rec).ok());
  ASSERT_NE(rec.posix_timer, nullptr);
  PosixTimerRecord want_t = sample_timer();
  EXPECT_EQ(rec.posix_timer->timer_id, want_t.timer_id);
  EXPECT_EQ(rec.posix_timer->clock_id, want_t.clock_id);
  EXPECT_EQ(rec.posix_timer->notify, want_t.notify);
  EXPECT_EQ(rec.posix_timer->signo, want_t.signo);
  EXPECT_EQ(rec.posix_timer->sigev_value, want_t.sigev_value);
  EXPECT_EQ(rec.posix_timer->notify_tid, want_t.notify_tid);
  EXPECT_EQ(rec.posix_timer->overrun, want_t.overrun);
  EXPECT_EQ(rec.posix_timer->interval_ns, want_t.interval_ns);
  EXPECT_EQ(rec.posix_timer->value_ns, want_t.value_ns);

  ASSERT_TRUE(r.next(&rec).ok());
  ASSERT_NE(rec.pending_signal, nullptr);
  EXPECT_EQ(rec.pending_signal->tid, 4243);
  EXPECT_EQ(rec.pending_signal->signo, 34);
  EXPECT_EQ(std::vector<std::uint8_t>(rec.pending_signal->siginfo.begin(), rec.pending_signal->siginfo.end()), img.siginfo);

  // The skippable extension is passed over; the end record follows.
  ASSERT_TRUE(r.next(&rec).ok()) << r.status().message();
  ASSERT_NE(rec.end, nullptr);
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(rec.end->thread_count, 2u);
  EXPECT_EQ(rec.end->region_count, 3u);
  EXPECT_EQ(rec.end->fd_count, 1u);
  EXPECT_EQ(rec.end->skipped_count, 1u);
  EXPECT_EQ(r.offset(), img.bytes.size());

  ImageSummary summary;
  ASSERT_TRUE(verify_bytes(img.bytes, &summary).ok());
  EXPECT_EQ(summary.bytes, img.bytes.size());
  EXPECT_EQ(summary.totals.pages_stored, 200u + 2u);
}

INSTANTIATE_TEST_SUITE_P(Compressions, ImageRoundTrip,
                         ::testing::Values(Compression::none, Compression::fast, Compression::best),
                         [](const auto& info) { return std::string(compression_name(info.param)); });

std::vector<std::uint8_t> one_region_image(Compression c, const std::vector<std::uint8_t>& contents, RegionKind kind,
                                           WriterTotals* totals = nullptr) {
  static const std::vector<std::uint8_t> regs(16, 1);
  WriterBox w(c);
  ImageWriter& iw = *w.writer;
  EXPECT_TRUE(iw.header(sample_header()).ok());
  EXPECT_TRUE(iw.process(ProcessRecord{}).ok());
  EXPECT_TRUE(iw.thread(sample_thread(1, regs, {})).ok());
  EXPECT_TRUE(iw.region(sample_region(0x20000000, contents.size() / kPage, kind, true)).ok());
  EXPECT_TRUE(iw.pages(0, contents.data(), contents.size()).ok());
  EXPECT_TRUE(iw.finish().ok()) << iw.status().message();
  if (totals) *totals = iw.totals();
  return w.image();
}

TEST(ZeroPages, AreNotStored) {
  std::vector<std::uint8_t> mem(1024 * kPage, 0);  // 4 MiB: four chunks
  mem[5 * kPage + 17] = 1;
  mem[700 * kPage] = 2;
  mem[1023 * kPage + kPage - 1] = 3;
  WriterTotals totals;
  auto image = one_region_image(Compression::none, mem, RegionKind::anon, &totals);
  EXPECT_EQ(totals.pages_stored, 3u);
  // Chunk 1 (pages 256..511) is all zero and not written at all.
  EXPECT_EQ(totals.pages_total, 768u);
  EXPECT_LT(image.size(), 4 * kPage);

  ReaderBox rb(image);
  ImageReader& r = *rb.reader;
  ASSERT_TRUE(r.open().ok());
  std::vector<std::uint8_t> back(mem.size(), 0);
  Record rec;
  do {
    ASSERT_TRUE(r.next(&rec).ok()) << r.status().message();
    if (rec.pages) {
      ASSERT_TRUE(r.read_pages(*rec.pages, back.data() + rec.pages->offset, kPagesPerChunkBytes, true).ok());
    }
  } while (!r.at_end());
  EXPECT_EQ(back, mem);
}

TEST(ZeroPages, OfAFileMappingAreRecordedAsZero) {
  std::vector<std::uint8_t> mem(512 * kPage, 0);
  WriterTotals totals;
  auto image = one_region_image(Compression::fast, mem, RegionKind::private_file, &totals);
  EXPECT_EQ(totals.pages_total, 512u);
  EXPECT_EQ(totals.pages_stored, 0u);
  EXPECT_TRUE(verify_bytes(image).ok());
}

TEST(Compression, ShrinksCompressibleDataAndBestIsNoWorseThanFast) {
  std::vector<std::uint8_t> mem(512 * kPage);
  for (std::size_t i = 0; i < mem.size(); ++i) mem[i] = static_cast<std::uint8_t>("mosix checkpoint "[i % 17]);
  auto none = one_region_image(Compression::none, mem, RegionKind::anon);
  auto fast = one_region_image(Compression::fast, mem, RegionKind::anon);
  auto best = one_region_image(Compression::best, mem, RegionKind::anon);
  EXPECT_GT(none.size(), mem.size());
  EXPECT_LT(fast.size(), mem.size() / 20);
  EXPECT_LE(best.size(), fast.size());
  for (auto* image : {&none, &fast, &best}) EXPECT_TRUE(verify_bytes(*image).ok());
}

TEST(Compression, IncompressibleChunksAreStoredRaw) {
  std::vector<std::uint8_t> mem(300 * kPage);
  std::mt19937_64 rng(11);
  for (std::size_t i = 0; i < mem.size(); i += 8) {
    std::uint64_t w = rng();
    std::memcpy(&mem[i], &w, 8);
  }
  WriterTotals totals;
  auto image = one_region_image(Compression::best, mem, RegionKind::anon, &totals);
  EXPECT_EQ(totals.page_bytes_written, mem.size());
  ReaderBox rb(image);
  ImageReader& r = *rb.reader;
  ASSERT_TRUE(r.open().ok());
  Record rec;
  std::vector<std::uint8_t> back(mem.size());
  do {
    ASSERT_TRUE(r.next(&rec).ok());
    if (rec.pages) {
      EXPECT_EQ(rec.pages->compression, Compression::none);
      ASSERT_TRUE(r.read_pages(*rec.pages, back.data() + rec.pages->offset, back.size() - rec.pages->offset, true).ok());
    }
  } while (!r.at_end());
  EXPECT_EQ(back, mem);
}

// Reads every pages record of `image` into a region-sized buffer, in direct
// mode or not, calling read_pages() only when `expand`.
ImageStatus read_region(const std::vector<std::uint8_t>& image, bool direct, bool expand,
                        std::vector<std::uint8_t>* mem) {
  ReaderBox rb(image);
  ImageReader& r = *rb.reader;
  r.set_direct_pages(direct);
  if (ImageStatus s = r.open(); !s) return s;
  Record rec;
  do {
    if (ImageStatus s = r.next(&rec); !s) return s;
    if (rec.pages && expand) {
      ImageStatus s = r.read_pages(*rec.pages, mem->data() + rec.pages->offset, mem->size() - rec.pages->offset, true);
      if (!s) return s;
    }
  } while (!r.at_end());
  return ImageStatus::Ok();
}

TEST(DirectPages, ReadStraightIntoPlaceGiveTheSameMemory) {
  std::vector<std::uint8_t> mem = pattern_pages(600, 4, 21);
  for (Compression c : {Compression::none, Compression::fast}) {
    auto image = one_region_image(c, mem, RegionKind::anon);
    std::vector<std::uint8_t> back(mem.size(), 0x5a);
    ImageStatus s = read_region(image, true, true, &back);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(back, mem) << compression_name(c);
    EXPECT_TRUE(read_region(image, true, false, &back).ok()) << "data left unread is skipped by next()";
  }
}

TEST(DirectPages, DamagedDataIsStillCaught) {
  std::vector<std::uint8_t> mem = pattern_pages(8, 0, 4);
  auto image = one_region_image(Compression::none, mem, RegionKind::anon);
  image[image.size() - 100 - 4096] ^= 0x10;
  std::vector<std::uint8_t> back(mem.size());
  for (bool expand : {true, false}) {
    std::string msg = read_region(image, true, expand, &back).message();
    EXPECT_THAT(msg, StartsWith("chunk 4 at byte "));
    EXPECT_THAT(msg, HasSubstr("(page data of region 0x20000000): checksum mismatch"));
  }
  std::vector<std::uint8_t> cut(image.begin(), image.end() - 5000);
  EXPECT_THAT(read_region(cut, true, true, &back).message(), StartsWith("image truncated at byte "));
}

TEST(Compression, SettingsParseAndName) {
  Compression c{};
  EXPECT_TRUE(parse_compression("best", &c));
  EXPECT_EQ(c, Compression::best);
  EXPECT_TRUE(parse_compression("none", &c));
  EXPECT_EQ(c, Compression::none);
  EXPECT_FALSE(parse_compression("gzip", &c));
  EXPECT_STREQ(compression_name(Compression::fast), "fast");
}

TEST(Refusal, EveryTruncationIsRefused) {
  for (Compression c : {Compression::none, Compression::fast}) {
    auto image = small_image(c);
    ASSERT_TRUE(verify_bytes(image).ok());
    for (std::size_t len = 0; len < image.size(); ++len) {
      std::vector<std::uint8_t> cut(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(len));
      ImageStatus s = verify_bytes(cut);
      ASSERT_FALSE(s.ok()) << "prefix of " << len << " bytes accepted";
      if (len == 0) {
        EXPECT_STREQ(s.message(), "image is empty");
      } else {
        EXPECT_THAT(s.message(), StartsWith("image truncated at byte " + std::to_string(len) + ":")) << len;
      }
    }
  }
}

TEST(Refusal, TruncationAtAChunkBoundaryNamesTheMissingEndRecord) {
  auto image = small_image(Compression::none);
  // The end record is the last chunk: its frame plus 40 bytes of totals.
  std::size_t end_chunk = kFrameSize + 8 + 8 + 4 * 4 + 8 + 8;
  std::vector<std::uint8_t> cut(image.begin(), image.end() - static_cast<std::ptrdiff_t>(end_chunk));
  EXPECT_EQ(verify_bytes(cut).message(),
            "image truncated at byte " + std::to_string(cut.size()) + ": no end record (6 chunks read)");
}

TEST(Refusal, EveryFlippedByteIsRefused) {
  for (Compression c : {Compression::none, Compression::fast}) {
    auto image = small_image(c);
    for (std::size_t i = 0; i < image.size(); ++i) {
      for (std::uint8_t bit : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
        std::vector<std::uint8_t> bad = image;
        bad[i] ^= bit;
        ASSERT_FALSE(verify_bytes(bad).ok()) << "flip at byte " << i << " accepted";
      }
    }
  }
}

TEST(Refusal, AFlippedPageByteNamesTheChunkAndRegion) {
  std::vector<std::uint8_t> mem = pattern_pages(8, 0, 4);
  auto image = one_region_image(Compression::none, mem, RegionKind::anon);
  image[image.size() - 100 - 4096] ^= 0x10;  // inside the page data, before the end record
  std::string msg = verify_bytes(image).message();
  EXPECT_THAT(msg, StartsWith("chunk 4 at byte "));
  EXPECT_THAT(msg, HasSubstr("(page data of region 0x20000000): checksum mismatch"));
}

TEST(Refusal, AnotherFormatVersionIsRefusedBeforeAnythingElse) {
  auto image = small_image(Compression::none);
  store_le<std::uint32_t>(image.data() + 8, kFormatVersion + 1);
  store_le<std::uint32_t>(image.data() + 12, crc32c(0, image.data(), 12));
  EXPECT_EQ(std::string(verify_bytes(image).message()),
            "image format version " + std::to_string(kFormatVersion + 1) + ", this mosix reads version " +
                std::to_string(kFormatVersion));
}

TEST(Refusal, NotAnImage) {
  std::vector<std::uint8_t> text(100, 'a');
  EXPECT_STREQ(verify_bytes(text).message(), "not a mosix image (bad magic)");
}

TEST(Refusal, TrailingDataAfterTheEndRecord) {
  auto image = small_image(Compression::none);
  std::size_t size = image.size();
  image.push_back(0);
  EXPECT_EQ(std::string(verify_bytes(image).message()),
            "image has data after its end record at byte " + std::to_string(size));
}

TEST(Refusal, ARepeatedChunkIsOutOfSequence) {
  auto image = small_image(Compression::none);
  // Repeat chunk 1 (the process record) right after itself.
  std::size_t at = kPreambleSize;
  at += kFrameSize + load_le<std::uint32_t>(image.data() + at);  // skip the header chunk
  std::size_t len = kFrameSize + load_le<std::uint32_t>(image.data() + at);
  std::vector<std::uint8_t> twice(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(at + len));
  twice.insert(twice.end(), image.begin() + static_cast<std::ptrdiff_t>(at), image.end());
  EXPECT_THAT(verify_bytes(twice).message(), HasSubstr("chunk 2 at byte " + std::to_string(at + len) +
                                                       ": carries index 1 (a chunk is missing or repeated)"));
}

std::vector<std::uint8_t> image_with_extension(bool may_skip) {
  static const std::vector<std::uint8_t> regs(16, 1);
  WriterBox w(Compression::none);
  ImageWriter& iw = *w.writer;
  EXPECT_TRUE(iw.header(sample_header()).ok());
  EXPECT_TRUE(iw.process(ProcessRecord{}).ok());
  EXPECT_TRUE(iw.extension(0x0123, may_skip, bytes_of("x")).ok());
  EXPECT_TRUE(iw.thread(sample_thread(1, regs, {})).ok());
  EXPECT_TRUE(iw.finish().ok());
  return w.image();
}

TEST(UnknownRecords, SkippableOnesAreSkipped) {
  ImageSummary summary;
  ASSERT_TRUE(verify_bytes(image_with_extension(true), &summary).ok());
  EXPECT_EQ(summary.totals.skipped_count, 1u);
  EXPECT_EQ(summary.totals.thread_count, 1u);
}

TEST(UnknownRecords, OthersAreRefused) {
  EXPECT_THAT(verify_bytes(image_with_extension(false)).message(),
              HasSubstr("chunk 2 at byte "));
  EXPECT_THAT(verify_bytes(image_with_extension(false)).message(),
              HasSubstr(": record type 0x123 is unknown to this mosix (format version " +
                        std::to_string(kFormatVersion) + ") and may not be skipped"));
}

TEST(Compatibility, SameMachineIsCompatible) {
  MachineInfo here;
  describe_this_machine(&here);
  EXPECT_STREQ(here.arch, "x86_64");
  EXPECT_EQ(here.page_size, static_cast<std::uint32_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_STREQ(here.libc_version, gnu_get_libc_version());
  EXPECT_NE(here.kernel_release[0], '\0');
  EXPECT_EQ(std::strlen(here.cpu_vendor), 12u);
  EXPECT_NE(here.cpu_features & kCpuSse42, 0u);
  if (here.xcr0) {
    EXPECT_EQ(here.xcr0 & 3, 3u);  // x87 and SSE are always enabled with XSAVE
    EXPECT_GE(here.xsave_size, 576u);
  }
  HeaderRecord h = sample_header();
  EXPECT_TRUE(check_compatible(h, here).ok()) << check_compatible(h, here).message();
}

MachineInfo fake_machine() {
  MachineInfo m;
  std::strcpy(m.arch, "x86_64");
  std::strcpy(m.libc_version, "2.36");
  m.page_size = 4096;
  m.xcr0 = 0x7;
  m.xsave_size = 832;
  m.xsave_offset[2] = 576;
  m.xsave_component_size[2] = 256;
  m.cpu_features = kCpuSse42 | kCpuAvx | kCpuAvx2 | kCpuErms;
  return m;
}

TEST(Compatibility, RefusalsNameWhatIsMissing) {
  MachineInfo here = fake_machine();
  HeaderRecord h;
  h.machine = fake_machine();
  EXPECT_TRUE(check_compatible(h, here).ok());

  HeaderRecord avx512 = h;
  avx512.machine.xcr0 = 0xe7;
  EXPECT_STREQ(check_compatible(avx512, here).message(), "image needs AVX-512 (XCR0 0xe7) but this CPU has XCR0 0x7");

  HeaderRecord feature = h;
  feature.machine.cpu_features |= kCpuBmi2;
  EXPECT_THAT(check_compatible(feature, here).message(), StartsWith("image needs BMI2 (CPU features "));

  HeaderRecord hint_only = h;
  here.cpu_features &= ~std::uint64_t{kCpuErms};
  EXPECT_TRUE(check_compatible(hint_only, here).ok()) << "ERMS is a hint, not a requirement";
  here = fake_machine();

  HeaderRecord layout = h;
  layout.machine.xsave_offset[2] = 640;
  EXPECT_STREQ(check_compatible(layout, here).message(),
               "image's XSAVE layout differs: state component 2 at offset 640 size 256, this CPU at offset 576 size 256");

  HeaderRecord version = h;
  version.format_version = 1;
  EXPECT_EQ(std::string(check_compatible(version, here).message()),
            "image format version 1, this mosix reads version " + std::to_string(kFormatVersion));

  HeaderRecord libc = h;
  std::strcpy(libc.machine.libc_version, "2.31");
  EXPECT_STREQ(check_compatible(libc, here).message(), "image was made with glibc 2.31, this machine has glibc 2.36");

  HeaderRecord arch = h;
  std::strcpy(arch.machine.arch, "aarch64");
  EXPECT_STREQ(check_compatible(arch, here).message(), "image is for aarch64, this machine is x86_64");

  HeaderRecord page = h;
  page.machine.page_size = 16384;
  EXPECT_STREQ(check_compatible(page, here).message(), "image has page size 16384, this machine 4096");
}

TEST(WriterOrder, RecordsOutOfOrderAreRefusedAndTheErrorSticks) {
  WriterBox w(Compression::none);
  ImageWriter& iw = *w.writer;
  EXPECT_THAT(iw.process(ProcessRecord{}).message(), HasSubstr("must follow the header"));
  EXPECT_FALSE(iw.header(sample_header()).ok()) << "errors are sticky";
  EXPECT_EQ(w.sink_state.size, 0u);
}

TEST(WriterOrder, PagesNeedTheirRegionAndStayInside) {
  static const std::vector<std::uint8_t> mem(4 * kPage, 1);
  {
    WriterBox w(Compression::none);
    ASSERT_TRUE(w.writer->header(sample_header()).ok());
    ASSERT_TRUE(w.writer->process(ProcessRecord{}).ok());
    EXPECT_THAT(w.writer->pages(0, mem.data(), mem.size()).message(), HasSubstr("without a preceding region record"));
  }
  {
    WriterBox w(Compression::none);
    ASSERT_TRUE(w.writer->header(sample_header()).ok());
    ASSERT_TRUE(w.writer->process(ProcessRecord{}).ok());
    ASSERT_TRUE(w.writer->region(sample_region(0x10000, 2, RegionKind::anon, true)).ok());
    EXPECT_THAT(w.writer->pages(0, mem.data(), mem.size()).message(), HasSubstr("outside region 0x10000-0x12000"));
  }
  {
    WriterBox w(Compression::none);
    ASSERT_TRUE(w.writer->header(sample_header()).ok());
    ASSERT_TRUE(w.writer->process(ProcessRecord{}).ok());
    ASSERT_TRUE(w.writer->region(sample_region(0x10000, 8, RegionKind::anon, true)).ok());
    EXPECT_THAT(w.writer->region(sample_region(0x11000, 2, RegionKind::anon, true)).message(),
                HasSubstr("region 0x11000 overlaps or precedes the one before"));
  }
  {
    WriterBox w(Compression::none);
    ASSERT_TRUE(w.writer->header(sample_header()).ok());
    ASSERT_TRUE(w.writer->process(ProcessRecord{}).ok());
    EXPECT_THAT(w.writer->finish().message(), HasSubstr("at least one thread"));
  }
}

TEST(FdSink, AClosedPipeIsAnErrorNotASignal) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[0]);
  // With SIGPIPE at its default action, a raised SIGPIPE would kill the test.
  struct sigaction old_action, dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &dfl, &old_action);
  FdSinkState st;
  WriterScratch scratch;
  ASSERT_TRUE(scratch.map(Compression::none).ok());
  ImageWriter w(fd_sink(&st, p[1]), Compression::none, &scratch);
  ImageStatus s = w.header(sample_header());
  EXPECT_STREQ(s.message(), "writing the image preamble: write failed: Broken pipe");
  sigset_t pending;
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE));
  sigaction(SIGPIPE, &old_action, nullptr);
  scratch.unmap();
  close(p[1]);
}

TEST(FdSink, AFullDeviceIsAnError) {
  int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  FdSinkState st;
  WriterScratch scratch;
  ASSERT_TRUE(scratch.map(Compression::fast).ok());
  ImageWriter w(fd_sink(&st, fd), Compression::fast, &scratch);
  EXPECT_THAT(w.header(sample_header()).message(), HasSubstr("No space left on device"));
  scratch.unmap();
  close(fd);
}

TEST(Streaming, WriterToPipeToReader) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  std::vector<std::uint8_t> mem = pattern_pages(700, 5, 3);
  static const std::vector<std::uint8_t> regs(16, 1);
  std::thread producer([&] {
    FdSinkState st;
    WriterScratch scratch;
    ASSERT_TRUE(scratch.map(Compression::fast).ok());
    ImageWriter w(fd_sink(&st, p[1]), Compression::fast, &scratch);
    EXPECT_TRUE(w.header(sample_header()).ok());
    EXPECT_TRUE(w.process(ProcessRecord{}).ok());
    EXPECT_TRUE(w.thread(sample_thread(1, regs, {})).ok());
    EXPECT_TRUE(w.region(sample_region(0x30000000, 700, RegionKind::heap, true)).ok());
    EXPECT_TRUE(w.pages(0, mem.data(), mem.size()).ok());
    EXPECT_TRUE(w.finish().ok()) << w.status().message();
    scratch.unmap();
    close(p[1]);
  });
  ReaderScratch scratch;
  ASSERT_TRUE(scratch.map().ok());
  ImageReader r(fd_source(p[0]), &scratch);
  ASSERT_TRUE(r.open().ok()) << r.status().message();
  std::vector<std::uint8_t> back(mem.size(), 0);
  Record rec;
  do {
    ASSERT_TRUE(r.next(&rec).ok()) << r.status().message();
    if (rec.pages) {
      ASSERT_TRUE(r.read_pages(*rec.pages, back.data() + rec.pages->offset, back.size() - rec.pages->offset, false).ok());
    }
  } while (!r.at_end());
  producer.join();
  EXPECT_EQ(back, mem);
  scratch.unmap();
  close(p[0]);
}

class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "ckpt_format_test.XXXXXX").string();
    path_ = mkdtemp(t.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Images are written with sys::AtomicFile (its own tests are in sys_test):
// one written through it appears whole on commit, mode 0600, and verifies.
TEST(ImageFile, AnImageThroughAtomicFileAppearsOnlyOnCommitWithMode0600) {
  TempDir dir;
  std::string path = dir.path() + "/job.img";
  auto f = sys::AtomicFile::create(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_FALSE(std::filesystem::exists(path));
  auto image = small_image(Compression::none);
  ASSERT_EQ(write(f->fd(), image.data(), image.size()), static_cast<ssize_t>(image.size()));
  ASSERT_TRUE(f->commit(sys::Durability::kDurable).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
  auto summary = verify_image_file(path);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->bytes, image.size());
}

TEST(VerifyImageFile, NamesThePathAndTheProblem) {
  TempDir dir;
  std::string path = dir.path() + "/cut.img";
  auto image = small_image(Compression::none);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, image.data(), 100), 100);
  close(fd);
  auto summary = verify_image_file(path);
  ASSERT_FALSE(summary.ok());
  EXPECT_THAT(summary.error().message, StartsWith(path + ": image truncated at byte 100"));
}

// ImageFollower checks an image while it is written (request_checkpoint and
// moves): the same verdicts as verify_image_file, whatever the pieces.
void write_in_pieces(const std::string& path, const std::vector<std::uint8_t>& bytes, std::size_t piece) {
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    std::size_t n = std::min(piece, bytes.size() - at);
    ASSERT_EQ(write(fd, bytes.data() + at, n), static_cast<ssize_t>(n));
  }
  close(fd);
}

TEST(ImageFollower, ChecksAnImageAsItIsWritten) {
  TempDir dir;
  std::string path = dir.path() + "/followed.img";
  auto image = small_image(Compression::none);
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, image.size()}) {
    close(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ImageFollower follower(path);
    write_in_pieces(path, image, piece);
    auto summary = follower.finish(image.size());
    ASSERT_TRUE(summary.ok()) << "pieces of " << piece << ": " << summary.error().message;
    EXPECT_EQ(summary->bytes, image.size());
  }
}

TEST(ImageFollower, RefusesWhatVerifyImageFileRefuses) {
  TempDir dir;
  std::string path = dir.path() + "/bad.img";
  auto image = small_image(Compression::none);
  auto corrupt = image;
  corrupt[corrupt.size() / 2] ^= 0x40;
  struct Case {
    std::vector<std::uint8_t> bytes;
    std::uint64_t said;
    const char* says;
  };
  for (const Case& c : {Case{corrupt, corrupt.size(), "checksum"},
                        Case{{image.begin(), image.begin() + 100}, 100, "image truncated at byte 100"},
                        Case{image, image.size() + 1, "the agent wrote"}}) {
    close(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ImageFollower follower(path);
    write_in_pieces(path, c.bytes, 512);
    auto summary = follower.finish(c.said);
    ASSERT_FALSE(summary.ok()) << c.says;
    EXPECT_THAT(summary.error().message, HasSubstr(c.says));
    EXPECT_THAT(summary.error().message, StartsWith(path + ": "));
  }
}

TEST(DefaultImageDir, FollowsXdgStateHome) {
  EXPECT_EQ(default_image_dir("/state", "/home/u"), "/state/mosix");
  EXPECT_EQ(default_image_dir("relative", "/home/u"), "/home/u/.local/state/mosix");
  EXPECT_EQ(default_image_dir(nullptr, "/home/u"), "/home/u/.local/state/mosix");
  EXPECT_EQ(default_image_dir(nullptr, nullptr), "");
}

}  // namespace
}  // namespace mosix::ckpt
