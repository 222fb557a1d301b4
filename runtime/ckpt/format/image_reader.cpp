#include "runtime/ckpt/format/image_reader.h"

#define ZSTD_STATIC_LINKING_ONLY  // static contexts in caller memory: no malloc
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

#include "runtime/ckpt/format/crc32c.h"
#include "runtime/core/little_endian.h"

// zstd calls these trace hooks when some loaded object defines them (they
// are weak in libzstd.a). Defined here, hidden and inert, so that a guest
// program that defines its own cannot be handed our zstd's contexts.
extern "C" {
unsigned long long ZSTD_trace_decompress_begin(const struct ZSTD_DCtx_s*) { return 0; }
void ZSTD_trace_decompress_end(unsigned long long, const void*) {}
}

namespace mosix::ckpt {
namespace {

constexpr std::size_t kAlign = 64;
constexpr std::size_t align_up(std::size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

struct ReaderLayout {
  std::size_t chunk = 0, pages = 0, zstd = 0, zstd_size = 0, total = 0;
};

ReaderLayout reader_layout() {
  ReaderLayout l;
  l.chunk = 0;
  l.pages = align_up(kMaxPayload);
  l.zstd = l.pages + align_up(kPagesPerChunkBytes);
  l.zstd_size = align_up(ZSTD_estimateDCtxSize());
  l.total = l.zstd + l.zstd_size;
  return l;
}

const char* type_name(std::uint16_t type) { return record_type_name(type); }

}  // namespace

std::size_t ReaderScratch::required_size() { return reader_layout().total; }

bool ReaderScratch::attach(void* memory, std::size_t size) {
  if (!memory || size < required_size() || reinterpret_cast<std::uintptr_t>(memory) % kAlign) return false;
  unmap();
  base_ = memory;
  size_ = size;
  mapped_ = false;
  return true;
}

ImageStatus ReaderScratch::map() {
  unmap();
  std::size_t n = required_size();
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return MessageBuilder().text("cannot map ").dec(n).text(" bytes of reader scratch memory: ").errno_text(errno).status();
  }
  base_ = p;
  size_ = n;
  mapped_ = true;
  return ImageStatus::Ok();
}

void ReaderScratch::unmap() {
  if (mapped_ && base_) munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

ImageReader::ImageReader(Source source, ReaderScratch* scratch) : source_(source), scratch_(scratch) {
  if (!source_.read) {
    status_ = ImageStatus::Failure("image reader: no source");
    return;
  }
  if (!scratch || !scratch->base_ || scratch->size_ < ReaderScratch::required_size()) {
    status_ = ImageStatus::Failure("image reader: scratch memory missing or too small");
    return;
  }
  ReaderLayout l = reader_layout();
  auto* base = static_cast<std::uint8_t*>(scratch->base_);
  chunk_buf_ = base + l.chunk;
  page_buf_ = base + l.pages;
  zstd_ = ZSTD_initStaticDCtx(base + l.zstd, l.zstd_size);
  if (!zstd_) status_ = ImageStatus::Failure("image reader: cannot set up zstd in the scratch memory");
}

ImageStatus ImageReader::fail(const ImageStatus& s) {
  if (status_.ok()) status_ = s;
  return status_;
}

// Reads exactly len bytes. *clean_eof is set when the input ended before the
// first byte; a later end is truncation, reported naming `what`.
ImageStatus ImageReader::read_exact(void* buf, std::size_t len, std::uint64_t chunk, const char* what,
                                    bool* clean_eof) {
  auto* p = static_cast<std::uint8_t*>(buf);
  std::size_t got = 0;
  if (clean_eof) *clean_eof = false;
  while (got < len) {
    std::int64_t n = source_.read(source_.context, p + got, len - got);
    if (n < 0) {
      return MessageBuilder().text("reading the image at byte ").dec(offset_).text(": ").errno_text(static_cast<int>(-n)).status();
    }
    if (n == 0) {
      if (got == 0 && clean_eof) {
        *clean_eof = true;
        return ImageStatus::Ok();
      }
      return MessageBuilder().text("image truncated at byte ").dec(offset_).text(": inside ").text(what)
          .text(" of chunk ").dec(chunk).status();
    }
    got += static_cast<std::size_t>(n);
    offset_ += static_cast<std::uint64_t>(n);
  }
  return ImageStatus::Ok();
}

void ImageReader::describe_chunk(MessageBuilder& m, std::uint16_t type, Blob payload) const {
  m.text(type_name(type));
  if ((type == static_cast<std::uint16_t>(RecordType::pages) || type == static_cast<std::uint16_t>(RecordType::region)) &&
      payload.size() >= 8) {
    m.text(" of region ").hex(load_le<std::uint64_t>(payload.data()));
  } else if (type == static_cast<std::uint16_t>(RecordType::thread) && payload.size() >= 4) {
    m.text(" of tid ").dec(load_le<std::uint32_t>(payload.data()));
  }
}

ImageStatus ImageReader::read_chunk(std::uint16_t* type, std::uint16_t* flags, Blob* payload) {
  std::uint64_t at = offset_;
  std::uint64_t index = chunks_;
  std::uint8_t frame[kFrameSize];
  bool eof = false;
  if (ImageStatus s = read_exact(frame, sizeof frame, index, "the frame", &eof); !s) return s;
  if (eof) {
    return MessageBuilder().text("image truncated at byte ").dec(at).text(": no end record (")
        .dec(index).text(" chunks read)").status();
  }
  std::uint32_t len = load_le<std::uint32_t>(frame);
  *type = load_le<std::uint16_t>(frame + 4);
  *flags = load_le<std::uint16_t>(frame + 6);
  std::uint32_t got_index = load_le<std::uint32_t>(frame + 8);
  std::uint32_t crc = load_le<std::uint32_t>(frame + 12);
  if (len > kMaxPayload) {
    return MessageBuilder().text("chunk ").dec(index).text(" at byte ").dec(at).text(": length ").dec(len)
        .text(" exceeds the maximum ").dec(kMaxPayload).text(" (corrupt image)").status();
  }
  std::uint32_t head_len = len;
  if (direct_pages_ && *type == static_cast<std::uint16_t>(RecordType::pages)) {
    // Read only the fixed fields and the present map; leave the data.
    constexpr std::uint32_t kFixed = 8 + 8 + 4 + 4 + 1 + 4 + 4;
    if (len >= kFixed) {
      if (ImageStatus s = read_exact(chunk_buf_, kFixed, index, "the payload", nullptr); !s) return s;
      std::uint32_t map_len = load_le<std::uint32_t>(chunk_buf_ + kFixed - 4);
      head_len = map_len <= len - kFixed ? kFixed + map_len : len;
      if (ImageStatus s = read_exact(chunk_buf_ + kFixed, head_len - kFixed, index, "the payload", nullptr); !s)
        return s;
    }
  }
  if (head_len == len) {
    if (ImageStatus s = read_exact(chunk_buf_, len, index, "the payload", nullptr); !s) return s;
  }
  *payload = Blob(chunk_buf_, head_len);
  std::uint32_t want = crc32c(crc32c(0, frame, 12), chunk_buf_, head_len);
  if (head_len != len) {
    pending_ = true;
    pending_len_ = len - head_len;
    pending_head_len_ = head_len;
    pending_crc_ = want;
    pending_want_crc_ = crc;
    pending_index_ = index;
    pending_at_ = at;
    want = crc;  // checked when the data has been read
  }
  if (want != crc) {
    MessageBuilder m;
    m.text("chunk ").dec(index).text(" at byte ").dec(at).text(" (");
    describe_chunk(m, *type, *payload);
    return m.text("): checksum mismatch").status();
  }
  if (got_index != static_cast<std::uint32_t>(index)) {
    return MessageBuilder().text("chunk ").dec(index).text(" at byte ").dec(at).text(": carries index ")
        .dec(got_index).text(" (a chunk is missing or repeated)").status();
  }
  if (*flags & ~kChunkMaySkip) {
    return MessageBuilder().text("chunk ").dec(index).text(" at byte ").dec(at).text(": unknown flags ")
        .hex(*flags).status();
  }
  chunks_ += 1;
  return ImageStatus::Ok();
}

ImageStatus ImageReader::open() {
  if (!status_) return status_;
  if (opened_) return fail(ImageStatus::Failure("image reader: open() called twice"));
  std::uint8_t pre[kPreambleSize];
  bool eof = false;
  if (ImageStatus s = read_exact(pre, sizeof pre, 0, "the preamble", &eof); !s) return fail(s);
  if (eof) return fail(ImageStatus::Failure("image is empty"));
  if (std::memcmp(pre, kMagic, sizeof kMagic) != 0) return fail(ImageStatus::Failure("not a mosix image (bad magic)"));
  if (crc32c(0, pre, 12) != load_le<std::uint32_t>(pre + 12)) return fail(ImageStatus::Failure("image preamble: checksum mismatch"));
  std::uint32_t version = load_le<std::uint32_t>(pre + 8);
  if (version != kFormatVersion) {
    return fail(MessageBuilder().text("image format version ").dec(version).text(", this mosix reads version ")
                    .dec(kFormatVersion).status());
  }
  std::uint64_t at = offset_;
  std::uint16_t type = 0, flags = 0;
  Blob payload;
  if (ImageStatus s = read_chunk(&type, &flags, &payload); !s) return fail(s);
  if (type != static_cast<std::uint16_t>(RecordType::header)) {
    return fail(MessageBuilder().text("chunk 0 at byte ").dec(at).text(": expected the header record, found ")
                    .text(type_name(type)).status());
  }
  if (ImageStatus s = decode(payload, &header_); !s) {
    return fail(MessageBuilder().text("chunk 0 at byte ").dec(at).text(": ").text(s.message()).status());
  }
  if (header_.format_version != version) {
    return fail(MessageBuilder().text("header record says format version ").dec(header_.format_version)
                    .text(", the preamble ").dec(version).status());
  }
  opened_ = true;
  return ImageStatus::Ok();
}

namespace {

ImageStatus too_many(const char* record, std::uint32_t limit) {
  return MessageBuilder().text("more than ").dec(limit).text(" ").text(record)
      .text(" records (the most an image may hold)").status();
}

}  // namespace

ImageStatus ImageReader::check_record(std::uint16_t type, Blob payload, Record* out) {
  const std::uint64_t ps = header_.machine.page_size;
  switch (static_cast<RecordType>(type)) {
    case RecordType::header:
      return ImageStatus::Failure("a second header record");
    case RecordType::process:
      if (have_process_) return ImageStatus::Failure("a second process record");
      if (ImageStatus s = decode(payload, &process_); !s) return s;
      have_process_ = true;
      out->process = &process_;
      return ImageStatus::Ok();
    case RecordType::end:
      break;
    default:
      if (!have_process_) {
        return MessageBuilder().text("expected the process record after the header, found ").text(type_name(type)).status();
      }
  }
  switch (static_cast<RecordType>(type)) {
    case RecordType::thread:
      if (counted_.thread_count >= kMaxThreadRecords) return too_many("thread", kMaxThreadRecords);
      if (ImageStatus s = decode(payload, &thread_); !s) return s;
      counted_.thread_count += 1;
      out->thread = &thread_;
      return ImageStatus::Ok();
    case RecordType::region: {
      if (counted_.region_count >= kMaxRegionRecords) return too_many("region", kMaxRegionRecords);
      if (ImageStatus s = decode(payload, &region_); !s) return s;
      if ((region_.start | region_.end) & (ps - 1)) {
        return MessageBuilder().text("region ").hex(region_.start).text("-").hex(region_.end)
            .text(" is not page aligned").status();
      }
      if (counted_.region_count && region_.start < region_end_) {
        return MessageBuilder().text("region ").hex(region_.start).text(" overlaps or precedes the one before (ends ")
            .hex(region_end_).text(")").status();
      }
      counted_.region_count += 1;
      have_region_ = (region_.flags & kRegionHasPages) != 0;
      region_start_ = region_.start;
      region_end_ = region_.end;
      region_next_offset_ = 0;
      out->region = &region_;
      return ImageStatus::Ok();
    }
    case RecordType::pages: {
      ImageStatus decoded = pending_ ? decode_pages_head(payload, pending_len_, &pages_) : decode(payload, &pages_);
      if (!decoded) return decoded;
      const PagesRecord& p = pages_;
      if (!have_region_ || p.region_start != region_start_) {
        return MessageBuilder().text("page data for region ").hex(p.region_start)
            .text(" does not follow its region record (flagged as having pages)").status();
      }
      std::uint64_t size = region_end_ - region_start_;
      std::uint64_t span = std::uint64_t{p.page_count} * ps;
      if ((p.offset & (ps - 1)) || p.offset < region_next_offset_ || p.page_count > kPagesPerChunkBytes / ps ||
          span > size || p.offset > size - span) {
        return MessageBuilder().text("page data at offset ").hex(p.offset).text(" (").dec(p.page_count)
            .text(" pages) of region ").hex(region_start_).text(" is misaligned, out of order or outside the region").status();
      }
      if (p.raw_size != std::uint64_t{p.stored_count} * ps) {
        return MessageBuilder().text("page data of region ").hex(region_start_).text(": raw size ").dec(p.raw_size)
            .text(" is not ").dec(p.stored_count).text(" pages").status();
      }
      if (p.compression != Compression::none && p.compression != header_.compression) {
        return MessageBuilder().text("page data of region ").hex(region_start_)
            .text(": compressed although the header says ").text(compression_name(header_.compression)).status();
      }
      region_next_offset_ = p.offset + span;
      counted_.pages_total += p.page_count;
      counted_.pages_stored += p.stored_count;
      out->pages = &pages_;
      return ImageStatus::Ok();
    }
    case RecordType::fd:
      if (counted_.fd_count >= kMaxFdRecords) return too_many("fd", kMaxFdRecords);
      if (ImageStatus s = decode(payload, &fd_); !s) return s;
      counted_.fd_count += 1;
      out->fd = &fd_;
      return ImageStatus::Ok();
    case RecordType::posix_timer:
      if (timer_count_ >= kMaxTimerRecords) return too_many("posix timer", kMaxTimerRecords);
      if (ImageStatus s = decode(payload, &posix_timer_); !s) return s;
      timer_count_ += 1;
      out->posix_timer = &posix_timer_;
      return ImageStatus::Ok();
    case RecordType::pending_signal:
      if (pending_count_ >= kMaxPendingSignalRecords) return too_many("pending signal", kMaxPendingSignalRecords);
      if (ImageStatus s = decode(payload, &pending_signal_); !s) return s;
      pending_count_ += 1;
      out->pending_signal = &pending_signal_;
      return ImageStatus::Ok();
    case RecordType::file_lock:
      if (lock_count_ >= kMaxFileLockRecords) return too_many("file lock", kMaxFileLockRecords);
      if (ImageStatus s = decode(payload, &file_lock_); !s) return s;
      lock_count_ += 1;
      out->file_lock = &file_lock_;
      return ImageStatus::Ok();
    case RecordType::thread_sched:
      if (sched_count_ >= kMaxThreadSchedRecords) return too_many("thread scheduling", kMaxThreadSchedRecords);
      if (ImageStatus s = decode(payload, &thread_sched_); !s) return s;
      sched_count_ += 1;
      out->thread_sched = &thread_sched_;
      return ImageStatus::Ok();
    case RecordType::file_data:
      if (file_data_count_ >= kMaxFileDataRecords) return too_many("file data", kMaxFileDataRecords);
      if (ImageStatus s = decode(payload, &file_data_); !s) return s;
      file_data_count_ += 1;
      out->file_data = &file_data_;
      return ImageStatus::Ok();
    case RecordType::end: {
      if (ImageStatus s = decode(payload, &end_); !s) return s;
      if (!have_process_) return ImageStatus::Failure("image has no process record");
      if (counted_.thread_count == 0) return ImageStatus::Failure("image has no thread record");
      struct Check {
        const char* name;
        std::uint64_t recorded, read;
      };
      const Check checks[] = {
          {"chunks", end_.chunk_count, counted_.chunk_count},
          {"bytes", end_.byte_count, counted_.byte_count},
          {"threads", end_.thread_count, counted_.thread_count},
          {"regions", end_.region_count, counted_.region_count},
          {"fds", end_.fd_count, counted_.fd_count},
          {"skipped records", end_.skipped_count, counted_.skipped_count},
          {"pages", end_.pages_total, counted_.pages_total},
          {"stored pages", end_.pages_stored, counted_.pages_stored},
      };
      for (const Check& c : checks) {
        if (c.recorded != c.read) {
          return MessageBuilder().text("end record: ").text(c.name).text(" recorded ").dec(c.recorded)
              .text(", read ").dec(c.read).text(" (the image is damaged or incomplete)").status();
        }
      }
      out->end = &end_;
      return ImageStatus::Ok();
    }
    default:
      break;
  }
  return ImageStatus::Failure("unreachable record type");
}

ImageStatus ImageReader::next(Record* out) {
  if (!status_) return status_;
  if (!opened_) return fail(ImageStatus::Failure("image reader: next() before open()"));
  if (at_end_) {
    *out = last_;
    return ImageStatus::Ok();
  }
  if (pending_) {
    if (ImageStatus s = consume_pending(); !s) return s;
  }
  for (;;) {
    std::uint64_t at = offset_;
    std::uint64_t index = chunks_;
    std::uint16_t type = 0, flags = 0;
    Blob payload;
    // The end record's totals cover everything before its own frame.
    counted_.chunk_count = chunks_;
    counted_.byte_count = offset_;
    if (ImageStatus s = read_chunk(&type, &flags, &payload); !s) return fail(s);
    if (std::strcmp(type_name(type), "unknown") == 0) {
      if (flags & kChunkMaySkip) {
        counted_.skipped_count += 1;
        continue;
      }
      return fail(MessageBuilder().text("chunk ").dec(index).text(" at byte ").dec(at).text(": record type ")
                      .hex(type).text(" is unknown to this mosix (format version ").dec(kFormatVersion)
                      .text(") and may not be skipped").status());
    }
    Record r;
    r.type = type;
    r.flags = flags;
    r.chunk_index = index;
    r.offset = at;
    r.payload = payload;
    if (ImageStatus s = check_record(type, payload, &r); !s) {
      MessageBuilder m;
      m.text("chunk ").dec(index).text(" at byte ").dec(at).text(" (");
      describe_chunk(m, type, payload);
      return fail(m.text("): ").text(s.message()).status());
    }
    if (type == static_cast<std::uint16_t>(RecordType::end)) {
      at_end_ = true;
      last_ = r;
    }
    *out = r;
    return ImageStatus::Ok();
  }
}

ImageStatus ImageReader::read_pages(const PagesRecord& p, void* dst, std::size_t dst_len, bool zero_fill) {
  if (!status_) return status_;
  const std::size_t ps = header_.machine.page_size;
  const std::size_t span = std::size_t{p.page_count} * ps;
  if (dst && dst_len < span) {
    return fail(MessageBuilder().text("read_pages: destination of ").dec(dst_len).text(" bytes for ")
                    .dec(span).text(" bytes of pages").status());
  }
  if (p.raw_size > kPagesPerChunkBytes || span > kPagesPerChunkBytes) {
    return fail(ImageStatus::Failure("read_pages: record larger than a chunk may be"));
  }
  auto* out = static_cast<std::uint8_t*>(dst);
  if (pending_ && &p != &pages_) {
    return fail(ImageStatus::Failure("read_pages: with direct pages, pass the record next() returned, not a copy"));
  }
  if (pending_) {
    if (p.compression != Compression::none || !out) {
      if (ImageStatus s = consume_pending(); !s) return s;
    } else {
      // Each run of stored pages is read from the source into place.
      pending_ = false;
      std::uint32_t crc = pending_crc_;
      for (std::uint32_t i = 0; i < p.page_count;) {
        bool present = p.present[i / 8] & (1u << (i % 8));
        std::uint32_t j = i + 1;
        while (j < p.page_count && (((p.present[j / 8] >> (j % 8)) & 1) != 0) == present) ++j;
        std::uint8_t* run = out + std::size_t{i} * ps;
        std::size_t run_len = std::size_t{j - i} * ps;
        if (present) {
          if (ImageStatus s = read_exact(run, run_len, pending_index_, "the payload", nullptr); !s) return fail(s);
          crc = crc32c(crc, run, run_len);
        } else if (zero_fill) {
          std::memset(run, 0, run_len);
        }
        i = j;
      }
      if (ImageStatus s = finish_pending(crc); !s) return fail(s);
      return ImageStatus::Ok();
    }
  }
  if (p.compression == Compression::none && p.data.size() != p.raw_size) {
    return fail(ImageStatus::Failure("read_pages: the record's data is missing or of the wrong size"));
  }
  const std::uint8_t* stored = p.data.data();
  if (p.compression != Compression::none) {
    // All pages present: expand straight into place.
    bool direct = out && p.stored_count == p.page_count;
    std::uint8_t* into = direct ? out : page_buf_;
    std::size_t n = ZSTD_decompressDCtx(static_cast<ZSTD_DCtx*>(zstd_), into, p.raw_size, p.data.data(), p.data.size());
    if (ZSTD_isError(n) || n != p.raw_size) {
      MessageBuilder m;
      m.text("page data at offset ").hex(p.offset).text(" of region ").hex(p.region_start).text(": ");
      if (ZSTD_isError(n))
        m.text("cannot decompress (").text(ZSTD_getErrorName(n)).text(")");
      else
        m.text("decompressed to ").dec(n).text(" bytes, expected ").dec(p.raw_size);
      return fail(m.status());
    }
    if (direct) return ImageStatus::Ok();
    stored = page_buf_;
  }
  if (!out) return ImageStatus::Ok();
  std::size_t k = 0;
  for (std::uint32_t i = 0; i < p.page_count; ++i) {
    std::uint8_t* page = out + std::size_t{i} * ps;
    if (p.present[i / 8] & (1u << (i % 8))) {
      std::memcpy(page, stored + k * ps, ps);
      ++k;
    } else if (zero_fill) {
      std::memset(page, 0, ps);
    }
  }
  return ImageStatus::Ok();
}

ImageStatus ImageReader::finish_pending(std::uint32_t crc) {
  pending_ = false;
  if (crc == pending_want_crc_) return ImageStatus::Ok();
  MessageBuilder m;
  m.text("chunk ").dec(pending_index_).text(" at byte ").dec(pending_at_).text(" (");
  describe_chunk(m, static_cast<std::uint16_t>(RecordType::pages), Blob(chunk_buf_, pending_head_len_));
  return m.text("): checksum mismatch").status();
}

// Reads a pending chunk's data into the chunk buffer after its head and
// checks the chunk's checksum; pages_.data then points at it.
ImageStatus ImageReader::consume_pending() {
  std::uint8_t* data = chunk_buf_ + pending_head_len_;
  if (ImageStatus s = read_exact(data, pending_len_, pending_index_, "the payload", nullptr); !s) return fail(s);
  if (ImageStatus s = finish_pending(crc32c(pending_crc_, data, pending_len_)); !s) return fail(s);
  pages_.data = Blob(data, pending_len_);
  return ImageStatus::Ok();
}

ImageStatus verify_image(Source source, ReaderScratch* scratch, bool check_eof, ImageSummary* summary) {
  ImageReader reader(source, scratch);
  if (ImageStatus s = reader.open(); !s) return s;
  std::uint64_t raw = 0;
  Record r;
  while (!reader.at_end()) {
    if (ImageStatus s = reader.next(&r); !s) return s;
    if (r.pages) {
      if (ImageStatus s = reader.read_pages(*r.pages, nullptr, 0, false); !s) return s;
      raw += r.pages->raw_size;
    }
  }
  if (check_eof) {
    std::uint8_t extra;
    std::int64_t n = source.read(source.context, &extra, 1);
    if (n < 0) {
      return MessageBuilder().text("reading the image at byte ").dec(reader.offset()).text(": ")
          .errno_text(static_cast<int>(-n)).status();
    }
    if (n > 0) {
      return MessageBuilder().text("image has data after its end record at byte ").dec(reader.offset()).status();
    }
  }
  if (summary) {
    summary->header = reader.header();
    summary->totals = *r.end;
    summary->bytes = reader.offset();
    summary->page_bytes_raw = raw;
  }
  return ImageStatus::Ok();
}

ImageStatus verify_image_path(const char* path, ImageSummary* summary) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MessageBuilder().text("cannot open ").text(path).text(": ").errno_text(errno).status();
  ReaderScratch scratch;
  ImageStatus s = scratch.map();
  if (s) s = verify_image(fd_source(fd), &scratch, true, summary);
  scratch.unmap();
  close(fd);
  return s;
}

}  // namespace mosix::ckpt
