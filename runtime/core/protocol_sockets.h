// Forwarded sockets between node daemons (see protocol.h; docs/migration.md): a guest's TCP
// socket stays open on the node that holds it (the holder) while the guest
// runs elsewhere; the node the guest runs on (the relay) passes bytes
// between the guest's unix socket and the holder. One message type, its
// operation saying what it carries.
#pragma once

#include <cstdint>

#include "runtime/core/message_type.h"

namespace mosix {

enum class SocketOp : std::uint32_t {
  kAttach = 1,     // relay -> holder: the guest's end is here now; `arg` 1: a new
                   // one (a restore: the listener's unaccepted clients are
                   // offered again), 0: the same one (a move that failed)
  kData = 2,       // either way: `bytes`, in order
  kEof = 3,        // either way: the stream ended (the guest or the client
                   // shut down writing); holder -> relay, `arg` kEofBothWays:
                   // the real socket is closed both ways (reset and read, or
                   // each side's end): the guest's end is shut both ways
  kClose = 4,      // either way: the socket is gone (closed, reset, or the
                   // guest's end dropped): the other side closes its end
  kAccepted = 5,   // holder -> relay: a client of listener `arg`, `bytes` its
                   // address; data for it follows
  kDetach = 6,     // relay -> holder: the guest stopped to move: `bytes` what
                   // it wrote that had not gone home yet, `more` what it had
                   // not read; `arg` 1: a client it never accepted
  kDetachAck = 7,  // holder -> relay: nothing more follows for it
  kReleased = 8,   // relay -> holder: `more`, what came for it after the
                   // detach, to give the guest before anything newer
  kHolder = 9,     // source -> target of a move: fd `fd` of the guest is
                   // forwarded socket `id`, held by node `arg`; or, `arg`
                   // kSocketEnded, one whose stream ended both ways (its relay
                   // is gone), `bytes` what the guest had not read of it
  kCredit = 10,    // either way: `arg` more bytes of kData were written out
                   // (flow control: a side sends at most kSocketWindow bytes
                   // beyond what the other has credited)
  kOption = 11,    // guest -> its node (on a connection of its own to the guest
                   // socket), relay -> holder: set (`fd` 1: `bytes` the value)
                   // or get (`fd` 0: `bytes` the most wanted, u32) option
                   // `arg` (level << 32 | name) of socket `id` of `rank` on
                   // the real socket; `migration_id` the relay's request
  kOptionReply = 12,  // holder -> relay -> guest: `arg` the errno (0: done;
                      // ESRCH: not relayed or held there), `bytes` a get's value
};
inline constexpr std::uint64_t kEofBothWays = 1;
inline constexpr std::uint64_t kSocketWindow = 4u << 20;
inline constexpr std::uint64_t kSocketEnded = ~std::uint64_t{0};
inline constexpr std::uint64_t kSocketCreditStep = kSocketWindow / 4;

struct SocketForward {
  static constexpr MessageType kType = MessageType::kSocketForward;
  std::uint32_t op = 0;  // SocketOp
  std::int32_t rank = 0;
  std::uint64_t id = 0;  // the forwarding id, per rank
  std::uint64_t arg = 0;
  std::int32_t fd = -1;
  bool listening = false;
  bool to_holder = false;  // kData, kEof, kClose: the holder's half is meant
  std::uint64_t migration_id = 0;  // kHolder
  Bytes bytes;
  Bytes more;
  bool operator==(const SocketForward&) const = default;
};

inline SocketForward socket_op(SocketOp op, std::int32_t rank, std::uint64_t id) {
  SocketForward m;
  m.op = static_cast<std::uint32_t>(op);
  m.rank = rank;
  m.id = id;
  return m;
}

}  // namespace mosix
