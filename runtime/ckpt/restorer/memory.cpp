// The address space in phase 2: the restorer's own mappings go, the vDSO
// block moves to where the program had it, every region is mapped and
// filled from the image, and the kernel's view of the layout (brk, argument
// and environment areas) is set.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/ckpt/restorer/restorer.h"

namespace mosix::ckpt::restorer {
namespace {

// The madvise() advice the region had (none needs a privilege), and its
// lock.
void apply_advice(const RegionRecord& r) {
  static constexpr struct {
    std::uint32_t flag;
    int advice;
  } kAdvice[] = {{kRegionWipeOnFork, MADV_WIPEONFORK}, {kRegionDontFork, MADV_DONTFORK},
                 {kRegionDontDump, MADV_DONTDUMP},     {kRegionHugepage, MADV_HUGEPAGE},
                 {kRegionNoHugepage, MADV_NOHUGEPAGE}, {kRegionMergeable, MADV_MERGEABLE},
                 {kRegionSequential, MADV_SEQUENTIAL}, {kRegionRandom, MADV_RANDOM}};
  // Locked again (checks.cpp: within RLIMIT_MEMLOCK).
  if ((r.flags & kRegionLocked) && mlock(reinterpret_cast<void*>(r.start), r.end - r.start) != 0)
    die("mlock", -errno);
  for (const auto& a : kAdvice) {
    if ((r.flags & a.flag) == 0) continue;
    if (madvise(reinterpret_cast<void*>(r.start), r.end - r.start, a.advice) != 0) {
      char what[96];
      snprintf(what, sizeof what, "madvise(%d) of region %#lx", a.advice, static_cast<unsigned long>(r.start));
      die(what, -errno);
    }
  }
}

// Maps [start, end) of region g (all of it, or a part around staged memory).
void map_range(const Region& g, std::uint64_t start, std::uint64_t end) {
  const RegionRecord& r = g.rec;
  std::size_t len = end - start;
  int prot = static_cast<int>(r.prot);
  if (r.flags & kRegionHasPages) prot |= PROT_READ | PROT_WRITE;
  int flags = MAP_FIXED_NOREPLACE | (static_cast<int>(r.map_flags) & (MAP_GROWSDOWN | MAP_NORESERVE));
  int fd = -1;
  if (g.map_fd >= 0) {
    fd = g.map_fd;
    flags |= r.kind == RegionKind::shared_file ? MAP_SHARED : MAP_PRIVATE;
  } else if (r.kind == RegionKind::shared_file) {
    fd = open(g.path.c_str(), ((r.prot & PROT_WRITE) || (r.flags & kRegionMayWrite) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    flags |= MAP_SHARED;
  } else if (r.kind == RegionKind::private_file) {
    fd = open(g.path.c_str(), O_RDONLY | O_CLOEXEC);
    flags |= MAP_PRIVATE;
  } else if (r.kind == RegionKind::shared_anon) {
    flags |= MAP_SHARED | MAP_ANONYMOUS;
  } else {
    flags |= ((r.map_flags & kMapDroppable) ? static_cast<int>(kMapDroppable) : MAP_PRIVATE) | MAP_ANONYMOUS;
  }
  if (file_backed(r.kind) && fd < 0) die(("opening " + g.path).c_str(), -errno);
  void* at = mmap(reinterpret_cast<void*>(start), len, prot, flags, fd, static_cast<off_t>(r.offset + (start - r.start)));
  if (at == MAP_FAILED || reinterpret_cast<std::uint64_t>(at) != start) {
    char what[128];
    snprintf(what, sizeof what, "mapping region %#lx-%#lx", static_cast<unsigned long>(start),
             static_cast<unsigned long>(end));
    die(what, at == MAP_FAILED ? -errno : -EEXIST);
  }
  if (fd >= 0 && fd != g.map_fd) close(fd);
}

// A pre-copied region may hold memory staged by an early start (early.cpp):
// only the parts around it are mapped now.
void map_region(const Region& g) {
  const RegionRecord& r = g.rec;
  if (r.flags & kRegionPrecopied) {
    g_staged.parts(r.start, r.end, false, [&](std::uint64_t s, std::uint64_t e) { map_range(g, s, e); });
  } else {
    map_range(g, r.start, r.end);
  }
  apply_advice(r);
}

// Moves this process's [vvar], [vvar_vclock] and [vdso] to where the image
// had them. The three move together and keep their distances: the vDSO code
// reads the vvar pages at fixed offsets from itself. glibc cached the vDSO's
// function addresses at start-up, so the program finds clock_gettime where
// it left it and keeps reading the clock without a system call.
void move_vdso(const Plan& p) {
  struct Move {
    const Mapping* from;
    std::uint64_t to;
  } moves[3];
  int n = 0;
  for (const Region& g : p.img->regions) {
    const char* name = g.rec.kind == RegionKind::vvar          ? "[vvar]"
                       : g.rec.kind == RegionKind::vvar_vclock ? "[vvar_vclock]"
                       : g.rec.kind == RegionKind::vdso        ? "[vdso]"
                                                               : nullptr;
    if (name != nullptr) moves[n++] = Move{own_mapping(p.own, name), g.rec.start};
  }
  // A target may overlap where another of the three still is: go through a
  // free spot in the reserved range first.
  std::uint64_t parking = kTrampolineBase + (std::uint64_t{64} << 20);
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < n; ++i) {
      std::uint64_t len = moves[i].from->end - moves[i].from->start;
      std::uint64_t from = pass == 0 ? moves[i].from->start : parking + (moves[i].from->start - moves[0].from->start);
      std::uint64_t to = pass == 0 ? parking + (moves[i].from->start - moves[0].from->start) : moves[i].to;
      void* r = mremap(reinterpret_cast<void*>(from), len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
                       reinterpret_cast<void*>(to));
      if (r == MAP_FAILED) die("moving the vDSO", -errno);
    }
  }
}

void populate_stored(const PagesRecord& pg, void* dst) {
  constexpr int kMadvPopulateWrite = 23;
  auto* base = static_cast<char*>(dst);
  std::uint32_t i = 0;
  while (i < pg.page_count) {
    auto stored = [&](std::uint32_t k) { return (pg.present[k / 8] >> (k % 8)) & 1; };
    if (!stored(i)) {
      ++i;
      continue;
    }
    std::uint32_t j = i;
    while (j < pg.page_count && stored(j)) ++j;
    madvise(base + std::size_t{i} * kPage, std::size_t{j - i} * kPage, kMadvPopulateWrite);
    i = j;
  }
}

// A pre-copied region's pages as the target received them while the
// process still ran: the page store holds each page at its address (a sparse
// memfd); its data extents in [start, end) are copied into place, faulted in
// first in one call each, as populate_stored() does.
void fill_precopied(int store, std::uint64_t start, std::uint64_t end) {
  constexpr int kMadvPopulateWrite = 23;
  for (off_t at = static_cast<off_t>(start); at < static_cast<off_t>(end);) {
    off_t data = lseek(store, at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // no data after `at`
    if (data < 0) die("finding the pre-copied pages", -errno);
    if (data >= static_cast<off_t>(end)) break;
    off_t hole = lseek(store, data, SEEK_HOLE);
    if (hole < 0) die("finding the pre-copied pages", -errno);
    off_t stop = hole < static_cast<off_t>(end) ? hole : static_cast<off_t>(end);
    auto* dst = reinterpret_cast<char*>(data);
    std::size_t len = static_cast<std::size_t>(stop - data);
    madvise(dst, len, kMadvPopulateWrite);
    for (std::size_t done = 0; done < len;) {
      ssize_t n = pread(store, dst + done, len - done, data + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) die("reading the pre-copied pages", n < 0 ? -errno : -EIO);
      done += static_cast<std::size_t>(n);
    }
    at = stop;
  }
}

}  // namespace

bool is_special(RegionKind k) {
  return k == RegionKind::vvar || k == RegionKind::vvar_vclock || k == RegionKind::vdso ||
         k == RegionKind::vsyscall;
}

bool file_backed(RegionKind k) {
  return k == RegionKind::private_file || k == RegionKind::shared_file;
}

void set_mm_layout(const Image& img) {
  const ProcessRecord& p = img.process;
  // start_code..end_data only label /proc output and feed the RLIMIT_DATA
  // check; take them from the executable's mappings.
  std::uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  for (const Region& g : img.regions) {
    if (g.path != img.exe) continue;
    if ((g.rec.prot & PROT_EXEC) && start_code == 0) {
      start_code = g.rec.start;
      end_code = g.rec.end;
    }
    if ((g.rec.prot & PROT_WRITE) && start_data == 0) {
      start_data = g.rec.start;
      end_data = g.rec.end;
    }
  }
  if (start_code == 0) {
    start_code = 0x10000;
    end_code = 0x11000;
  }
  if (start_data == 0) start_data = end_data = end_code;
  struct prctl_mm_map m{};
  m.start_code = start_code;
  m.end_code = end_code;
  m.start_data = start_data;
  m.end_data = end_data;
  m.start_brk = p.start_brk;
  m.brk = p.brk;
  m.start_stack = p.start_stack;
  m.arg_start = p.arg_start;
  m.arg_end = p.arg_end;
  m.env_start = p.env_start;
  m.env_end = p.env_end;
  m.exe_fd = static_cast<std::uint32_t>(-1);
  // The auxiliary vector /proc/self/auxv shows (phase 1 checked that the
  // kernel takes it: check_auxv).
  if (!img.auxv.empty()) {
    m.auxv = reinterpret_cast<decltype(m.auxv)>(const_cast<std::uint8_t*>(img.auxv.data()));
    m.auxv_size = static_cast<std::uint32_t>(img.auxv.size());
  }
  // Unprivileged since Linux 4.x as long as exe_fd is not changed: the brk
  // (so the program's malloc keeps growing its heap), the argument and
  // environment areas (so ps shows the program's command line) and auxv.
  if (prctl(PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0) != 0) die("prctl(PR_SET_MM_MAP)", -errno);
}

// Unmaps everything of the restorer's but the reserved range and the vDSO
// block, moves the vDSO block, then maps every region and reads its pages
// from the image (rewound; phase 1 verified it), and sets each region's
// protection last.
void load_memory(Plan* p) {
  Image& img = *p->img;
  for (int i = 0; i < p->own.n; ++i) {
    const Mapping& m = p->own.m[i];
    bool keep = (m.start >= kReservedLow && m.end <= kReservedHigh) || strcmp(m.name, "[vvar]") == 0 ||
                strcmp(m.name, "[vvar_vclock]") == 0 || strcmp(m.name, "[vdso]") == 0 ||
                strcmp(m.name, "[vsyscall]") == 0;
    if (!keep) munmap(reinterpret_cast<void*>(m.start), m.end - m.start);
  }
  keep_staged_for(img);
  move_vdso(*p);

  if (lseek(p->image_fd, 0, SEEK_SET) != 0) die("rewinding the image", -errno);
  ImageReader reader(fd_source(p->image_fd), p->scratch);
  if (ImageStatus s = reader.open(); !s) die(s.message(), -EIO);
  // Phase 1 verified the image: uncompressed pages can be read straight
  // into place (their checksums are still checked, after the fact).
  reader.set_direct_pages(true);
  int store = -1;
  if (!p->pages_path.empty()) {
    store = open(p->pages_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (store < 0) die("opening the pre-copied pages", -errno);
  }
  const Region* current = nullptr;
  std::size_t next_region = 0;
  for (;;) {
    Record r;
    if (ImageStatus s = reader.next(&r); !s) die(s.message(), -EIO);
    if (r.region != nullptr) {
      current = &img.regions[next_region++];
      if (!is_special(current->rec.kind)) map_region(*current);
      if (current->rec.flags & kRegionPrecopied) {
        // What an early start staged is in place already.
        g_staged.parts(current->rec.start, current->rec.end, false,
                       [&](std::uint64_t s, std::uint64_t e) { fill_precopied(store, s, e); });
      }
    } else if (r.pages != nullptr) {
      const PagesRecord& pg = *r.pages;
      void* dst = reinterpret_cast<void*>(pg.region_start + pg.offset);
      // Over pre-copied pages the record's range is replaced whole: the
      // pages it does not store were zero at the checkpoint.
      if (current->rec.flags & kRegionPrecopied) madvise(dst, std::size_t{pg.page_count} * kPage, MADV_DONTNEED);
      // Restoring memory is bound by allocating pages: fault in the chunk's
      // stored pages in one call (MADV_POPULATE_WRITE, Linux 5.14) rather
      // than one page fault each. Zero pages stay unallocated.
      if (!file_backed(current->rec.kind)) populate_stored(pg, dst);
      if (ImageStatus s = reader.read_pages(pg, dst, std::size_t{pg.page_count} * kPage,
                                            file_backed(current->rec.kind));
          !s)
        die(s.message(), -EIO);
    } else if (r.end != nullptr) {
      break;
    }
  }
  if (store >= 0) close(store);
  for (const Region& g : img.regions) {
    if ((g.rec.flags & kRegionHasPages) && g.rec.prot != (PROT_READ | PROT_WRITE) && !is_special(g.rec.kind))
      if (mprotect(reinterpret_cast<void*>(g.rec.start), g.rec.end - g.rec.start, static_cast<int>(g.rec.prot)) != 0)
        die("mprotect", -errno);
  }
}

}  // namespace mosix::ckpt::restorer
