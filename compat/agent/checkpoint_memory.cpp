// A checkpoint's memory: the regions of /proc/self/maps and their
// /proc/self/smaps flags, the guard-page check, and the pages written into
// the image.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>


#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_writer.h"
#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/core/little_endian.h"

#include "compat/agent/session.h"

namespace mosix::agent::checkpoint {

// Parses /proc/self/maps into s_->regions, classifying each mapping; refuses
// mappings that cannot be restored (devices, System V shared memory, memfd).
bool Session::collect_regions() {
  long n = read_file("/proc/self/maps", s_->maps, kMapsCap);
  if (n < 0) return fail("cannot read /proc/self/maps (more than 4 MiB of mappings?)"), false;
  s_->maps[n] = '\0';
  auto scratch_lo = reinterpret_cast<std::uint64_t>(s_);
  auto scratch_hi = scratch_lo + scratch_size(Compression::best);
  s_->nregions = 0;
  for (char* line = s_->maps; *line != '\0';) {
    char* eol = line;
    while (*eol != '\n' && *eol != '\0') ++eol;
    bool last = *eol == '\0';
    *eol = '\0';
    const char* p = line;
    Region r{};
    r.start = parse_hex(p);
    ++p;
    r.end = parse_hex(p);
    ++p;
    r.prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
             (p[2] == 'x' ? PROT_EXEC : 0);
    bool shared = p[3] == 's';
    r.map_flags = shared ? MAP_SHARED : MAP_PRIVATE;
    p += 5;
    r.offset = parse_hex(p);
    ++p;
    std::uint64_t dev_major = parse_hex(p);  // files: from stat() below instead
    ++p;
    std::uint64_t dev_minor = parse_hex(p);
    ++p;
    std::uint64_t inode = parse_dec(p);
    while (*p == ' ') ++p;
    r.path = p;
    line = eol + 1;
    bool skip = (r.start >= kReservedLow && r.end <= kReservedHigh) ||
                cstr_eq(r.path, "[vsyscall]");
    if (!skip) {
      if (cstr_eq(r.path, "[vvar]")) {
        r.kind = RegionKind::vvar;
      } else if (cstr_eq(r.path, "[vvar_vclock]")) {
        r.kind = RegionKind::vvar_vclock;
      } else if (cstr_eq(r.path, "[vdso]")) {
        r.kind = RegionKind::vdso;
      } else if (inode == 0) {
        r.has_pages = true;
        if (shared) r.kind = RegionKind::shared_anon;
        else if (cstr_eq(r.path, "[heap]")) r.kind = RegionKind::heap;
        else if (cstr_eq(r.path, "[stack]")) r.kind = RegionKind::stack;
        else r.kind = RegionKind::anon;
        if (r.kind == RegionKind::stack) r.map_flags |= MAP_GROWSDOWN;
      } else {
        struct stat st{};
        bool same = r.path[0] == '/' && !ends_with_deleted(r.path) &&
                    sys(SYS_stat, r.path, &st) == 0 && st.st_ino == inode;
        if (same) {
          r.dev = st.st_dev;
          r.inode = st.st_ino;
          r.file_size = static_cast<std::uint64_t>(st.st_size);
          r.mtime_ns = mtime_ns(st);
        }
        if (shared && starts_with(r.path, "/dev/zero")) {
          r.kind = RegionKind::shared_anon;
          r.has_pages = true;
          r.shm = true;
          r.shm_dev = dev_major << 32 | dev_minor;
          r.inode = inode;
        } else if (shared) {
          if (!same || !S_ISREG(st.st_mode)) {
            const char* what = starts_with(r.path, "/SYSV")      ? "System V shared memory (shmat)"
                               : starts_with(r.path, "/[aio]")   ? "an AIO context's ring (io_setup)"
                               : starts_with(r.path, "/memfd:")  ? "a memfd"
                               : starts_with(r.path, "anon_inode:[io_uring]") ? "an io_uring ring"
                               : ends_with_deleted(r.path)       ? "a deleted file"
                                                                 : "not a regular file that still exists";
            Line(s_->error, sizeof s_->error)
                .s("shared mapping of ")
                .s(r.path)
                .s(" at 0x")
                .x(r.start)
                .s(" cannot be checkpointed (")
                .s(what)
                .s("); a restore cannot give it back");
            return false;
          }
          r.kind = RegionKind::shared_file;
        } else if (same && S_ISREG(st.st_mode)) {
          r.kind = RegionKind::private_file;
          r.has_pages = true;
        } else if (same && S_ISCHR(st.st_mode) && !starts_with(r.path, "/dev/zero")) {
          Line(s_->error, sizeof s_->error)
              .s("mapping of the device ")
              .s(r.path)
              .s(" at 0x")
              .x(r.start)
              .s(" cannot be checkpointed");
          return false;
        } else {
          // A private mapping of a deleted file comes back as anonymous
          // memory: pages it has not copied yet would no longer follow
          // writes through a descriptor the process holds on that file.
          for (int i = 0; i < s_->nfds; ++i) {
            if (s_->fd_ino[i] != inode) continue;
            long fl = sys(SYS_fcntl, s_->fd_num[i], F_GETFL);
            if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) continue;
            Line(s_->error, sizeof s_->error)
                .s("the mapping at 0x")
                .x(r.start)
                .s(" is of a deleted file that fd ")
                .u(static_cast<std::uint64_t>(s_->fd_num[i]))
                .s(" has open for writing, which a restore would part (writes would no longer show in the "
                   "mapping)");
            return false;
          }
          r.kind = RegionKind::anon;
          r.has_pages = true;
          r.dump_all = true;
        }
      }
      // The kernel may have merged the scratch mapping with a neighbour:
      // keep only what lies outside it.
      Region pieces[2] = {r, r};
      pieces[0].end = r.end < scratch_lo ? r.end : (r.start < scratch_lo ? scratch_lo : r.start);
      pieces[1].start = r.start > scratch_hi ? r.start : (r.end > scratch_hi ? scratch_hi : r.end);
      if (pieces[1].start > r.start) pieces[1].offset += pieces[1].start - r.start;
      for (const Region& piece : pieces) {
        if (piece.start >= piece.end) continue;
        if (s_->nregions == kMaxRegions) return fail("more than 16384 memory mappings"), false;
        s_->regions[s_->nregions++] = piece;
      }
    }
    if (last) break;
  }
  return true;
}

