// Protocol frames over a stream socket (the unix socket between mosixrun and
// the home node's daemon): a reader that cuts a byte stream into messages,
// and a thread-safe blocking sender.
#pragma once

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"

namespace mosix {

class FrameReader {
 public:
  // Appends bytes; returns every message now complete, or the reason the
  // stream is corrupt (then it stays so).
  Expected<std::vector<Message>> feed(const char* data, size_t size);
  bool empty() const { return begin_ == end_; }

  // Reading in place, without copies: read into space(), say how much with
  // filled(), then take the complete frames with next().
  std::span<std::uint8_t> space();
  void filled(size_t n) { end_ += n; }
  // The next complete frame, its header checked (decode_frame() or
  // view_guest_output() checks the rest); an empty span while none is
  // complete. Valid until the next call of space() or feed().
  Expected<std::span<const std::uint8_t>> next();

 private:
  std::unique_ptr<std::uint8_t[]> buffer_;  // bytes [begin_, end_) are unread
  size_t capacity_ = 0, begin_ = 0, end_ = 0;
  size_t need_ = 0;  // size of the frame at begin_, once its header is in
  std::string corrupt_;
};

class FrameSender {
 public:
  explicit FrameSender(int fd) : fd_(fd) {}
  // Writes the whole frame before returning; false once the peer is gone.
  bool send(const Message& message);
  // The same for a frame encoded already (e.g. forwarded as it came).
  bool send_frame(std::span<const std::uint8_t> frame);
  // With descriptors of ours attached to its first byte (SCM_RIGHTS): the
  // receiver gets copies of them with recv_with_fds().
  bool send_with_fds(const Message& message, std::span<const int> fds);
  int fd() const { return fd_; }

 private:
  bool send_locked(std::span<const std::uint8_t> frame, std::span<const int> fds);
  std::mutex mutex_;
  int fd_;
  bool broken_ = false;
};

// read() on a unix socket that also takes the descriptors sent with the
// bytes (SCM_RIGHTS, close-on-exec), appending them to `fds`. Never blocks.
ssize_t recv_with_fds(int fd, void* buf, size_t size, std::vector<int>& fds);

// Listening unix socket at `path` (0600, in a 0700 directory we own).
Expected<int> listen_unix(const std::string& path);
Expected<int> connect_unix(const std::string& path);
// The uid of the process at the other end of a unix socket.
Expected<uid_t> peer_uid(int fd);

}  // namespace mosix
