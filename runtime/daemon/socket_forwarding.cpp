// Forwarded sockets: who holds and who relays, and what a move does to them
// (socket_forwarding.h). The bytes themselves: socket_pumps.cpp.
#include "runtime/daemon/socket_forwarding.h"

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/ckpt/format/image_reader.h"

namespace mosix {
namespace {

using boost::asio::posix::stream_descriptor;

SocketForward op(SocketOp o, int rank, std::uint64_t id) { return socket_op(o, rank, id); }

}  // namespace

SocketForwarding::SocketForwarding(DaemonContext& context) : context_(context) {}
SocketForwarding::~SocketForwarding() = default;

Expected<std::vector<SocketForwarding::Record>> SocketForwarding::read_records(const std::string& image_path) {
  int fd = ::open(image_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("cannot open the image " + image_path + ": " + std::strerror(errno));
  ckpt::ReaderScratch scratch;
  std::vector<Record> out;
  ckpt::ImageStatus s = scratch.map();
  if (s) {
    ckpt::ImageReader reader(ckpt::fd_source(fd), &scratch);
    reader.set_direct_pages(true);  // pages are skipped, not expanded
    s = reader.open();
    ckpt::Record r;
    while (s && !reader.at_end()) {
      s = reader.next(&r);
      if (!s || r.fd == nullptr || r.fd->kind != ckpt::FdKind::forwarded || r.fd->data.size() != 12) continue;
      Record rec;
      rec.fd = r.fd->fd;
      for (int b = 7; b >= 0; --b) rec.id = rec.id << 8 | r.fd->data[static_cast<std::size_t>(b)];
      rec.listening = (r.fd->data[8] & ckpt::kForwardListening) != 0;
      out.push_back(rec);
    }
  }
  scratch.unmap();
  ::close(fd);
  if (!s) return make_error("reading the image's forwarded sockets: " + std::string(s.message()));
  return out;
}

void SocketForwarding::send(int node, SocketForward m) {
  if (node < 0) return;
  if (node == context_.rank()) {
    boost::asio::post(context_.io(), [this, node, m = std::move(m)]() mutable { message(node, std::move(m)); });
  } else {
    context_.send(node, m);
  }
}

SocketForwarding::End* SocketForwarding::find(bool holder_side, const Key& k) {
  auto& map = holder_side ? held_ : relays_;
  auto it = map.find(k);
  return it == map.end() ? nullptr : &it->second;
}

void SocketForwarding::erase(bool holder_side, const Key& k) { (holder_side ? held_ : relays_).erase(k); }

void SocketForwarding::message(int source, SocketForward m) {
  switch (static_cast<SocketOp>(m.op)) {
    case SocketOp::kAttach: attach({m.rank, m.id}, source, m.arg == 1); break;
    case SocketOp::kHolder: holder(m); break;
    case SocketOp::kAccepted: accepted(source, m); break;
    case SocketOp::kData:
    case SocketOp::kEof:
    case SocketOp::kClose:
    case SocketOp::kCredit:
    case SocketOp::kDetach:
    case SocketOp::kReleased:
      if (m.to_holder || m.op == static_cast<std::uint32_t>(SocketOp::kDetach) ||
          m.op == static_cast<std::uint32_t>(SocketOp::kReleased)) {
        to_holder(source, m);
      } else {
        to_relay(source, m);
      }
      break;
    case SocketOp::kDetachAck: to_relay(source, m); break;
    case SocketOp::kOption: option_at_holder(source, m); break;
    case SocketOp::kOptionReply: option_answered(m); break;
  }
}

void SocketForwarding::to_holder(int source, SocketForward& m) {
  const Key k{m.rank, m.id};
  End* e = find(true, k);
  if (e == nullptr) return;
  switch (static_cast<SocketOp>(m.op)) {
    case SocketOp::kData: give(true, k, m.bytes); break;
    case SocketOp::kCredit:
      if (e->state == State::kLive) credited(true, k, m.arg);
      break;
    case SocketOp::kEof: peer_ended(true, k); break;
    case SocketOp::kClose:
      // The guest's end failed (it closed it with bytes unread, or its relay
      // had bytes for an end that is gone): the client gets the reset a
      // real socket closed so would send.
      if (e->sd && !e->listening) {
        linger abort{1, 0};
        ::setsockopt(e->sd->native_handle(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
      }
      erase(true, k);
      break;
    case SocketOp::kDetach:
      // Its relay stopped: what the guest wrote goes on to the socket, what
      // it had not read waits for its next end. Nothing more goes there.
      e->prefix = std::move(m.more);
      e->unaccepted = m.arg == 1;
      e->state = State::kDetaching;
      e->peer = -1;
      e->unacked = 0;  // what the relay had not written came back in `more`
      e->consumed = 0;
      give(true, k, m.bytes);
      send(source, op(SocketOp::kDetachAck, k.first, k.second));
      break;
    case SocketOp::kReleased:
      e->prefix.insert(e->prefix.end(), m.more.begin(), m.more.end());
      e->state = State::kDetached;
      if (e->pending_attach >= 0) {
        attach(k, e->pending_attach, e->pending_fresh);
      } else if (e->unaccepted) {
        End* l = find(true, {k.first, e->parent});
        if (l != nullptr && l->state == State::kLive && l->peer >= 0) offer(k, l->peer);
      }
      for (auto it = arrivals_.begin(); it != arrivals_.end();) try_arrive((it++)->first);
      break;
    default: break;
  }
}

void SocketForwarding::to_relay(int source, SocketForward& m) {
  const Key k{m.rank, m.id};
  End* e = find(false, k);
  if (e == nullptr) {
    // Nothing here for it any more: the holder closes its half.
    if (m.op == static_cast<std::uint32_t>(SocketOp::kData)) send(source, [&] {
        SocketForward c = op(SocketOp::kClose, k.first, k.second);
        c.to_holder = true;
        return c;
      }());
    return;
  }
  switch (static_cast<SocketOp>(m.op)) {
    case SocketOp::kData: give(false, k, m.bytes); break;
    case SocketOp::kCredit:
      if (e->state == State::kLive) credited(false, k, m.arg);
      break;
    case SocketOp::kEof: peer_ended(false, k, m.arg == kEofBothWays); break;
    case SocketOp::kClose:
      // The real socket failed (a reset; a normal end is kEof): so does the guest's.
      if (e->state == State::kLive || e->state == State::kPending) reset(k);
      break;
    case SocketOp::kDetachAck: {
      SocketForward r = op(SocketOp::kReleased, k.first, k.second);
      r.more = std::move(e->late);
      e->late.clear();
      e->state = State::kDetached;
      send(e->peer, std::move(r));
      if (e->drop_after) {
        erase(false, k);
      } else if (e->reattach_after) {
        e->reattach_after = false;
        e->state = State::kLive;
        send(e->peer, op(SocketOp::kAttach, k.first, k.second));
        pump_read(false, k);
      }
      break;
    }
    default: break;
  }
}

// A holder's socket gets its relay (again): what waited for the guest goes
// first, then its stream as it comes.
void SocketForwarding::attach(const Key& k, int node, bool fresh) {
  End* e = find(true, k);
  if (e == nullptr) {
    SocketForward c = op(SocketOp::kClose, k.first, k.second);
    send(node, std::move(c));
    return;
  }
  if (e->state == State::kDetaching) {
    e->pending_attach = node;
    e->pending_fresh = fresh;
    return;
  }
  e->pending_attach = -1;
  e->peer = node;
  e->state = State::kLive;
  e->unacked = 0;
  e->consumed = 0;
  if (!e->prefix.empty()) {
    SocketForward d = op(SocketOp::kData, k.first, k.second);
    d.bytes = std::move(e->prefix);
    e->prefix.clear();
    send(node, std::move(d));
  }
  if (e->read_eof) send(node, op(SocketOp::kEof, k.first, k.second));
  if (e->listening && fresh) {
    // Clients the guest never accepted: offered to its new listener.
    std::vector<Key> clients;
    for (auto& [ck, c] : held_)
      if (ck.first == k.first && c.parent == k.second && c.unaccepted && c.state == State::kDetached)
        clients.push_back(ck);
    for (const Key& ck : clients) offer(ck, node);
  }
  pump_read(true, k);
  pump_write(true, k);
}

// A client the guest never accepted, to the listener's relay on `node`.
void SocketForwarding::offer(const Key& ck, int node) {
  End* c = find(true, ck);
  if (c == nullptr) return;
  c->unaccepted = false;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(c->sd->native_handle(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) len = 0;
  SocketForward a = op(SocketOp::kAccepted, ck.first, ck.second);
  a.arg = c->parent;
  a.bytes.assign(reinterpret_cast<std::uint8_t*>(&addr), reinterpret_cast<std::uint8_t*>(&addr) + len);
  send(node, std::move(a));
  attach(ck, node, false);
}

// A client the holder accepted on a listener relayed here: connected to the
// guest's listener, the header first (compat/agent/forwarded.h).
void SocketForwarding::accepted(int source, const SocketForward& m) {
  const Key k{m.rank, m.id};
  End* listener = find(false, {m.rank, m.arg});
  if (listener == nullptr) {
    SocketForward x = op(SocketOp::kClose, k.first, k.second);
    x.to_holder = true;
    send(source, std::move(x));
    return;
  }
  End& c = relays_[k];
  c.holder_side = false;
  c.gen = next_gen_++;
  c.peer = source;
  c.acked = false;
  c.guest = listener->guest;
  if (listener->state != State::kLive) {
    // The guest is moving: given back unaccepted, to be offered again.
    c.state = State::kDetaching;
    SocketForward d = op(SocketOp::kDetach, k.first, k.second);
    d.arg = 1;
    send(source, std::move(d));
    return;
  }
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un un{};
  std::memcpy(&un, listener->listener.data(), std::min(listener->listener.size(), sizeof un));
  Bytes header(ckpt::kForwardHeader, 0);
  for (int b = 0; b < 8; ++b) header[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(k.second >> (8 * b));
  std::uint32_t len = static_cast<std::uint32_t>(std::min(m.bytes.size(), ckpt::kMaxForwardAddress));
  for (int b = 0; b < 4; ++b) header[12 + static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(len >> (8 * b));
  std::memcpy(header.data() + 16, m.bytes.data(), len);
  if (s < 0 ||
      ::connect(s, reinterpret_cast<sockaddr*>(&un), static_cast<socklen_t>(listener->listener.size())) != 0 ||
      ::send(s, header.data(), header.size(), MSG_DONTWAIT | MSG_NOSIGNAL) != static_cast<ssize_t>(header.size())) {
    const int err = errno;
    if (s >= 0) ::close(s);
    c.state = State::kLive;
    fail(false, k);
    if (err == ECONNREFUSED) {
      // The guest closed its listener (or ended): the holder closes the real one.
      fail(false, {m.rank, m.arg});
    } else {
      spdlog::warn("rank {}: a client of its forwarded listener cannot be handed to it: {}", k.first,
                   std::strerror(err));
    }
    return;
  }
  c.sd = std::make_unique<stream_descriptor>(context_.io(), s);
  c.state = State::kLive;
  pump_read(false, k);
}

}  // namespace mosix
