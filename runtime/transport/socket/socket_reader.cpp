// The reading side of SocketTransport: each peer's stream read into its
// buffer (or a large frame straight into place) and cut into frames.
#include "runtime/transport/socket/socket_state.h"

#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "runtime/core/little_endian.h"
#include "runtime/sys/errno_text.h"

namespace mosix {

using namespace socket_detail;

bool SocketTransport::State::cut_frames(int rank, Peer& p, std::vector<Delivery>& arrived) {
  for (;;) {
    const std::size_t unread = p.end - p.begin;
    if (unread == 0) {
      p.begin = p.end = 0;
      return true;
    }
    if (p.goodbye_seen) {
      fail(name(rank) + " sent bytes after its goodbye");
      return false;
    }
    const std::uint8_t* at = p.buffer.get() + p.begin;
    if (unread < 4) return true;
    if (std::memcmp(at, kGoodbye, 4) == 0) {
      p.goodbye_seen = true;
      p.begin += 4;
      continue;
    }
    if (std::memcmp(at, kFrameMagic, 4) != 0) {
      fail(name(rank) + " sent something that is not a mosix frame");
      return false;
    }
    if (unread < kFrameHeaderSize) return true;
    const std::uint32_t payload = load_le<std::uint32_t>(at + 8);
    if (payload > kMaxPayloadSize) {
      fail(name(rank) + " announced a frame of " + std::to_string(payload) +
           " payload bytes, more than the limit");
      return false;
    }
    const std::size_t total = kFrameHeaderSize + payload;
    if (unread >= total) {
      arrived.push_back(Delivery{rank, Frame(at, at + total)});
      p.begin += total;
      continue;
    }
    if (total > kReadBuffer || total - unread >= kInPlace) {
      // Read the rest straight into the frame.
      p.big.resize(total);
      std::memcpy(p.big.data(), at, unread);
      p.big_have = unread;
      p.begin = p.end = 0;
    } else if (p.begin > 0 && kReadBuffer - p.begin < total) {
      std::memmove(p.buffer.get(), at, unread);
      p.begin = 0;
      p.end = unread;
    }
    return true;
  }
}

bool SocketTransport::State::read_peer(int rank, Peer& p, std::vector<Delivery>& arrived) {
  if (!p.buffer) p.buffer = std::make_unique_for_overwrite<std::uint8_t[]>(kReadBuffer);
  for (int round = 0; round < 16; ++round) {  // then let the others have a turn
    iovec iov[2];
    int count = 0;
    std::size_t room = 0;
    if (!p.big.empty()) {
      // The rest of the frame, and a little of what follows it (more would
      // be copied out of the buffer again).
      iov[count++] = iovec{p.big.data() + p.big_have, p.big.size() - p.big_have};
      iov[count++] = iovec{p.buffer.get(), kAfterInPlace};
    } else {
      if (p.begin > 0 && kReadBuffer - p.end < kReadBuffer / 4) {  // the tail of a frame, or a header
        std::memmove(p.buffer.get(), p.buffer.get() + p.begin, p.end - p.begin);
        p.end -= p.begin;
        p.begin = 0;
      }
      iov[count++] = iovec{p.buffer.get() + p.end, kReadBuffer - p.end};
    }
    for (int i = 0; i < count; ++i) room += iov[i].iov_len;
    const ssize_t n = ::readv(p.fd, iov, count);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == ECONNRESET) {
      ended(p);
      return true;
    }
    if (n < 0) {
      fail("reading from " + name(rank) + ": " + sys::errno_text(errno));
      return false;
    }
    if (n == 0) {
      ended(p);
      return true;
    }
    std::size_t got = static_cast<std::size_t>(n);
    if (!p.big.empty()) {
      const std::size_t into_big = std::min(got, p.big.size() - p.big_have);
      p.big_have += into_big;
      got -= into_big;
      if (p.big_have == p.big.size()) {
        arrived.push_back(Delivery{rank, std::move(p.big)});
        p.big = Frame{};
        p.big_have = 0;
      }
      p.end = got;  // what followed, at the start of the buffer
    } else {
      p.end += got;
    }
    if (!cut_frames(rank, p, arrived)) return false;
    if (static_cast<std::size_t>(n) < room) return true;  // drained for now
  }
  return true;
}

bool SocketTransport::State::read_while_closing(int rank) {
  std::lock_guard read_lock(read_mutex);
  std::vector<Delivery> arrived;
  Peer& p = peers[static_cast<std::size_t>(rank)];
  const bool ok = p.eof || read_peer(rank, p, arrived);
  hand_over(arrived);
  return ok;
}

}  // namespace mosix
