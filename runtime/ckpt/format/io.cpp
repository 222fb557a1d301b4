// Sinks and sources over file descriptors and memory.
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_writer.h"

namespace mosix::ckpt {
namespace {

ImageStatus errno_status(const char* what, int err) {
  return MessageBuilder().text(what).text(": ").errno_text(err).status();
}

// Waits until a non-blocking descriptor is writable again.
bool wait_writable(int fd) {
  struct pollfd p = {fd, POLLOUT, 0};
  for (;;) {
    int r = poll(&p, 1, -1);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

// One write of a (possibly partial) iovec array: sendmsg with MSG_NOSIGNAL on
// sockets, writev elsewhere.
ssize_t put(const FdSinkState* st, const struct iovec* iov, int count) {
  if (st->is_socket) {
    struct msghdr msg = {};
    msg.msg_iov = const_cast<struct iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(count);
    return sendmsg(st->fd, &msg, MSG_NOSIGNAL);
  }
  return writev(st->fd, iov, count);
}

ImageStatus write_all(const FdSinkState* st, const struct iovec* iov, int count) {
  int i = 0;
  std::size_t skip = 0;  // bytes of iov[i] already written
  while (i < count) {
    if (iov[i].iov_len == skip) {
      ++i;
      skip = 0;
      continue;
    }
    ssize_t n;
    if (skip) {
      struct iovec part = {static_cast<std::uint8_t*>(iov[i].iov_base) + skip, iov[i].iov_len - skip};
      n = put(st, &part, 1);
    } else {
      n = put(st, iov + i, count - i > IOV_MAX ? IOV_MAX : count - i);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (wait_writable(st->fd)) continue;
      }
      return errno_status("write failed", errno);
    }
    if (n == 0) return ImageStatus::Failure("write failed: wrote nothing");
    auto left = static_cast<std::size_t>(n);
    while (left) {
      std::size_t here = iov[i].iov_len - skip;
      if (left >= here) {
        left -= here;
        ++i;
        skip = 0;
      } else {
        skip += left;
        left = 0;
      }
    }
  }
  return ImageStatus::Ok();
}

ImageStatus fd_sink_write(void* context, const struct iovec* iov, int count) {
  const auto* st = static_cast<const FdSinkState*>(context);
  if (st->is_socket) return write_all(st, iov, count);
  // A pipe whose reader went away raises SIGPIPE, which would kill the
  // process being checkpointed. Block it in this thread while writing and
  // consume one that the write raised, so the failure is only a status.
  sigset_t pipe_set, old_set, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ImageStatus s = write_all(st, iov, count);
  int saved = errno;
  if (!s && !was_pending) {
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  errno = saved;
  return s;
}

ImageStatus memory_sink_write(void* context, const struct iovec* iov, int count) {
  auto* st = static_cast<MemorySinkState*>(context);
  std::size_t len = 0;
  for (int i = 0; i < count; ++i) len += iov[i].iov_len;
  if (len > st->capacity - st->size) return ImageStatus::Failure("memory sink full");
  for (int i = 0; i < count; ++i) {
    if (iov[i].iov_len) std::memcpy(st->data + st->size, iov[i].iov_base, iov[i].iov_len);
    st->size += iov[i].iov_len;
  }
  return ImageStatus::Ok();
}

std::int64_t fd_source_read(void* context, void* buf, std::size_t len) {
  int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(context));
  for (;;) {
    ssize_t n = read(fd, buf, len);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, -1) >= 0 || errno == EINTR) continue;
    }
    return -errno;
  }
}

std::int64_t memory_source_read(void* context, void* buf, std::size_t len) {
  auto* st = static_cast<MemorySourceState*>(context);
  std::size_t left = st->size - st->pos;
  std::size_t n = len < left ? len : left;
  if (n) std::memcpy(buf, st->data + st->pos, n);
  st->pos += n;
  return static_cast<std::int64_t>(n);
}

}  // namespace

Sink fd_sink(FdSinkState* state, int fd) {
  state->fd = fd;
  struct stat st;
  state->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  return Sink{state, fd_sink_write};
}

Sink memory_sink(MemorySinkState* state, void* data, std::size_t capacity) {
  state->data = static_cast<std::uint8_t*>(data);
  state->capacity = capacity;
  state->size = 0;
  return Sink{state, memory_sink_write};
}

Source fd_source(int fd) {
  return Source{reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)), fd_source_read};
}

Source memory_source(MemorySourceState* state, const void* data, std::size_t size) {
  state->data = static_cast<const std::uint8_t*>(data);
  state->size = size;
  state->pos = 0;
  return Source{state, memory_source_read};
}

}  // namespace mosix::ckpt
