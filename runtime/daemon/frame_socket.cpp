#include "runtime/daemon/frame_socket.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace mosix {

Expected<std::vector<Message>> FrameReader::feed(const char* data, size_t size) {
  buffer_.insert(buffer_.end(), data, data + size);
  std::vector<Message> out;
  size_t used = 0;
  while (buffer_.size() - used >= kFrameHeaderSize) {
    std::span<const std::uint8_t> rest(buffer_.data() + used, buffer_.size() - used);
    auto header = parse_frame_header(rest);
    if (!header) return header.error();
    size_t total = kFrameHeaderSize + header->payload_size;
    if (rest.size() < total) break;
    auto message = decode_frame(rest.subspan(0, total));
    if (!message) return message.error();
    out.push_back(std::move(*message));
    used += total;
  }
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<long>(used));
  return out;
}

bool FrameSender::send(const Message& message) {
  Frame frame = encode_frame(message);
  std::lock_guard lock(mutex_);
  if (broken_) return false;
  const std::uint8_t* p = frame.data();
  size_t left = frame.size();
  while (left > 0) {
    ssize_t n = ::send(fd_, p, left, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      fd_set w;
      FD_ZERO(&w);
      FD_SET(fd_, &w);
      ::select(fd_ + 1, nullptr, &w, nullptr, nullptr);
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

namespace {

Expected<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return make_error("socket path too long (" + std::to_string(path.size()) + " bytes): " + path +
                      ": set XDG_RUNTIME_DIR to a shorter directory");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

Expected<int> listen_unix(const std::string& path) {
  auto addr = unix_address(path);
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
  auto addr = unix_address(path);
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
