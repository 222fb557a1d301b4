// The field list of every record type, written once as a template over
// WireEncoder / WireDecoder, plus names and the compatibility check.
#include <cstdint>
#include <cstring>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/wire.h"

namespace mosix::ckpt {
namespace {

using wire::WireDecoder;
using wire::WireEncoder;

template <typename Io, typename M>
void transfer_machine(Io& io, M& m) {
  io.chars(m.arch, "arch");
  io.chars(m.kernel_release, "kernel release");
  io.chars(m.libc_version, "libc version");
  io.chars(m.cpu_vendor, "cpu vendor");
  io.u64(m.xcr0, "xcr0");
  io.u32(m.xsave_size, "xsave size");
  for (std::size_t i = 0; i < kMaxXstateComponents; ++i) {
    io.u32(m.xsave_offset[i], "xsave offset");
    io.u32(m.xsave_component_size[i], "xsave component size");
  }
  io.u64(m.cpu_features, "cpu features");
  io.u32(m.page_size, "page size");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const HeaderRecord*) {
  io.u32(r.format_version, "format version");
  io.chars(r.mosix_version, "mosix version");
  io.chars(r.hostname, "hostname");
  transfer_machine(io, r.machine);
  io.i32(r.pid, "pid");
  io.i32(r.real_pid, "real pid");
  io.i64(r.created_ns, "creation time");
  io.enum8(r.compression, "compression");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const ProcessRecord*) {
  io.i32(r.pid, "pid");
  io.i32(r.ppid, "ppid");
  io.i32(r.pgid, "pgid");
  io.i32(r.sid, "sid");
  io.u32(r.umask, "umask");
  io.u32(r.personality, "personality");
  io.text(r.comm, 15, "comm");
  io.text(r.cwd, kMaxText, "cwd");
  io.text(r.exe, kMaxText, "exe");
  io.u64(r.start_brk, "start_brk");
  io.u64(r.brk, "brk");
  io.u64(r.start_stack, "start_stack");
  io.u64(r.arg_start, "arg_start");
  io.u64(r.arg_end, "arg_end");
  io.u64(r.env_start, "env_start");
  io.u64(r.env_end, "env_end");
  io.count(r.rlimit_count, kMaxRlimits, "rlimit count");
  for (std::uint32_t i = 0; i < r.rlimit_count && i < kMaxRlimits; ++i) {
    io.u64(r.rlimits[i].cur, "rlimit cur");
    io.u64(r.rlimits[i].max, "rlimit max");
  }
  io.count(r.signal_count, kMaxSignals, "signal count");
  for (std::uint32_t i = 0; i < r.signal_count && i < kMaxSignals; ++i) {
    io.u64(r.sigactions[i].handler, "sigaction handler");
    io.u64(r.sigactions[i].flags, "sigaction flags");
    io.u64(r.sigactions[i].restorer, "sigaction restorer");
    io.u64(r.sigactions[i].mask, "sigaction mask");
  }
  io.u64(r.pending_shared, "pending signals");
  for (auto& t : r.itimers) {
    io.u64(t.interval_ns, "itimer interval");
    io.u64(t.value_ns, "itimer value");
  }
  io.u32(r.flags, "process flags");
  io.bytes(r.auxv, kMaxAuxv, "auxv");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const ThreadRecord*) {
  io.i32(r.tid, "tid");
  io.u32(r.flags, "flags");
  io.text(r.name, 15, "name");
  io.enum32(r.regs_kind, "regs kind");
  io.bytes(r.regs, kMaxBlob, "regs");
  io.enum32(r.xstate_kind, "xstate kind");
  io.bytes(r.xstate, kMaxBlob, "xstate");
  io.u64(r.fs_base, "fs base");
  io.u64(r.gs_base, "gs base");
  io.u64(r.sigmask, "sigmask");
  io.u64(r.pending, "pending signals");
  io.u64(r.altstack_sp, "sigaltstack sp");
  io.u64(r.altstack_size, "sigaltstack size");
  io.i32(r.altstack_flags, "sigaltstack flags");
  io.u64(r.robust_list, "robust list");
  io.u64(r.robust_list_len, "robust list length");
  io.u64(r.clear_child_tid, "clear_child_tid");
  io.u64(r.rseq_addr, "rseq area");
  io.u32(r.rseq_len, "rseq length");
  io.u32(r.rseq_sig, "rseq signature");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const RegionRecord*) {
  io.u64(r.start, "start");
  io.u64(r.end, "end");
  io.u32(r.prot, "prot");
  io.u32(r.map_flags, "map flags");
  io.enum16(r.kind, "kind");
  io.u32(r.flags, "flags");
  io.u64(r.offset, "offset");
  io.text(r.path, kMaxText, "path");
  io.u64(r.file_dev, "file dev");
  io.u64(r.file_inode, "file inode");
  io.u64(r.file_size, "file size");
  io.i64(r.file_mtime_ns, "file mtime");
}

// Everything but `data`, which is the rest of the payload.
template <typename Io, typename R>
void transfer(Io& io, R& r, const PagesRecord*) {
  io.u64(r.region_start, "region start");
  io.u64(r.offset, "offset");
  io.u32(r.page_count, "page count");
  io.u32(r.stored_count, "stored count");
  io.enum8(r.compression, "compression");
  io.u32(r.raw_size, "raw size");
  io.bytes(r.present, kPagesPerChunkBytes / 8, "present map");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const FdRecord*) {
  io.i32(r.fd, "fd");
  io.enum16(r.kind, "kind");
  io.u32(r.open_flags, "open flags");
  io.u32(r.fd_flags, "fd flags");
  io.text(r.path, kMaxText, "path");
  io.u64(r.offset, "offset");
  io.u64(r.size, "size");
  io.i64(r.mtime_ns, "mtime");
  io.u64(r.dev, "dev");
  io.u64(r.inode, "inode");
  io.u32(r.mode, "mode");
  io.bytes(r.data, kMaxBlob, "data");
  io.u32(r.uid, "uid");
  io.u32(r.gid, "gid");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const FileDataRecord*) {
  io.i32(r.fd, "fd");
  io.u64(r.offset, "offset");
  io.bytes(r.data, kMaxFileData, "data");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const SocketRecord*) {
  io.u32(r.family, "family");
  io.u32(r.type, "type");
  io.u32(r.protocol, "protocol");
  io.enum8(r.state, "state");
  io.u32(r.backlog, "backlog");
  io.u64(r.netns, "network namespace");
  io.u64(r.boot_id[0], "boot id");
  io.u64(r.boot_id[1], "boot id");
  io.bytes(r.local, kMaxSocketAddress, "local address");
  io.bytes(r.peer, kMaxSocketAddress, "peer address");
  io.count(r.option_count, kMaxSocketOptions, "option count");
  for (std::uint32_t i = 0; i < r.option_count; ++i) {
    io.i32(r.options[i].level, "option level");
    io.i32(r.options[i].name, "option name");
    io.bytes(r.options[i].value, kMaxSocketOptionValue, "option value");
  }
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const PosixTimerRecord*) {
  io.i32(r.timer_id, "timer id");
  io.i32(r.clock_id, "clock id");
  io.i32(r.notify, "sigev_notify");
  io.i32(r.signo, "signo");
  io.u64(r.sigev_value, "sigev_value");
  io.i32(r.notify_tid, "notify tid");
  io.i32(r.overrun, "overrun");
  io.u64(r.interval_ns, "interval");
  io.u64(r.value_ns, "value");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const PendingSignalRecord*) {
  io.i32(r.tid, "tid");
  io.i32(r.signo, "signo");
  io.bytes(r.siginfo, 128, "siginfo");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const FileLockRecord*) {
  io.i32(r.fd, "fd");
  io.enum8(r.kind, "kind");
  io.enum8(r.type, "type");
  io.u64(r.start, "start");
  io.u64(r.end, "end");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const ThreadSchedRecord*) {
  io.u32(r.thread, "thread");
  io.i32(r.nice, "nice");
  io.u32(r.policy, "policy");
}

template <typename Io, typename R>
void transfer(Io& io, R& r, const EndRecord*) {
  io.u64(r.chunk_count, "chunk count");
  io.u64(r.byte_count, "byte count");
  io.u32(r.thread_count, "thread count");
  io.u32(r.region_count, "region count");
  io.u32(r.fd_count, "fd count");
  io.u32(r.skipped_count, "skipped count");
  io.u64(r.pages_total, "pages total");
  io.u64(r.pages_stored, "pages stored");
}

template <typename Io>
ImageStatus wire_status(const Io& io, const char* record) {
  if (io.ok()) return ImageStatus::Ok();
  MessageBuilder m;
  m.text(record).text(" record: ");
  switch (io.failure()) {
    case wire::Failure::overflow:
      m.text("does not fit the record buffer at field ").text(io.field());
      break;
    case wire::Failure::truncated:
      m.text("ends inside field ").text(io.field());
      break;
    case wire::Failure::too_long:
      m.text("field ").text(io.field()).text(" is too long (").dec(io.detail()).text(" bytes)");
      break;
    case wire::Failure::bad_count:
      m.text("field ").text(io.field()).text(" is out of range (").dec(io.detail()).text(")");
      break;
    case wire::Failure::trailing:
      m.dec(io.detail()).text(" unexpected bytes after the last field");
      break;
    case wire::Failure::none:
      break;
  }
  return m.status();
}

template <typename R>
ImageStatus encode_any(const R& r, const char* name, std::uint8_t* buf, std::size_t cap,
                       std::size_t* len) {
  WireEncoder e(buf, cap);
  transfer(e, r, static_cast<const R*>(nullptr));
  *len = e.size();
  return wire_status(e, name);
}

template <typename R>
ImageStatus decode_any(Blob payload, R* r, const char* name) {
  *r = R{};
  WireDecoder d(payload);
  transfer(d, *r, static_cast<const R*>(nullptr));
  d.finish(name);
  return wire_status(d, name);
}

ImageStatus invalid(const char* record, const char* what, std::uint64_t value) {
  return MessageBuilder().text(record).text(" record: ").text(what).text(" (").dec(value).text(")").status();
}

bool text_ok(const char* s, std::size_t n) {
  return strnlen(s, n) < n;
}

}  // namespace

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::none: return "none";
    case Compression::fast: return "fast";
    case Compression::best: return "best";
  }
  return nullptr;
}

