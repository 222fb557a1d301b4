#include "runtime/transport/socket/socket_transport.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "runtime/core/little_endian.h"
#include "runtime/sys/errno_text.h"
#include "runtime/sys/unix_address.h"
#include "runtime/transport/socket/socket_state.h"

namespace mosix {

using namespace socket_detail;

std::string SocketTransport::socket_path(const std::string& dir, int rank) {
  return dir + "/node-" + std::to_string(rank) + ".sock";
}

Expected<int> SocketTransport::listen_socket(const std::string& dir, int rank, int backlog) {
  const std::string path = socket_path(dir, rank);
  auto addr = sys::unix_address(path);
  if (!addr) return addr.error();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + sys::errno_text(errno));
  ::unlink(path.c_str());
  const mode_t old = ::umask(0077);
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr);
  ::umask(old);
  if (rc != 0 || ::listen(fd, std::max(backlog, 1)) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot listen on " + path + ": " + sys::errno_text(e));
  }
  return fd;
}

Expected<std::unique_ptr<SocketTransport>> SocketTransport::create(const Options& options) {
  auto state = std::make_unique<State>();
  State& s = *state;
  s.options = options;
  s.listen_fd = options.listen_fd;
  auto give_up = [&s](std::string message) {
    for (Peer& p : s.peers) {
      if (p.fd >= 0) ::close(p.fd);
    }
    for (int fd : {s.listen_fd, s.event_fd, s.inbox_fd, s.wake_fd}) {
      if (fd >= 0) ::close(fd);
    }
    return make_error("socket transport: " + message);
  };
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return give_up("rank " + std::to_string(options.rank) + " of a group of " +
                   std::to_string(options.size) + " does not exist");
  }
  s.to_accept = options.size - 1 - options.rank;
  if (s.to_accept > 0 && s.listen_fd < 0) {
    return give_up("rank " + std::to_string(options.rank) + " needs its listening socket (" +
                   std::to_string(s.to_accept) + " ranks above it connect to it)");
  }
  s.event_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (s.event_fd < 0) return give_up(std::string("epoll_create1: ") + sys::errno_text(errno));
  s.inbox_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s.inbox_fd < 0 || s.wake_fd < 0) return give_up(std::string("eventfd: ") + sys::errno_text(errno));
  s.watch(kInboxKey, s.inbox_fd);
  if (s.listen_fd >= 0) ::fcntl(s.listen_fd, F_SETFL, ::fcntl(s.listen_fd, F_GETFL) | O_NONBLOCK);
  s.peers.resize(static_cast<std::size_t>(options.size));
  for (int r = 0; r < options.rank; ++r) {
    const std::string path = socket_path(options.dir, r);
    auto addr = sys::unix_address(path);
    if (!addr) return give_up(addr.error().message);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return give_up(std::string("socket: ") + sys::errno_text(errno));
    s.peers[static_cast<std::size_t>(r)].fd = fd;
    int rc;
    while ((rc = ::connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
      return give_up("cannot reach node daemon rank " + std::to_string(r) + " at " + path + ": " +
                     sys::errno_text(errno));
    }
    std::uint8_t hello[kHandshakeSize];
    std::memcpy(hello, kHelloMagic, 4);
    store_le<std::uint32_t>(hello + 4, kHandshakeVersion);
    store_le<std::uint32_t>(hello + 8, static_cast<std::uint32_t>(options.rank));
    store_le<std::uint32_t>(hello + 12, static_cast<std::uint32_t>(options.size));
    // Into an empty socket buffer: never partial.
    if (::send(fd, hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
      return give_up("cannot greet node daemon rank " + std::to_string(r) + ": " + sys::errno_text(errno));
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    widen_send_buffer(fd);
    s.watch(r, fd);
  }
  if (s.to_accept == 0 && s.listen_fd >= 0) s.done_accepting();
  // The progress thread takes no signals: the daemon's loop handles them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  State* raw = state.get();
  s.thread = std::thread([raw] { raw->main(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return std::unique_ptr<SocketTransport>(new SocketTransport(std::move(state)));
}

SocketTransport::SocketTransport(std::unique_ptr<State> state) : state_(std::move(state)) {}

SocketTransport::~SocketTransport() {
  if (!state_) return;
  (void)close();
  ::close(state_->event_fd);
  ::close(state_->inbox_fd);
  ::close(state_->wake_fd);
}

int SocketTransport::rank() const { return state_->options.rank; }
int SocketTransport::size() const { return state_->options.size; }
int SocketTransport::event_fd() const { return state_->event_fd; }
std::size_t SocketTransport::pending_bytes() const { return state_->pending_bytes; }

Status SocketTransport::send(int dest, Frame frame) {
  State& s = *state_;
  if (dest < 0 || dest >= s.options.size) {
    return make_error("send to rank " + std::to_string(dest) + ": no such rank (this job has ranks 0.." +
                      std::to_string(s.options.size - 1) + ")");
  }
  if (frame.size() > kFrameHeaderSize + kMaxPayloadSize) {
    return make_error("send to rank " + std::to_string(dest) + ": frame of " +
                      std::to_string(frame.size()) + " bytes exceeds the limit; send large data in pieces");
  }
  {
    std::lock_guard lock(s.mutex);
    if (!s.failure.empty()) return make_error("socket transport: " + s.failure);
    if (s.stopping) return make_error("send to rank " + std::to_string(dest) + ": the transport is closed");
    if (dest == s.options.rank) {
      const bool was_empty = s.inbox.empty();
      s.inbox.push_back(Delivery{dest, std::move(frame)});
      if (was_empty) s.signal();
      return Status::Ok();
    }
    Peer& peer = s.peers[static_cast<std::size_t>(dest)];
    if (peer.forgotten) return Status::Ok();  // gone: dropped
    // Nothing before it and the peer connected: straight into the socket,
    // without waking the thread. What does not fit (or fails) is left to the
    // thread as usual. The lock keeps the thread from closing the socket.
    std::size_t written = 0;
    if (peer.fd >= 0 && peer.queued.empty() && !peer.thread_writing) {
      for (;;) {
        const ssize_t n = ::send(peer.fd, frame.data() + written, frame.size() - written,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n <= 0 || written == frame.size()) break;
      }
      if (written == frame.size()) return Status::Ok();
      peer.queued_offset = written;
    }
    s.pending_bytes += frame.size() - written;
    peer.queued.push_back(std::move(frame));
  }
  State::poke(s.wake_fd);
  return Status::Ok();
}

Expected<std::vector<Delivery>> SocketTransport::receive() {
  State& s = *state_;
  std::vector<Delivery> out;
  std::lock_guard read_lock(s.read_mutex);
  {
    // First what the thread read (before anything read below) and self-sends.
    std::lock_guard lock(s.mutex);
    std::uint64_t count;
    while (::read(s.inbox_fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    out.assign(std::make_move_iterator(s.inbox.begin()), std::make_move_iterator(s.inbox.end()));
    s.inbox.clear();
  }
  epoll_event ready[16];
  int n;
  while ((n = ::epoll_wait(s.event_fd, ready, 16, 0)) < 0 && errno == EINTR) {
  }
  for (int i = 0; i < n; ++i) {
    const std::uint32_t key = ready[i].data.u32;
    if (key == kInboxKey) continue;
    Peer& p = s.peers[key];
    if (p.fd < 0 || p.eof) continue;
    if (!s.read_peer(static_cast<int>(key), p, out)) break;
  }
  std::lock_guard lock(s.mutex);
  if (!s.failure.empty()) {
    s.signal();  // stays readable: the failure is permanent, and reported once the frames are taken
    if (out.empty()) return make_error("socket transport: " + s.failure);
  }
  return out;
}

void SocketTransport::forget(int rank) {
  State& s = *state_;
  if (rank < 0 || rank >= s.options.size || rank == s.options.rank) return;
  {
    std::lock_guard lock(s.mutex);
    Peer& peer = s.peers[static_cast<std::size_t>(rank)];
    peer.forgotten = true;
    for (const Frame& f : peer.queued) s.pending_bytes -= f.size();
    s.pending_bytes += peer.queued_offset;
    peer.queued.clear();
    peer.queued_offset = 0;
  }
  State::poke(s.wake_fd);
}

bool SocketTransport::peer_vanished(int rank) const {
  State& s = *state_;
  if (rank < 0 || rank >= s.options.size || rank == s.options.rank) return false;
  std::lock_guard read_lock(s.read_mutex);
  const Peer& p = s.peers[static_cast<std::size_t>(rank)];
  // Its end came without the goodbye, or in the middle of a frame.
  return p.eof && (!p.goodbye_seen || p.begin != p.end || !p.big.empty());
}

Status SocketTransport::close() {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.closed) return Status::Ok();
    s.closed = true;
    s.stopping = true;
  }
  State::poke(s.wake_fd);
  if (s.thread.joinable()) s.thread.join();
  std::lock_guard lock(s.mutex);
  if (!s.failure.empty()) return make_error("socket transport: " + s.failure);
  return Status::Ok();
}

}  // namespace mosix
