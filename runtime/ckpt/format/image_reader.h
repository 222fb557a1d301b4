// ImageReader: reads an image sequentially (a file, a pipe, a socket or
// memory), checking every chunk's checksum and index, every record's
// structure, the order of records and, at the end record, the totals. It
// allocates nothing: memory comes from a ReaderScratch.
//
// Two ways to use it. verify_image() reads a whole image and says whether it
// is sound, before anything is restored; then a second ImageReader over the
// same file decodes it for real. Or, over a stream that cannot be re-read,
// read records with next() and act on them only once next() has returned the
// end record (or spool them). Any error is sticky and names the chunk, its
// byte offset and what was wrong.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_status.h"

namespace mosix::ckpt {

// Where a reader's bytes come from: `read` fills up to len bytes and returns
// the count, 0 at end of input, or -errno on error.
struct Source {
  void* context = nullptr;
  std::int64_t (*read)(void* context, void* buf, std::size_t len) = nullptr;
};

// Reads a file descriptor (retrying EINTR). Never reads past what the reader
// asks for, so a stream can carry more data after the image.
Source fd_source(int fd);

struct MemorySourceState {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  std::size_t pos = 0;
};
Source memory_source(MemorySourceState* state, const void* data, std::size_t size);

// The reader's working memory: a chunk buffer, a page buffer and a zstd
// decompression workspace. attach() carves it from caller memory, map()
// mmap()s it.
class ReaderScratch {
 public:
  static std::size_t required_size();
  bool attach(void* memory, std::size_t size);
  ImageStatus map();
  void unmap();

 private:
  friend class ImageReader;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
};

// One record as next() returns it. Exactly the pointer matching `type` is
// set (none for a skipped record); all views are valid until the next call.
struct Record {
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint64_t chunk_index = 0;
  std::uint64_t offset = 0;  // byte offset of the chunk's frame in the image
  Blob payload;              // without the page data when it is left for read_pages()
  const ProcessRecord* process = nullptr;
  const ThreadRecord* thread = nullptr;
  const RegionRecord* region = nullptr;
  const PagesRecord* pages = nullptr;
  const FdRecord* fd = nullptr;
  const PosixTimerRecord* posix_timer = nullptr;
  const PendingSignalRecord* pending_signal = nullptr;
  const FileLockRecord* file_lock = nullptr;
  const FileDataRecord* file_data = nullptr;
  const ThreadSchedRecord* thread_sched = nullptr;
  const EndRecord* end = nullptr;
};

class ImageReader {
 public:
  ImageReader(Source source, ReaderScratch* scratch);

  // Reads the preamble and the header record. Fails on a wrong magic, another
  // format version (before anything else is parsed) or a damaged header.
  ImageStatus open();
  const HeaderRecord& header() const { return header_; }

  // Reads the next record after the header. Unknown may-skip records are
  // skipped (counted), unknown others refused. After the end record,
  // at_end() is true and further calls return it again.
  ImageStatus next(Record* out);
  bool at_end() const { return at_end_; }
  // Bytes consumed so far.
  std::uint64_t offset() const { return offset_; }

  // Expands a pages record (as returned by next()) into `dst`, which holds
  // the page_count pages the record covers. Zero pages are written as zeros
  // when zero_fill, else left untouched (fresh anonymous memory is zero).
  // With dst null, only checks that the data expands to its raw size.
  ImageStatus read_pages(const PagesRecord& p, void* dst, std::size_t dst_len, bool zero_fill);

  // For a restore pass over an image that verify_image() has accepted:
  // next() then leaves the data of a pages record unread (the record's
  // `data` is empty) and read_pages() reads uncompressed pages from the
  // source straight into dst, one copy less. The checksum of such a chunk
  // is checked once its data has landed in dst (or when next() skips the
  // data because read_pages() was not called).
  void set_direct_pages(bool on) { direct_pages_ = on; }

  const ImageStatus& status() const { return status_; }

 private:
  ImageStatus fail(const ImageStatus& s);
  ImageStatus read_exact(void* buf, std::size_t len, std::uint64_t chunk, const char* what, bool* clean_eof);
  ImageStatus read_chunk(std::uint16_t* type, std::uint16_t* flags, Blob* payload);
  ImageStatus check_record(std::uint16_t type, Blob payload, Record* out);
  ImageStatus finish_pending(std::uint32_t crc);
  ImageStatus consume_pending();
  void describe_chunk(class MessageBuilder& m, std::uint16_t type, Blob payload) const;

  Source source_;
  ReaderScratch* scratch_;
  std::uint8_t* chunk_buf_ = nullptr;
  std::uint8_t* page_buf_ = nullptr;
  void* zstd_ = nullptr;
  HeaderRecord header_;
  ProcessRecord process_;
  ThreadRecord thread_;
  RegionRecord region_;
  PagesRecord pages_;
  FdRecord fd_;
  PosixTimerRecord posix_timer_;
  PendingSignalRecord pending_signal_;
  FileLockRecord file_lock_;
  ThreadSchedRecord thread_sched_;
  FileDataRecord file_data_;
  EndRecord end_;
  Record last_;
  bool opened_ = false;
  bool direct_pages_ = false;
  // A pages chunk whose data is still in the source (direct pages).
  bool pending_ = false;
  std::uint32_t pending_len_ = 0;
  std::uint32_t pending_head_len_ = 0;
  std::uint32_t pending_crc_ = 0;       // running CRC up to the data
  std::uint32_t pending_want_crc_ = 0;  // the frame's CRC
  std::uint64_t pending_index_ = 0;
  std::uint64_t pending_at_ = 0;
  bool have_process_ = false;
  bool at_end_ = false;
  bool have_region_ = false;
  std::uint64_t region_start_ = 0;
  std::uint64_t region_end_ = 0;
  std::uint64_t region_next_offset_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t chunks_ = 0;
  EndRecord counted_;
  std::uint32_t timer_count_ = 0;
  std::uint32_t pending_count_ = 0;
  std::uint32_t lock_count_ = 0;
  std::uint32_t sched_count_ = 0;
  std::uint32_t file_data_count_ = 0;
  ImageStatus status_;
};

// What verify_image() saw.
struct ImageSummary {
  HeaderRecord header;
  EndRecord totals;
  std::uint64_t bytes = 0;
  std::uint64_t page_bytes_raw = 0;  // bytes of non-zero pages after expansion
};

// Reads the whole image from source, checking everything the reader checks,
// decompressing every pages record, and that nothing follows the end record
// (when check_eof). Does not check compatibility with this machine.
ImageStatus verify_image(Source source, ReaderScratch* scratch, bool check_eof, ImageSummary* summary);
// Same, over a file (opened O_RDONLY|O_CLOEXEC), with its own mapped scratch.
ImageStatus verify_image_path(const char* path, ImageSummary* summary);

}  // namespace mosix::ckpt
