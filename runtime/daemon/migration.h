// Moving guests between nodes, both ends of a move.
// Out (the source): the guest is stopped with its image written into memory
// (a memfd) by its agent, on a thread of the move's own; its output is
// drained home, then the image is streamed to the target in chunks, with
// what the guest had not read of its stdin. The target's answer kills the
// stopped original, or resumes it.
// In (the target): the chunks go into a memfd, then the restorer starts as
// a guest of this node and turns into the program; until it has, its output
// is held back, and a refusal is the move's failure, not output.
// Every step is reported home (MigrateProgress), the end too (MigrateResult).
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/ckpt/request.h"
#include "runtime/core/balancer.h"
#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/guest_table.h"

namespace mosix {

// Earlier versions left a migrating guest's image in `dir` (/dev/shm) as
// mosix-migrate-PID-N.img, should their node daemon (PID) die during the
// move: ours of those whose daemon is gone are removed.
void sweep_old_images(const std::string& dir);

class Migrations {
 public:
  Migrations(DaemonContext& context, GuestTable& guests);
  // Calls finish().
  ~Migrations();
  Migrations(const Migrations&) = delete;
  Migrations& operator=(const Migrations&) = delete;

  // A MigrateRequest from node `source`: the move of a guest of ours, or one
  // coming here.
  void request(int source, const MigrateRequest& request);
  // Source side: starts moving one of our guests (the balancer's moves too).
  void migrate_out(const MigrateRequest& request);
  void image_begin(const ImageBegin& begin);
  void image_chunk(const ImageChunk& chunk);
  void image_end(const ImageEnd& end);
  // The target's answer to a move of ours from `source`; false when it is
  // not one (the home node routes it instead).
  bool answered(int source, const MigrateResult& result);
  // Stdin for a guest not here: it waits for the guest if it is on its way.
  void stdin_for_arrival(const GuestStdin& in);
  // Node `node` is gone: a guest moving there resumes here, one arriving
  // from there is dropped.
  void node_lost(int node);

  // No move under way in either direction.
  bool idle() const { return outgoing_.empty() && incoming_.empty(); }
  // What this node's moves achieved, in bytes per second (for the balancer's cost).
  double bandwidth() const { return bandwidth_; }
  // The daemon is shutting down: the images coming in are let go.
  void close_incoming();
  // The event loop has stopped: joins the checkpoint threads of moves (their
  // guests were killed, so they end soon) and lets go of every image.
  void finish();

 private:
  struct Outgoing {
    MigrateRequest request;
    int memfd = -1;            // the image, in memory only: nothing is left should we die
    std::chrono::steady_clock::time_point started;
    std::uint64_t bytes = 0;
    bool streamed = false;     // the image is on its way (checkpointed() has run)
    bool target_lost = false;  // the target died while the guest was being checkpointed
    std::optional<GuestStdin> stdin_left;  // what the guest had not read, sent with its image
  };
  struct Incoming {
    MigrateRequest request;
    int source = 0;
    int memfd = -1;
    std::uint64_t received = 0;
    std::uint64_t total = 0;      // from ImageBegin
    std::uint64_t reported = 0;   // received, as last told home (progress)
    std::vector<GuestStdin> stdin_left;  // the guest's unread stdin, from the source
    LocalGuest* guest = nullptr;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  void checkpointed(std::uint64_t id, Expected<ckpt::CheckpointResult> result);
  void stream_image(std::uint64_t id, Outgoing& out, LocalGuest& g, std::uint64_t bytes);
  void target_answered(const MigrateResult& result);
  void migrate_in(int source, const MigrateRequest& request);
  void restore(Incoming& in, const ImageEnd& end);
  void watch_restore(std::uint64_t id);
  void restore_failed(std::uint64_t id, const std::string& reason);
  MigrateResult failure(const MigrateRequest& request) const;
  void join_move_thread(std::uint64_t id);
  static void close_image(int& memfd);

  DaemonContext& context_;
  GuestTable& guests_;
  std::map<std::uint64_t, Outgoing> outgoing_;
  std::map<std::uint64_t, std::unique_ptr<Incoming>> incoming_;
  // Checkpoints of guests on their way out, by migration id: each thread ends
  // by posting checkpointed(), which joins it; finish() joins those left.
  std::map<std::uint64_t, std::thread> move_threads_;
  double bandwidth_ = BalancerParams{}.bandwidth;
};

}  // namespace mosix
