// The guest socket of a node: running guests of the job talk to their node
// daemon here (a unix socket whose path each guest finds in
// MOSIX_GUEST_SOCKET). A guest attaches with its rank (GuestAttach), then
// may ask for new guests of its job (GuestSpawn: the spawn service, placed
// and started by the home node, see HomeRouter::guest_spawn) and exchange
// GuestMessage with the job's other guests, routed through the home node.
// compat/pvm (libpvm3's pvm_spawn and messages) is its first user; MPI's
// MPI_Comm_spawn (issue 14) and fork-and-forget placement at exec (issue 15)
// can ask for guests the same way.
//
// A message for a guest attached to the same node goes to it directly, any
// other through the home node; the two routes may overtake each other, so a
// guest that needs order per sender numbers its messages (compat/pvm does).
// Two guests of one node may also get a link of their own (kDirectAsk).
// A guest reads at its own pace: what is for it waits in a queue here, and
// what arrives for a rank before it attached waits until it does.
#pragma once

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sys/types.h>
#include <string>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/frame_socket.h"

namespace mosix {

class GuestService {
 public:
  explicit GuestService(DaemonContext& context);
  ~GuestService();
  GuestService(const GuestService&) = delete;
  GuestService& operator=(const GuestService&) = delete;

  // Listens at a path in the runtime directory and starts accepting.
  Status start();
  // Where the guests of this node connect ("" before start() or if it failed).
  const std::string& path() const { return path_; }

  // For a guest of this node: its reply, or a message from another guest.
  // One for a rank that never attaches waits until the node daemon ends.
  void deliver(const Message& message, std::int32_t rank);
  // The home's answer to a GuestSpawn: to the deputy that asked (its
  // connection then speaks for the body's rank), or to the asking guest.
  void spawn_answered(const GuestSpawnReply& reply);
  // A guest's link (its connection here) across a move (guest_links.cpp,
  // docs/pvm.md). detach: the guest `rank` (process `pid`) is stopped for a
  // move: nothing more is written to it, and what it had not read of its
  // link (what is queued in its socket, taken without taking it, then what
  // this daemon had not written yet) is returned; for a rank not attached,
  // what waits here for it; nothing if there is neither.
  // stay: the move failed, writing goes on. moved: it runs on `node` now:
  // what came for it since detach goes there, and so does whatever comes
  // later, until it attaches here again.
  Expected<std::optional<Bytes>> detach(std::int32_t rank, pid_t pid);
  void stay(std::int32_t rank);
  void moved(std::int32_t rank, int node);
  // The target's side: a move of `rank` here failed, its link's bytes go.
  void not_arrived(std::int32_t rank);
  // Bytes of `rank`'s link from the node it left (GuestMessage kLinkBytes):
  // kLinkFront before anything else, kLinkAfter appended.
  void link_bytes(std::int32_t rank, std::uint32_t kind, Bytes bytes);

  // A body's kill() of a pid of its home (HomeKill, core/protocol_guest_service.h).
  // home_kill: on the home node, to the node of the rank's deputy (-1: it
  // has none, or it ended: answered ESRCH). kill_asked: on that node, to the
  // deputy. kill_answered: on the asker's node, to the connection that asked.
  void home_kill(const HomeKill& kill, int deputy_node);
  void kill_asked(const HomeKill& kill);
  void kill_answered(const HomeKill& kill);

  // Where a deputy's stdin, signals and credit for its body go: the home
  // router (on the home node) or the transport to the home.
  void set_deputy_route(std::function<void(const Message&)> route) { deputy_route_ = std::move(route); }
  // Where a guest's SocketForward kOption goes (the node's forwarded
  // sockets); its answer is written back on the connection that asked.
  using SocketOptionRoute = std::function<void(SocketForward, std::function<void(const SocketForward&)>)>;
  void set_socket_option_route(SocketOptionRoute route) { socket_option_route_ = std::move(route); }

 private:
  struct Connection;
  void accept_next();
  void read(const std::shared_ptr<Connection>& c);
  void from_guest(const std::shared_ptr<Connection>& c, Message message);
  void write(const std::shared_ptr<Connection>& c);
  void close(const std::shared_ptr<Connection>& c);
  void stopped_reading(const std::shared_ptr<Connection>& c);
  // Raw bytes (whole frames) for `rank`, which is not attached here: to the
  // node it moved to, or waiting here.
  void append_to_link(std::int32_t rank, Frame bytes);
  void send_link(int node, std::int32_t rank, std::uint32_t kind, Bytes bytes);
  void link_directly(const std::shared_ptr<Connection>& from, std::int32_t rank);
  // Queues `m` (bytes: the inode of `fd`) to c, to be written with `fd`
  // (which it takes).
  void pass_end(const std::shared_ptr<Connection>& c, GuestMessage m, int fd);
  static ssize_t send_with_end(int sock, const Frame& f, int fd);
  void answer_kill(HomeKill kill, int error);

  DaemonContext& context_;
  std::string path_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> listener_;
  std::map<std::int32_t, std::shared_ptr<Connection>> attached_;
  std::map<std::int32_t, std::deque<Frame>> waiting_;  // for ranks not attached yet
  std::map<std::int32_t, int> moved_;                  // ranks that moved away from here: their node
  std::set<std::int32_t> arriving_;                    // ranks moving here: their link's bytes wait
  std::map<std::int32_t, std::size_t> detached_waiting_;  // moving, unattached: frames of waiting_ taken along
  std::map<std::uint64_t, std::shared_ptr<Connection>> asking_deputies_;  // by request id
  std::uint64_t next_deputy_request_ = 0;
  std::map<std::uint64_t, std::weak_ptr<Connection>> killers_;  // HomeKill askers, by request id
  std::uint64_t next_kill_ = 0;
  std::function<void(const Message&)> deputy_route_;
  SocketOptionRoute socket_option_route_;
};

}  // namespace mosix
