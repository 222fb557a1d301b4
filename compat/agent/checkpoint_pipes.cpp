// A checkpoint's pipes: those between the process's own threads (both ends
// held here: their unread bytes read out and put back, carried by the ends'
// records) and named pipes (FIFOs) only this process holds (opened again by
// their path at restore, a removed one made again under its name; their
// unread bytes after the first record, image_format.h FdKind::fifo).
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "compat/agent/raw.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_writer.h"

#include "compat/agent/session.h"

namespace mosix::agent::checkpoint {

bool deleted_name_free(const char* link, char* path, std::size_t cap, Line& e) {
  std::size_t n = cstr_len(link) - 10;  // without " (deleted)"
  std::size_t slash = n;
  while (slash > 0 && link[slash] != '/') --slash;
  if (n >= cap) {
    e.s(" whose name is too long to make it again");
    return false;
  }
  __builtin_memcpy(path, link, n);
  path[n] = '\0';
  struct stat now{};
  if (sys(SYS_newfstatat, AT_FDCWD, path, &now, AT_SYMLINK_NOFOLLOW) == 0) {
    e.s(": a file of that name exists again, and a restore makes the deleted one again under its name; "
        "rename one of them");
    return false;
  }
  path[slash == 0 ? 1 : slash] = '\0';
  if (sys(SYS_faccessat, AT_FDCWD, path, W_OK | X_OK, 0) != 0) {
    e.s(": its directory ").s(path).s(" is gone or not writable, and a restore makes the file again there");
    return false;
  }
  return true;
}

bool Session::has_pipe_end(std::uint64_t ino, bool reader) const {
  for (int i = 0; i < s_->npipes; ++i)
    if (s_->pipe_ino[i] == ino && s_->pipe_reader[i] == reader) return true;
  return false;
}

// Takes the unread bytes out of a pipe between the process's own threads
// and puts them back, so the pipe is as it was; the fd records of its two
// ends carry them.
bool Session::drain_pipe(std::uint64_t ino, FdRecord* r) {
  int slot = -1;
  for (int i = 0; i < s_->ndrained; ++i)
    if (s_->drained[i] == ino) slot = i;
  if (slot < 0) {
    if (s_->ndrained == kMaxPipes) return fail("more than 1024 pipes between the process's threads"), false;
    slot = s_->ndrained++;
    s_->drained[slot] = ino;
    s_->carried[slot][0] = s_->carried[slot][1] = false;
    s_->rest_written[slot] = false;
    long reader = -1, writer = -1;
    for (int i = 0; i < s_->npipes; ++i) {
      if (s_->pipe_ino[i] != ino) continue;
      (s_->pipe_reader[i] ? reader : writer) = s_->pipe_fd[i];
    }
    int avail = 0;
    sys(SYS_ioctl, reader, 0x541B /* FIONREAD */, &avail);
    if (avail > static_cast<int>(kMaxPipeBytes) || s_->arena_used + static_cast<std::size_t>(avail) > kPipeArenaBytes) {
      Line(s_->error, sizeof s_->error)
          .s("fd ")
          .u(static_cast<std::uint64_t>(reader))
          .s(avail > static_cast<int>(kMaxPipeBytes) ? " is a pipe holding more than 1 MiB of unread data"
                                                      : " is a pipe, and the process's pipes hold more than 64 MiB "
                                                        "of unread data together");
      return false;
    }
    s_->pipe_at[slot] = s_->arena_used;
    s_->arena_used += static_cast<std::size_t>(avail);
    unsigned char* data = s_->pipe_arena + s_->pipe_at[slot];
    long n = 0;
    while (n < avail) {
      long got = sys(SYS_read, reader, data + n, static_cast<std::size_t>(avail - n));
      if (got <= 0) break;
      n += got;
    }
    if (n > 0 && !write_all(static_cast<int>(writer), data, static_cast<std::size_t>(n)))
      return fail("cannot put the bytes read from a pipe back"), false;
    s_->drained_len[slot] = static_cast<std::size_t>(n);
  }
  std::size_t len = s_->drained_len[slot];
  std::size_t first = len < kMaxBlob ? len : kMaxBlob;
  std::size_t second = len - first < kMaxBlob ? len - first : kMaxBlob;
  bool reader_end = (r->open_flags & O_ACCMODE) == O_RDONLY;
  if (s_->carried[slot][reader_end]) return true;
  s_->carried[slot][reader_end] = true;
  const unsigned char* data = s_->pipe_arena + s_->pipe_at[slot];
  r->data = reader_end ? Blob(data, first) : Blob(data + first, second);
  return true;
}

// After a pipe end's record: once both ends' first records are written,
// the pipe's unread bytes past the two records' share, as file data
// records at their offsets in the pipe (the restorer checks that they
// continue the records' bytes without a gap).
bool Session::write_pipe_rest(std::uint64_t ino, long fd) {
  for (int slot = 0; slot < s_->ndrained; ++slot) {
    if (s_->drained[slot] != ino || s_->rest_written[slot] || !s_->carried[slot][0] || !s_->carried[slot][1])
      continue;
    s_->rest_written[slot] = true;
    for (std::size_t at = 2 * kMaxBlob; at < s_->drained_len[slot]; at += kMaxFileData) {
      std::size_t n = s_->drained_len[slot] - at < kMaxFileData ? s_->drained_len[slot] - at : kMaxFileData;
      FileDataRecord d;
      d.fd = static_cast<std::int32_t>(fd);
      d.offset = at;
      d.data = Blob(s_->pipe_arena + s_->pipe_at[slot] + at, n);
      if (!check(writer_->file_data(d))) return false;
    }
  }
  return true;
}

int Session::fifo_index(const struct stat& st) const {
  for (int i = 0; i < s_->nfifos; ++i)
    if (s_->fifo_ino[i] == st.st_ino && s_->fifo_dev[i] == st.st_dev) return i;
  return -1;
}

// A named pipe: check_held_elsewhere refuses one another process holds too
// (a restore makes it the restored process's alone, and its unread bytes
// are read out only at write time, when no other process can write to it
// meanwhile); a tree's member leaves that to the requester, which makes one
// named pipe of the tree once for all its members. The checkpoint opens it
// for reading and writing (which never blocks on a FIFO), as the restore
// will.
bool Session::check_fifo(long fd, const char* link, const struct stat& st) {
  if (fifo_index(st) >= 0) return true;
  Line e(s_->error, sizeof s_->error);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is a named pipe (").s(link).s(")");
  // write_process fills s_->exe later.
  if (ends_with_deleted(link) && !deleted_name_free(link, s_->exe, sizeof s_->exe, e)) return false;
  long capacity = sys(SYS_fcntl, fd, F_GETPIPE_SZ);
  if (capacity < 0 || static_cast<std::size_t>(capacity) > kMaxPipeBytes) {
    e.s(" of more than 1 MiB, more than a checkpoint carries");
    return false;
  }
  char path[64];
  Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
  long own = sys(SYS_openat, AT_FDCWD, path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (own < 0) {
    e.s(", which cannot be opened for reading and writing (errno ").u(static_cast<std::uint64_t>(-own))
        .s("), as the checkpoint reads its unread bytes and a restore opens it again");
    return false;
  }
  sys(SYS_close, own);
  if (s_->nfifos == kMaxFifos) {
    e.s(", one of more than 64 named pipes, more than a checkpoint carries");
    return false;
  }
  s_->fifo_ino[s_->nfifos] = st.st_ino;
  s_->fifo_dev[s_->nfifos] = st.st_dev;
  s_->fifo_written[s_->nfifos++] = false;
  return true;
}

// After a named pipe's first fd record: its unread bytes, read out through
// an open of its own and put back, as file data records in order.
// A tree's member leaves them to the requester, which copies them without
// taking them out (tee) while every member is stopped: two members reading
// one out and putting it back at once would mix it up.
bool Session::write_fifo_data(long fd, const struct stat& st) {
  int i = fifo_index(st);
  if (i < 0 || s_->fifo_written[i] || tree_path_ != nullptr) return true;
  s_->fifo_written[i] = true;
  char path[64];
  Line(path, sizeof path).s("/proc/self/fd/").u(static_cast<std::uint64_t>(fd));
  long own = sys(SYS_openat, AT_FDCWD, path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (own < 0) return fail("cannot open a named pipe to read its unread bytes"), false;
  int avail = 0;
  sys(SYS_ioctl, own, 0x541B /* FIONREAD */, &avail);
  if (avail < 0 || static_cast<std::size_t>(avail) > kPipeArenaBytes - s_->arena_used) {
    sys(SYS_close, own);
    Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(fd))
        .s(" is a named pipe, and the process's pipes hold more than 64 MiB of unread data together");
    return false;
  }
  unsigned char* data = s_->pipe_arena + s_->arena_used;
  long n = 0;
  while (n < avail) {
    long got = sys(SYS_read, own, data + n, static_cast<std::size_t>(avail - n));
    if (got <= 0) break;
    n += got;
  }
  bool back = n == 0 || write_all(static_cast<int>(own), data, static_cast<std::size_t>(n));
  sys(SYS_close, own);
  if (!back) return fail("cannot put the bytes read from a named pipe back"), false;
  for (long at = 0; at < n; at += static_cast<long>(kMaxFileData)) {
    std::size_t len = static_cast<std::size_t>(n - at) < kMaxFileData ? static_cast<std::size_t>(n - at) : kMaxFileData;
    FileDataRecord d;
    d.fd = static_cast<std::int32_t>(fd);
    d.offset = static_cast<std::uint64_t>(at);
    d.data = Blob(data + at, len);
    if (!check(writer_->file_data(d))) return false;
  }
  return true;
}

}  // namespace mosix::agent::checkpoint
