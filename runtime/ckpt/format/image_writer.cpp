#include "runtime/ckpt/format/image_writer.h"

#define ZSTD_STATIC_LINKING_ONLY  // static contexts in caller memory: no malloc
#include <sys/mman.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

#include "runtime/ckpt/format/crc32c.h"
#include "runtime/core/little_endian.h"

// zstd calls these trace hooks when some loaded object defines them (they
// are weak in libzstd.a). Defined here, hidden and inert, so that a guest
// program that defines its own cannot be handed our zstd's contexts.
extern "C" {
unsigned long long ZSTD_trace_compress_begin(const struct ZSTD_CCtx_s*) { return 0; }
void ZSTD_trace_compress_end(unsigned long long, const void*) {}
}

namespace mosix::ckpt {
namespace {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kMaxPagesPerChunk = kPagesPerChunkBytes / 4096;
// Frame, pages head, then the chunk's pages in one piece (a record's
// payload takes fewer).
constexpr std::size_t kMaxIov = 3;

constexpr std::size_t align_up(std::size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

std::size_t zstd_workspace(Compression c) {
  if (c == Compression::none) return 0;
  return align_up(ZSTD_estimateCCtxSize_usingCParams(
      ZSTD_getCParams(compression_level(c), kPagesPerChunkBytes, 0)));
}

struct Layout {
  std::size_t iov = 0, record = 0, gather = 0, packed = 0, zstd = 0, total = 0;
};

Layout layout(Compression c) {
  Layout l;
  std::size_t at = 0;
  l.iov = at;
  at += align_up(kMaxIov * sizeof(struct iovec));
  l.record = at;
  at += align_up(kMaxPayload);
  // Every chunk's pages are copied here before anything else reads them.
  l.gather = at;
  at += align_up(kPagesPerChunkBytes);
  if (c != Compression::none) {
    l.packed = at;
    at += align_up(ZSTD_COMPRESSBOUND(kPagesPerChunkBytes));
    l.zstd = at;
    at += zstd_workspace(c);
  }
  l.total = at;
  return l;
}

bool valid_compression(Compression c) {
  return c == Compression::none || c == Compression::fast || c == Compression::best;
}

bool zero_page(const std::uint8_t* p, std::size_t size) {
  // OR 64 bytes at a time: data pages usually fail on the first block.
  for (std::size_t i = 0; i < size; i += 64) {
    std::uint64_t w[8];
    std::memcpy(w, p + i, 64);
    if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) return false;
  }
  return true;
}

bool file_backed(RegionKind k) {
  return k == RegionKind::private_file || k == RegionKind::shared_file;
}

}  // namespace

std::size_t WriterScratch::required_size(Compression c) {
  return layout(c).total;
}

bool WriterScratch::attach(Compression c, void* memory, std::size_t size) {
  if (!valid_compression(c) || !memory || size < required_size(c) ||
      reinterpret_cast<std::uintptr_t>(memory) % kAlign)
    return false;
  unmap();
  base_ = memory;
  size_ = size;
  mapped_ = false;
  compression_ = c;
  return true;
}

ImageStatus WriterScratch::map(Compression c) {
  if (!valid_compression(c)) return ImageStatus::Failure("writer scratch: unknown compression setting");
  unmap();
  std::size_t n = required_size(c);
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return MessageBuilder().text("cannot map ").dec(n).text(" bytes of writer scratch memory: ").errno_text(errno).status();
  }
  base_ = p;
  size_ = n;
  mapped_ = true;
  compression_ = c;
  return ImageStatus::Ok();
}

