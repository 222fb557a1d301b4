#include "runtime/transport/socket/socket_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "runtime/core/little_endian.h"
#include "runtime/sys/unix_address.h"

namespace mosix {
namespace {

// Sent by the connecting side first: magic, version of this handshake, its
// rank, the group's size (both sides must agree on it).
constexpr std::uint8_t kHelloMagic[4] = {'M', 'S', 'K', 'T'};
constexpr std::uint32_t kHandshakeVersion = 1;
constexpr std::size_t kHandshakeSize = 16;
// Where frames could start: a clean end of the stream (then only EOF may follow).
constexpr std::uint8_t kGoodbye[4] = {'M', 'B', 'Y', 'E'};
constexpr std::uint8_t kFrameMagic[4] = {'M', 'O', 'S', 'X'};
constexpr std::size_t kReadBuffer = 256u << 10;  // what one read takes at most
// A frame of which at least this much is still to come is read straight into
// place (allocated whole once its header is in), with at most kAfterInPlace
// of what follows it into the buffer, from where it is copied.
constexpr std::size_t kInPlace = 32u << 10;
constexpr std::size_t kAfterInPlace = 32u << 10;
constexpr std::uint32_t kInboxKey = 0xffffffffu;  // inbox_fd's key in the epoll set
constexpr int kMaxIov = 64;
// Send buffer asked of the kernel for every connection (capped by
// net.core.wmem_max): room for several frames of 256 KiB in flight, so a
// frame goes in one sendmsg and the reader finds it whole.
constexpr int kSendBuffer = 2 << 20;

void widen_send_buffer(int fd) {
  const int size = kSendBuffer;
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

struct Peer {
  // Guarded by State::mutex (and, to set or close it, State::read_mutex too).
  int fd = -1;
  // Guarded by State::mutex: what send() added; the front from
  // queued_offset on (send() wrote the rest straight to the socket).
  std::deque<Frame> queued;
  std::size_t queued_offset = 0;
  // Guarded by State::mutex: the thread holds frames for this peer (or it is
  // gone), so send() must leave its frame to the thread too.
  bool thread_writing = false;
  bool forgotten = false;  // guarded by State::mutex: forget() said so

  // The writing side: progress thread only.
  std::deque<Frame> out;  // being written; the front from out_offset on
  std::size_t out_offset = 0;
  bool goodbye_queued = false, goodbye_sent = false;
  bool gone = false;  // died, closed or forgotten: nothing more is written

  // The reading side: whoever holds State::read_mutex (receive(), or the
  // thread while closing).
  bool goodbye_seen = false, eof = false;
  std::unique_ptr<std::uint8_t[]> buffer;  // bytes [begin, end) are unread
  std::size_t begin = 0, end = 0;
  Frame big;  // a large frame, its rest being read straight into place
  std::size_t big_have = 0;
};

struct Incoming {  // an accepted connection whose handshake has not all arrived
  int fd;
  std::uint8_t bytes[kHandshakeSize];
  std::size_t have = 0;
};

}  // namespace

// Who does what. The caller's thread reads: event_fd() is an epoll set of
// every connected peer's socket and of `inbox_fd`, and receive() reads the
// sockets that are ready and cuts the frames itself, so a frame crosses no
// thread on its way in. send() writes a frame straight into the socket when
// nothing is queued before it. The progress thread accepts and greets the
// ranks above, writes what send() could not (the rest of a frame the socket
// did not take, frames behind it, frames to ranks not yet connected), and
// when closing also reads (the caller waits in close() meanwhile), into the
// inbox that receive() hands out next.
struct SocketTransport::State {
  Options options;
  int event_fd = -1;  // the epoll set: readable while there is something to receive
  int inbox_fd = -1;  // eventfd in that set: readable while the inbox has frames or the transport failed
  int wake_fd = -1;   // for the thread: readable when send() or close() has work
  std::thread thread;

  // Lock order: read_mutex, then mutex.
  std::mutex read_mutex;
  std::mutex mutex;
  std::vector<Peer> peers;  // peers[rank()] is unused (self-sends go straight to the inbox)
  std::deque<Delivery> inbox;
  std::string failure;  // non-empty once broken
  bool stopping = false;
  bool closed = false;
  std::atomic<std::size_t> pending_bytes{0};

  // Progress thread only.
  int listen_fd = -1;
  int to_accept = 0;
  std::vector<Incoming> incoming;

  std::string name(int rank) const { return "node daemon rank " + std::to_string(rank); }

