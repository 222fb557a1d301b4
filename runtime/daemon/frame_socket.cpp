#include "runtime/daemon/frame_socket.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/sys/unix_address.h"

namespace mosix {

namespace {
// Reads take at most kMaxRead, or the rest of the frame in progress, so that
// the bytes are still in the cache when they are written out, and the buffer
// empties (and the next read goes to its start) at the end of each frame.
// Room for kMinRead at least; the buffer grows for a frame that does not fit.
constexpr size_t kMinRead = 64u << 10;
constexpr size_t kMaxRead = 256u << 10;
constexpr size_t kInitialCapacity = 1u << 20;
}  // namespace

std::span<std::uint8_t> FrameReader::space() {
  const size_t unread = end_ - begin_;
  const size_t wanted = std::max(need_, unread) + kMinRead;
  if (capacity_ - end_ < kMinRead || capacity_ < wanted) {
    // Move what is unread (at most a frame in progress) to the front, into a
    // larger buffer if the frame would not fit.
    if (capacity_ < wanted) {
      size_t capacity = std::max(kInitialCapacity, capacity_);
      while (capacity < wanted) capacity *= 2;
      auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(capacity);
      if (unread > 0) std::memcpy(bigger.get(), buffer_.get() + begin_, unread);
      buffer_ = std::move(bigger);
      capacity_ = capacity;
    } else if (unread > 0) {
      std::memmove(buffer_.get(), buffer_.get() + begin_, unread);
    }
    begin_ = 0;
    end_ = unread;
  }
  const size_t rest = need_ > unread ? need_ - unread : kMaxRead;
  return {buffer_.get() + end_, std::min(capacity_ - end_, std::max(rest, kMinRead))};
}

Expected<std::span<const std::uint8_t>> FrameReader::next() {
  if (!corrupt_.empty()) return make_error(corrupt_);
  const size_t unread = end_ - begin_;
  if (unread < kFrameHeaderSize) return std::span<const std::uint8_t>{};
  std::span<const std::uint8_t> rest(buffer_.get() + begin_, unread);
  auto header = parse_frame_header(rest);
  if (!header) {
    corrupt_ = header.error().message;
    return header.error();
  }
  const size_t total = kFrameHeaderSize + header->payload_size;
  if (unread < total) {
    need_ = total;
    return std::span<const std::uint8_t>{};
  }
  need_ = 0;
  begin_ += total;
  if (begin_ == end_) begin_ = end_ = 0;  // the next read goes to the front again (warm in cache)
  return rest.first(total);
}

Expected<std::vector<Message>> FrameReader::feed(const char* data, size_t size) {
  std::vector<Message> out;
  do {
    const size_t n = std::min(size, space().size());
    if (n > 0) std::memcpy(buffer_.get() + end_, data, n);
    filled(n);
    data += n;
    size -= n;
    for (;;) {
      auto frame = next();
      if (!frame) return frame.error();
      if (frame->empty()) break;
      auto message = decode_frame(*frame);
      if (!message) {
        corrupt_ = message.error().message;
        return message.error();
      }
      out.push_back(std::move(*message));
    }
  } while (size > 0);
  return out;
}

bool FrameSender::send(const Message& message) { return send_frame(encode_frame(message)); }

bool FrameSender::send_frame(std::span<const std::uint8_t> frame) { return send_locked(frame, {}); }

bool FrameSender::send_with_fds(const Message& message, std::span<const int> fds) {
  return send_locked(encode_frame(message), fds);
}

bool FrameSender::send_locked(std::span<const std::uint8_t> frame, std::span<const int> fds) {
  std::lock_guard lock(mutex_);
  if (broken_) return false;
  const std::uint8_t* p = frame.data();
  size_t left = frame.size();
  std::vector<char> control;
  if (!fds.empty()) control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
  while (left > 0) {
    ssize_t n;
    if (!control.empty()) {
      iovec iov{const_cast<std::uint8_t*>(p), left};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
      n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n > 0) control.clear();  // they went with the first bytes
    } else {
      n = ::send(fd_, p, left, MSG_NOSIGNAL);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd writable{fd_, POLLOUT, 0};
      ::poll(&writable, 1, -1);
      continue;
    }
    if (n <= 0) {
      broken_ = true;
      return false;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

ssize_t recv_with_fds(int fd, void* buf, size_t size, std::vector<int>& fds) {
  iovec iov{buf, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.push_back(received);
    }
  }
  return n;
}

Expected<int> listen_unix(const std::string& path) {
  auto addr = sys::unix_address(path);
  if (!addr) return addr.error();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  ::unlink(path.c_str());
  mode_t old = ::umask(0077);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr);
  ::umask(old);
  if (rc != 0 || ::listen(fd, 16) != 0) {
    int e = errno;
    ::close(fd);
    return make_error("cannot listen on " + path + ": " + std::strerror(e));
  }
  return fd;
}

Expected<int> connect_unix(const std::string& path) {
  auto addr = sys::unix_address(path);
  if (!addr) return addr.error();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0) {
    int e = errno;
    ::close(fd);
    return make_error("cannot connect to " + path + ": " + std::strerror(e));
  }
  return fd;
}

Expected<uid_t> peer_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return make_error(std::string("SO_PEERCRED: ") + std::strerror(errno));
  }
  return cred.uid;
}

}  // namespace mosix