bool parse_compression(std::string_view text, Compression* out) {
  for (Compression c : {Compression::none, Compression::fast, Compression::best}) {
    if (text == compression_name(c)) {
      *out = c;
      return true;
    }
  }
  return false;
}

int compression_level(Compression c) {
  switch (c) {
    case Compression::none: return 0;
    case Compression::fast: return 1;
    case Compression::best: return 9;
  }
  return 0;
}

const char* record_type_name(std::uint16_t type) {
  switch (static_cast<RecordType>(type)) {
    case RecordType::header: return "header";
    case RecordType::process: return "process";
    case RecordType::thread: return "thread";
    case RecordType::region: return "region";
    case RecordType::pages: return "page data";
    case RecordType::fd: return "fd";
    case RecordType::posix_timer: return "posix timer";
    case RecordType::pending_signal: return "pending signal";
    case RecordType::file_lock: return "file lock";
    case RecordType::file_data: return "file data";
    case RecordType::thread_sched: return "thread scheduling";
    case RecordType::end: return "end";
  }
  return "unknown";
}

const char* region_kind_name(RegionKind kind) {
  switch (kind) {
    case RegionKind::anon: return "anon";
    case RegionKind::private_file: return "private-file";
    case RegionKind::shared_file: return "shared-file";
    case RegionKind::shared_anon: return "shared-anon";
    case RegionKind::stack: return "stack";
    case RegionKind::heap: return "heap";
    case RegionKind::vdso: return "vdso";
    case RegionKind::vvar: return "vvar";
    case RegionKind::vvar_vclock: return "vvar_vclock";
    case RegionKind::vsyscall: return "vsyscall";
    case RegionKind::guard: return "guard";
  }
  return nullptr;
}

