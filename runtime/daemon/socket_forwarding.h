// Forwarded sockets, the node daemon's part (docs/migration.md). A guest's
// TCP socket stays open on the node whose daemon took it when the guest
// first moved away with it (the holder, which takes it from its stopped
// child with pidfd_getfd). Wherever the guest runs next, it has, at the same
// number, one end of a unix socket whose other end that node's daemon (the
// relay) passes to and from the holder in SocketForward messages: a
// connected socket's stream, or for a listener, one connection per client
// the holder accepts (the agent's accept reads the client's address from a
// header first; compat/agent/forwarded.h). Back on the holder, the guest
// gets its real socket again when nothing of its stream is in flight;
// otherwise the holder relays to itself.
//
// A move, at its source: leave() when the guest is stopped and its image
// written (real sockets taken, or relays drained and detached), then left()
// or stayed(). At its target: holders() learns who holds what, arrive()
// makes the descriptors the restorer puts in place (mosix-restore
// --sockets), then arrived() or not_arrived().
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"

namespace mosix {

class SocketForwarding {
 public:
  explicit SocketForwarding(DaemonContext& context);
  ~SocketForwarding();
  SocketForwarding(const SocketForwarding&) = delete;
  SocketForwarding& operator=(const SocketForwarding&) = delete;

  // A forwarded socket of an image: its number, forwarding id and kind.
  struct Record {
    int fd = -1;
    std::uint64_t id = 0;
    bool listening = false;
  };
  // The image's forwarded sockets (FdKind::forwarded), or an error.
  static Expected<std::vector<Record>> read_records(const std::string& image_path);
  // Whether process `pid` has a socket open (true when it cannot tell).
  static bool has_socket(pid_t pid);

  void message(int source, SocketForward m);

  // Source side. The stopped guest `pid` of `rank` leaves with `records`:
  // returns the kHolder messages for the target.
  Expected<std::vector<SocketForward>> leave(int rank, pid_t pid, std::uint64_t migration_id,
                                             const std::vector<Record>& records);
  void left(int rank);    // it lives at the target: what stays here goes
  void stayed(int rank);  // the move failed: it resumes here as it was

  // Target side.
  void holder(const SocketForward& m);  // a kHolder message
  // The channel end to pass to the restorer (-1: no forwarded sockets),
  // given to `ready` once every socket can be placed, or an error.
  void arrive(std::uint64_t migration_id, int rank, std::function<void(Expected<int>)> ready);
  // The guest `pid` runs here: its relays start.
  void arrived(std::uint64_t migration_id, int rank, pid_t pid);
  void not_arrived(std::uint64_t migration_id, int rank);

  // `rank` ended here: its forwarded listeners are closed at their holders.
  void forget(int rank);
  // Node `node` is gone: what it held or relayed here is closed (the
  // guest's ends of what it held read as reset).
  void node_lost(int node);

  // socket_options.cpp. A guest of this node sets or gets an option of a
  // relayed socket (kOption, on a connection of its own to the guest
  // socket): its holder performs it on the real socket, and `reply` gets
  // kOptionReply (ESRCH: not relayed here, or the holder is gone).
  void option(SocketForward m, std::function<void(const SocketForward&)> reply);

 private:
  using Key = std::pair<int, std::uint64_t>;  // rank, id
  enum class State { kPending, kLive, kDetaching, kDetached, kLent };
  struct End {
    bool holder_side = false;
    bool listening = false;
    std::unique_ptr<boost::asio::posix::stream_descriptor> sd;
    int peer = -1;  // the node with the other half (-1: none now)
    State state = State::kPending;
    std::uint64_t gen = 0;  // the waits of the current generation count
    bool reading = false, writing = false;
    bool read_eof = false, peer_eof = false, shut = false;
    bool peer_closed = false;  // relay: the real socket is closed both ways (kEofBothWays)
    Bytes out;
    std::size_t out_off = 0;
    std::uint64_t unacked = 0;   // bytes read and sent to the peer, not credited yet
    std::uint64_t consumed = 0;  // bytes written out, not credited to the peer yet
    // relay
    bool acked = true;     // a client's connection: the agent answered
    Bytes late;            // detaching: what came since
    bool drop_after = false;      // detaching: gone once released (the move succeeded)
    bool reattach_after = false;  // detaching: attached again once released (it failed)
    std::string listener;  // a listener relay: the guest's listening address
    pid_t guest = 0;       // the guest here (0: not running yet)
    std::uint64_t guest_ino = 0;  // the inode of the guest's end, when this relay made it
    // holder
    Bytes prefix;          // for the guest before anything newer
    bool unaccepted = false;
    std::uint64_t parent = 0;  // a client's listener
    int pending_attach = -1;
    bool pending_fresh = false;
  };
  struct Arrival {
    int rank = 0;
    std::vector<SocketForward> holders;
    std::function<void(Expected<int>)> ready;
    std::vector<Key> relays;  // made here, attached once it runs
    std::vector<Key> lent;    // held here, given back to it
  };

  void send(int node, SocketForward m);
  End* find(bool holder_side, const Key& k);
  void erase(bool holder_side, const Key& k);
  void attach(const Key& k, int node, bool fresh);
  void try_arrive(std::uint64_t migration_id);
  Expected<int> make_arrival(Arrival& a);
  void to_relay(int source, SocketForward& m);
  void to_holder(int source, SocketForward& m);
  void accepted(int source, const SocketForward& m);
  void offer(const Key& client, int node);
  void option_at_holder(int source, const SocketForward& m);
  void option_answered(const SocketForward& m);
  void options_lost(int node);

  // socket_pumps.cpp: the bytes between an end and its peer.
  void pump_read(bool holder_side, const Key& k);
  void read_now(bool holder_side, const Key& k);
  void accept_now(const Key& k);
  void pump_write(bool holder_side, const Key& k);
  void give(bool holder_side, const Key& k, const Bytes& bytes);
  void peer_ended(bool holder_side, const Key& k, bool both_ways = false);
  void credited(bool holder_side, const Key& k, std::uint64_t bytes);
  void fail(bool holder_side, const Key& k);
  // socket_resets.cpp: a relay's real socket was reset (or its holder is
  // gone): the guest's end reads ECONNRESET, and the relay end goes.
  void reset(const Key& k);
  static bool can_write(const End& e);
  Bytes drain(End& e);

  DaemonContext& context_;
  std::map<Key, End> held_;
  std::map<Key, End> relays_;
  std::map<std::uint64_t, Arrival> arrivals_;
  std::map<int, std::vector<Key>> taken_;  // real sockets taken by a move not answered yet
  struct PendingOption {
    int node = -1;  // the holder asked
    std::function<void(const SocketForward&)> reply;
  };
  std::map<std::uint64_t, PendingOption> options_;  // by request (kOption's migration_id)
  std::uint64_t next_option_ = 1;
  std::uint64_t next_gen_ = 1;
  std::uint64_t next_client_ = 1;
  bool reset_said_ = false;  // the log said once that resets read as end of stream
};

}  // namespace mosix
