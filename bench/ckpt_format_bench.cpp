// Throughput of the image format: writing SIZE MiB of written (non-zero)
// pages to a pipe with each compression setting, against copying the same
// bytes through a pipe; and expanding the image from memory back into
// touched pages, against memcpy. Baselines are measured in the same run;
// the ratios are what to look at. Usage: ckpt_format_bench [SIZE_MIB]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "common/cli.h"
#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_writer.h"

namespace {

using namespace mosix::ckpt;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPage = 4096;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double gib_per_s(std::size_t bytes, double s) { return static_cast<double>(bytes) / s / (1 << 30); }

// Drains a pipe, returning the byte count through `total`.
std::thread drain(int fd, std::size_t* total) {
  return std::thread([fd, total] {
    std::vector<char> buf(1 << 20);
    std::size_t n = 0;
    for (;;) {
      ssize_t r = read(fd, buf.data(), buf.size());
      if (r <= 0) break;
      n += static_cast<std::size_t>(r);
    }
    *total = n;
  });
}

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) std::abort();
    r = p[0];
    w = p[1];
    fcntl(w, F_SETPIPE_SZ, 1 << 20);
  }
};

double pipe_copy(const std::vector<std::uint8_t>& mem) {
  Pipe p;
  std::size_t got = 0;
  auto t0 = Clock::now();
  std::thread t = drain(p.r, &got);
  for (std::size_t at = 0; at < mem.size();) {
    ssize_t n = write(p.w, mem.data() + at, std::min<std::size_t>(1 << 20, mem.size() - at));
    if (n <= 0) std::abort();
    at += static_cast<std::size_t>(n);
  }
  close(p.w);
  t.join();
  double s = seconds_since(t0);
  close(p.r);
  return s;
}

bool write_image(Sink sink, Compression c, const std::vector<std::uint8_t>& mem, WriterTotals* totals) {
  WriterScratch scratch;
  if (!scratch.map(c)) return false;
  ImageWriter w(sink, c, &scratch);
  HeaderRecord h;
  describe_this_machine(&h.machine);
  ImageStatus s = w.header(h);
  if (s) s = w.process(ProcessRecord{});
  ThreadRecord t;
  if (s) s = w.thread(t);
  RegionRecord r;
  r.start = 0x10000000;
  r.end = r.start + mem.size();
  r.flags = kRegionHasPages;
  if (s) s = w.region(r);
  if (s) s = w.pages(0, mem.data(), mem.size());
  if (s) s = w.finish();
  if (!s) std::fprintf(stderr, "write failed: %s\n", s.message());
  *totals = w.totals();
  scratch.unmap();
  return s.ok();
}

double write_to_pipe(Compression c, const std::vector<std::uint8_t>& mem, std::size_t* image_bytes) {
  Pipe p;
  std::size_t got = 0;
  FdSinkState st;
  WriterTotals totals;
  auto t0 = Clock::now();
  std::thread t = drain(p.r, &got);
  bool ok = write_image(fd_sink(&st, p.w), c, mem, &totals);
  close(p.w);
  t.join();
  double s = seconds_since(t0);
  close(p.r);
  if (!ok) std::exit(1);
  *image_bytes = got;
  return s;
}

double read_from_memory(const std::vector<std::uint8_t>& image, std::vector<std::uint8_t>& dst) {
  ReaderScratch scratch;
  if (!scratch.map()) std::abort();
  MemorySourceState st;
  auto t0 = Clock::now();
  ImageReader r(memory_source(&st, image.data(), image.size()), &scratch);
  r.set_direct_pages(true);
  ImageStatus s = r.open();
  Record rec;
  while (s && !r.at_end()) {
    s = r.next(&rec);
    if (s && rec.pages) s = r.read_pages(*rec.pages, dst.data() + rec.pages->offset, dst.size() - rec.pages->offset, true);
  }
  double secs = seconds_since(t0);
  scratch.unmap();
  if (!s) {
    std::fprintf(stderr, "read failed: %s\n", s.message());
    std::exit(1);
  }
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mib = 512;
  CLI::App app{"Image format throughput per compression setting, against a pipe copy and memcpy",
               "ckpt_format_bench"};
  app.add_option("size", mib, "MiB of written pages (default 512)")->check(mosix::bench::positive());
  if (auto status = mosix::bench::parse_command_line(app, argc, argv)) return *status;
  std::size_t size = mib << 20;
  // Written memory: every page non-zero, half of each page a repeating
  // pattern (compressible), half pseudo-random.
  std::vector<std::uint8_t> mem(size);
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = 0; i < size; i += 8) {
    std::uint64_t w;
    if ((i % kPage) < kPage / 2) {
      w = i / kPage * 0x0101010101010101ull;
    } else {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    std::memcpy(&mem[i], &w, 8);
  }
  std::vector<std::uint8_t> dst(size, 1);

  auto t0 = Clock::now();
  std::memcpy(dst.data(), mem.data(), size);
  double memcpy_s = seconds_since(t0);
  double pipe_s = pipe_copy(mem);
  std::printf("%zu MiB of written pages\n", mib);
  std::printf("baseline memcpy      %6.2f GiB/s\n", gib_per_s(size, memcpy_s));
  std::printf("baseline pipe copy   %6.2f GiB/s\n", gib_per_s(size, pipe_s));

  for (Compression c : {Compression::none, Compression::fast, Compression::best}) {
    std::size_t image_bytes = 0;
    double s = write_to_pipe(c, mem, &image_bytes);
    std::printf("write %-4s to pipe   %6.2f GiB/s  %.2fx pipe copy  image %zu MiB\n", compression_name(c),
                gib_per_s(size, s), pipe_s / s, image_bytes >> 20);
  }
  for (Compression c : {Compression::none, Compression::fast}) {
    std::vector<std::uint8_t> image(size + size / 16 + (16 << 20));
    MemorySinkState st;
    WriterTotals totals;
    if (!write_image(memory_sink(&st, image.data(), image.size()), c, mem, &totals)) return 1;
    image.resize(st.size);
    double s = read_from_memory(image, dst);
    if (std::memcmp(dst.data(), mem.data(), size) != 0) {
      std::fprintf(stderr, "read back differs\n");
      return 1;
    }
    std::printf("read  %-4s to memory %6.2f GiB/s  %.2fx memcpy\n", compression_name(c), gib_per_s(size, s),
                memcpy_s / s);
  }
  return 0;
}
