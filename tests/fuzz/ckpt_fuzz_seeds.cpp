// Writes a small seed corpus of valid checkpoint images into DIR: every
// record type (file locks too), each compression setting, zero and non-zero
// pages, a file mapping, a skippable extension record.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/ckpt/format/image_writer.h"

namespace {

using namespace mosix::ckpt;

bool write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

std::vector<std::uint8_t> make_image(Compression c, std::size_t pages, bool file_region, bool extension) {
  std::vector<std::uint8_t> out(8 << 20);
  MemorySinkState sink;
  WriterScratch scratch;
  if (!scratch.map(c)) return {};
  ImageWriter w(memory_sink(&sink, out.data(), out.size()), c, &scratch);
  HeaderRecord h;
  describe_this_machine(&h.machine);
  std::strcpy(h.mosix_version, "seed");
  h.pid = 100;
  (void)w.header(h);
  ProcessRecord p;
  p.pid = 100;
  p.comm = "seed";
  p.cwd = "/tmp";
  p.rlimit_count = 2;
  p.signal_count = 3;
  p.sigactions[1].handler = 0x401000;
  (void)w.process(p);
  std::uint8_t regs[32] = {1, 2, 3};
  ThreadRecord t;
  t.tid = 100;
  t.flags = kThreadLeader;
  t.regs_kind = RegsKind::x86_64_ucontext;
  t.regs = Blob(regs, sizeof regs);
  (void)w.thread(t);
  std::vector<std::uint8_t> mem(pages * 4096, 0);
  for (std::size_t i = 0; i < mem.size(); i += 4096 * 3) std::memset(&mem[i], static_cast<int>(i / 4096 + 1), 100);
  RegionRecord r;
  r.start = 0x10000;
  r.end = r.start + mem.size();
  r.kind = file_region ? RegionKind::private_file : RegionKind::anon;
  r.path = file_region ? "/usr/lib/x86_64-linux-gnu/libc.so.6" : "";
  r.flags = kRegionHasPages;
  (void)w.region(r);
  (void)w.pages(0, mem.data(), mem.size());
  FdRecord f;
  f.fd = 3;
  f.path = "/etc/hostname";
  (void)w.fd(f);
  (void)w.file_lock(FileLockRecord{3, LockKind::posix, LockType::write, 0, 99});
  (void)w.file_lock(FileLockRecord{3, LockKind::flock, LockType::read, 0, kLockToEnd});
  FdRecord ghost;
  ghost.fd = 4;
  ghost.kind = FdKind::ghost;
  ghost.path = "/tmp/gone (deleted)";
  ghost.size = 1 << 20;
  (void)w.fd(ghost);
  const std::uint8_t contents[] = {'g', 'h', 'o', 's', 't'};
  (void)w.file_data(FileDataRecord{4, 4096, Blob(contents, sizeof contents)});
  PosixTimerRecord pt;
  pt.signo = 14;
  (void)w.posix_timer(pt);
  std::uint8_t info[128] = {14};
  PendingSignalRecord ps;
  ps.signo = 14;
  ps.siginfo = Blob(info, sizeof info);
  (void)w.pending_signal(ps);
  if (extension) {
    const std::uint8_t payload[] = {'n', 'e', 'w'};
    (void)w.extension(0x4000, true, Blob(payload, sizeof payload));
  }
  ImageStatus s = w.finish();
  scratch.unmap();
  if (!s) {
    std::fprintf(stderr, "ckpt_fuzz_seeds: %s\n", s.message());
    return {};
  }
  out.resize(sink.size);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ckpt_fuzz_seeds DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  mkdir(dir.c_str(), 0700);
  struct Seed {
    const char* name;
    Compression c;
    std::size_t pages;
    bool file_region, extension;
  };
  const Seed seeds[] = {
      {"none-small", Compression::none, 4, false, false},
      {"fast-small", Compression::fast, 4, false, true},
      {"best-file", Compression::best, 6, true, false},
      {"fast-two-chunks", Compression::fast, 300, false, false},
  };
  for (const Seed& s : seeds) {
    auto image = make_image(s.c, s.pages, s.file_region, s.extension);
    if (image.empty() || !write_file(dir + "/" + s.name + ".img", image.data(), image.size())) {
      std::fprintf(stderr, "ckpt_fuzz_seeds: cannot write %s/%s.img\n", dir.c_str(), s.name);
      return 1;
    }
  }
  return 0;
}
