// Transport: how node daemons reach each other. A transport has `size()`
// ranks (one per node daemon, rank 0 on the home node) and moves frames
// (runtime/core/protocol.h) between them: send() queues and returns at once,
// frames from one sender to one destination arrive in the order sent, and
// event_fd() becomes readable when receive() has something to return, so a
// single-threaded event loop (Boost.Asio) waits on it like on any socket.
// Implementations: LocalTransport (in-process), SocketTransport (unix
// sockets, the daemons of one machine) and MpiTransport (Open MPI);
// code above runtime/transport gets one from make_transport() and never
// knows which.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"

namespace mosix {

struct Delivery {
  int source = 0;  // rank of the sender
  Frame frame;
};

// One endpoint. Not thread-safe: use each endpoint from one thread.
class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Queue `frame` for rank `dest` (which may be rank() itself); the transport
  // owns the bytes from now on. Fails for a rank outside 0..size()-1, a frame
  // larger than kFrameHeaderSize + kMaxPayloadSize, or a closed or failed
  // transport.
  virtual Status send(int dest, Frame frame) = 0;

  // Readable while receive() has frames or an error to return (also, now
  // and then, when only part of a frame has come: receive() then returns
  // none). Wait on it (poll, epoll, asio async_wait); never read or close it.
  virtual int event_fd() const = 0;

  // Every frame received so far, in arrival order (per sender: the order it
  // sent them). Never blocks. An error means the transport is broken (a
  // peer vanished, the network failed) and stays so.
  virtual Expected<std::vector<Delivery>> receive() = 0;

  // Bytes accepted by send() not yet handed to their destination: for
  // back-pressure (stop reading guest output while it is high).
  virtual std::size_t pending_bytes() const = 0;

  // Deliver every queued frame, then release the transport. For MPI this is
  // collective: every rank must close, after the last frame it expects.
  virtual Status close() = 0;

  // `rank` is gone (its node daemon stopped answering; the home node says so
  // to every node): frames to it are dropped from now on, and close() does
  // not wait for it. Every surviving rank must forget the same ranks before
  // it closes.
  virtual void forget(int rank) { (void)rank; }

  // True once the connection to `rank` ended without its goodbye: its node
  // daemon died (killed, or its machine went away), so the home node need not
  // wait out a timeout to call it gone. Only a transport that holds a
  // connection per peer can tell; the others always say false (MPI's
  // runtime reports a dead rank its own way).
  virtual bool peer_vanished(int rank) const {
    (void)rank;
    return false;
  }
};

// Encode and send one message (any alternative of Message, or a Message).
template <typename M>
Status send_message(Transport& transport, int dest, const M& message) {
  return transport.send(dest, encode_frame(message));
}

// decode_frame() whose error also names the sending rank.
Expected<Message> decode_delivery(const Delivery& delivery);

// For programs without an event loop (tests, tools): wait until event_fd()
// is readable, up to timeout_ms (-1: no limit), then receive(). An empty
// vector: the time ran out, or only part of a frame had come (wait again).
Expected<std::vector<Delivery>> receive_wait(Transport& transport, int timeout_ms);

enum class TransportKind {
  kAuto,    // MPI when this process was started by mpirun, else local with one rank
  kLocal,   // one rank, in-process: the job runs on the home node only
  kMpi,     // Open MPI; fails if this build has no MPI
  kSocket,  // unix sockets between the daemons of one machine (mosixd --launch)
};

struct TransportOptions {
  TransportKind kind = TransportKind::kAuto;
  // kSocket only: this daemon's place in the group, where the ranks listen,
  // and its own listening socket (see SocketTransport).
  int rank = 0;
  int size = 1;
  std::string socket_dir = {};
  int listen_fd = -1;
};

// For whoever starts a kSocket group (mosixd --launch), before starting any
// rank: the listening socket of every rank in `dir` (a directory only this
// user can enter), close-on-exec; rank r gets element r as listen_fd (the
// last rank needs none: -1). On error none is left open.
Expected<std::vector<int>> listen_for_socket_group(const std::string& dir, int size);
// Removes the names those sockets left in `dir` (a rank removes its own once
// every rank above it has connected; one that died before may have left it).
void remove_socket_group(const std::string& dir, int size);

// The one place that picks an implementation (runtime/transport/make_transport.cpp,
// library mosix_transport_factory).
Expected<std::unique_ptr<Transport>> make_transport(const TransportOptions& options = {});

}  // namespace mosix