namespace {

Region* find_region(Region* regions, int n, std::uint64_t start) {
  for (int i = 0; i < n; ++i)
    if (regions[i].start == start) return &regions[i];
  return nullptr;
}

bool is_special(RegionKind k) {
  return k == RegionKind::vvar || k == RegionKind::vvar_vclock || k == RegionKind::vdso;
}

// VmFlags of /proc/self/smaps that madvise() sets: the image carries them
// and the restore gives the advice again. Those it cannot give (flag 0) are
// refused: the restored process would behave differently.
struct AdviceFlag {
  char code[3];
  std::uint32_t flag;
  const char* what;
};
constexpr AdviceFlag kAdviceFlags[] = {
    {"wf", kRegionWipeOnFork, "MADV_WIPEONFORK"}, {"dc", kRegionDontFork, "MADV_DONTFORK"},
    {"dd", kRegionDontDump, "MADV_DONTDUMP"},     {"hg", kRegionHugepage, "MADV_HUGEPAGE"},
    {"nh", kRegionNoHugepage, "MADV_NOHUGEPAGE"}, {"mg", kRegionMergeable, "MADV_MERGEABLE"},
    {"sr", kRegionSequential, "MADV_SEQUENTIAL"}, {"rr", kRegionRandom, "MADV_RANDOM"},
    // A sealed mapping cannot be sealed before its pages are written, nor
    // written after: not restorable by a process in user space. Locked
    // memory is locked again (the restore refuses more than its
    // RLIMIT_MEMLOCK allows).
    {"sl", 0, "mseal()"},
    {"lo", kRegionLocked, "mlock() or MAP_LOCKED"},
};

}  // namespace