const char* fd_kind_name(FdKind kind) {
  switch (kind) {
    case FdKind::regular: return "regular file";
    case FdKind::directory: return "directory";
    case FdKind::char_device: return "character device";
    case FdKind::tty: return "tty";
    case FdKind::pipe: return "pipe";
    case FdKind::std_stream: return "standard stream";
    case FdKind::other: return "other";
    case FdKind::ghost: return "deleted file";
    case FdKind::memfd: return "memfd";
    case FdKind::signalfd: return "signalfd";
    case FdKind::eventfd: return "eventfd";
    case FdKind::timerfd: return "timerfd";
    case FdKind::shared: return "descriptor sharing an open file";
    case FdKind::inotify: return "inotify instance";
    case FdKind::socket: return "socket";
    case FdKind::epoll: return "epoll instance";
    case FdKind::forwarded: return "forwarded socket";
    case FdKind::fifo: return "named pipe";
    case FdKind::pidfd: return "pidfd";
  }
  return nullptr;
}

const char* lock_kind_name(LockKind kind) {
  switch (kind) {
    case LockKind::posix: return "posix";
    case LockKind::ofd: return "ofd";
    case LockKind::flock: return "flock";
  }
  return nullptr;
}

const char* cpu_feature_name(std::uint64_t bit) {
  switch (bit) {
    case kCpuSse3: return "SSE3";
    case kCpuSsse3: return "SSSE3";
    case kCpuSse41: return "SSE4.1";
    case kCpuSse42: return "SSE4.2";
    case kCpuPopcnt: return "POPCNT";
    case kCpuAes: return "AES-NI";
    case kCpuPclmul: return "PCLMULQDQ";
    case kCpuXsave: return "XSAVE";
    case kCpuAvx: return "AVX";
    case kCpuF16c: return "F16C";
    case kCpuFma: return "FMA";
    case kCpuMovbe: return "MOVBE";
    case kCpuRdrand: return "RDRAND";
    case kCpuBmi1: return "BMI1";
    case kCpuAvx2: return "AVX2";
    case kCpuBmi2: return "BMI2";
    case kCpuErms: return "ERMS";
    case kCpuAvx512f: return "AVX-512F";
    case kCpuAvx512dq: return "AVX-512DQ";
    case kCpuRdseed: return "RDSEED";
    case kCpuAdx: return "ADX";
    case kCpuAvx512cd: return "AVX-512CD";
    case kCpuSha: return "SHA";
    case kCpuAvx512bw: return "AVX-512BW";
    case kCpuAvx512vl: return "AVX-512VL";
    case kCpuAvx512vbmi: return "AVX-512VBMI";
    case kCpuAvx512vnni: return "AVX-512VNNI";
    case kCpuVaes: return "VAES";
    case kCpuVpclmulqdq: return "VPCLMULQDQ";
    case kCpuGfni: return "GFNI";
    case kCpuFsrm: return "FSRM";
    case kCpuLzcnt: return "LZCNT";
    case kCpuXsaveopt: return "XSAVEOPT";
    case kCpuXsavec: return "XSAVEC";
    case kCpuXsaves: return "XSAVES";
    case kCpuFsgsbase: return "FSGSBASE";
    case kCpuAmxTile: return "AMX-TILE";
    case kCpuAvx512bf16: return "AVX-512BF16";
    case kCpuAvx512fp16: return "AVX-512FP16";
  }
  return nullptr;
}

