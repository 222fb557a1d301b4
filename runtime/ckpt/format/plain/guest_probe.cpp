// A shared object built the way the preload library is (linked as C, no
// C++ runtime, no undefined symbols allowed) that uses the whole format
// library, so a test can check that the format fits inside a guest.
#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_writer.h"

extern "C" __attribute__((visibility("default"))) int mosix_ckpt_format_probe(int out_fd, int in_fd) {
  using namespace mosix::ckpt;
  WriterScratch ws;
  if (!ws.map(Compression::fast)) return 1;
  FdSinkState sink;
  ImageWriter w(fd_sink(&sink, out_fd), Compression::fast, &ws);
  HeaderRecord h;
  describe_this_machine(&h.machine);
  ImageStatus s = w.header(h);
  if (s) s = w.process(ProcessRecord{});
  if (s) s = w.finish();
  ws.unmap();
  ReaderScratch rs;
  if (!rs.map()) return 1;
  s = verify_image(fd_source(in_fd), &rs, true, nullptr);
  rs.unmap();
  return s ? 0 : 1;
}
