// Write tracking for a pre-copy (docs/migration.md). On "track=start" the
// agent registers the process's private anonymous memory with a userfaultfd
// in asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC, Linux 6.7): the
// kernel then marks each page written since it was last write-protected,
// with no fault delivered to anyone. The node daemon write-protects and
// reads the pages from outside (the PAGEMAP_SCAN ioctl on /proc/PID/pagemap,
// process_vm_readv), round after round, while the program runs. The image
// for the move then holds, of each region still tracked (VmFlags "uw"), only
// the pages written since the daemon's last round (write_written_pages).
// The userfaultfd is the agent's: left out of every image, closed by the
// image for the move or by "track=stop".
#include <cerrno>
#include <cstdint>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "runtime/ckpt/restorer/reserved_range.h"

#include "compat/agent/session.h"

namespace mosix::agent::checkpoint {
namespace {

// linux/userfaultfd.h and linux/fs.h of Linux 6.7, which older headers lack.
constexpr std::uint64_t kUffdFeatureWpAsync = 1u << 15;
constexpr std::uint64_t kPageSize = 4096;
// A larger writable mapping is left untracked (its present pages go into
// the image as without pre-copy): write-protecting it marks every page
// table entry, written or not (page tables for all of it, 8 MiB for 4 GiB),
// and a huge sparse reservation (a sanitizer's shadow) is mostly never
// written.
constexpr std::uint64_t kMaxTrackedRegion = 4ULL << 30;

// The tracking's userfaultfd. Its number stays in the agent's memory, which a
// restored process and a forked child carry too: tracking_fd() checks that
// the descriptor is still a userfaultfd before anyone trusts it.
long g_track_fd = -1;

bool is_userfaultfd(long fd) {
  char path[64], link[64];
  Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
  long n = sys(SYS_readlinkat, AT_FDCWD, path, link, sizeof link - 1);
  link[n > 0 ? n : 0] = '\0';
  return cstr_eq(link, "anon_inode:[userfaultfd]");
}

}  // namespace

long tracking_fd() {
  if (g_track_fd >= 0 && !is_userfaultfd(g_track_fd)) g_track_fd = -1;
  return g_track_fd;
}

long take_tracking() {
  long fd = tracking_fd();
  g_track_fd = -1;
  return fd;
}

// Registers every private anonymous writable mapping but the agent's own
// scratch memory. A mapping made later is not tracked: its pages go whole
// into the image. written_ reports the bytes tracked.
bool Session::start_tracking() {
  long fd = sys(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0) {
    Line(s_->error, sizeof s_->error)
        .s("no write tracking: userfaultfd: ")
        .s("errno ").i(-fd);
    return false;
  }
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = kUffdFeatureWpAsync;
  if (long r = sys(SYS_ioctl, fd, UFFDIO_API, &api); r != 0) {
    sys(SYS_close, fd);
    Line(s_->error, sizeof s_->error)
        .s("no write tracking: this kernel's userfaultfd has no asynchronous write-protect "
           "(UFFD_FEATURE_WP_ASYNC, Linux 6.7): ")
        .s("errno ").i(-r);
    return false;
  }
  long n = read_file("/proc/self/maps", s_->maps, kMapsCap);
  if (n < 0) {
    sys(SYS_close, fd);
    return fail("cannot read /proc/self/maps"), false;
  }
  s_->maps[n] = '\0';
  auto scratch_lo = reinterpret_cast<std::uint64_t>(s_);
  auto scratch_hi = scratch_lo + scratch_size(Compression::best);
  written_ = 0;
  for (const char* p = s_->maps; *p != '\0';) {
    std::uint64_t lo = parse_hex(p);
    ++p;
    std::uint64_t hi = parse_hex(p);
    ++p;
    bool rw_private = p[0] == 'r' && p[1] == 'w' && p[3] == 'p';
    p += 5;
    parse_hex(p);  // offset
    ++p;
    parse_hex(p);  // device
    ++p;
    parse_hex(p);
    ++p;
    std::uint64_t inode = parse_dec(p);
    while (*p == ' ') ++p;
    bool anon = inode == 0 && (*p == '\n' || *p == '\0' || starts_with(p, "[heap]") || starts_with(p, "[stack]"));
    bool reserved = lo >= kReservedLow && hi <= kReservedHigh;
    if (rw_private && anon && !reserved && hi - lo <= kMaxTrackedRegion) {
      // The scratch mapping, placed next to the program's, may share its
      // line (one merged mapping): the parts on either side are tracked.
      std::uint64_t parts[2][2] = {{lo, hi}, {0, 0}};
      if (lo < scratch_hi && hi > scratch_lo) {
        parts[0][1] = scratch_lo;
        parts[1][0] = scratch_hi;
        parts[1][1] = hi;
      }
      for (const auto& part : parts) {
        if (part[1] <= part[0]) continue;
        uffdio_register reg{};
        reg.range.start = part[0];
        reg.range.len = part[1] - part[0];
        reg.mode = UFFDIO_REGISTER_MODE_WP;
        if (sys(SYS_ioctl, fd, UFFDIO_REGISTER, &reg) == 0) written_ += part[1] - part[0];
      }
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  g_track_fd = fd;
  return true;
}

// write_pages() for a pre-copied region: the runs of pages the kernel marks
// written since the daemon's last round (PAGEMAP_SCAN, without changing the
// marks). A page the program gave back (MADV_DONTNEED) counts as written and
// reads as zero: the writer leaves it out of the record, and the restore
// clears it.
bool Session::write_written_pages(const Region& r) {
  bool unreadable = (r.prot & PROT_READ) == 0;
  if (unreadable) sys(SYS_mprotect, r.start, r.end - r.start, r.prot | PROT_READ);
  bool ok = true;
  for (std::uint64_t at = r.start; ok && at < r.end;) {
    PmScanArg arg{};
    arg.size = sizeof arg;
    arg.start = at;
    arg.end = r.end;
    arg.vec = reinterpret_cast<std::uint64_t>(s_->scan);
    arg.vec_len = kPagemapBatch;
    arg.category_mask = kPageIsWritten;
    arg.return_mask = kPageIsWritten;
    long got = sys(SYS_ioctl, pagemap_fd_, kPagemapScan, &arg);
    if (got < 0) {
      Line(s_->error, sizeof s_->error)
          .s("PAGEMAP_SCAN of the mapping at 0x")
          .x(r.start)
          .s(" failed: ")
          .s("errno ").i(-got);
      ok = false;
      break;
    }
    for (long i = 0; ok && i < got; ++i) {
      const PageRun& run = s_->scan[i];
      ok = check(writer_->pages(run.start - r.start, reinterpret_cast<const void*>(run.start), run.end - run.start));
    }
    if (arg.walk_end <= at) break;
    at = arg.walk_end;
  }
  if (unreadable) sys(SYS_mprotect, r.start, r.end - r.start, r.prot);
  return ok;
}

}  // namespace mosix::agent::checkpoint