ImageStatus encode(const HeaderRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "header", buf, cap, len);
}
ImageStatus encode(const ProcessRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "process", buf, cap, len);
}
ImageStatus encode(const ThreadRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "thread", buf, cap, len);
}
ImageStatus encode(const RegionRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "region", buf, cap, len);
}
ImageStatus encode(const FdRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "fd", buf, cap, len);
}
void parse_boot_id(const char* text, std::size_t len, std::uint64_t out[2]) {
  out[0] = out[1] = 0;
  int digits = 0;
  for (std::size_t i = 0; i < len && digits < 32; ++i) {
    char c = text[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    out[digits / 16] = out[digits / 16] << 4 | static_cast<std::uint64_t>(v);
    ++digits;
  }
}

ImageStatus encode(const SocketRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "socket", buf, cap, len);
}
ImageStatus encode(const PosixTimerRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "posix timer", buf, cap, len);
}
ImageStatus encode(const PendingSignalRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "pending signal", buf, cap, len);
}
ImageStatus encode(const FileLockRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "file lock", buf, cap, len);
}
ImageStatus encode(const FileDataRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "file data", buf, cap, len);
}
ImageStatus encode(const ThreadSchedRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "thread scheduling", buf, cap, len);
}
ImageStatus encode(const EndRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "end", buf, cap, len);
}
ImageStatus encode_pages_head(const PagesRecord& r, std::uint8_t* buf, std::size_t cap, std::size_t* len) {
  return encode_any(r, "page data", buf, cap, len);
}