// Reads /proc/self/smaps once: marks the regions the kernel lets grow
// downwards (VmFlags "gd": not only [stack], programs make such mappings
// too), marks shared anonymous regions with swapped-out pages for a full
// dump (mincore() does not see shmem pages in swap), records each region's
// madvise() advice, and refuses a sealed region.
bool Session::read_smaps() {
  long n = read_file("/proc/self/smaps", s_->smaps, sizeof s_->smaps);
  if (n < 0) return fail("cannot read /proc/self/smaps (more than 8 MiB of it?)"), false;
  s_->smaps[n] = '\0';
  Region* r = nullptr;
  for (const char* p = s_->smaps; *p != '\0';) {
    const char* q = p;
    std::uint64_t v = parse_hex(q);
    if (*q == '-') {
      r = find_region(s_->regions, s_->nregions, v);
    } else if (r != nullptr && starts_with(p, "Swap:")) {
      q = p + 5;
      while (*q == ' ') ++q;
      if (r->shm && parse_dec(q) > 0) r->dump_all = true;
    } else if (r != nullptr && starts_with(p, "VmFlags:")) {
      for (const char* f = p + 8; *f != '\n' && *f != '\0'; ++f) {
        if (f[0] != ' ' || f[1] == '\0' || f[2] == '\0' || (f[3] != ' ' && f[3] != '\n')) continue;
        if (f[1] == 'g' && f[2] == 'd') r->map_flags |= MAP_GROWSDOWN;
        if (f[1] == 'n' && f[2] == 'r') r->map_flags |= MAP_NORESERVE;
        if (f[1] == 'u' && f[2] == 'w') r->tracked = true;
        // Droppable: mapped droppable again, its pages left out (as if
        // the kernel had dropped them; kMapDroppable).
        if (f[1] == 'd' && f[2] == 'p') {
          if (r->kind != RegionKind::anon) {
            Line(s_->error, sizeof s_->error).s("the mapping at 0x").x(r->start)
                .s(" is MAP_DROPPABLE and not plain anonymous memory, which a restore does not make");
            return false;
          }
          r->map_flags = (r->map_flags & ~static_cast<std::uint32_t>(MAP_PRIVATE)) | kMapDroppable;
          r->has_pages = false;
        }
        if (f[1] == 'm' && f[2] == 'w' && r->kind == RegionKind::shared_file && (r->prot & PROT_WRITE) == 0)
          r->advice |= kRegionMayWrite;
        if (is_special(r->kind)) continue;
        for (const AdviceFlag& a : kAdviceFlags) {
          if (f[1] != a.code[0] || f[2] != a.code[1]) continue;
          if (a.flag != 0) {
            r->advice |= a.flag;
            continue;
          }
          Line(s_->error, sizeof s_->error)
              .s("the mapping at 0x")
              .x(r->start)
              .s(" has ")
              .s(a.what)
              .s(" set, which a restore does not bring back");
          return false;
        }
      }
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return true;
}

namespace {

// pagemap bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr int kPmPresent = 63, kPmSwapped = 62, kPmFile = 61, kPmGuard = 58;

}  // namespace

// Refuses guard pages (madvise MADV_GUARD_INSTALL): the kernel shows them in
// pagemap as swapped pages, but reading one faults, and a restore does not
// install them again. Checked before any page is read: a checkpoint must
// never fault in the process it reads. The kernel finds them itself where it
// can (PAGEMAP_SCAN for PAGE_IS_GUARD, Linux 6.14): reading the pagemap of a
// 512 MiB guest costs a stopped guest milliseconds.
bool Session::check_guard_pages() {
  long fd = sys(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("cannot open /proc/self/pagemap"), false;
  bool ok = true, scan = true;
  auto guard_at = [this](const Region& r, std::uint64_t at) {
    Line(s_->error, sizeof s_->error)
        .s("the mapping at 0x")
        .x(r.start)
        .s(" has a guard page (madvise MADV_GUARD_INSTALL) at 0x")
        .x(at)
        .s(", which a restore does not bring back");
    return false;
  };
  for (int k = 0; k < s_->nregions && ok; ++k) {
    const Region& r = s_->regions[k];
    if (is_special(r.kind)) continue;
    if (scan) {
      PmScanArg arg{};
      arg.size = sizeof arg;
      arg.start = r.start;
      arg.end = r.end;
      arg.vec = reinterpret_cast<std::uint64_t>(s_->scan);
      arg.vec_len = 1;
      arg.max_pages = 1;
      arg.category_mask = kPageIsGuard;
      arg.return_mask = kPageIsGuard;
      long got = sys(SYS_ioctl, fd, kPagemapScan, &arg);
      if (got == 0) continue;
      if (got > 0) {
        ok = guard_at(r, s_->scan[0].start);
        break;
      }
      scan = false;  // an older kernel: read the pagemap, from this region on
    }
    for (std::uint64_t base = r.start; base < r.end && ok; base += kPagemapBatch * kPageSize) {
      std::uint64_t pages = (r.end - base) / kPageSize;
      if (pages > kPagemapBatch) pages = kPagemapBatch;
      long got = sys(SYS_pread64, fd, s_->pagemap, pages * 8, (base / kPageSize) * 8);
      if (got != static_cast<long>(pages * 8)) {
        ok = false;
        fail("cannot read /proc/self/pagemap");
        break;
      }
      for (std::uint64_t i = 0; i < pages; ++i) {
        if (((s_->pagemap[i] >> kPmGuard) & 1) == 0) continue;
        ok = guard_at(r, base + i * kPageSize);
        break;
      }
    }
  }
  sys(SYS_close, fd);
  return ok;
}

// Writes the pages of one region that cannot be had otherwise: present or
// swapped pages of anonymous memory (the writer leaves out all-zero ones),
// and of private file mappings only the pages the program changed (no longer
// the file's page cache page).
bool Session::write_pages(const Region& r) {
  bool unreadable = (r.prot & PROT_READ) == 0;
  bool ok = true;
  bool mprotected = false;
  std::uint64_t run_start = 0, run_len = 0;
  auto flush_run = [&]() {
    if (run_len == 0) return true;
    if (unreadable && !mprotected) {
      sys(SYS_mprotect, r.start, r.end - r.start, r.prot | PROT_READ);
      mprotected = true;
    }
    bool w = check(writer_->pages(run_start - r.start, reinterpret_cast<const void*>(run_start),
                                  run_len));
    run_len = 0;
    return w;
  };
  for (std::uint64_t base = r.start; base < r.end && ok; base += kPagemapBatch * kPageSize) {
    std::uint64_t pages = (r.end - base) / kPageSize;
    if (pages > kPagemapBatch) pages = kPagemapBatch;
    long got = sys(SYS_pread64, pagemap_fd_, s_->pagemap, pages * 8, (base / kPageSize) * 8);
    if (got != static_cast<long>(pages * 8)) {
      fail("cannot read /proc/self/pagemap");
      ok = false;
      break;
    }
    // A shared anonymous page may exist without being in this process's
    // page table (another process wrote it, or this one only after a
    // fork): the shmem object's page cache says which exist.
    if (r.shm && sys(SYS_mincore, base, pages * kPageSize, s_->incore) != 0) {
      fail("mincore() failed on a shared anonymous mapping");
      ok = false;
      break;
    }
    for (std::uint64_t i = 0; i < pages && ok; ++i) {
      std::uint64_t pm = s_->pagemap[i];
      bool present = (pm >> kPmPresent) & 1, swapped = (pm >> kPmSwapped) & 1, file = (pm >> kPmFile) & 1;
      std::uint64_t addr = base + i * kPageSize;
      bool dump;
      if (r.dump_all) dump = true;
      else if (r.shm) dump = present || swapped || (s_->incore[i] & 1) != 0;
      else if (r.kind == RegionKind::private_file) dump = (present && !file) || swapped;
      else dump = present || swapped;
      if (dump && run_len > 0 && run_start + run_len == addr) {
        run_len += kPageSize;
        continue;
      }
      ok = flush_run();
      if (dump) {
        run_start = addr;
        run_len = kPageSize;
      }
    }
  }
  ok = ok && flush_run();
  if (mprotected) sys(SYS_mprotect, r.start, r.end - r.start, r.prot);
  return ok;
}

}  // namespace mosix::agent::checkpoint
