#include "runtime/daemon/precopy.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "runtime/ckpt/request.h"
#include "runtime/sys/errno_text.h"

namespace mosix {
namespace {

// linux/fs.h of Linux 6.7 (PAGEMAP_SCAN), which older headers lack.
struct PmScanArg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
struct PageRun {
  std::uint64_t start, end, categories;
};
constexpr unsigned long kPagemapScan = 0xc0606610;  // _IOWR('f', 16, struct pm_scan_arg)
constexpr std::uint64_t kScanWpMatching = 1u << 0;  // PM_SCAN_WP_MATCHING
constexpr std::uint64_t kPageIsWritten = 1u << 1;
constexpr std::uint64_t kPageIsPresent = 1u << 3;
constexpr std::uint64_t kPageIsSwapped = 1u << 4;
constexpr std::uint64_t kPageIsPfnZero = 1u << 5;
constexpr std::uint64_t kPageSize = 4096;
// The top of a process's address space on x86-64 (TASK_SIZE_MAX).
constexpr std::uint64_t kUserTop = 0x7ffffffff000ULL;
constexpr std::size_t kRunsPerScan = 4096;
constexpr std::uint64_t kPagesPerScan = 16384;  // 64 MiB: read and sent before the next scan
constexpr std::size_t kPiece = 1u << 20;        // bytes per read and per message
constexpr std::size_t kIovPerRead = 512;

struct Range {
  std::uint64_t start, end;
};

// The guest's mappings whose writes are tracked (VmFlags "uw" in
// /proc/PID/smaps); with `huge`, only those it also asked transparent huge
// pages for ("hg": MADV_HUGEPAGE).
Expected<std::vector<Range>> tracked_ranges(pid_t pid, bool huge = false) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  if (!in) return make_error("cannot read /proc/" + std::to_string(pid) + "/smaps");
  std::vector<Range> out;
  Range current{0, 0};
  std::string line;
  while (std::getline(in, line)) {
    std::size_t dash = line.find('-');
    std::size_t space = line.find(' ');
    if (dash != std::string::npos && space != std::string::npos && dash < space &&
        line.find_first_not_of("0123456789abcdef") == dash) {
      current = Range{std::stoull(line.substr(0, dash), nullptr, 16),
                      std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16)};
    } else if (line.rfind("VmFlags:", 0) == 0 && (line + " ").find(" uw ") != std::string::npos &&
               (!huge || (line + " ").find(" hg ") != std::string::npos)) {
      out.push_back(current);
    }
  }
  return out;
}

bool overlaps(const std::vector<Range>& ranges, const Range& r) {
  return std::any_of(ranges.begin(), ranges.end(), [&](const Range& t) { return t.start < r.end && r.start < t.end; });
}

class Round {
 public:
  Round(pid_t pid, int pagemap, const PageSink& sink) : pid_(pid), pagemap_(pagemap), sink_(sink) {}

  // Write-protects and reads every page written since the last round. The
  // scan walks the whole address space: the kernel passes over mappings
  // that are not tracked (without PM_SCAN_CHECK_WPASYNC), and holds the
  // address space still for each call, so no mapping changes under it.
  Status all() {
    std::vector<PageRun> runs(kRunsPerScan);
    for (std::uint64_t at = 0; at < kUserTop;) {
      PmScanArg arg{};
      arg.size = sizeof arg;
      arg.flags = kScanWpMatching;
      arg.start = at;
      arg.end = kUserTop;
      arg.vec = reinterpret_cast<std::uint64_t>(runs.data());
      arg.vec_len = runs.size();
      arg.max_pages = kPagesPerScan;
      arg.category_mask = kPageIsWritten;
      arg.return_mask = kPageIsWritten | kPageIsPresent | kPageIsSwapped | kPageIsPfnZero;
      long n = ::ioctl(pagemap_, kPagemapScan, &arg);
      if (n < 0) return scan_error(errno);
      for (long i = 0; i < n; ++i) {
        const PageRun& run = runs[i];
        // Written, yet no page there (never touched, or given back with
        // MADV_DONTNEED after an earlier round sent it) or the shared zero
        // page: zero at the target, without reading or sending it.
        bool data = (run.categories & (kPageIsPresent | kPageIsSwapped)) != 0 &&
                    (run.categories & kPageIsPfnZero) == 0;
        Status s = data ? read(Range{run.start, run.end}) : zero(Range{run.start, run.end});
        if (!s.ok()) return s;
      }
      if (Status s = flush(); !s.ok()) return s;
      if (arg.walk_end <= at) break;
      at = arg.walk_end;
    }
    return Status::Ok();
  }

  std::uint64_t bytes() const { return bytes_; }
  const std::vector<Range>& missed() const { return missed_; }

 private:
  Status scan_error(int err) const {
    return make_error("PAGEMAP_SCAN of process " + std::to_string(pid_) + ": " + sys::errno_text(err));
  }

  Status zero(Range r) {
    if (!sink_(r.start, {}, r.end - r.start)) return make_error("the move was given up");
    return Status::Ok();
  }