ImageStatus decode(Blob payload, HeaderRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "header"); !s) return s;
  if (static_cast<std::uint8_t>(r->compression) > 2)
    return invalid("header", "unknown compression", static_cast<std::uint8_t>(r->compression));
  const MachineInfo& m = r->machine;
  if (m.page_size < 4096 || m.page_size > kPagesPerChunkBytes || (m.page_size & (m.page_size - 1)))
    return invalid("header", "bad page size", m.page_size);
  if (!text_ok(r->mosix_version, sizeof r->mosix_version) || !text_ok(m.arch, sizeof m.arch))
    return ImageStatus::Failure("header record: malformed text field");
  return ImageStatus::Ok();
}

ImageStatus decode(Blob payload, ProcessRecord* r) {
  return decode_any(payload, r, "process");
}

ImageStatus decode(Blob payload, ThreadRecord* r) {
  return decode_any(payload, r, "thread");
}

ImageStatus decode(Blob payload, RegionRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "region"); !s) return s;
  if (!region_kind_name(r->kind)) return invalid("region", "unknown kind", static_cast<std::uint16_t>(r->kind));
  if (r->end <= r->start) return invalid("region", "end not above start", r->end);
  return ImageStatus::Ok();
}

namespace {

ImageStatus check_pages(const PagesRecord* r, std::size_t data_size) {
  if (static_cast<std::uint8_t>(r->compression) > 2)
    return invalid("page data", "unknown compression", static_cast<std::uint8_t>(r->compression));
  if (r->page_count == 0 || r->page_count > kPagesPerChunkBytes / 4096)
    return invalid("page data", "page count out of range", r->page_count);
  if (r->present.size() != (r->page_count + 7u) / 8u)
    return invalid("page data", "present map size does not match the page count", r->present.size());
  std::uint32_t set = 0;
  for (std::uint8_t b : r->present) {
    for (; b; b &= static_cast<std::uint8_t>(b - 1)) ++set;  // no libgcc popcount helper
  }
  if (r->page_count % 8 && (r->present.back() >> (r->page_count % 8)))
    return invalid("page data", "present map has bits beyond the page count", r->page_count);
  if (set != r->stored_count) return invalid("page data", "stored count does not match the present map", r->stored_count);
  if (r->compression == Compression::none && data_size != r->raw_size)
    return invalid("page data", "uncompressed data size differs from the raw size", data_size);
  if (r->compression != Compression::none && (data_size == 0 || r->raw_size == 0))
    return invalid("page data", "empty compressed data", data_size);
  return ImageStatus::Ok();
}

}  // namespace

ImageStatus decode(Blob payload, PagesRecord* r) {
  *r = PagesRecord{};
  WireDecoder d(payload);
  transfer(d, *r, static_cast<const PagesRecord*>(nullptr));
  if (ImageStatus s = wire_status(d, "page data"); !s) return s;
  r->data = d.rest();
  return check_pages(r, r->data.size());
}

ImageStatus decode_pages_head(Blob head, std::size_t data_size, PagesRecord* r) {
  *r = PagesRecord{};
  WireDecoder d(head);
  transfer(d, *r, static_cast<const PagesRecord*>(nullptr));
  d.finish("page data");
  if (ImageStatus s = wire_status(d, "page data"); !s) return s;
  return check_pages(r, data_size);
}

ImageStatus decode(Blob payload, FdRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "fd"); !s) return s;
  if (!fd_kind_name(r->kind)) return invalid("fd", "unknown kind", static_cast<std::uint16_t>(r->kind));
  return ImageStatus::Ok();
}

ImageStatus decode(Blob payload, SocketRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "socket"); !s) return s;
  if (static_cast<std::uint8_t>(r->state) > static_cast<std::uint8_t>(SocketState::pair))
    return invalid("socket", "bad state", static_cast<std::uint8_t>(r->state));
  return ImageStatus::Ok();
}

ImageStatus decode(Blob payload, PosixTimerRecord* r) {
  return decode_any(payload, r, "posix timer");
}

ImageStatus decode(Blob payload, PendingSignalRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "pending signal"); !s) return s;
  if (r->signo < 1 || r->signo > static_cast<std::int32_t>(kMaxSignals))
    return invalid("pending signal", "bad signal number", static_cast<std::uint32_t>(r->signo));
  return ImageStatus::Ok();
}

ImageStatus decode(Blob payload, FileLockRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "file lock"); !s) return s;
  if (!lock_kind_name(r->kind)) return invalid("file lock", "unknown kind", static_cast<std::uint8_t>(r->kind));
  if (r->type != LockType::read && r->type != LockType::write)
    return invalid("file lock", "unknown type", static_cast<std::uint8_t>(r->type));
  if (r->end < r->start) return invalid("file lock", "end before start", r->end);
  if (r->kind == LockKind::flock && (r->start != 0 || r->end != kLockToEnd))
    return invalid("file lock", "a flock lock that is not on the whole file", r->start);
  return ImageStatus::Ok();
}

