// SocketTransport's progress thread: accepts and greets the ranks above,
// writes what send() could not, and while closing says goodbye and reads.
#include "runtime/transport/socket/socket_state.h"

#include <poll.h>
#include <sys/uio.h>

#include <cstring>

#include "runtime/core/little_endian.h"
#include "runtime/sys/errno_text.h"

namespace mosix {

using namespace socket_detail;

void SocketTransport::State::done_accepting() {
  if (listen_fd >= 0) ::close(listen_fd);
  listen_fd = -1;
  // Nobody else will connect: the name can go (mosixrun removes the directory).
  ::unlink(socket_path(options.dir, options.rank).c_str());
}

bool SocketTransport::State::write_peer(int rank, Peer& p) {
  if (p.gone) {
    drop_output(p);
    p.goodbye_sent = true;  // nothing to say to it
    return true;
  }
  while (!p.out.empty()) {
    iovec iov[kMaxIov];
    int count = 0;
    std::size_t offset = p.out_offset;
    for (auto it = p.out.begin(); it != p.out.end() && count < kMaxIov; ++it, ++count) {
      iov[count].iov_base = it->data() + offset;
      iov[count].iov_len = it->size() - offset;
      offset = 0;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t n = ::sendmsg(p.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      // It closed, or died (the reader gets what it sent last).
      drop_output(p);
      p.goodbye_sent = true;
      p.gone = true;
      return true;
    }
    if (n < 0) {
      fail("sending to " + name(rank) + ": " + sys::errno_text(errno));
      return false;
    }
    pending_bytes -= static_cast<std::size_t>(n);
    std::size_t left = static_cast<std::size_t>(n);
    while (left > 0) {
      const std::size_t rest = p.out.front().size() - p.out_offset;
      if (left < rest) {
        p.out_offset += left;
        left = 0;
      } else {
        left -= rest;
        p.out.pop_front();
        p.out_offset = 0;
      }
    }
  }
  if (p.goodbye_queued && !p.goodbye_sent) {
    ::shutdown(p.fd, SHUT_WR);
    p.goodbye_sent = true;
  }
  return true;
}

bool SocketTransport::State::read_handshake(Incoming& in) {
  const ssize_t n = ::read(in.fd, in.bytes + in.have, kHandshakeSize - in.have);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return true;
  if (n <= 0) {  // gone before it said who it was: whoever it was will fail
    ::close(in.fd);
    in.fd = -1;
    return true;
  }
  in.have += static_cast<std::size_t>(n);
  if (in.have < kHandshakeSize) return true;
  const std::uint32_t version = load_le<std::uint32_t>(in.bytes + 4);
  const std::uint32_t rank = load_le<std::uint32_t>(in.bytes + 8);
  const std::uint32_t size = load_le<std::uint32_t>(in.bytes + 12);
  std::string wrong;
  if (std::memcmp(in.bytes, kHelloMagic, 4) != 0 || version != kHandshakeVersion) {
    wrong = "something that is not a node daemon of this release connected";
  } else if (size != static_cast<std::uint32_t>(options.size)) {
    wrong = "a node daemon of a group of " + std::to_string(size) + " connected to a group of " +
            std::to_string(options.size);
  } else if (rank <= static_cast<std::uint32_t>(options.rank) || rank >= size ||
             peers[rank].fd >= 0) {
    wrong = "node daemon rank " + std::to_string(rank) + " connected to rank " +
            std::to_string(options.rank) + " unexpectedly";
  }
  if (!wrong.empty()) {
    ::close(in.fd);
    in.fd = -1;
    fail(wrong);
    return false;
  }
  {
    std::lock_guard read_lock(read_mutex);
    std::lock_guard lock(mutex);
    peers[rank].fd = in.fd;
    watch(static_cast<int>(rank), in.fd);
  }
  in.fd = -1;
  if (--to_accept == 0) done_accepting();
  return true;
}

void SocketTransport::State::accept_all() {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a connection that vanished
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::getuid()) {
      ::close(fd);  // not ours to talk to
      continue;
    }
    widen_send_buffer(fd);
    incoming.push_back(Incoming{fd, {}, 0});
  }
}

