// Forwarded sockets: the bytes between one end here (a real socket the
// holder keeps, or a relay's end of the guest's unix socket) and its other
// half on a node (socket_forwarding.h). Readiness waits and non-blocking
// reads and writes on the event loop: no bytes are ever held by a pending
// operation, so a move can drain an end at any moment.
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "runtime/ckpt/format/image_format.h"
#include "runtime/daemon/socket_forwarding.h"

namespace mosix {
namespace {

using boost::asio::posix::stream_descriptor;
using boost::system::error_code;

constexpr std::size_t kReadBytes = 64u << 10;
constexpr int kReadsPerTurn = 4;  // then other ends get their turn

// A real socket that read its end of stream is closed both ways: TCP state
// CLOSE (a reset read, or both sides' ends), not CLOSE_WAIT (the peer's end
// only: writing goes on).
bool closed_both_ways(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == TCP_CLOSE;
}

}  // namespace

bool SocketForwarding::can_write(const End& e) {
  return e.holder_side ? e.state != State::kLent : e.state == State::kLive && e.acked;
}

void SocketForwarding::pump_read(bool holder_side, const Key& k) {
  End* e = find(holder_side, k);
  if (e == nullptr || !e->sd || e->reading || e->read_eof || e->state != State::kLive ||
      e->unacked >= kSocketWindow)
    return;
  e->reading = true;
  e->sd->async_wait(stream_descriptor::wait_read, [this, holder_side, k, gen = e->gen](error_code ec) {
    End* e = find(holder_side, k);
    if (e == nullptr || e->gen != gen) return;
    e->reading = false;
    if (ec || e->state != State::kLive) return;
    if (holder_side && e->listening) {
      accept_now(k);
    } else {
      read_now(holder_side, k);
    }
  });
}

void SocketForwarding::read_now(bool holder_side, const Key& k) {
  for (int turn = 0; turn < kReadsPerTurn; ++turn) {
    End* e = find(holder_side, k);
    if (e == nullptr) return;
    Bytes bytes(kReadBytes);
    ssize_t n = ::recv(e->sd->native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) {
      spdlog::debug("rank {} forwarded socket {:x}: {}", k.first, k.second, std::strerror(errno));
      fail(holder_side, k);
      return;
    }
    if (n == 0) {
      e->read_eof = true;
      SocketForward m = socket_op(SocketOp::kEof, k.first, k.second);
      m.to_holder = !holder_side;
      if (holder_side && closed_both_ways(e->sd->native_handle())) m.arg = kEofBothWays;
      send(e->peer, std::move(m));
      if (e->shut) erase(holder_side, k);
      return;
    }
    bytes.resize(static_cast<std::size_t>(n));
    if (!holder_side && !e->acked) {
      // The agent's answer to the header, before anything of its own.
      if (bytes.front() != ckpt::kForwardAck) {
        fail(holder_side, k);
        return;
      }
      bytes.erase(bytes.begin());
      e->acked = true;
      pump_write(holder_side, k);
      e = find(holder_side, k);
      if (e == nullptr) return;
      if (bytes.empty()) continue;
    }
    SocketForward m = socket_op(SocketOp::kData, k.first, k.second);
    m.to_holder = !holder_side;
    e->unacked += bytes.size();
    m.bytes = std::move(bytes);
    send(e->peer, std::move(m));
    if (e->unacked >= kSocketWindow) return;  // until the peer credits some
  }
  pump_read(holder_side, k);
}

// A client of a listener held here: it gets a forwarding id of its own and
// goes to the listener's relay, which hands it to the guest.
void SocketForwarding::accept_now(const Key& k) {
  for (;;) {
    End* e = find(true, k);
    if (e == nullptr) return;
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int c = ::accept4(e->sd->native_handle(), reinterpret_cast<sockaddr*>(&addr), &len,
                      SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
    if (c < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::warn("rank {}: accept on its forwarded listener: {}", k.first, std::strerror(errno));
      break;
    }
    // The program's own TCP options on a client are not carried (its
    // setsockopt on a relayed socket is not applied): no Nagle delay on a
    // stream the relay already batches.
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Key ck{k.first, (std::uint64_t{1} << 63) | next_client_++};
    End& ce = held_[ck];
    ce.holder_side = true;
    ce.sd = std::make_unique<stream_descriptor>(context_.io(), c);
    ce.gen = next_gen_++;
    ce.peer = e->peer;
    ce.state = State::kLive;
    ce.parent = k.second;
    SocketForward m = socket_op(SocketOp::kAccepted, k.first, ck.second);
    m.arg = k.second;
    m.bytes.assign(reinterpret_cast<std::uint8_t*>(&addr), reinterpret_cast<std::uint8_t*>(&addr) + len);
    send(e->peer, std::move(m));
    pump_read(true, ck);
  }
  pump_read(true, k);
}

void SocketForwarding::pump_write(bool holder_side, const Key& k) {
  End* e = find(holder_side, k);
  if (e == nullptr || !e->sd || e->writing || !can_write(*e)) return;
  while (e->out_off < e->out.size()) {
    ssize_t n = ::send(e->sd->native_handle(), e->out.data() + e->out_off, e->out.size() - e->out_off,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      e->out_off += static_cast<std::size_t>(n);
      e->consumed += static_cast<std::size_t>(n);
      if (e->consumed >= kSocketCreditStep && e->peer >= 0) {
        SocketForward c = socket_op(SocketOp::kCredit, k.first, k.second);
        c.arg = e->consumed;
        c.to_holder = !holder_side;
        e->consumed = 0;
        send(e->peer, std::move(c));
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      e->writing = true;
      e->sd->async_wait(stream_descriptor::wait_write, [this, holder_side, k, gen = e->gen](error_code ec) {
        End* e = find(holder_side, k);
        if (e == nullptr || e->gen != gen) return;
        e->writing = false;
        if (!ec) pump_write(holder_side, k);
      });
      return;
    }
    fail(holder_side, k);
    return;
  }
  e->out.clear();
  e->out_off = 0;
  if (e->peer_eof && !e->shut) {
    // A real socket closed both ways: the guest's end too (its writes fail
    // with EPIPE, poll says HUP), as TCP's in state CLOSE.
    ::shutdown(e->sd->native_handle(), e->peer_closed ? SHUT_RDWR : SHUT_WR);
    e->shut = true;
  }
  if (e->shut && e->read_eof) erase(holder_side, k);
}

void SocketForwarding::give(bool holder_side, const Key& k, const Bytes& bytes) {
  End* e = find(holder_side, k);
  if (e == nullptr) return;
  if (!holder_side && (e->state == State::kDetaching || e->state == State::kDetached)) {
    e->late.insert(e->late.end(), bytes.begin(), bytes.end());
    return;
  }
  if (e->out_off > 0 && e->out_off == e->out.size()) {
    e->out.clear();
    e->out_off = 0;
  }
  e->out.insert(e->out.end(), bytes.begin(), bytes.end());
  pump_write(holder_side, k);
}

void SocketForwarding::credited(bool holder_side, const Key& k, std::uint64_t bytes) {
  End* e = find(holder_side, k);
  if (e == nullptr) return;
  e->unacked = bytes < e->unacked ? e->unacked - bytes : 0;
  pump_read(holder_side, k);
}

void SocketForwarding::peer_ended(bool holder_side, const Key& k, bool both_ways) {
  End* e = find(holder_side, k);
  if (e == nullptr || (!holder_side && e->state != State::kLive && e->state != State::kPending)) return;
  e->peer_eof = true;
  e->peer_closed = both_ways;
  pump_write(holder_side, k);
}

// An error on this end: the other half closes too (a client reset, or the
// guest gone without a word).
void SocketForwarding::fail(bool holder_side, const Key& k) {
  End* e = find(holder_side, k);
  if (e == nullptr) return;
  if (e->peer >= 0 && (e->state == State::kLive || e->state == State::kPending)) {
    SocketForward m = socket_op(SocketOp::kClose, k.first, k.second);
    m.to_holder = !holder_side;
    send(e->peer, std::move(m));
  }
  erase(holder_side, k);
}

// A stopped guest's relay end: what the guest wrote that was not read yet
// (and the agent's answer to a header, which makes a client accepted).
Bytes SocketForwarding::drain(End& e) {
  Bytes all;
  if (!e.sd || e.read_eof) return all;
  for (;;) {
    std::size_t at = all.size();
    all.resize(at + kReadBytes);
    ssize_t n = ::recv(e.sd->native_handle(), all.data() + at, kReadBytes, MSG_DONTWAIT);
    all.resize(at + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) e.read_eof = true;
      break;
    }
  }
  if (!e.acked && !all.empty() && all.front() == ckpt::kForwardAck) {
    all.erase(all.begin());
    e.acked = true;
  }
  return all;
}

}  // namespace mosix
