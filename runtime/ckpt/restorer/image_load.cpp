// Phase 1's input: the image read whole into memory (every checksum and
// record checked by the reader), the restorer's own mappings, and an image
// on standard input spooled into a memfd.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/restorer.h"

namespace mosix::ckpt::restorer {

void read_own_maps(OwnMaps* out) {
  static char buf[64 << 10];
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) refuse("cannot read /proc/self/maps");
  std::size_t len = 0;
  for (ssize_t r; (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0;) len += static_cast<std::size_t>(r);
  close(fd);
  buf[len] = '\0';
  out->n = 0;
  for (char* line = buf; *line != '\0' && out->n < 256;) {
    char* eol = strchr(line, '\n');
    if (eol != nullptr) *eol = '\0';
    Mapping& m = out->m[out->n++];
    char* p = line;
    m.start = strtoull(p, &p, 16);
    m.end = strtoull(p + 1, &p, 16);
    const char* name = strrchr(line, ' ');
    snprintf(m.name, sizeof m.name, "%s", name != nullptr ? name + 1 : "");
    if (g_staged.contains(m.start, m.end)) --out->n;  // the program's pages, staged early
    if (eol == nullptr) break;
    line = eol + 1;
  }
}

const Mapping* own_mapping(const OwnMaps& own, const char* name) {
  for (int i = 0; i < own.n; ++i)
    if (strcmp(own.m[i].name, name) == 0) return &own.m[i];
  return nullptr;
}

std::string ghost_name(const Fd& f) {
  constexpr std::string_view kDeleted = " (deleted)";
  std::string_view p = f.path;
  if (p.size() >= kDeleted.size() && p.substr(p.size() - kDeleted.size()) == kDeleted)
    p.remove_suffix(kDeleted.size());
  return std::string(p);
}

Image read_image(int fd) {
  static ReaderScratch scratch;
  if (ImageStatus s = scratch.map(); !s) refuse(s.message());
  ImageReader reader(fd_source(fd), &scratch);
  if (ImageStatus s = reader.open(); !s) refuse(s.message());
  Image img;
  img.header = reader.header();
  for (;;) {
    Record r;
    if (ImageStatus s = reader.next(&r); !s) refuse(s.message());
    if (r.process != nullptr) {
      img.process = *r.process;
      img.comm = std::string(r.process->comm);
      img.cwd = std::string(r.process->cwd);
      img.exe = std::string(r.process->exe);
      img.auxv.assign(r.process->auxv.begin(), r.process->auxv.end());
    } else if (r.thread != nullptr) {
      Thread t{*r.thread, {r.thread->regs.begin(), r.thread->regs.end()},
               {r.thread->xstate.begin(), r.thread->xstate.end()}, std::string(r.thread->name)};
      img.threads.push_back(std::move(t));
    } else if (r.region != nullptr) {
      img.regions.push_back(Region{*r.region, std::string(r.region->path)});
    } else if (r.fd != nullptr) {
      img.fds.push_back(Fd{*r.fd, std::string(r.fd->path), {r.fd->data.begin(), r.fd->data.end()}, {}});
    } else if (r.file_data != nullptr) {
      const FileDataRecord& d = *r.file_data;
      // A ghost's or memfd's contents, a pipe's unread bytes past what its
      // two ends' records hold, a named pipe's, or a socketpair end's queue (sockets.cpp
      // checks that the socket is one).
      FdKind kind = img.fds.empty() ? FdKind::std_stream : img.fds.back().rec.kind;
      bool follows = !img.fds.empty() && img.fds.back().rec.fd == d.fd &&
                     (kind == FdKind::ghost || kind == FdKind::memfd || kind == FdKind::pipe ||
                      kind == FdKind::fifo || kind == FdKind::socket);
      if (!follows)
        refuse("file data for fd " + std::to_string(d.fd) +
               " does not follow that descriptor's deleted-file, memfd, pipe, named pipe or socket record");
      img.fds.back().contents.push_back(FileData{d.offset, {d.data.begin(), d.data.end()}});
    } else if (r.posix_timer != nullptr) {
      img.timers.push_back(*r.posix_timer);
    } else if (r.thread_sched != nullptr) {
      img.sched.push_back(*r.thread_sched);
    } else if (r.file_lock != nullptr) {
      img.locks.push_back(*r.file_lock);
    } else if (r.pending_signal != nullptr) {
      img.pending.push_back(Pending{*r.pending_signal, {r.pending_signal->siginfo.begin(), r.pending_signal->siginfo.end()}});
    } else if (r.end != nullptr) {
      break;
    }
  }
  char extra;
  if (read(fd, &extra, 1) != 0) refuse("data follows the end record (not an image, or two images concatenated)");
  scratch.unmap();
  // Views now point at our own copies.
  img.process.comm = img.comm;
  img.process.cwd = img.cwd;
  img.process.exe = img.exe;
  img.process.auxv = Blob(img.auxv.data(), img.auxv.size());
  for (auto& t : img.threads) {
    t.rec.regs = Blob(t.regs.data(), t.regs.size());
    t.rec.xstate = Blob(t.xstate.data(), t.xstate.size());
    t.rec.name = t.name;
  }
  for (auto& g : img.regions) g.rec.path = g.path;
  for (auto& f : img.fds) {
    f.rec.path = f.path;
    f.rec.data = Blob(f.data.data(), f.data.size());
  }
  for (auto& q : img.pending) q.rec.siginfo = Blob(q.info.data(), q.info.size());
  return img;
}

// An image on standard input (a pipe, a socket: migration streams it) is
// read twice, once to verify it and once to restore it, so it is first
// copied into memory: a memfd, never a file on disk. Returns the memfd, at
// offset 0. The program then finds its standard input at end of file.
int spool_stdin() {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "mosix-image", MFD_CLOEXEC));
  if (fd < 0) refuse(std::string("cannot create a memfd for the image: ") + strerror(errno));
  static char buf[1 << 20];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) refuse(std::string("reading the image from standard input: ") + strerror(errno));
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(fd, buf + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) refuse(std::string("copying the image into memory: ") + strerror(errno));
      done += w;
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0) refuse(std::string("rewinding the memfd: ") + strerror(errno));
  return fd;
}

}  // namespace mosix::ckpt::restorer
