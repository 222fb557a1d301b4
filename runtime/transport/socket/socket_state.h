// SocketTransport's state, shared by the files that make it up (internal to
// the socket transport): socket_transport.cpp holds the public calls and the
// group's set-up, socket_reader.cpp cuts frames out of each peer's stream,
// socket_progress.cpp is the progress thread (accepting and greeting the
// ranks above, writing what send() could not, closing).
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/transport/socket/socket_transport.h"

namespace mosix {
namespace socket_detail {

// Sent by the connecting side first: magic, version of this handshake, its
// rank, the group's size (both sides must agree on it).
inline constexpr std::uint8_t kHelloMagic[4] = {'M', 'S', 'K', 'T'};
inline constexpr std::uint32_t kHandshakeVersion = 1;
inline constexpr std::size_t kHandshakeSize = 16;
// Where frames could start: a clean end of the stream (then only EOF may follow).
inline constexpr std::uint8_t kGoodbye[4] = {'M', 'B', 'Y', 'E'};
inline constexpr std::uint8_t kFrameMagic[4] = {'M', 'O', 'S', 'X'};
inline constexpr std::size_t kReadBuffer = 256u << 10;  // what one read takes at most
// A frame of which at least this much is still to come is read straight into
// place (allocated whole once its header is in), with at most kAfterInPlace
// of what follows it into the buffer, from where it is copied.
inline constexpr std::size_t kInPlace = 32u << 10;
inline constexpr std::size_t kAfterInPlace = 32u << 10;
inline constexpr std::uint32_t kInboxKey = 0xffffffffu;  // inbox_fd's key in the epoll set
inline constexpr int kMaxIov = 64;
// Send buffer asked of the kernel for every connection (capped by
// net.core.wmem_max): room for several frames of 256 KiB in flight, so a
// frame goes in one sendmsg and the reader finds it whole.
inline constexpr int kSendBuffer = 2 << 20;

inline void widen_send_buffer(int fd) {
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

}  // namespace socket_detail

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
  std::vector<socket_detail::Peer> peers;  // peers[rank()] is unused (self-sends go straight to the inbox)
  std::deque<Delivery> inbox;
  std::string failure;  // non-empty once broken
  bool stopping = false;
  bool closed = false;
  std::atomic<std::size_t> pending_bytes{0};

  // Progress thread only.
  int listen_fd = -1;
  int to_accept = 0;
  std::vector<socket_detail::Incoming> incoming;

  std::string name(int rank) const { return "node daemon rank " + std::to_string(rank); }

  static void poke(int fd) {
    const std::uint64_t one = 1;
    while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  void signal() { poke(inbox_fd); }

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

  // Progress thread: nobody else will connect; closes the listening socket.
  void done_accepting();

  // Frames to a peer that will not read them are dropped.
  void drop_output(socket_detail::Peer& p) {
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
  void ended(socket_detail::Peer& p) {
    p.eof = true;
    (void)::epoll_ctl(event_fd, EPOLL_CTL_DEL, p.fd, nullptr);  // else it stays readable
  }

  // Reader: cut complete frames out of the buffer. False on a stream that is not ours.
  bool cut_frames(int rank, socket_detail::Peer& p, std::vector<Delivery>& arrived);

  // Reader: reads what the peer sent, into `arrived`. False once the transport has failed.
  bool read_peer(int rank, socket_detail::Peer& p, std::vector<Delivery>& arrived);

  // Writer: writes as much of the peer's queue as the socket takes.
  bool write_peer(int rank, socket_detail::Peer& p);

  // A connection from a rank above ours: check its handshake, then it is that rank's.
  bool read_handshake(socket_detail::Incoming& in);

  // Progress thread: accepts the waiting connections of this user; their
  // handshakes come in later (read_handshake).
  void accept_all();

  // Takes what send() and close() left for the thread. Nothing once broken;
  // else true once closing.
  std::optional<bool> collect();

  // After writing: tells send() to which peers it may write itself again.
  void publish_writing();

  // Closing: every peer that is not gone has been told goodbye.
  bool all_told_goodbye() const;

  // Closing: the thread is the reader now (the caller waits in close()).
  bool read_while_closing(int rank);

  // The progress thread's loop: returns once closed or broken.
  void run();

  // The thread's whole life; on return (closed, or broken) every socket is closed.
  void main();
};

}  // namespace mosix