  // Queues `r` in pieces; reads when a read's worth is queued.
  Status read(Range r) {
    for (std::uint64_t at = r.start; at < r.end;) {
      std::uint64_t len = std::min<std::uint64_t>(r.end - at, kPiece - queued_);
      pieces_.push_back(Range{at, at + len});
      queued_ += len;
      at += len;
      if (queued_ == kPiece || pieces_.size() == kIovPerRead) {
        if (Status s = flush(); !s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  // One process_vm_readv for the queued pieces, then one message each. A
  // piece it could not read (part of it unmapped or made unreadable
  // meanwhile) is read again page by page, and the pages it still cannot
  // read are noted.
  Status flush() {
    std::size_t first = 0;
    while (first < pieces_.size()) {
      std::vector<iovec> local, remote;
      std::size_t off = 0;
      for (std::size_t i = first; i < pieces_.size(); ++i) {
        std::size_t len = pieces_[i].end - pieces_[i].start;
        local.push_back(iovec{buffer_.data() + off, len});
        remote.push_back(iovec{reinterpret_cast<void*>(pieces_[i].start), len});
        off += len;
      }
      ssize_t got = ::process_vm_readv(pid_, local.data(), local.size(), remote.data(), remote.size(), 0);
      if (got < 0 && errno != EFAULT && errno != ENOMEM) {
        return make_error("process_vm_readv of process " + std::to_string(pid_) + ": " + sys::errno_text(errno));
      }
      std::size_t done = got > 0 ? static_cast<std::size_t>(got) : 0;
      std::size_t at = 0;
      for (; first < pieces_.size(); ++first) {
        std::size_t len = pieces_[first].end - pieces_[first].start;
        if (at + len > done) break;
        if (!sink_(pieces_[first].start, std::span<const std::uint8_t>(buffer_.data() + at, len), 0))
          return make_error("the move was given up");
        bytes_ += len;
        at += len;
      }
      if (first < pieces_.size()) {
        // The kernel stops at the first piece it cannot read in full.
        if (Status s = page_by_page(pieces_[first]); !s.ok()) return s;
        ++first;
      }
    }
    pieces_.clear();
    queued_ = 0;
    return Status::Ok();
  }

  Status page_by_page(const Range& piece) {
    for (std::uint64_t at = piece.start; at < piece.end; at += kPageSize) {
      iovec local{buffer_.data(), kPageSize};
      iovec remote{reinterpret_cast<void*>(at), kPageSize};
      if (::process_vm_readv(pid_, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(kPageSize)) {
        if (missed_.empty() || missed_.back().end != at) missed_.push_back(Range{at, at});
        missed_.back().end = at + kPageSize;
        continue;
      }
      if (!sink_(at, std::span<const std::uint8_t>(buffer_.data(), kPageSize), 0))
        return make_error("the move was given up");
      bytes_ += kPageSize;
    }
    return Status::Ok();
  }

  pid_t pid_;
  int pagemap_;
  const PageSink& sink_;
  std::vector<std::uint8_t> buffer_ = std::vector<std::uint8_t>(kPiece);
  std::vector<Range> pieces_;
  std::size_t queued_ = 0;
  std::uint64_t bytes_ = 0;
  std::vector<Range> missed_;
};

Status track(pid_t pid, ckpt::Tracking how) {
  ckpt::CheckpointRequest r;
  r.pid = pid;
  r.tracking = how;
  auto answer = ckpt::ask_agent(r, "/dev/null");
  if (!answer) return answer.error();
  return Status::Ok();
}

Expected<PrecopyStats> rounds(pid_t pid, const PrecopyParams& params, const PageSink& sink, const RoundTaken& taken) {
  const std::string path = "/proc/" + std::to_string(pid) + "/pagemap";
  int pagemap = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) return make_error("cannot open " + path + ": " + sys::errno_text(errno));
  PrecopyStats stats;
  std::vector<std::uint64_t> sent;
  Status failed = Status::Ok();
  while (failed.ok() && !precopy_done(params, sent)) {
    Round round(pid, pagemap, sink);
    if (failed = round.all(); !failed.ok()) break;
    // Pages write-protected but not read must not be left to the target's
    // copy: fine if their mapping is gone (the image will not have it),
    // not if it is still tracked (made unreadable, say).
    if (!round.missed().empty()) {
      auto now = tracked_ranges(pid);
      for (const Range& m : round.missed()) {
        if (!now || overlaps(*now, m)) {
          failed = make_error("pre-copy could not read the guest's memory at " + std::to_string(m.start));
          break;
        }
      }
    }
    sent.push_back(round.bytes());
    stats.bytes += round.bytes();
    ++stats.rounds;
    if (taken) taken();
  }
  ::close(pagemap);
  if (!failed.ok()) return failed.error();
  return stats;
}

}  // namespace

Expected<PrecopyStats> run_precopy(pid_t pid, const PrecopyParams& params, const PageSink& sink,
                                   const RoundTaken& taken, const HugepageSink& hugepage, bool* unsupported) {
  *unsupported = false;
  if (Status s = track(pid, ckpt::Tracking::kStart); !s.ok()) {
    *unsupported = s.error().message.find("no write tracking") != std::string::npos;
    return s.error();
  }
  // Where the guest had huge pages asked for, the target maps the whole
  // region before the first pages come, or it would stage them into pieces
  // of a mapping too small for a huge page (they would stay 4 KiB pages
  // after the move). Read once: a region made later is not tracked anyway.
  if (hugepage) {
    auto huge = tracked_ranges(pid, true);
    if (huge)
      for (const Range& r : *huge) hugepage(r.start, r.end - r.start);
  }
  auto stats = rounds(pid, params, sink, taken);
  if (!stats) {
    (void)track(pid, ckpt::Tracking::kStop);  // the guest may be gone: nothing to stop then
    return stats.error();
  }
  return stats;
}

}  // namespace mosix
