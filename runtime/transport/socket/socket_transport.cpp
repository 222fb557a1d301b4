#include "runtime/transport/socket/socket_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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
#include <thread>

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
constexpr std::size_t kReadBuffer = 256u << 10;  // frames up to this size are cut from one buffer
constexpr int kMaxIov = 64;

std::uint32_t get_u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

void put_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

Expected<sockaddr_un> address_of(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return make_error("socket path too long (" + std::to_string(path.size()) + " bytes): " + path +
                      ": set XDG_RUNTIME_DIR to a shorter directory");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

struct Peer {
  int fd = -1;
  std::deque<Frame> queued;  // guarded by State::mutex: what send() added
  // Progress thread only from here on.
  std::deque<Frame> out;  // being written; the front from out_offset on
  std::size_t out_offset = 0;
  bool goodbye_queued = false, goodbye_sent = false, goodbye_seen = false, eof = false;
  bool forgotten = false;  // guarded by State::mutex: forget() said so
  bool gone = false;       // ended without a goodbye (died), or forgotten: nothing more is written
  std::unique_ptr<std::uint8_t[]> buffer;  // bytes [begin, end) are unread
  std::size_t begin = 0, end = 0;
  Frame big;  // a frame larger than the buffer, being read straight into place
  std::size_t big_have = 0;
};

struct Incoming {  // an accepted connection whose handshake has not all arrived
  int fd;
  std::uint8_t bytes[kHandshakeSize];
  std::size_t have = 0;
};

}  // namespace

struct SocketTransport::State {
  Options options;
  int event_fd = -1;  // for the caller: readable while there is something to receive
  int wake_fd = -1;   // for the thread: readable when send() or close() has work
  std::thread thread;

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
  std::vector<Delivery> arrived;  // this round's frames, handed over in one go

  std::string name(int rank) const { return "node daemon rank " + std::to_string(rank); }