  static void poke(int fd) {
    const std::uint64_t one = 1;
    while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  void signal() { poke(inbox_fd); }

  bool failed() {
    std::lock_guard lock(mutex);
    return !failure.empty();
  }

  // The thread stops too (woken if it waits).
  void fail(std::string message) {
    {
      std::lock_guard lock(mutex);
      if (failure.empty()) failure = std::move(message);
      signal();
    }
    poke(wake_fd);
  }

  // Thread, holding read_mutex: frames it read go to the inbox.
  void hand_over(std::vector<Delivery>& arrived) {
    if (arrived.empty()) return;
    std::lock_guard lock(mutex);
    const bool was_empty = inbox.empty();
    for (Delivery& d : arrived) inbox.push_back(std::move(d));
    arrived.clear();
    if (was_empty) signal();
  }

  void watch(int rank, int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(rank);
    (void)::epoll_ctl(event_fd, EPOLL_CTL_ADD, fd, &ev);
  }

  void done_accepting() {
    if (listen_fd >= 0) ::close(listen_fd);
    listen_fd = -1;
    // Nobody else will connect: the name can go (mosixrun removes the directory).
    ::unlink(socket_path(options.dir, options.rank).c_str());
  }

  // Frames to a peer that will not read them are dropped.
  void drop_output(Peer& p) {
    std::size_t dropped = 0;
    for (const Frame& f : p.out) dropped += f.size();
    pending_bytes -= dropped - p.out_offset;
    p.out.clear();
    p.out_offset = 0;
  }

  // Reader: a peer whose connection ended, cleanly after its goodbye or
  // because it died. Neither breaks the transport: the others go on (the
  // home node decides what a lost node means, as with MPI). Writing to it
  // fails from now on, and the writer then drops what it has for it.
  void ended(Peer& p) {
    p.eof = true;
    (void)::epoll_ctl(event_fd, EPOLL_CTL_DEL, p.fd, nullptr);  // else it stays readable
  }

  // Reader: cut complete frames out of the buffer. False on a stream that is not ours.
  bool cut_frames(int rank, Peer& p, std::vector<Delivery>& arrived) {
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

  // Reader: reads what the peer sent, into `arrived`. False once the transport has failed.
  bool read_peer(int rank, Peer& p, std::vector<Delivery>& arrived) {
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
        fail("reading from " + name(rank) + ": " + std::strerror(errno));
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

  // Writer: writes as much of the peer's queue as the socket takes.
  bool write_peer(int rank, Peer& p) {
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
        fail("sending to " + name(rank) + ": " + std::strerror(errno));
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

  // A connection from a rank above ours: check its handshake, then it is that rank's.
  bool read_handshake(Incoming& in) {
    const ssize_t n = ::read(in.fd, in.bytes + in.have, kHandshakeSize - in.have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {  // gone before it said who it was: whoever it was will fail
      ::close(in.fd);
      in.fd = -1;
      return true;
    }
    in.have += static_cast<std::size_t>(n);
    if (in.have < kHandshakeSize) return true;
    const std::uint32_t version = load_le<std::uint32_t>(in.bytes + 4), rank = load_le<std::uint32_t>(in.bytes + 8),
                        size = load_le<std::uint32_t>(in.bytes + 12);
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

  void accept_all() {
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

  // Takes what send() and close() left for the thread. Nothing once broken;
  // else true once closing.
  std::optional<bool> collect() {
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

  // After writing: tells send() to which peers it may write itself again.
  void publish_writing() {
    std::lock_guard lock(mutex);
    for (Peer& p : peers) p.thread_writing = !p.out.empty() || p.gone;
  }

  bool all_told_goodbye() const {
    for (int r = 0; r < options.size; ++r) {
      if (r == options.rank) continue;
      const Peer& p = peers[static_cast<std::size_t>(r)];
      if (p.gone) continue;
      if (p.fd < 0 || !p.goodbye_sent) return false;
    }
    return true;
  }

  // Closing: the thread is the reader now (the caller waits in close()).
  bool read_while_closing(int rank) {
    std::lock_guard read_lock(read_mutex);
    std::vector<Delivery> arrived;
    Peer& p = peers[static_cast<std::size_t>(rank)];
    const bool ok = p.eof || read_peer(rank, p, arrived);
    hand_over(arrived);
    return ok;
  }

  void run() {
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
      if (n < 0) return fail(std::string("waiting on the node daemons' sockets: ") + std::strerror(errno));
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

  // The thread's whole life; on return (closed, or broken) every socket is closed.
  void main() {
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
};

std::string SocketTransport::socket_path(const std::string& dir, int rank) {
  return dir + "/node-" + std::to_string(rank) + ".sock";
}

Expected<int> SocketTransport::listen_socket(const std::string& dir, int rank, int backlog) {
  const std::string path = socket_path(dir, rank);
  auto addr = sys::unix_address(path);
  if (!addr) return addr.error();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  ::unlink(path.c_str());
  const mode_t old = ::umask(0077);
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr);
  ::umask(old);
  if (rc != 0 || ::listen(fd, std::max(backlog, 1)) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("cannot listen on " + path + ": " + std::strerror(e));
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
  if (s.event_fd < 0) return give_up(std::string("epoll_create1: ") + std::strerror(errno));
  s.inbox_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s.inbox_fd < 0 || s.wake_fd < 0) return give_up(std::string("eventfd: ") + std::strerror(errno));
  s.watch(kInboxKey, s.inbox_fd);
  if (s.listen_fd >= 0) ::fcntl(s.listen_fd, F_SETFL, ::fcntl(s.listen_fd, F_GETFL) | O_NONBLOCK);
  s.peers.resize(static_cast<std::size_t>(options.size));
  for (int r = 0; r < options.rank; ++r) {
    const std::string path = socket_path(options.dir, r);
    auto addr = sys::unix_address(path);
    if (!addr) return give_up(addr.error().message);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return give_up(std::string("socket: ") + std::strerror(errno));
    s.peers[static_cast<std::size_t>(r)].fd = fd;
    int rc;
    while ((rc = ::connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
      return give_up("cannot reach node daemon rank " + std::to_string(r) + " at " + path + ": " +
                     std::strerror(errno));
    }
    std::uint8_t hello[kHandshakeSize];
    std::memcpy(hello, kHelloMagic, 4);
    store_le<std::uint32_t>(hello + 4, kHandshakeVersion);
    store_le<std::uint32_t>(hello + 8, static_cast<std::uint32_t>(options.rank));
    store_le<std::uint32_t>(hello + 12, static_cast<std::uint32_t>(options.size));
    // Into an empty socket buffer: never partial.
    if (::send(fd, hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
      return give_up("cannot greet node daemon rank " + std::to_string(r) + ": " + std::strerror(errno));
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
