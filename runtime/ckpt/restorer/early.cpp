// mosix-restore --early FD: the restorer of a live migration's target,
// started while the pre-copy rounds still run at the source
// (runtime/ckpt/early_protocol.h). Each round's pages are taken from the page
// store into place now, at their own addresses in this process, so that
// after the guest stops only the last round's pages are left to copy: that
// copy, bound by allocating pages, was most of the time a moved guest stood
// still (docs/migration.md).
//
// Staged memory is private anonymous, read-write, like a fresh region's
// (memory.cpp maps the rest of each region around it). A range is staged
// only where this process has nothing mapped: the restorer's own stack, its
// vDSO block and the reserved range stay its own until phase 2, and pages
// that fall there are copied from the store after the stop, as without an
// early start.
//
// Transparent huge pages: the kernel gives a fault a 2 MiB page only if the
// mapping covers the whole aligned 2 MiB around it and has MADV_HUGEPAGE
// (this machine's THP mode is "madvise"). Stages come 1 MiB at a time, so
// mapping each as it comes would leave the guest's huge-page memory in
// 4 KiB pages after the move (a stop-and-copy keeps them: memory.cpp maps a
// region whole, advice first). So a range the source says had MADV_HUGEPAGE
// is mapped whole, with the advice, when its first pages are staged
// (g_premapped), and what was never staged in it is unmapped again at the
// go: phase 1 must see only staged memory as the program's.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/ckpt/early_protocol.h"
#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/ckpt/restorer/restorer.h"

