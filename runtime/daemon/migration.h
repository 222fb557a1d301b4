// Moving guests between nodes, both ends of a move.
// Out (the source): on a thread of the move's own, the guest's memory first
// goes to the target in pre-copy rounds while it runs (precopy.h,
// docs/migration.md; MOSIX_PRECOPY=0 turns them off, and a kernel without
// write tracking falls back to stop-and-copy, said once); then the guest is
// stopped with its image (with pre-copy, only what was written since the
// last round) written into memory (a memfd) by its agent; its output is
// drained home, then the image is streamed to the target in chunks, with
// what the guest had not read of its stdin. The target's answer kills the
// stopped original, or resumes it. A move that fails at any step leaves the
// guest running here.
// In (the target): pre-copied pages go into a sparse memfd at their
// addresses, the image's chunks into another, then the restorer starts as
// a guest of this node and turns into the program; until it has, its output
// is held back, and a refusal is the move's failure, not output.
// Every step is reported home (MigrateProgress), the end too (MigrateResult).
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/ckpt/early_protocol.h"
#include "runtime/ckpt/request.h"
#include "runtime/core/balancer.h"
#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/guest_service.h"
#include "runtime/daemon/guest_table.h"
#include "runtime/daemon/socket_forwarding.h"

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
  void precopy_pages(const PrecopyPages& pages);
  void precopy_taken(int source, const PrecopyTaken& taken);
  void image_end(const ImageEnd& end);
  // The target's answer to a move of ours from `source`; false when it is
  // not one (the home node routes it instead).
  bool answered(int source, const MigrateResult& result);
  // The guest socket's service, whose links to guests move with them.
  void set_guest_links(GuestService* links) { links_ = links; }
  // A forwarded socket's message (socket_forwarding.h).
  void socket_message(int source, SocketForward m) { sockets_.message(source, std::move(m)); }
  // Guest `rank` ended here: its forwarded listeners are closed at their holders.
  void guest_ended(int rank) { sockets_.forget(rank); }
  // A guest's socket option on a forwarded socket (socket_options.cpp).
  void socket_option(SocketForward m, std::function<void(const SocketForward&)> reply) {
    sockets_.option(std::move(m), std::move(reply));
  }
  // Stdin for a guest not here: it waits for the guest if it is on its way.
  void stdin_for_arrival(const GuestStdin& in);
  // Node `node` is gone: a guest moving there resumes here, one arriving
  // from there is dropped.
  void node_lost(int node);

  // No move under way in either direction.
  bool idle() const { return outgoing_.empty() && incoming_.empty(); }
  // The target's say on a balancer move from node `source` (balancer.h
  // decline_move): "" takes it, else the reason it is declined for. The
  // guest then runs on at the source. Manual moves are never asked about.
  using Admission = std::function<std::string(int source)>;
  void set_admission(Admission admission) { admission_ = std::move(admission); }
  // Moves on their way here, the balancer's of them, and the guests that
  // arrived since this node started: for its load.
  int arriving() const { return static_cast<int>(incoming_.size()); }
  int balancer_moves_arriving() const;
  std::uint64_t arrivals() const { return arrivals_; }
  // What this node's moves achieved, in bytes per second (for the balancer's cost).
  double bandwidth() const { return bandwidth_; }
  // The daemon is shutting down: the images coming in are let go.
  void close_incoming();
  // The event loop has stopped: joins the checkpoint threads of moves (their
  // guests were killed, so they end soon) and lets go of every image.
  void finish();

 private:
  // Pre-copied pages in flight from a move's thread through the event loop
  // to the transport: the thread waits while too many are, and stops when
  // the move is given up (its target died, the daemon stops).
  struct PrecopyLink {
    std::mutex mutex;
    std::condition_variable changed;
    std::uint64_t in_flight = 0;
    std::uint64_t taken = 0;  // by the target (PrecopyTaken)
    bool cancelled = false;
    void cancel();
  };
  struct Outgoing {
    MigrateRequest request;
    std::shared_ptr<PrecopyLink> link;
    bool announced = false;    // the target has the request: pre-copied pages went, or may go
    std::chrono::steady_clock::time_point stopped_at;  // the last step began
    std::uint64_t precopy_bytes = 0;
    std::uint32_t rounds = 0;
    int memfd = -1;            // the image, in memory only: nothing is left should we die
    std::chrono::steady_clock::time_point started;
    std::uint64_t bytes = 0;
    bool streamed = false;     // the image is on its way (checkpointed() has run)
    bool target_lost = false;  // the target died while the guest was being checkpointed
    std::string declined;      // the target declined it before the image went
    std::optional<GuestStdin> stdin_left;  // what the guest had not read, sent with its image
    std::vector<SocketForward> holders;    // its forwarded sockets, for the target
    std::optional<Bytes> link_left;        // what it had not read of its link (GuestService::detach)
  };
  struct Incoming {
    MigrateRequest request;
    int source = 0;
    int memfd = -1;
    int pages = -1;               // pre-copied pages, each at its address (sparse)
    std::uint64_t precopied = 0;  // bytes of them received
    std::uint64_t received = 0;
    std::uint64_t total = 0;      // from ImageBegin
    std::uint64_t reported = 0;   // received, as last told home (progress)
    std::vector<GuestStdin> stdin_left;  // the guest's unread stdin, from the source
    LocalGuest* guest = nullptr;  // the restorer, then the guest (early or after the stop)
    std::unique_ptr<boost::asio::steady_timer> timer;
    bool going = false;  // the image is complete and the restore began
    // The early restorer (migration_early.cpp): its socket, the words it
    // has not been sent yet, and the forwarded sockets' socket for its go.
    bool early_tried = false;
    std::unique_ptr<boost::asio::posix::stream_descriptor> early;
    std::deque<ckpt::EarlyCommand> early_words;
    bool early_waiting = false;  // for the socket to take more
    ckpt::EarlyCommand early_answer{};
    std::uint64_t early_bytes = 0;  // what the early restorer had when it got its go
    int go_sockets = -1;
    // Ranges the guest asked huge pages for, for an early restorer yet to
    // start (address, length).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> hugepage;
  };

  // What a move's thread reports with its image.
  struct MoveStats {
    std::chrono::steady_clock::time_point stopped_at;
    std::uint64_t precopy_bytes = 0;
    std::uint32_t rounds = 0;
    std::string precopy_error;  // pre-copy given up: stop-and-copy instead
    bool precopy_unsupported = false;
  };
  void checkpointed(std::uint64_t id, Expected<ckpt::CheckpointResult> result, const MoveStats& stats);
  void abandon(const Outgoing& out);
  void stream_image(std::uint64_t id, Outgoing& out, LocalGuest& g, std::uint64_t bytes);
  void target_answered(const MigrateResult& result);
  void migrate_in(int source, const MigrateRequest& request);
  void restore(Incoming& in, const ImageEnd& end);
  void start_restorer(std::uint64_t id, Expected<int> sockets);
  void launch_restorer(std::uint64_t id, int sockets);
  void restorer_started(std::uint64_t id);
  void start_early(Incoming& in);
  void early_word(Incoming& in, ckpt::EarlyOp op, std::uint64_t address, std::uint64_t length);
  void flush_early(std::uint64_t id);
  void read_early(std::uint64_t id);
  void drop_early(Incoming& in);
  bool early_go(Incoming& in, int sockets);
  std::string leave_sockets(std::uint64_t id, Outgoing& out, const LocalGuest& g);
  void watch_restore(std::uint64_t id);
  void restore_failed(std::uint64_t id, const std::string& reason);
  void pages_lost(Incoming& in, const char* call, int error);
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
  Admission admission_;
  std::uint64_t arrivals_ = 0;
  bool precopy_ = true;              // MOSIX_PRECOPY=0: stop-and-copy only
  bool early_start_ = true;          // MOSIX_EARLY_RESTORE=0: the restorer starts after the stop
  bool precopy_said_ = false;        // the fallback to stop-and-copy was logged
  SocketForwarding sockets_;
  GuestService* links_ = nullptr;
};

}  // namespace mosix
