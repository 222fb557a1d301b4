// MpiTransport: node daemons as the ranks of an Open MPI job (one rank per
// node, started by mpirun). A progress thread owns MPI entirely: it calls
// MPI_Init_thread, posts non-blocking sends of the frames send() queued (it
// owns their bytes until MPI is done with them), receives frames of any size
// with MPI_Improbe/MPI_Mrecv into an inbox, and makes event_fd() readable.
// The caller's thread never enters MPI, so the daemon's single-threaded event
// loop just waits on event_fd(). Between rounds of MPI calls the thread
// sleeps an eighth of the time nothing has moved (at least 10 µs, at most
// Options::idle_poll_max) and wakes at once for a send. The cap is the worst extra latency of a message
// reaching a long-idle daemon, traded against idle CPU (docs/transport.md has
// the measurements). One per process.
#pragma once

#include <chrono>
#include <memory>

#include "runtime/transport/transport.h"

namespace mosix {

class MpiTransport final : public Transport {
 public:
  struct Options {
    std::chrono::microseconds idle_poll_max{10000};
    // Poll every idle_poll_max even while transfers are in flight, as a timer in
    // the event loop would. For the benchmark that justifies the default only.
    bool fixed_period = false;
  };

  // Starts MPI (this process must have been started by mpirun, or be a
  // singleton) and the progress thread. Fails if MPI was started before.
  static Expected<std::unique_ptr<MpiTransport>> create(const Options& options);
  static Expected<std::unique_ptr<MpiTransport>> create() { return create(Options{}); }

  // Closes (collectively) if close() was not called.
  ~MpiTransport() override;
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  int rank() const override;
  int size() const override;
  Status send(int dest, Frame frame) override;
  int event_fd() const override;
  Expected<std::vector<Delivery>> receive() override;
  std::size_t pending_bytes() const override;
  // Frames to `rank` are dropped; its sends in flight are abandoned; close()'s
  // barrier is among the ranks not forgotten.
  void forget(int rank) override;
  // Completes this rank's sends, keeps receiving until every rank has done the
  // same (a barrier), then finalizes MPI. Frames that arrived meanwhile stay
  // available to receive().
  Status close() override;

  struct State;

 private:
  explicit MpiTransport(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace mosix
