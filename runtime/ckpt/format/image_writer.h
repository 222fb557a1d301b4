// ImageWriter: writes an image strictly sequentially (a pipe or a socket
// will do) without allocating: all memory comes from a WriterScratch set up
// beforehand. Safe to use with the other threads of the process stopped and
// from a signal handler, and never raises SIGPIPE: a failed write (EPIPE,
// ENOSPC, ...) becomes an ImageStatus, which is sticky.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_status.h"

namespace mosix::ckpt {

// Where a writer's bytes go: a function table instead of a virtual class so
// the guest-side agent needs no C++ runtime. `write` must consume all of
// iov or fail.
struct Sink {
  void* context = nullptr;
  ImageStatus (*write)(void* context, const struct iovec* iov, int count) = nullptr;
};

// Writes to a file descriptor, retrying short writes and EINTR. Sockets are
// written with MSG_NOSIGNAL, other descriptors with SIGPIPE blocked in the
// calling thread for the duration of each write (a SIGPIPE raised by it is
// consumed). `state` must outlive the sink.
struct FdSinkState {
  int fd = -1;
  bool is_socket = false;
};
Sink fd_sink(FdSinkState* state, int fd);

// Appends into a caller-provided buffer; fails when full. For tests and
// in-memory images.
struct MemorySinkState {
  std::uint8_t* data = nullptr;
  std::size_t capacity = 0;
  std::size_t size = 0;
};
Sink memory_sink(MemorySinkState* state, void* data, std::size_t capacity);

// The writer's working memory: a record buffer, a page buffer and, when
// compressing, a zstd workspace. Either carve it from caller memory
// (required_size bytes, 64-byte aligned) or map it with map() and release
// it with unmap(). The agent should leave these pages out of the image.
class WriterScratch {
 public:
  static std::size_t required_size(Compression c);
  // Uses [memory, memory + size); false if size < required_size(c) or misaligned.
  bool attach(Compression c, void* memory, std::size_t size);
  // mmap()s required_size(c) bytes. Fails with the errno text.
  ImageStatus map(Compression c);
  // munmap()s what map() mapped; no-op for attached memory.
  void unmap();

  void* base() const { return base_; }
  std::size_t size() const { return size_; }

 private:
  friend class ImageWriter;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
  Compression compression_ = Compression::none;
};

// Counts kept while writing; they become the end record.
struct WriterTotals {
  std::uint64_t chunks = 0;
  std::uint64_t bytes = 0;
  std::uint32_t threads = 0;
  std::uint32_t regions = 0;
  std::uint32_t fds = 0;
  std::uint32_t skipped = 0;
  std::uint64_t pages_total = 0;
  std::uint64_t pages_stored = 0;
  std::uint64_t page_bytes_written = 0;  // payload bytes of page data after compression
};

// Order: header, process, then threads, regions (each followed by its pages,
// in increasing offset), fds, file locks, timers and pending signals in any order, then
// finish(). A call out of order fails without writing.
class ImageWriter {
 public:
  // scratch must be attached or mapped for at least `compression`.
  ImageWriter(Sink sink, Compression compression, WriterScratch* scratch);

  // Writes the preamble and the header. format_version and compression of h
  // are overwritten with the writer's.
  ImageStatus header(const HeaderRecord& h);
  ImageStatus process(const ProcessRecord& p);
  ImageStatus thread(const ThreadRecord& t);
  ImageStatus region(const RegionRecord& r);
  // Page data of the region last passed to region(): `len` readable bytes at
  // `data` holding the region's contents from `offset` (bytes from
  // region.start, both page aligned, within the region, after any previous
  // pages call). Zero pages are elided; the rest goes out in chunks of at
  // most kPagesPerChunkBytes, compressed as configured (stored raw when
  // compression does not make a chunk smaller). A chunk of only zero pages
  // of an anonymous region is not written at all; parts of a region never
  // passed to pages() are left to what the restorer's mapping holds.
  ImageStatus pages(std::uint64_t offset, const void* data, std::size_t len);
  ImageStatus fd(const FdRecord& f);
  ImageStatus posix_timer(const PosixTimerRecord& t);
  ImageStatus pending_signal(const PendingSignalRecord& s);
  // After the fd record of l.fd.
  ImageStatus file_lock(const FileLockRecord& l);
  ImageStatus thread_sched(const ThreadSchedRecord& t);
  // After the fd record of d.fd, a ghost.
  ImageStatus file_data(const FileDataRecord& d);
  // A record of a type this version may not know (extensions, tests).
  ImageStatus extension(std::uint16_t type, bool may_skip, Blob payload);
  // Writes the end record. Nothing may follow.
  ImageStatus finish();

  // First error, sticky; Ok while all went well.
  const ImageStatus& status() const { return status_; }
  const WriterTotals& totals() const { return totals_; }
  std::uint64_t bytes_written() const { return totals_.bytes; }

 private:
  enum class Stage : std::uint8_t { start, header, process, body, finished };
  ImageStatus fail(const ImageStatus& s);
  ImageStatus write_chunk(std::uint16_t type, std::uint16_t flags, const struct iovec* payload, int count);
  ImageStatus write_encoded(RecordType type, std::size_t len);
  ImageStatus pages_chunk(std::uint64_t offset, const std::uint8_t* data, std::uint32_t page_count);
  template <typename R>
  ImageStatus body_record(const R& r, RecordType type);

  Sink sink_;
  Compression compression_;
  WriterScratch* scratch_;
  std::uint8_t* record_buf_ = nullptr;
  std::size_t record_cap_ = 0;
  std::uint8_t* gather_buf_ = nullptr;
  std::uint8_t* packed_buf_ = nullptr;
  std::size_t packed_cap_ = 0;
  void* zstd_ = nullptr;
  Stage stage_ = Stage::start;
  std::uint32_t page_size_ = 4096;
  bool have_region_ = false;
  bool region_file_backed_ = false;
  std::uint64_t region_start_ = 0;
  std::uint64_t region_end_ = 0;
  std::uint64_t region_next_offset_ = 0;
  WriterTotals totals_;
  ImageStatus status_;
};

}  // namespace mosix::ckpt
