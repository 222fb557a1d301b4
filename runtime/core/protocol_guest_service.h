// Messages of the guest spawn service (daemon/guest_service.h): guests
// asking for new guests of their job, deputies asking for their bodies, and
// messages between guests (compat/pvm's transport). See protocol.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/message_type.h"

namespace mosix {

// The guest spawn service (daemon/guest_service.h): a running guest asks its
// node for new guests of its own job, and guests of a job exchange messages
// (compat/pvm's transport). Guest -> its node over the node's guest socket,
// first: which rank the connection belongs to, and the connection's
// descriptor number in the guest (-1: not said), through which the node
// daemon takes what the guest had not read when it moves (docs/pvm.md).
struct GuestAttach {
  static constexpr MessageType kType = MessageType::kGuestAttach;
  std::int32_t rank = 0;
  std::int32_t link_fd = -1;
  bool operator==(const GuestAttach&) const = default;
};

// Bits of GuestSpawn::flags.
// A deputy (compat/deputy) asks for its body: one guest, placed at exec by
// place_at_exec() (core/placement.h), whose output, end and start go to the
// deputy's node instead of mosixrun; the asker's connection speaks for that
// rank from the reply on. Sent before any GuestAttach, with parent_rank the
// rank of the guest it descends from. The reply's status kSpawnRunHere says
// "stay on this node": no guest was started.
inline constexpr std::uint32_t kGuestSpawnDeputy = 1u << 0;
// The body's stdin is a pipe the deputy fills (GuestStdin); else /dev/null.
inline constexpr std::uint32_t kGuestSpawnStdin = 1u << 1;
inline constexpr std::int32_t kSpawnRunHere = 1;

// Guest -> its node -> home: start `count` new guests of the job, placed by
// the home's placement (or on the node named `where`, if it exists), started
// like the first copies. They get new ranks after every rank in use.
struct GuestSpawn {
  static constexpr MessageType kType = MessageType::kGuestSpawn;
  std::uint64_t request_id = 0;      // the asker's, sent back in the reply
  std::int32_t parent_rank = 0;
  std::uint32_t count = 1;
  std::vector<std::string> argv;     // argv[0]: the program, found on PATH as exec does
  std::vector<std::string> env;      // complete environment
  std::string cwd;
  std::string where;                 // a node name, or "" for the placement's choice
  std::uint32_t flags = 0;           // kGuestSpawn* bits
  std::string program;               // the file to run; "" for argv[0] found on PATH
  bool operator==(const GuestSpawn&) const = default;
};

// Home -> the asker's node -> the asker: the new ranks and their nodes (in
// order), or why none were started (status != 0, reason for the user).
struct GuestSpawnReply {
  static constexpr MessageType kType = MessageType::kGuestSpawnReply;
  std::uint64_t request_id = 0;
  std::int32_t parent_rank = 0;
  std::int32_t status = 0;
  std::string reason;
  std::vector<std::int32_t> ranks;
  std::vector<std::uint32_t> nodes;
  bool operator==(const GuestSpawnReply&) const = default;
};

// A message between two guests of a job: sender -> its node -> home -> the
// receiver's node -> the receiver, so it is in order per sender and
// receiver. `kind` and `tag` are the guests' own (compat/pvm's). From home
// with source_rank kFromHome: the job's news (kGuestMessageExited).
inline constexpr std::int32_t kFromHome = -1;
// Kinds of a guest's requests to the home (dest_rank kFromHome), and of the
// home's answers (source_rank kFromHome).
inline constexpr std::uint32_t kAskWatchExit = 0xffff0001u;  // tag: the rank to watch
inline constexpr std::uint32_t kAskSignal = 0xffff0002u;     // tag: the rank; bytes[0]: the signal
inline constexpr std::uint32_t kAskGroup = 0xffff0003u;      // tag: a GroupOp; bytes: group_request
inline constexpr std::uint32_t kAskWatchNode = 0xffff0004u;  // tag: the node (transport rank) to watch
inline constexpr std::uint32_t kAskTasks = 0xffff0005u;      // the job's running guests (pvm_tasks)
inline constexpr std::uint32_t kGuestMessageExited = 0xffff0011u;  // tag: the rank that ended
inline constexpr std::uint32_t kGroupAnswer = 0xffff0012u;         // tag: the result; bytes: ranks
inline constexpr std::uint32_t kGuestMessageNodeLost = 0xffff0013u;  // tag: the node that was lost
// bytes: per running copy or spawned guest, little-endian i32 rank, parent
// rank (-1: a copy), node, pid, then u16 length and the program's name.
inline constexpr std::uint32_t kTasksAnswer = 0xffff0014u;
// Direct links between two guests of one node (compat/pvm's, docs/pvm.md
// "Direct links"). kDirectAsk, guest -> its node daemon, dest_rank the
// receiver: asks for a one-way link to it; the daemon answers only if the
// receiver is attached there too: it makes a socketpair and writes one end
// (SCM_RIGHTS, with the frame) to each, kDirectOut (source_rank the receiver) to the asker and
// kDirectIn (source_rank the asker) to the receiver; bytes: the inode of
// the end that comes with the frame, 8 bytes little-endian.
inline constexpr std::uint32_t kDirectAsk = 0xffff0021u;
inline constexpr std::uint32_t kDirectOut = 0xffff0022u;
inline constexpr std::uint32_t kDirectIn = 0xffff0023u;
// Node -> node, with source_rank kLinkBytes: the bytes of dest_rank's link
// (its stream from its node daemon, frames as written) from the node it
// left. kind kLinkFront: what it had not read there, which goes first on its
// link on the receiving node (it may begin inside a frame the guest read
// part of); kind kLinkAfter: frames for it that came after, appended.
inline constexpr std::int32_t kLinkBytes = -7;
inline constexpr std::uint32_t kLinkFront = 1;
inline constexpr std::uint32_t kLinkAfter = 2;
struct GuestMessage {
  static constexpr MessageType kType = MessageType::kGuestMessage;
  std::int32_t source_rank = 0;
  std::int32_t dest_rank = 0;
  std::uint32_t kind = 0;
  std::int32_t tag = 0;
  Bytes bytes;
  bool operator==(const GuestMessage&) const = default;
};

// A body's kill() of a pid of its home (compat/agent/home_kill.cpp): on
// another host the pid would name some local process, so the body's agent
// asks its node (a connection of its own, no GuestAttach), which sends it to
// the home, which sends it to the node of the rank's deputy, which gives it
// to the deputy: it calls kill(pid, signo) there, with the user's rights, and
// answers with answered set and error (0 or the errno). The answer goes from
// the deputy's node straight to asker_node, which gives it to the connection
// that asked (request_id: that node's own number). A rank without a deputy
// is answered ESRCH. tgkill() and sigqueue() take the same way: tid names
// a thread of pid (0: the process), and a queued signal carries the
// siginfo's code and value (rt_sigqueueinfo, rt_tgsigqueueinfo). Fixed
// size: the agent encodes and decodes it without allocating
// (core/home_kill_frame.h).
struct HomeKill {
  static constexpr MessageType kType = MessageType::kHomeKill;
  std::uint64_t request_id = 0;
  std::int32_t rank = 0;        // the body's rank
  std::int32_t asker_node = 0;  // the body's node (transport rank), set by it
  std::int32_t pid = 0;         // as kill() takes it: a pid, 0, -1 or minus a group
  std::int32_t signo = 0;
  bool answered = false;
  std::int32_t error = 0;
  std::int32_t tid = 0;      // tgkill's thread, or 0
  bool queued = false;       // sigqueue: code and value go with it
  std::int32_t code = 0;     // si_code (SI_QUEUE from sigqueue())
  std::uint64_t value = 0;   // si_value, as its bytes
  bool operator==(const HomeKill&) const = default;
};

}  // namespace mosix
