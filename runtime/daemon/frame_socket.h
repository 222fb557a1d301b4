// Protocol frames over a stream socket (the unix socket between mosixrun and
// the home node's daemon): a reader that cuts a byte stream into messages,
// and a thread-safe blocking sender.
#pragma once

#include <mutex>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"

namespace mosix {

class FrameReader {
 public:
  // Appends bytes; returns every message now complete, or the reason the
  // stream is corrupt (then it stays so).
  Expected<std::vector<Message>> feed(const char* data, size_t size);
  bool empty() const { return buffer_.empty(); }

 private:
  std::vector<std::uint8_t> buffer_;
};

class FrameSender {
 public:
  explicit FrameSender(int fd) : fd_(fd) {}
  // Writes the whole frame before returning; false once the peer is gone.
  bool send(const Message& message);
  int fd() const { return fd_; }

 private:
  std::mutex mutex_;
  int fd_;
  bool broken_ = false;
};

// Listening unix socket at `path` (0600, in a 0700 directory we own).
Expected<int> listen_unix(const std::string& path);
Expected<int> connect_unix(const std::string& path);
// The uid of the process at the other end of a unix socket.
Expected<uid_t> peer_uid(int fd);

}  // namespace mosix