ImageStatus decode(Blob payload, ThreadSchedRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "thread scheduling"); !s) return s;
  if (r->nice < -20 || r->nice > 19) return invalid("thread scheduling", "nice out of range", static_cast<std::uint64_t>(r->nice + 20));
  if (r->policy != 0 && r->policy != 3 && r->policy != 5)  // SCHED_OTHER, SCHED_BATCH, SCHED_IDLE
    return invalid("thread scheduling", "a policy a restore does not set", r->policy);
  return ImageStatus::Ok();
}

ImageStatus decode(Blob payload, FileDataRecord* r) {
  if (ImageStatus s = decode_any(payload, r, "file data"); !s) return s;
  if (r->data.empty()) return invalid("file data", "no data", 0);
  if (r->offset > static_cast<std::uint64_t>(INT64_MAX) - r->data.size())
    return invalid("file data", "offset beyond what off_t holds", r->offset);
  return ImageStatus::Ok();
}

ImageStatus decode(Blob payload, EndRecord* r) {
  return decode_any(payload, r, "end");
}

ImageStatus check_compatible(const HeaderRecord& image, const MachineInfo& here) {
  const MachineInfo& m = image.machine;
  if (image.format_version != kFormatVersion) {
    return MessageBuilder()
        .text("image format version ").dec(image.format_version)
        .text(", this mosix reads version ").dec(kFormatVersion)
        .status();
  }
  if (std::strcmp(m.arch, here.arch) != 0) {
    return MessageBuilder().text("image is for ").text(m.arch).text(", this machine is ").text(here.arch).status();
  }
  if (m.page_size != here.page_size) {
    return MessageBuilder()
        .text("image has page size ").dec(m.page_size)
        .text(", this machine ").dec(here.page_size)
        .status();
  }
  if (m.xcr0 & ~here.xcr0) {
    MessageBuilder b;
    b.text("image needs ");
    if ((m.xcr0 & ~here.xcr0) & 0xe0)
      b.text("AVX-512 ");
    else if ((m.xcr0 & ~here.xcr0) & 0x4)
      b.text("AVX ");
    else if ((m.xcr0 & ~here.xcr0) & 0x60000)
      b.text("AMX ");
    else
      b.text("XSAVE state ");
    return b.text("(XCR0 ").hex(m.xcr0).text(") but this CPU has XCR0 ").hex(here.xcr0).status();
  }
  for (std::uint32_t i = 2; i < kMaxXstateComponents; ++i) {
    if (!(m.xcr0 & (1ull << i))) continue;
    if (m.xsave_offset[i] != here.xsave_offset[i] || m.xsave_component_size[i] != here.xsave_component_size[i]) {
      return MessageBuilder()
          .text("image's XSAVE layout differs: state component ").dec(i)
          .text(" at offset ").dec(m.xsave_offset[i]).text(" size ").dec(m.xsave_component_size[i])
          .text(", this CPU at offset ").dec(here.xsave_offset[i]).text(" size ").dec(here.xsave_component_size[i])
          .status();
    }
  }
  if (m.xsave_size > here.xsave_size) {
    return MessageBuilder()
        .text("image's XSAVE area is ").dec(m.xsave_size)
        .text(" bytes, this CPU's ").dec(here.xsave_size)
        .status();
  }
  std::uint64_t missing = m.cpu_features & ~here.cpu_features & kRequiredCpuFeatures;
  if (missing) {
    std::uint64_t bit = missing & (~missing + 1);
    const char* name = cpu_feature_name(bit);
    return MessageBuilder()
        .text("image needs ").text(name ? name : "an unknown CPU feature")
        .text(" (CPU features ").hex(m.cpu_features)
        .text(") but this CPU lacks it (CPU features ").hex(here.cpu_features).text(")")
        .status();
  }
  if (std::strcmp(m.libc_version, here.libc_version) != 0) {
    return MessageBuilder()
        .text("image was made with glibc ").text(m.libc_version)
        .text(", this machine has glibc ").text(here.libc_version)
        .status();
  }
  return ImageStatus::Ok();
}

}  // namespace mosix::ckpt