  void signal() {
    const std::uint64_t one = 1;
    while (::write(event_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  bool failed() {
    std::lock_guard lock(mutex);
    return !failure.empty();
  }

  void fail(std::string message) {
    std::lock_guard lock(mutex);
    if (failure.empty()) failure = std::move(message);
    signal();
  }

  void hand_over() {
    if (arrived.empty()) return;
    std::lock_guard lock(mutex);
    const bool was_empty = inbox.empty();
    for (Delivery& d : arrived) inbox.push_back(std::move(d));
    arrived.clear();
    if (was_empty) signal();
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

  // A peer whose connection ended: cleanly after its goodbye, else it died.
  // Neither breaks the transport: the others go on (the home node decides
  // what a lost node means, as with MPI); nothing more is written to it.
  void ended(Peer& p) {
    p.eof = true;
    if (!p.goodbye_seen || p.begin != p.end || !p.big.empty()) p.gone = true;
  }

  // Cut complete frames out of the buffer. False on a stream that is not ours.
  bool cut_frames(int rank, Peer& p) {
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
      const std::uint32_t payload = get_u32(at + 8);
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
      if (total > kReadBuffer) {
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

  // Reads what the peer sent. False once the transport has failed.
  bool read_peer(int rank, Peer& p) {
    for (int round = 0; round < 16; ++round) {  // then let the others have a turn
      std::uint8_t* into;
      std::size_t room;
      if (!p.big.empty()) {
        into = p.big.data() + p.big_have;
        room = p.big.size() - p.big_have;
      } else {
        if (!p.buffer) p.buffer = std::make_unique_for_overwrite<std::uint8_t[]>(kReadBuffer);
        if (p.begin > 0 && kReadBuffer - p.end < kReadBuffer / 4) {  // the tail of a frame, or a header
          std::memmove(p.buffer.get(), p.buffer.get() + p.begin, p.end - p.begin);
          p.end -= p.begin;
          p.begin = 0;
        }
        into = p.buffer.get() + p.end;
        room = kReadBuffer - p.end;
      }
      const ssize_t n = ::read(p.fd, into, room);
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
      if (!p.big.empty()) {
        p.big_have += static_cast<std::size_t>(n);
        if (p.big_have == p.big.size()) {
          arrived.push_back(Delivery{rank, std::move(p.big)});
          p.big = Frame{};
          p.big_have = 0;
        }
      } else {
        p.end += static_cast<std::size_t>(n);
        if (!cut_frames(rank, p)) return false;
      }
      if (static_cast<std::size_t>(n) < room) return true;  // drained for now
    }
    return true;
  }

  // Writes as much of the peer's queue as the socket takes.
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
        // It closed, or died: what it sent last is still to be read.
        if (!p.eof && !read_peer(rank, p)) return false;
        drop_output(p);
        p.goodbye_sent = p.goodbye_queued;
        if (!p.goodbye_seen) p.gone = true;
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
    const std::uint32_t version = get_u32(in.bytes + 4), rank = get_u32(in.bytes + 8),
                        size = get_u32(in.bytes + 12);
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
    peers[rank].fd = in.fd;
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
      incoming.push_back(Incoming{fd, {}, 0});
    }
  }

  // Takes what send() and close() left for the thread. True once closing.
  bool collect() {
    std::lock_guard lock(mutex);
    for (Peer& p : peers) {
      for (Frame& f : p.queued) p.out.push_back(std::move(f));
      p.queued.clear();
      if (p.forgotten) p.gone = true;
    }
    return stopping;
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

  void run() {
    std::vector<pollfd> fds;
    std::vector<int> who;  // per pollfd: peer rank, or -1 wake, -2 listen, -3 - i incoming[i]
    for (;;) {
      const bool closing = collect();
      for (int r = 0; r < options.size; ++r) {
        Peer& p = peers[static_cast<std::size_t>(r)];
        if (r == options.rank) continue;
        if (closing && !p.goodbye_queued) {
          p.out.emplace_back(kGoodbye, kGoodbye + 4);
          pending_bytes += 4;
          p.goodbye_queued = true;
        }
        if ((p.fd >= 0 || p.gone) && !write_peer(r, p)) {
          hand_over();
          return;
        }
      }
      hand_over();  // what a peer said before it closed, read while writing to it
      if (closing && all_told_goodbye()) return;

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
        if (!p.eof) events |= POLLIN;
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
        } else if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          Peer& p = peers[static_cast<std::size_t>(w)];
          if (!p.eof && !read_peer(w, p)) {
            hand_over();
            return;
          }
        }
      }
      std::erase_if(incoming, [](const Incoming& in) { return in.fd < 0; });
      if (accept_now && listen_fd >= 0) accept_all();
      hand_over();
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
    std::lock_guard lock(mutex);
    for (Peer& p : peers) {
      if (p.fd >= 0) ::close(p.fd);
      p.fd = -1;
    }
  }
};

std::string SocketTransport::socket_path(const std::string& dir, int rank) {
  return dir + "/node-" + std::to_string(rank) + ".sock";
}

Expected<int> SocketTransport::listen_socket(const std::string& dir, int rank, int backlog) {
  const std::string path = socket_path(dir, rank);
  auto addr = address_of(path);
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
    for (int fd : {s.listen_fd, s.event_fd, s.wake_fd}) {
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
  s.event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s.event_fd < 0 || s.wake_fd < 0) return give_up(std::string("eventfd: ") + std::strerror(errno));
  if (s.listen_fd >= 0) ::fcntl(s.listen_fd, F_SETFL, ::fcntl(s.listen_fd, F_GETFL) | O_NONBLOCK);
  s.peers.resize(static_cast<std::size_t>(options.size));
  for (int r = 0; r < options.rank; ++r) {
    const std::string path = socket_path(options.dir, r);
    auto addr = address_of(path);
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
    put_u32(hello + 4, kHandshakeVersion);
    put_u32(hello + 8, static_cast<std::uint32_t>(options.rank));
    put_u32(hello + 12, static_cast<std::uint32_t>(options.size));
    // Into an empty socket buffer: never partial.
    if (::send(fd, hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
      return give_up("cannot greet node daemon rank " + std::to_string(r) + ": " + std::strerror(errno));
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
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
    s.pending_bytes += frame.size();
    peer.queued.push_back(std::move(frame));
  }
  const std::uint64_t one = 1;
  while (::write(s.wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
  return Status::Ok();
}

Expected<std::vector<Delivery>> SocketTransport::receive() {
  State& s = *state_;
  std::uint64_t count;
  while (::read(s.event_fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
  std::lock_guard lock(s.mutex);
  std::vector<Delivery> out(std::make_move_iterator(s.inbox.begin()),
                            std::make_move_iterator(s.inbox.end()));
  s.inbox.clear();
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
    peer.queued.clear();
  }
  const std::uint64_t one = 1;
  while (::write(s.wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

Status SocketTransport::close() {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.closed) return Status::Ok();
    s.closed = true;
    s.stopping = true;
  }
  const std::uint64_t one = 1;
  while (::write(s.wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
  if (s.thread.joinable()) s.thread.join();
  std::lock_guard lock(s.mutex);
  if (!s.failure.empty()) return make_error("socket transport: " + s.failure);
  return Status::Ok();
}

}  // namespace mosix
