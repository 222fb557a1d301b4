// ImageWriter over memory that changes while it is written: the kernel
// writes a stopped process's rseq areas and futex words while the agent
// dumps it. The image must verify whatever the memory did meanwhile: each
// chunk's checksum is of the bytes that were written.
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_writer.h"

namespace mosix::ckpt {
namespace {

constexpr std::size_t kPage = 4096;

// Appends to `image` and, on every call, changes one byte of `memory` (the
// region being dumped) as a concurrent writer would.
struct MovingSink {
  std::vector<std::uint8_t> image;
  std::uint8_t* memory = nullptr;
  std::size_t memory_size = 0;
  std::uint64_t calls = 0;
};

ImageStatus moving_write(void* context, const struct iovec* iov, int count) {
  auto* s = static_cast<MovingSink*>(context);
  for (int i = 0; i < count; ++i) {
    // Between the checksum (already taken) and the bytes leaving.
    s->memory[(s->calls * 4099 + 17) % s->memory_size] ^= 0x5a;
    ++s->calls;
    const auto* p = static_cast<const std::uint8_t*>(iov[i].iov_base);
    s->image.insert(s->image.end(), p, p + iov[i].iov_len);
  }
  return ImageStatus::Ok();
}

ImageStatus verify(const std::vector<std::uint8_t>& image) {
  ReaderScratch scratch;
  if (ImageStatus s = scratch.map(); !s) return s;
  MemorySourceState st;
  ImageStatus s = verify_image(memory_source(&st, image.data(), image.size()), &scratch, true, nullptr);
  scratch.unmap();
  return s;
}

class MovingMemory : public ::testing::TestWithParam<Compression> {};

TEST_P(MovingMemory, ImageVerifies) {
  std::vector<std::uint8_t> memory(300 * kPage);
  for (std::size_t i = 0; i < memory.size(); ++i) memory[i] = static_cast<std::uint8_t>(i * 131 + 7);
  MovingSink sink;
  sink.memory = memory.data();
  sink.memory_size = memory.size();
  WriterScratch scratch;
  ASSERT_TRUE(scratch.map(GetParam()).ok());
  {
    ImageWriter w(Sink{&sink, &moving_write}, GetParam(), &scratch);
    HeaderRecord h;
    describe_this_machine(&h.machine);
    ASSERT_TRUE(w.header(h).ok()) << w.status().message();
    ASSERT_TRUE(w.process(ProcessRecord{}).ok());
    static const std::vector<std::uint8_t> regs(16, 1);
    ThreadRecord t;
    t.tid = 1;
    t.flags = kThreadLeader;
    t.regs_kind = RegsKind::x86_64_ucontext;
    t.regs = Blob(regs.data(), regs.size());
    ASSERT_TRUE(w.thread(t).ok()) << w.status().message();
    RegionRecord r;
    r.start = 0x30000000;
    r.end = r.start + memory.size();
    r.prot = 3;
    r.map_flags = 0x02;
    r.kind = RegionKind::anon;
    r.flags = kRegionHasPages;
    ASSERT_TRUE(w.region(r).ok()) << w.status().message();
    ASSERT_TRUE(w.pages(0, memory.data(), memory.size()).ok()) << w.status().message();
    ASSERT_TRUE(w.finish().ok()) << w.status().message();
  }
  scratch.unmap();
  EXPECT_GT(sink.calls, 3u);
  ImageStatus s = verify(sink.image);
  EXPECT_TRUE(s.ok()) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Compressions, MovingMemory,
                         ::testing::Values(Compression::none, Compression::fast, Compression::best));

}  // namespace
}  // namespace mosix::ckpt