namespace mosix::ckpt::restorer {

RangeSet g_staged;

namespace {

RangeSet g_hugepage;   // ranges the source said had MADV_HUGEPAGE
RangeSet g_premapped;  // mapped for them, staged or not yet

constexpr int kMadvPopulateWrite = 23;

// Reads [start, end) of the store into place, the pages faulted in first in
// one call (as memory.cpp does for the image's pages).
void read_into_place(int store, std::uint64_t start, std::uint64_t end) {
  auto* dst = reinterpret_cast<char*>(start);
  std::size_t len = end - start;
  madvise(dst, len, kMadvPopulateWrite);
  for (std::size_t done = 0; done < len;) {
    ssize_t n = pread(store, dst + done, len - done, static_cast<off_t>(start + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) refuse(std::string("reading the pre-copied pages: ") + strerror(errno));
    if (n == 0) {  // past the store's end: never written, so zero
      memset(dst + done, 0, len - done);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
}

// Maps [s, e) private anonymous read-write where nothing is; false where
// something is (the restorer's own memory: its pages are copied after the
// stop) or in the reserved range (the restorer's heap grows there, and an
// image with memory there is refused anyway).
bool map_fresh(std::uint64_t s, std::uint64_t e) {
  if (s < kReservedHigh && e > kReservedLow) return false;
  void* at = mmap(reinterpret_cast<void*>(s), e - s, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (at == MAP_FAILED) return false;
  if (reinterpret_cast<std::uint64_t>(at) != s) {
    munmap(at, e - s);
    return false;
  }
  return true;
}

// The huge-page ranges [start, end) touches, mapped whole with the advice
// where nothing is mapped yet. A gap that cannot be mapped in one piece
// (the restorer's own memory is there) is left to stage() as usual.
void premap_hugepage(std::uint64_t start, std::uint64_t end) {
  std::vector<Range> gaps;
  for (const Range& h : g_hugepage.ranges()) {
    if (h.end <= start || end <= h.start) continue;
    g_staged.parts(h.start, h.end, false, [&](std::uint64_t s, std::uint64_t e) {
      g_premapped.parts(s, e, false, [&](std::uint64_t a, std::uint64_t b) { gaps.push_back(Range{a, b}); });
    });
  }
  for (const Range& g : gaps) {
    if (!map_fresh(g.start, g.end)) continue;
    madvise(reinterpret_cast<void*>(g.start), g.end - g.start, MADV_HUGEPAGE);
    g_premapped.add(g.start, g.end);
  }
}

void stage(int store, std::uint64_t start, std::uint64_t end) {
  if (!g_hugepage.empty()) premap_hugepage(start, end);
  std::vector<Range> fresh;
  g_staged.parts(start, end, false, [&](std::uint64_t s, std::uint64_t e) {
    g_premapped.parts(s, e, true, [&](std::uint64_t a, std::uint64_t b) { fresh.push_back(Range{a, b}); });
    g_premapped.parts(s, e, false, [&](std::uint64_t a, std::uint64_t b) {
      if (map_fresh(a, b)) fresh.push_back(Range{a, b});
    });
  });
  for (const Range& r : fresh) g_staged.add(r.start, r.end);
  g_staged.parts(start, end, true, [&](std::uint64_t s, std::uint64_t e) { read_into_place(store, s, e); });
}

void zero(std::uint64_t start, std::uint64_t end) {
  g_staged.parts(start, end, true, [](std::uint64_t s, std::uint64_t e) {
    madvise(reinterpret_cast<void*>(s), e - s, MADV_DONTNEED);
  });
}

}  // namespace

EarlyGo run_early(int ctl, const std::string& pages_path) {
  int store = open(pages_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (store < 0) refuse("cannot read the pre-copied pages " + pages_path + ": " + strerror(errno));
  std::uint64_t taken = 0;
  for (;;) {
    EarlyCommand c{};
    iovec iov{&c, sizeof c};
    alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) _exit(0);  // the move was given up
    if (n != static_cast<ssize_t>(sizeof c) || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
      refuse("a malformed word from the node daemon on the early restorer's socket");
    if (c.op != EarlyOp::kGo && ((c.address | c.length) % kPage != 0 || c.address + c.length < c.address))
      refuse("pre-copied pages at an address or length that is not page-aligned");
    switch (c.op) {
      case EarlyOp::kStage:
      case EarlyOp::kZero: {
        if (c.op == EarlyOp::kStage) {
          stage(store, c.address, c.address + c.length);
          taken += c.length;
        } else {
          zero(c.address, c.address + c.length);
        }
        EarlyCommand answer{EarlyOp::kTaken, 0, 0, taken};
        // A daemon that has gone away is no reason to stop: its go (or the
        // socket's end) decides.
        while (send(ctl, &answer, sizeof answer, MSG_NOSIGNAL) < 0 && errno == EINTR) {
        }
        break;
      }
      case EarlyOp::kHugepage:
        g_hugepage.add(c.address, c.address + c.length);
        break;
      case EarlyOp::kGo: {
        // Only staged memory may look like the program's to phase 1.
        std::vector<Range> unstaged;
        for (const Range& p : g_premapped.ranges())
          g_staged.parts(p.start, p.end, false, [&](std::uint64_t s, std::uint64_t e) { unstaged.push_back(Range{s, e}); });
        for (const Range& u : unstaged) munmap(reinterpret_cast<void*>(u.start), u.end - u.start);
        EarlyGo go;
        int fds[2] = {-1, -1};
        std::size_t want = c.length == 1 ? 2 : 1;
        cmsghdr* h = CMSG_FIRSTHDR(&m);
        if (h == nullptr || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS ||
            h->cmsg_len != CMSG_LEN(want * sizeof(int)))
          refuse("the node daemon's go came without the image");
        memcpy(fds, CMSG_DATA(h), want * sizeof(int));
        go.image_fd = fds[0];
        go.sockets_fd = fds[1];
        close(store);
        close(ctl);
        return go;
      }
      default:
        refuse("an unknown word from the node daemon on the early restorer's socket");
    }
  }
}

void keep_staged_for(const Image& img) {
  if (g_staged.empty()) return;
  // Where staged memory can stay: private anonymous regions the image marks
  // pre-copied, mapped with no flags a plain mapping lacks.
  RangeSet keep;
  for (const Region& g : img.regions) {
    const RegionRecord& r = g.rec;
    bool anon = r.kind == RegionKind::anon || r.kind == RegionKind::heap;
    if (anon && (r.flags & kRegionPrecopied) && (r.map_flags & (MAP_GROWSDOWN | MAP_NORESERVE)) == 0)
      keep.add(r.start, r.end);
  }
  std::vector<Range> drop;
  for (const Range& s : g_staged.ranges())
    keep.parts(s.start, s.end, false, [&](std::uint64_t a, std::uint64_t b) { drop.push_back(Range{a, b}); });
  for (const Range& d : drop) {
    munmap(reinterpret_cast<void*>(d.start), d.end - d.start);
    g_staged.remove(d.start, d.end);
  }
}

}  // namespace mosix::ckpt::restorer
