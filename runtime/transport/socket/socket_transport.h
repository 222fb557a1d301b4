// SocketTransport: the node daemons of one machine (a virtual cluster) as a
// group of `size` ranks connected pairwise by unix stream sockets, with no
// MPI start-up. Whoever starts the group (mosixd --launch) first makes every
// rank's listening socket with listen_socket(), so that a rank can connect to
// the ranks below it at once, before they run; each rank then accepts the
// ranks above it. The caller's thread does the common work itself, so a
// frame crosses no thread: event_fd() is an epoll set of the connected
// sockets, receive() reads those that are ready and cuts the frames, and
// send() writes a frame straight into the socket when nothing waits before
// it. A progress thread accepts the ranks above and writes what a socket did
// not take at once (send() never blocks); while closing it also reads.
//
// A rank that ends (close()) writes out what it queued, says goodbye on every
// connection and goes, without waiting for the others (the kernel keeps what
// it wrote for its readers): no barrier as MPI's. A connection that ends
// without a goodbye means that rank died; as with MPI under mpirun
// --enable-recovery, the others go on (the home node declares the node lost
// when it falls silent): frames to a rank that died, said goodbye or was
// forgotten are dropped. Only a stream that is not ours breaks the transport.
#pragma once

#include <memory>
#include <string>

#include "runtime/transport/transport.h"

namespace mosix {

class SocketTransport final : public Transport {
 public:
  struct Options {
    int rank = 0;
    int size = 1;
    std::string dir;     // rank s listens at socket_path(dir, s)
    int listen_fd = -1;  // this rank's listening socket (listen_socket()); taken over.
                         // Not needed by the last rank (nobody connects to it).
  };

  static std::string socket_path(const std::string& dir, int rank);
  // A listening socket at socket_path(dir, rank) (mode 0600; `dir` should be
  // a directory only this user can enter), close-on-exec.
  static Expected<int> listen_socket(const std::string& dir, int rank, int backlog);

  // Connects to every rank below this one (their listening sockets must
  // exist) and starts the progress thread, which accepts the ranks above.
  // Returns without waiting for them: frames to a rank not yet connected wait
  // in its queue.
  static Expected<std::unique_ptr<SocketTransport>> create(const Options& options);

  // Closes if close() was not called.
  ~SocketTransport() override;
  SocketTransport(const SocketTransport&) = delete;
  SocketTransport& operator=(const SocketTransport&) = delete;

  int rank() const override;
  int size() const override;
  Status send(int dest, Frame frame) override;
  int event_fd() const override;
  Expected<std::vector<Delivery>> receive() override;
  std::size_t pending_bytes() const override;
  // Frames to `rank` are dropped from now on; close() does not wait for it.
  void forget(int rank) override;
  bool peer_vanished(int rank) const override;
  // Writes everything queued (receiving meanwhile, so that two ranks that
  // both have much to say cannot block each other), says goodbye to every
  // rank (waiting for the ranks above that have not connected yet) and
  // closes the connections. Not collective. Frames received until then stay
  // available to receive(). An error if the transport had failed.
  Status close() override;

  struct State;

 private:
  explicit SocketTransport(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace mosix
