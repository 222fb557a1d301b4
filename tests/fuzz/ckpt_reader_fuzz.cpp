// libFuzzer target over the checkpoint image reader: whatever the bytes, the
// reader and the record decoders must refuse or accept without crashing,
// reading out of bounds or leaving an empty error message. Each input is
// tried as it is and with its checksums repaired (to get past them).
#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_reader.h"
#include "tests/fuzz/ckpt_fuzz_common.h"

namespace mosix::ckpt {
namespace {

ReaderScratch* scratch() {
  static ReaderScratch* s = [] {
    auto* r = new ReaderScratch;
    if (!r->map()) std::abort();
    return r;
  }();
  return s;
}

void check_message(const ImageStatus& s) {
  if (!s.ok() && (s.message()[0] == '\0' || std::strlen(s.message()) >= ImageStatus::kCapacity)) std::abort();
}

// Reads record by record, expanding every page record into memory, the
// page data through the reader's buffer or (direct) straight into place.
void read_all(const std::uint8_t* data, std::size_t size, bool direct) {
  static std::vector<std::uint8_t> pages(kPagesPerChunkBytes);
  MemorySourceState st;
  ImageReader r(memory_source(&st, data, size), scratch());
  r.set_direct_pages(direct);
  ImageStatus s = r.open();
  check_message(s);
  if (!s) return;
  static const MachineInfo here = [] {
    MachineInfo m;
    describe_this_machine(&m);
    return m;
  }();
  check_message(check_compatible(r.header(), here));
  Record rec;
  while (!r.at_end()) {
    s = r.next(&rec);
    check_message(s);
    if (!s) return;
    if (rec.pages) check_message(r.read_pages(*rec.pages, pages.data(), pages.size(), true));
  }
}

void decode_all(const std::uint8_t* data, std::size_t size) {
  Blob b(data, size);
  HeaderRecord h;
  ProcessRecord p;
  ThreadRecord t;
  RegionRecord g;
  PagesRecord pg;
  FdRecord f;
  PosixTimerRecord pt;
  PendingSignalRecord ps;
  EndRecord e;
  check_message(decode(b, &h));
  check_message(decode(b, &p));
  check_message(decode(b, &t));
  check_message(decode(b, &g));
  check_message(decode(b, &pg));
  check_message(decode(b, &f));
  check_message(decode(b, &pt));
  check_message(decode(b, &ps));
  check_message(decode(b, &e));
}

}  // namespace
}  // namespace mosix::ckpt

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mosix::ckpt;
  MemorySourceState st;
  check_message(verify_image(memory_source(&st, data, size), scratch(), true, nullptr));
  read_all(data, size, false);
  read_all(data, size, true);
  std::vector<std::uint8_t> fixed(data, data + size);
  fuzz::fix_checksums(fixed);
  check_message(verify_image(memory_source(&st, fixed.data(), fixed.size()), scratch(), true, nullptr));
  read_all(fixed.data(), fixed.size(), false);
  read_all(fixed.data(), fixed.size(), true);
  if (size > kFrameSize) decode_all(data + kFrameSize, size - kFrameSize);
  return 0;
}