std::optional<bool> SocketTransport::State::collect() {
  std::lock_guard lock(mutex);
  if (!failure.empty()) return std::nullopt;
  for (Peer& p : peers) {
    if (!p.queued.empty() && p.out.empty()) p.out_offset = p.queued_offset;
    p.queued_offset = 0;  // not 0 only when the thread had nothing for the peer
    for (Frame& f : p.queued) p.out.push_back(std::move(f));
    p.queued.clear();
    if (p.forgotten) p.gone = true;
    p.thread_writing = !p.out.empty() || p.gone;
  }
  return stopping;
}

void SocketTransport::State::publish_writing() {
  std::lock_guard lock(mutex);
  for (Peer& p : peers) p.thread_writing = !p.out.empty() || p.gone;
}

bool SocketTransport::State::all_told_goodbye() const {
  for (int r = 0; r < options.size; ++r) {
    if (r == options.rank) continue;
    const Peer& p = peers[static_cast<std::size_t>(r)];
    if (p.gone) continue;
    if (p.fd < 0 || !p.goodbye_sent) return false;
  }
  return true;
}

void SocketTransport::State::run() {
  std::vector<pollfd> fds;
  std::vector<int> who;  // per pollfd: peer rank, or -1 wake, -2 listen, -3 - i incoming[i]
  for (;;) {
    const std::optional<bool> closing = collect();
    if (!closing) return;
    for (int r = 0; r < options.size; ++r) {
      Peer& p = peers[static_cast<std::size_t>(r)];
      if (r == options.rank) continue;
      if (*closing && !p.goodbye_queued) {
        p.out.emplace_back(kGoodbye, kGoodbye + 4);
        pending_bytes += 4;
        p.goodbye_queued = true;
      }
      if ((p.fd >= 0 || p.gone) && !write_peer(r, p)) return;
    }
    publish_writing();
    if (*closing && all_told_goodbye()) return;

    fds.clear();
    who.clear();
    fds.push_back(pollfd{wake_fd, POLLIN, 0});
    who.push_back(-1);
    if (listen_fd >= 0) {
      fds.push_back(pollfd{listen_fd, POLLIN, 0});
      who.push_back(-2);
    }
    for (std::size_t i = 0; i < incoming.size(); ++i) {
      fds.push_back(pollfd{incoming[i].fd, POLLIN, 0});
      who.push_back(-3 - static_cast<int>(i));
    }
    for (int r = 0; r < options.size; ++r) {
      const Peer& p = peers[static_cast<std::size_t>(r)];
      if (r == options.rank || p.fd < 0) continue;
      short events = 0;
      if (*closing && !p.eof) events |= POLLIN;  // eof: the reader's, but the caller waits in close()
      if (!p.out.empty()) events |= POLLOUT;
      if (events == 0) continue;
      fds.push_back(pollfd{p.fd, events, 0});
      who.push_back(r);
    }
    int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::string("waiting on the node daemons' sockets: ") + sys::errno_text(errno));
    bool accept_now = false;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int w = who[i];
      if (w == -1) {
        std::uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd, &count, sizeof count);
      } else if (w == -2) {
        accept_now = true;
      } else if (w <= -3) {
        if (!read_handshake(incoming[static_cast<std::size_t>(-3 - w)])) return;
      } else if (*closing && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        if (!read_while_closing(w)) return;
      }
    }
    std::erase_if(incoming, [](const Incoming& in) { return in.fd < 0; });
    if (accept_now && listen_fd >= 0) accept_all();
  }
}

void SocketTransport::State::main() {
  run();
  if (listen_fd >= 0) done_accepting();
  for (Incoming& in : incoming) {
    if (in.fd >= 0) ::close(in.fd);
  }
  incoming.clear();
  std::lock_guard read_lock(read_mutex);
  std::lock_guard lock(mutex);
  for (Peer& p : peers) {
    if (p.fd >= 0) ::close(p.fd);  // also leaves the epoll set
    p.fd = -1;
  }
}

}  // namespace mosix