void WriterScratch::unmap() {
  if (mapped_ && base_) munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

ImageWriter::ImageWriter(Sink sink, Compression compression, WriterScratch* scratch)
    : sink_(sink), compression_(compression), scratch_(scratch) {
  if (!sink_.write) {
    status_ = ImageStatus::Failure("image writer: no sink");
    return;
  }
  if (!valid_compression(compression)) {
    status_ = ImageStatus::Failure("image writer: unknown compression setting");
    return;
  }
  if (!scratch || !scratch->base_ || scratch->size_ < WriterScratch::required_size(compression)) {
    status_ = ImageStatus::Failure("image writer: scratch memory missing or too small for this compression");
    return;
  }
  Layout l = layout(compression);
  auto* base = static_cast<std::uint8_t*>(scratch->base_);
  record_buf_ = base + l.record;
  record_cap_ = kMaxPayload;
  gather_buf_ = base + l.gather;
  if (compression != Compression::none) {
    packed_buf_ = base + l.packed;
    packed_cap_ = ZSTD_COMPRESSBOUND(kPagesPerChunkBytes);
    zstd_ = ZSTD_initStaticCCtx(base + l.zstd, zstd_workspace(compression));
    if (!zstd_) status_ = ImageStatus::Failure("image writer: cannot set up zstd in the scratch memory");
  }
}

ImageStatus ImageWriter::fail(const ImageStatus& s) {
  if (status_.ok()) status_ = s;
  return status_;
}

ImageStatus ImageWriter::write_chunk(std::uint16_t type, std::uint16_t flags, const struct iovec* payload,
                                     int count) {
  auto* iov = static_cast<struct iovec*>(scratch_->base_);
  std::size_t len = 0;
  for (int i = 0; i < count; ++i) len += payload[i].iov_len;
  if (len > kMaxPayload) return fail(ImageStatus::Failure("image writer: record larger than a chunk may be"));
  std::uint8_t frame[kFrameSize];
  store_le<std::uint32_t>(frame, static_cast<std::uint32_t>(len));
  store_le<std::uint16_t>(frame + 4, type);
  store_le<std::uint16_t>(frame + 6, flags);
  store_le<std::uint32_t>(frame + 8, static_cast<std::uint32_t>(totals_.chunks));
  std::uint32_t crc = crc32c(0, frame, 12);
  for (int i = 0; i < count; ++i) crc = crc32c(crc, payload[i].iov_base, payload[i].iov_len);
  store_le<std::uint32_t>(frame + 12, crc);
  iov[0].iov_base = frame;
  iov[0].iov_len = kFrameSize;
  if (payload != iov + 1) {
    for (int i = 0; i < count; ++i) iov[1 + i] = payload[i];
  }
  if (ImageStatus s = sink_.write(sink_.context, iov, count + 1); !s) {
    return fail(MessageBuilder()
                    .text("writing chunk ").dec(totals_.chunks).text(" (").text(record_type_name(type))
                    .text(") at byte ").dec(totals_.bytes).text(": ").text(s.message())
                    .status());
  }
  totals_.chunks += 1;
  totals_.bytes += kFrameSize + len;
  return ImageStatus::Ok();
}

ImageStatus ImageWriter::write_encoded(RecordType type, std::size_t len) {
  struct iovec* iov = static_cast<struct iovec*>(scratch_->base_) + 1;
  iov->iov_base = record_buf_;
  iov->iov_len = len;
  return write_chunk(static_cast<std::uint16_t>(type), 0, iov, 1);
}

ImageStatus ImageWriter::header(const HeaderRecord& h) {
  if (!status_) return status_;
  if (stage_ != Stage::start) return fail(ImageStatus::Failure("image writer: header written twice"));
  std::uint32_t ps = h.machine.page_size;
  if (ps < 4096 || ps > kPagesPerChunkBytes || (ps & (ps - 1)))
    return fail(MessageBuilder().text("image writer: header has a bad page size (").dec(ps).text(")").status());
  page_size_ = ps;
  HeaderRecord copy = h;
  copy.format_version = kFormatVersion;
  copy.compression = compression_;
  std::size_t len = 0;
  if (ImageStatus s = encode(copy, record_buf_, record_cap_, &len); !s) return fail(s);

  std::uint8_t pre[kPreambleSize];
  std::memcpy(pre, kMagic, sizeof kMagic);
  store_le<std::uint32_t>(pre + 8, kFormatVersion);
  store_le<std::uint32_t>(pre + 12, crc32c(0, pre, 12));
  struct iovec iov = {pre, sizeof pre};
  if (ImageStatus s = sink_.write(sink_.context, &iov, 1); !s) {
    return fail(MessageBuilder().text("writing the image preamble: ").text(s.message()).status());
  }
  totals_.bytes += kPreambleSize;
  if (ImageStatus s = write_encoded(RecordType::header, len); !s) return s;
  stage_ = Stage::header;
  return ImageStatus::Ok();
}

ImageStatus ImageWriter::process(const ProcessRecord& p) {
  if (!status_) return status_;
  if (stage_ != Stage::header)
    return fail(ImageStatus::Failure("image writer: the process record must follow the header, once"));
  std::size_t len = 0;
  if (ImageStatus s = encode(p, record_buf_, record_cap_, &len); !s) return fail(s);
  if (ImageStatus s = write_encoded(RecordType::process, len); !s) return s;
  stage_ = Stage::body;
  return ImageStatus::Ok();
}

template <typename R>
ImageStatus ImageWriter::body_record(const R& r, RecordType type) {
  if (!status_) return status_;
  if (stage_ != Stage::body) {
    return fail(MessageBuilder().text("image writer: ").text(record_type_name(static_cast<std::uint16_t>(type)))
                    .text(" record before the process record or after finish()").status());
  }
  std::size_t len = 0;
  if (ImageStatus s = encode(r, record_buf_, record_cap_, &len); !s) return fail(s);
  return write_encoded(type, len);
}

ImageStatus ImageWriter::thread(const ThreadRecord& t) {
  if (ImageStatus s = body_record(t, RecordType::thread); !s) return s;
  totals_.threads += 1;
  return ImageStatus::Ok();
}

ImageStatus ImageWriter::fd(const FdRecord& f) {
  if (ImageStatus s = body_record(f, RecordType::fd); !s) return s;
  totals_.fds += 1;
  return ImageStatus::Ok();
}

ImageStatus ImageWriter::posix_timer(const PosixTimerRecord& t) {
  return body_record(t, RecordType::posix_timer);
}

ImageStatus ImageWriter::file_lock(const FileLockRecord& l) {
  return body_record(l, RecordType::file_lock);
}

ImageStatus ImageWriter::thread_sched(const ThreadSchedRecord& t) {
  return body_record(t, RecordType::thread_sched);
}

ImageStatus ImageWriter::file_data(const FileDataRecord& d) {
  return body_record(d, RecordType::file_data);
}

ImageStatus ImageWriter::pending_signal(const PendingSignalRecord& s) {
  return body_record(s, RecordType::pending_signal);
}

ImageStatus ImageWriter::region(const RegionRecord& r) {
  if (!status_) return status_;
  if (stage_ != Stage::body) return fail(ImageStatus::Failure("image writer: region record outside the body"));
  std::uint64_t mask = page_size_ - 1;
  if (r.end <= r.start || (r.start & mask) || (r.end & mask)) {
    return fail(MessageBuilder().text("image writer: region ").hex(r.start).text("-").hex(r.end)
                    .text(" is empty or not page aligned").status());
  }
  if (!region_kind_name(r.kind)) return fail(ImageStatus::Failure("image writer: unknown region kind"));
  if (totals_.regions && r.start < region_end_) {
    return fail(MessageBuilder().text("image writer: region ").hex(r.start).text(" overlaps or precedes the one before (ends ")
                    .hex(region_end_).text(")").status());
  }
  std::size_t len = 0;
  if (ImageStatus s = encode(r, record_buf_, record_cap_, &len); !s) return fail(s);
  if (ImageStatus s = write_encoded(RecordType::region, len); !s) return s;
  totals_.regions += 1;
  have_region_ = (r.flags & kRegionHasPages) != 0;
  region_file_backed_ = file_backed(r.kind);
  region_start_ = r.start;
  region_end_ = r.end;
  region_next_offset_ = 0;
  return ImageStatus::Ok();
}

ImageStatus ImageWriter::pages(std::uint64_t offset, const void* data, std::size_t len) {
  if (!status_) return status_;
  if (stage_ != Stage::body || !have_region_)
    return fail(ImageStatus::Failure("image writer: page data without a preceding region record flagged kRegionHasPages"));
  std::uint64_t mask = page_size_ - 1;
  if ((offset & mask) || (len & mask) || offset < region_next_offset_ || len > region_end_ - region_start_ ||
      offset > region_end_ - region_start_ - len) {
    return fail(MessageBuilder().text("image writer: page data at offset ").hex(offset).text(" length ").hex(len)
                    .text(" is misaligned, out of order or outside region ").hex(region_start_).text("-").hex(region_end_)
                    .status());
  }
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::size_t per_chunk = kPagesPerChunkBytes / page_size_;
  std::size_t pages_left = len / page_size_;
  while (pages_left) {
    std::size_t n = pages_left < per_chunk ? pages_left : per_chunk;
    if (ImageStatus s = pages_chunk(offset, p, static_cast<std::uint32_t>(n)); !s) return s;
    offset += n * page_size_;
    p += n * page_size_;
    pages_left -= n;
  }
  region_next_offset_ = offset;
  return ImageStatus::Ok();
}

// The chunk's pages are read once, into gather_buf_, non-zero pages packed
// together; the checksum, the compressor and the sink all read that copy.
// The memory a checkpoint reads is not quite still (the kernel writes a
// thread's rseq area, a woken thread its stack and futex words): checksum
// and write from two reads of it made an image that did not verify.
ImageStatus ImageWriter::pages_chunk(std::uint64_t offset, const std::uint8_t* data, std::uint32_t page_count) {
  auto* iov = static_cast<struct iovec*>(scratch_->base_);
  std::uint8_t present[kMaxPagesPerChunk / 8] = {};
  std::uint32_t stored = 0;
  for (std::uint32_t i = 0; i < page_count; ++i) {
    std::uint8_t* copy = gather_buf_ + std::size_t{stored} * page_size_;
    std::memcpy(copy, data + std::size_t{i} * page_size_, page_size_);
    if (zero_page(copy, page_size_)) continue;
    present[i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
    ++stored;
  }
  // An all-zero stretch of anonymous memory needs no record: the restorer's
  // fresh mapping is zero there. A file mapping's pages read from the file,
  // so zeros written over them must be recorded.
  if (stored == 0 && !region_file_backed_) return ImageStatus::Ok();

  PagesRecord head;
  head.region_start = region_start_;
  head.offset = offset;
  head.page_count = page_count;
  head.stored_count = stored;
  head.raw_size = stored * page_size_;
  head.present = Blob(present, (page_count + 7) / 8);
  head.compression = Compression::none;

  int pieces = stored ? 1 : 0;
  iov[2].iov_base = gather_buf_;
  iov[2].iov_len = std::size_t{stored} * page_size_;
  if (compression_ != Compression::none && stored) {
    std::size_t at = iov[2].iov_len;
    std::size_t n = ZSTD_compressCCtx(static_cast<ZSTD_CCtx*>(zstd_), packed_buf_, packed_cap_,
                                      gather_buf_, at, compression_level(compression_));
    if (ZSTD_isError(n)) {
      return fail(MessageBuilder().text("image writer: zstd compression failed: ").text(ZSTD_getErrorName(n)).status());
    }
    if (n < at) {
      head.compression = compression_;
      iov[2].iov_base = packed_buf_;
      iov[2].iov_len = n;
    }
  }
  std::size_t head_len = 0;
  if (ImageStatus s = encode_pages_head(head, record_buf_, record_cap_, &head_len); !s) return fail(s);
  iov[1].iov_base = record_buf_;
  iov[1].iov_len = head_len;
  std::size_t data_len = 0;
  for (int i = 0; i < pieces; ++i) data_len += iov[2 + i].iov_len;
  if (ImageStatus s = write_chunk(static_cast<std::uint16_t>(RecordType::pages), 0, iov + 1, 1 + pieces); !s) return s;
  totals_.pages_total += page_count;
  totals_.pages_stored += stored;
  totals_.page_bytes_written += data_len;
  return ImageStatus::Ok();
}

ImageStatus ImageWriter::extension(std::uint16_t type, bool may_skip, Blob payload) {
  if (!status_) return status_;
  if (stage_ != Stage::body) return fail(ImageStatus::Failure("image writer: extension record outside the body"));
  if (std::strcmp(record_type_name(type), "unknown") != 0)
    return fail(ImageStatus::Failure("image writer: extension records must use a type this version does not define"));
  struct iovec* iov = static_cast<struct iovec*>(scratch_->base_) + 1;
  iov->iov_base = const_cast<std::uint8_t*>(payload.data());
  iov->iov_len = payload.size();
  if (ImageStatus s = write_chunk(type, may_skip ? kChunkMaySkip : 0, iov, 1); !s) return s;
  if (may_skip) totals_.skipped += 1;
  return ImageStatus::Ok();
}

ImageStatus ImageWriter::finish() {
  if (!status_) return status_;
  if (stage_ != Stage::body) return fail(ImageStatus::Failure("image writer: finish() before the process record or twice"));
  if (totals_.threads == 0) return fail(ImageStatus::Failure("image writer: an image needs at least one thread record"));
  EndRecord e;
  e.chunk_count = totals_.chunks;
  e.byte_count = totals_.bytes;
  e.thread_count = totals_.threads;
  e.region_count = totals_.regions;
  e.fd_count = totals_.fds;
  e.skipped_count = totals_.skipped;
  e.pages_total = totals_.pages_total;
  e.pages_stored = totals_.pages_stored;
  std::size_t len = 0;
  if (ImageStatus s = encode(e, record_buf_, record_cap_, &len); !s) return fail(s);
  if (ImageStatus s = write_encoded(RecordType::end, len); !s) return s;
  stage_ = Stage::finished;
  return ImageStatus::Ok();
}

}  // namespace mosix::ckpt
