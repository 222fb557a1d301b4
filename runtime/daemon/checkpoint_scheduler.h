// Periodic checkpoints (--ckpt-interval): every interval, each guest running
// on this node writes its image to DIR/rank.N.img, atomically (the newest
// complete image is always there, and the home node restarts a rank lost
// with its node from it). The requests block until the image is verified, so
// a round runs on a thread of its own while the event loop goes on; a round
// still running when the next is due is not doubled, and a guest on the move
// sits a round out.
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <sys/types.h>
#include <thread>

#include "runtime/core/expected.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/guest_table.h"

namespace mosix {

// Whether the options ask for periodic checkpoints: an interval and a directory.
bool periodic_checkpoints_on(const NodeDaemonOptions& options);
// Where rank `rank`'s periodic image is: DIR/rank.N.img.
std::string rank_image_path(const std::string& dir, int rank);
// Whether a round checkpoints this guest: it is live, running and not moving.
bool checkpoint_this_round(const LocalGuest& guest);

// What to do when a round falls due: start one unless the last still runs
// (a slow round is not doubled: this one is skipped), and fall due again one
// interval on.
struct RoundPlan {
  bool start = false;
  std::chrono::steady_clock::duration next{};
};
RoundPlan plan_round(double interval_seconds, bool last_round_running);

struct CheckpointTarget {
  int rank = 0;
  pid_t pid = -1;
  std::string image;  // rank_image_path()
};
// Writes one guest's image, blocking (on the round's thread): its size in bytes.
using Checkpointer = std::function<Expected<std::uint64_t>(const CheckpointTarget&)>;
// The real one: the guest's agent writes it, left running, fast compression
// (ckpt::request_checkpoint: verified before it takes the image's name).
Expected<std::uint64_t> checkpoint_guest(const CheckpointTarget& target);

class CheckpointScheduler {
 public:
  CheckpointScheduler(DaemonContext& context, const GuestTable& guests, Checkpointer checkpoint = checkpoint_guest);
  // Waits for a round still running.
  ~CheckpointScheduler();
  CheckpointScheduler(const CheckpointScheduler&) = delete;
  CheckpointScheduler& operator=(const CheckpointScheduler&) = delete;

  // Rounds every interval from now on, if periodic_checkpoints_on().
  void start();
  // A round now; false (nothing started) while the last one still runs.
  bool start_round();
  bool round_running() const { return busy_; }
  // Waits for the running round, if any.
  void join();

 private:
  void arm(std::chrono::steady_clock::duration after);

  DaemonContext& context_;
  const GuestTable& guests_;
  Checkpointer checkpoint_;
  boost::asio::steady_timer timer_;
  std::thread round_;
  std::atomic<bool> busy_{false};
};

}  // namespace mosix
