// The messages node daemons exchange, and their wire format. Every message
// type has one symmetric field list (see protocol.cpp) that sizes, packs and
// unpacks it in explicit little-endian; a frame wraps the payload in a 16-byte
// header with a magic, the protocol version, the type, the payload length and
// a CRC32C. decode_frame() refuses anything truncated, corrupted, of an unknown
// type or of another protocol version, and says which. Pure: std only.
//
// Stable forever, so that daemons of different releases can refuse each other
// by name: the 16-byte header layout, the type code of Hello (1), and the first
// three fields of Hello (protocol_version, mosix_version, node_name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/core/expected.h"

namespace mosix {

// Bump on any change of a payload layout or of a message's meaning.
inline constexpr std::uint16_t kProtocolVersion = 15;

// Frame header: magic "MOSX", u16 version, u16 type, u32 payload length,
// u32 CRC32C of header bytes 0..11 followed by the payload.
inline constexpr std::size_t kFrameHeaderSize = 16;
// Larger payloads must be sent in pieces (ImageChunk); MPI counts are ints.
inline constexpr std::uint32_t kMaxPayloadSize = 256u << 20;

using Bytes = std::vector<std::uint8_t>;
using Frame = std::vector<std::uint8_t>;

enum class MessageType : std::uint16_t {
  kHello = 1,
  kHelloReject = 2,
  kLoadReport = 3,
  kSpawnGuest = 4,
  kGuestStarted = 5,
  kGuestOutput = 6,
  kGuestStdin = 7,
  kGuestSignal = 8,
  kGuestExited = 9,
  kShutdown = 10,
  kImageBegin = 11,
  kImageChunk = 12,
  kImageEnd = 13,
  kNodeLost = 14,
  kMigrateRequest = 15,
  kMigrateResult = 16,
  kOutputCredit = 17,
  kBalanceReport = 18,
  kMigrateProgress = 20,
  kOutputFds = 19,
  kMpiJobMap = 21,
  kFenceContribution = 22,
  kFenceRelease = 23,
  kModexRequest = 24,
  kModexReply = 25,
  kNamePublish = 26,
  kNameLookup = 27,
  kNameUnpublish = 28,
  kNameReply = 29,
  kGuestAttach = 30,
  kGuestSpawn = 31,
  kGuestSpawnReply = 32,
  kGuestMessage = 33,
  kMpiSpawn = 34,
  kMpiSpawnReply = 35,
  kMpiNamespace = 36,
  kStdinCredit = 40,
  kPtyResize = 41,
  kPrecopyPages = 42,
};

// First message from every daemon to the home node (rank 0).
struct Hello {
  static constexpr MessageType kType = MessageType::kHello;
  std::uint32_t protocol_version = kProtocolVersion;
  std::string mosix_version;  // release, e.g. "0.1.0"
  std::string node_name;
  std::uint32_t rank = 0;     // transport rank of the daemon
  double speed = 1.0;         // relative CPU speed (1.0 = reference)
  std::uint32_t cores = 0;
  std::uint64_t memory_bytes = 0;
  bool operator==(const Hello&) const = default;
};

// The home node refuses a daemon; the reason is for the user.
struct HelloReject {
  static constexpr MessageType kType = MessageType::kHelloReject;
  std::string reason;
  bool operator==(const HelloReject&) const = default;
};

// One node's load as the sender knows it.
struct LoadEntry {
  std::uint32_t node = 0;            // transport rank
  double load = 0.0;                 // runnable tasks per unit of speed (all of the node's; run_queue.h)
  double speed = 1.0;
  std::uint64_t free_memory = 0;     // bytes
  std::uint32_t age_ms = 0;          // how old this information is
  std::uint32_t cores = 1;
  double work = -1.0;                // expected remaining work of its guests (reference-CPU s); < 0 unknown
  double cpu = 0.0;                  // CPUs the node's tasks kept busy over the last half second
  bool operator==(const LoadEntry&) const = default;
};

// Gossip: the freshest part of the sender's load vector.
struct LoadReport {
  static constexpr MessageType kType = MessageType::kLoadReport;
  std::vector<LoadEntry> entries;
  bool operator==(const LoadReport&) const = default;
};

// Bits of SpawnGuest::flags.
inline constexpr std::uint32_t kSpawnStdin = 1u << 0;   // relay home's stdin to this guest
inline constexpr std::uint32_t kSpawnPinned = 1u << 1;  // --pin: the guest never moves
// argv[0] is a checkpoint image: the guest is restored from it (a rank lost
// with its node, brought back from its last periodic checkpoint).
inline constexpr std::uint32_t kSpawnRestore = 1u << 2;
// --bind-to core: bind the guest to one core of its node (it keeps the bit
// when it moves, and is bound again where it arrives).
inline constexpr std::uint32_t kSpawnBindCore = 1u << 3;
// An MPI program: the node's PMIx server wires it up (rank, size, peers).
// It does not move (its peers hold connections to it): kMpiCantMove says why.
inline constexpr std::uint32_t kSpawnPmix = 1u << 4;
inline constexpr const char* kMpiCantMove = "MPI peer connections";
// --bind-to auto for an MPI job: the home node turns it into kSpawnBindCore
// where the copy's node has a core for each of the job's copies there.
inline constexpr std::uint32_t kSpawnBindAuto = 1u << 5;
// An MPICH program: the node daemon serves it PMI-1 over PMI_FD (its
// pmi_server.h) instead of PMIx; it does not move either.
inline constexpr std::uint32_t kSpawnPmi = 1u << 6;
// A deputy's body (placed at exec, core/placement.h place_at_exec): its
// stdin is its own pipe (kSpawnStdin) or /dev/null, never the job's, and its
// start, output and end go to its deputy, not mosixrun.
inline constexpr std::uint32_t kSpawnBody = 1u << 7;
// Its stdin, stdout and stderr are a terminal of its own (a pseudo-terminal
// its node daemon holds the other side of, --pty): an interactive shell has
// job control. Its size is MOSIX_PTY_SIZE=ROWSxCOLS of its environment; kPtyCantMove: why it never moves.
inline constexpr std::uint32_t kSpawnPty = 1u << 8;
inline constexpr const char* kPtyCantMove = "its terminal (--pty) stays on its node";
// Either kind of MPI copy.
inline constexpr std::uint32_t kSpawnMpi = kSpawnPmix | kSpawnPmi;

// Start a guest (one copy of the job) on the receiving node.
struct SpawnGuest {
  static constexpr MessageType kType = MessageType::kSpawnGuest;
  std::int32_t rank = 0;
  std::vector<std::string> argv;
  std::vector<std::string> env;      // "NAME=value", complete environment
  std::string cwd;
  std::uint32_t flags = 0;           // kSpawn* bits
  std::uint64_t memory_bytes = 0;    // expected need, 0 if unknown
  std::string program;               // the file to run; "" for argv[0] found on PATH
  bool operator==(const SpawnGuest&) const = default;
};

struct GuestStarted {
  static constexpr MessageType kType = MessageType::kGuestStarted;
  std::int32_t rank = 0;
  std::int32_t pid = 0;              // real pid on its node
  std::uint32_t node = 0;
  bool operator==(const GuestStarted&) const = default;
};

enum class OutputStream : std::uint8_t { kStdout = 1, kStderr = 2 };

// Bytes a guest wrote, in order per (rank, stream).
struct GuestOutput {
  static constexpr MessageType kType = MessageType::kGuestOutput;
  std::int32_t rank = 0;
  OutputStream stream = OutputStream::kStdout;
  Bytes bytes;
  bool operator==(const GuestOutput&) const = default;
};

// Bytes for a guest's stdin; eof closes it after these bytes.
struct GuestStdin {
  static constexpr MessageType kType = MessageType::kGuestStdin;
  std::int32_t rank = 0;
  Bytes bytes;
  bool eof = false;
  bool operator==(const GuestStdin&) const = default;
};

inline constexpr std::int32_t kAllRanks = -1;

struct GuestSignal {
  static constexpr MessageType kType = MessageType::kGuestSignal;
  std::int32_t rank = kAllRanks;     // or kAllRanks: every guest on the node
  std::int32_t signo = 0;            // 0: nothing, but what is held for the job's end goes now
  // The job's end after a copy failed: hold the signal for a guest until it
  // has run this much CPU time (the failed copy's, in µs) or waits for
  // something (caught_up in exit_rule.h). 0: at once; SIGKILL and signal 0
  // deliver what was held first.
  std::uint64_t not_before_cpu_us = 0;
  bool operator==(const GuestSignal&) const = default;
};

struct GuestExited {
  static constexpr MessageType kType = MessageType::kGuestExited;
  std::int32_t rank = 0;
  std::int32_t exit_code = 0;        // meaningful when term_signal == 0
  std::int32_t term_signal = 0;      // signal that killed it, 0 if it exited
  // Its node sent it SIGTERM or SIGKILL for the runtime (the job's end)
  // while it still ran: a death by that signal is the runtime's doing.
  bool runtime_signaled = false;
  std::uint64_t cpu_us = 0;          // CPU time it used, its reaped children's too, on every node it ran on
  bool operator==(const GuestExited&) const = default;
};

struct Shutdown {
  static constexpr MessageType kType = MessageType::kShutdown;
  std::string reason;
  bool operator==(const Shutdown&) const = default;
};

// A checkpoint image streamed between daemons: Begin, Chunks in offset order, End.
struct ImageBegin {
  static constexpr MessageType kType = MessageType::kImageBegin;
  std::uint64_t migration_id = 0;
  std::int32_t rank = 0;
  std::uint64_t total_bytes = 0;     // 0 if not known in advance
  bool operator==(const ImageBegin&) const = default;
};

// Pre-copy (docs/migration.md), source -> target while the guest still runs:
// pages of its memory at `address` as a round read them, or with no bytes,
// `zero` bytes from `address` that hold no data (never written, or given
// back); after the MigrateRequest and before ImageBegin of the same
// migration_id. A later message for the same address replaces it.
struct PrecopyPages {
  static constexpr MessageType kType = MessageType::kPrecopyPages;
  std::uint64_t migration_id = 0;
  std::uint64_t address = 0;
  Bytes bytes;
  std::uint64_t zero = 0;
  bool operator==(const PrecopyPages&) const = default;
};

struct ImageChunk {
  static constexpr MessageType kType = MessageType::kImageChunk;
  std::uint64_t migration_id = 0;
  std::uint64_t offset = 0;
  Bytes bytes;
  bool operator==(const ImageChunk&) const = default;
};

struct ImageEnd {
  static constexpr MessageType kType = MessageType::kImageEnd;
  std::uint64_t migration_id = 0;
  std::uint64_t total_bytes = 0;
  // The source gave the move up after its pre-copy had begun (no image
  // follows): the target lets the pages go, without an answer.
  bool abandoned = false;
  bool operator==(const ImageEnd&) const = default;
};

// A rank lost with its node that restarts from its last checkpoint on `node`.
struct RankRestart {
  std::int32_t rank = 0;
  std::uint32_t node = 0;
  bool operator==(const RankRestart&) const = default;
};

// The home node tells the others, and mosixrun, that a node daemon is gone;
// to mosixrun also which of its ranks restart from their last checkpoint
// (and on which node) rather than being lost.
struct NodeLost {
  static constexpr MessageType kType = MessageType::kNodeLost;
  std::uint32_t node = 0;
  std::vector<RankRestart> restarting;  // ranks restored from their images, and where
  bool operator==(const NodeLost&) const = default;
};

// Move a running guest to another node. mosixrun sends it to the home node,
// which forwards it to the node holding the rank (the source); the source
// sends it on to the target, with `flags` filled in, just before the image
// (ImageBegin/ImageChunk/ImageEnd with the same migration_id).
struct MigrateRequest {
  static constexpr MessageType kType = MessageType::kMigrateRequest;
  std::uint64_t migration_id = 0;
  std::int32_t rank = 0;
  std::uint32_t target_node = 0;
  std::uint32_t flags = 0;           // the guest's kSpawn* bits (source -> target)
  double work_done = 0.0;            // reference-CPU seconds the guest ran before (source -> target)
  bool operator==(const MigrateRequest&) const = default;
};

// How a migration ended. Target -> source (restored or not), then source ->
// home node -> mosixrun. On failure the guest runs on at the source.
struct MigrateResult {
  static constexpr MessageType kType = MessageType::kMigrateResult;
  std::uint64_t migration_id = 0;
  std::int32_t rank = 0;
  bool ok = false;
  bool cantmove = false;             // the guest itself cannot move (e.g. an open socket)
  std::string reason;                // why not, when !ok
  std::uint32_t source_node = 0;
  std::uint32_t target_node = 0;
  std::int32_t pid = 0;              // real pid at the target when ok
  std::uint64_t bytes = 0;           // image size
  std::uint32_t stopped_ms = 0;      // from the stop request to the restore at the target
  std::uint64_t precopy_bytes = 0;   // sent by pre-copy rounds while the guest ran (docs/migration.md)
  std::uint32_t rounds = 0;          // pre-copy rounds (0: stop-and-copy)
  bool operator==(const MigrateResult&) const = default;
};

// Flow control of guest output: mosixrun (or the home node, see OutputFds)
// -> home node -> the rank's node, once `bytes` of the rank's output have
// been written out at home. A node stops reading a guest's pipes while too
// much of its output is unconfirmed, so a slow reader at home blocks the
// guest, as a pipe would.
struct OutputCredit {
  static constexpr MessageType kType = MessageType::kOutputCredit;
  std::int32_t rank = 0;
  std::uint64_t bytes = 0;
  bool operator==(const OutputCredit&) const = default;
};

// A deputy's body took `bytes` more of the stdin its deputy sent into its
// pipe: body's node -> home -> the deputy's node -> the deputy, which keeps
// no more than a pipe's worth on the way (nothing it reads is taken from a
// reader that comes after the body).
struct StdinCredit {
  static constexpr MessageType kType = MessageType::kStdinCredit;
  std::int32_t rank = 0;
  std::uint64_t bytes = 0;
  bool operator==(const StdinCredit&) const = default;
};

// mosixrun's terminal took a new size (SIGWINCH): the terminal of rank
// `rank` (--pty) takes it too, and its foreground job gets SIGWINCH.
struct PtyResize {
  static constexpr MessageType kType = MessageType::kPtyResize;
  std::int32_t rank = 0;
  std::uint16_t rows = 0;
  std::uint16_t cols = 0;
  bool operator==(const PtyResize&) const = default;
};

// How far a migration has come: the source while it checkpoints the guest,
// the target while the image arrives and while it restores. Node -> home
// node -> mosixrun (for `mosixctl migrate`'s progress and `mosixctl ps`).
enum class MigratePhase : std::uint8_t { kCheckpoint = 1, kTransfer = 2, kRestore = 3 };
struct MigrateProgress {
  static constexpr MessageType kType = MessageType::kMigrateProgress;
  std::uint64_t migration_id = 0;
  std::int32_t rank = 0;
  MigratePhase phase = MigratePhase::kCheckpoint;
  std::uint64_t bytes = 0;           // done so far in this phase
  std::uint64_t total = 0;           // the image's size, once known (0 before)
  bool operator==(const MigrateProgress&) const = default;
};

// A guest's last rebalancing decision, as its node's balancer explained it.
struct GuestDecision {
  std::int32_t rank = 0;
  std::string verdict;               // one phrase: "moving", "below margin", "pinned", ...
  std::string explanation;           // one line with the numbers (balancer.h's explain())
  bool operator==(const GuestDecision&) const = default;
};

// Node -> home node -> mosixrun after each balancer round, about once a
// second: the verdict on each of its guests (for `mosixctl ps --explain`).
struct BalanceReport {
  static constexpr MessageType kType = MessageType::kBalanceReport;
  std::uint32_t node = 0;
  std::vector<GuestDecision> guests;
  bool operator==(const BalanceReport&) const = default;
};

// mosixrun -> home node, first, with mosixrun's stdout and stderr attached
// (SCM_RIGHTS over the unix socket: both run on the home node). The home
// node then writes the guests' output there itself, byte-exact and in order
// per rank and stream, before it passes on what follows (GuestExited), and
// credits the ranks' nodes (OutputCredit); mosixrun gets no GuestOutput.
// Not sent when mosixrun tags output or copies it into files.
struct OutputFds {
  static constexpr MessageType kType = MessageType::kOutputFds;
  std::uint32_t count = 2;           // descriptors attached: stdout, stderr
  bool operator==(const OutputFds&) const = default;
};

// MPI wire-up (the PMIx servers of the nodes, see daemon/pmix_server.h).
// Home -> every node with MPI copies, before their SpawnGuest: where each
// rank of the job runs (MPI ranks do not move, so this stays true).
struct MpiJobMap {
  static constexpr MessageType kType = MessageType::kMpiJobMap;
  std::vector<std::uint32_t> rank_nodes;  // per rank: the transport rank of its node
  std::vector<std::string> node_names;    // per transport rank: its name (host, or vnodeN)
  bool operator==(const MpiJobMap&) const = default;
};

// A node -> home, once every local copy taking part entered a PMIx fence:
// their data. The fence is the `fence_id`-th over this set of ranks (every
// node counts the same fences over the same set the same way).
// A fence_id with this bit is a PMI barrier of MPICH copies (the node
// daemon's), without it a PMIx fence (the PMIx helper's); the home node
// collects both alike. Likewise a name request_id with kPmiRequestBit.
inline constexpr std::uint64_t kPmiFenceBit = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kPmiRequestBit = std::uint64_t{1} << 63;
// A PMIx fence_id with this bit is a PMIx_Connect or _Disconnect: a fence
// without data, counted apart from the fences over the same ranks.
inline constexpr std::uint64_t kConnectFenceBit = std::uint64_t{1} << 62;

struct FenceContribution {
  static constexpr MessageType kType = MessageType::kFenceContribution;
  std::uint64_t fence_id = 0;
  std::vector<std::int32_t> ranks;   // the participants, sorted; empty: the whole job
  Bytes data;                        // the PMIx library's blob for its node
  bool operator==(const FenceContribution&) const = default;
};

// Home -> each node taking part, once all of them contributed: every
// node's data one after another (the library reads the blobs in a row), or
// a failure (a node with participants was lost).
struct FenceRelease {
  static constexpr MessageType kType = MessageType::kFenceRelease;
  std::uint64_t fence_id = 0;
  std::vector<std::int32_t> ranks;
  std::int32_t status = 0;           // a PMIx status: 0 success
  Bytes data;
  bool operator==(const FenceRelease&) const = default;
};

// Direct modex: a node asks the node of `rank` for what that rank put
// (PMIx_Get of a remote rank's data before or without a collecting fence).
struct ModexRequest {
  static constexpr MessageType kType = MessageType::kModexRequest;
  std::uint64_t request_id = 0;      // the asker's, sent back in the reply
  std::int32_t rank = 0;
  bool operator==(const ModexRequest&) const = default;
};

struct ModexReply {
  static constexpr MessageType kType = MessageType::kModexReply;
  std::uint64_t request_id = 0;
  std::int32_t status = 0;           // a PMIx status: 0 success
  Bytes data;
  bool operator==(const ModexReply&) const = default;
};

// MPI_Publish_name and friends (PMIx publish/lookup/unpublish): the home
// node keeps the job's names (core/published_names.h). Node -> home; the
// home answers the asking node with NameReply.
struct PublishedName {
  std::string key;
  std::string value;                 // a string (MPI's port names), or bytes
  std::int32_t rank = 0;             // who published it
  bool bytes = false;                // value is a byte object (Open MPI's exchanges between jobs)
  bool operator==(const PublishedName&) const = default;
};

struct NamePublish {
  static constexpr MessageType kType = MessageType::kNamePublish;
  std::uint64_t request_id = 0;
  std::vector<PublishedName> names;
  bool operator==(const NamePublish&) const = default;
};

struct NameLookup {
  static constexpr MessageType kType = MessageType::kNameLookup;
  std::uint64_t request_id = 0;
  std::vector<std::string> keys;
  bool wait = false;                 // until every key is published (PMIX_WAIT)
  bool operator==(const NameLookup&) const = default;
};

struct NameUnpublish {
  static constexpr MessageType kType = MessageType::kNameUnpublish;
  std::uint64_t request_id = 0;
  std::int32_t rank = 0;
  std::vector<std::string> keys;     // empty: everything `rank` published
  bool operator==(const NameUnpublish&) const = default;
};

struct NameReply {
  static constexpr MessageType kType = MessageType::kNameReply;
  std::uint64_t request_id = 0;
  std::int32_t status = 0;           // a PMIx status: 0 success
  std::vector<PublishedName> names;  // a lookup's finds
  bool operator==(const NameReply&) const = default;
};

// The guest spawn service (daemon/guest_service.h): a running guest asks its
// node for new guests of its own job, and guests of a job exchange messages
// (compat/pvm's transport). Guest -> its node over the node's guest socket,
// first: which rank the connection belongs to.
struct GuestAttach {
  static constexpr MessageType kType = MessageType::kGuestAttach;
  std::int32_t rank = 0;
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
inline constexpr std::uint32_t kGuestMessageExited = 0xffff0011u;  // tag: the rank that ended
inline constexpr std::uint32_t kGroupAnswer = 0xffff0012u;         // tag: the result; bytes: ranks
struct GuestMessage {
  static constexpr MessageType kType = MessageType::kGuestMessage;
  std::int32_t source_rank = 0;
  std::int32_t dest_rank = 0;
  std::uint32_t kind = 0;
  std::int32_t tag = 0;
  Bytes bytes;
  bool operator==(const GuestMessage&) const = default;
};

// MPI_Comm_spawn (PMIx spawn) of an Open MPI program: the asker's PMIx
// helper -> its node -> home. The home places each app's `count` new ranks
// as the spawn service places guests (GuestSpawn), makes them a PMIx
// namespace of their own (MpiNamespace to every node with MPI copies of
// the job, and to every node the new ranks go to), starts them as MPI
// copies and answers (MpiSpawnReply). An app's env holds only what the
// program adds to the job's environment (OMPI_PARENT_PORT, OMPI_MCA_*).
struct MpiSpawnApp {
  std::uint32_t count = 1;
  std::vector<std::string> argv;     // argv[0]: the program
  std::vector<std::string> env;      // "NAME=value" added to the job's
  std::string cwd;                   // "": the job's
  std::string where;                 // a node name, or "" for the placement's choice
  bool operator==(const MpiSpawnApp&) const = default;
};

// From an MPICH copy's PMI server (request_id with kPmiRequestBit): the
// children are MPICH copies (kSpawnPmi) and `kvs` ("key=value", PMI's
// preput: PARENT_ROOT_PORT_NAME) starts their key-value space.
struct MpiSpawn {
  static constexpr MessageType kType = MessageType::kMpiSpawn;
  std::uint64_t request_id = 0;      // the helper's, sent back in the reply
  std::int32_t parent_rank = 0;      // the asker (a rank of the job)
  std::vector<MpiSpawnApp> apps;
  std::vector<std::string> kvs;
  bool operator==(const MpiSpawn&) const = default;
};

// Home -> the asker's node -> its helper: the new namespace, or why not.
struct MpiSpawnReply {
  static constexpr MessageType kType = MessageType::kMpiSpawnReply;
  std::uint64_t request_id = 0;
  std::int32_t status = 0;           // a PMIx status: 0 success
  std::string reason;
  std::string nspace;
  bool operator==(const MpiSpawnReply&) const = default;
};

// Home -> every node with MPI copies of the job (before any copy of the new
// namespace starts): spawned ranks first_rank .. first_rank+N-1 of the job
// are ranks 0..N-1 of PMIx namespace `nspace`, rank_nodes[i] runs rank i.
struct MpiNamespace {
  static constexpr MessageType kType = MessageType::kMpiNamespace;
  std::string nspace;
  std::int32_t first_rank = 0;
  std::vector<std::uint32_t> rank_nodes;
  std::vector<std::uint32_t> app_sizes;  // ranks of each app, in order (PMIX_APPNUM)
  std::int32_t parent_rank = 0;          // the job rank that asked (PMIX_PARENT_ID)
  std::uint32_t flags = kSpawnPmix;      // kSpawnPmix: a PMIx namespace; kSpawnPmi: an MPICH (PMI) one
  std::vector<std::string> kvs;          // PMI: its key-value space's first pairs ("key=value")
  bool operator==(const MpiNamespace&) const = default;
};

using Message = std::variant<Hello, HelloReject, LoadReport, SpawnGuest, GuestStarted,
                             GuestOutput, GuestStdin, GuestSignal, GuestExited, Shutdown,
                             ImageBegin, ImageChunk, ImageEnd, NodeLost, MigrateRequest,
                             MigrateResult, OutputCredit, BalanceReport, MigrateProgress, OutputFds,
                             MpiJobMap, FenceContribution, FenceRelease, ModexRequest, ModexReply,
                             NamePublish, NameLookup, NameUnpublish, NameReply, GuestAttach, GuestSpawn,
                             GuestSpawnReply, GuestMessage, MpiSpawn, MpiSpawnReply, MpiNamespace, StdinCredit, PtyResize,
                             PrecopyPages>;

MessageType message_type(const Message& message);
// "Hello", "GuestOutput", ...; "unknown" for a code no message has.
std::string_view message_type_name(MessageType type);

// The message as one frame (header + payload), ready for any transport.
Frame encode_frame(const Message& message);
// The same for one alternative, without building a Message (no copy of its bytes).
template <typename M>
  requires(!std::is_same_v<M, Message> && std::is_constructible_v<Message, const M&>)
Frame encode_frame(const M& message);

// The message in a frame: the header is checked first (magic, version,
// length, checksum), then the payload, which must be consumed exactly.
Expected<Message> decode_frame(std::span<const std::uint8_t> frame);

struct FrameHeader {
  std::uint16_t version = kProtocolVersion;
  MessageType type = MessageType::kHello;
  std::uint32_t payload_size = 0;
  std::uint32_t checksum = 0;
};

// The header at the start of `bytes` (which may hold more, e.g. a stream):
// checks size, magic, protocol version and the length limit, not the checksum.
Expected<FrameHeader> parse_frame_header(std::span<const std::uint8_t> bytes);

// The protocol version a frame claims, if it starts with the magic. Lets a
// receiver tell a version mismatch from corruption.
std::optional<std::uint16_t> frame_protocol_version(std::span<const std::uint8_t> frame);

// Wrap an already encoded payload. `version` other than kProtocolVersion is
// for tests that play a daemon of another release.
Frame make_frame(MessageType type, std::span<const std::uint8_t> payload,
                 std::uint16_t version = kProtocolVersion);

// Encoded payload of a message, without header.
Bytes encode_payload(const Message& message);

// Does the daemon that sent `peer` speak our protocol? The error names the
// node, its release and both protocol versions.
Status check_hello(const Hello& peer, std::string_view our_mosix_version);

// CRC32C (Castagnoli), continuing from `crc` (0 to start).
std::uint32_t crc32c(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0);

// GuestOutput frames without copies of their bytes, for the output path: a
// node encodes straight from its read buffer, the home node forwards the frame
// as it came (routing on the rank alone), mosixrun writes the bytes out from
// where they arrived. Same bytes on the wire as encode_frame(GuestOutput).
Frame encode_guest_output(std::int32_t rank, OutputStream stream,
                          std::span<const std::uint8_t> bytes);
// A GuestOutput frame is this much longer than the output it carries.
inline constexpr std::size_t kGuestOutputOverhead = kFrameHeaderSize + 9;

struct GuestOutputView {
  std::int32_t rank = 0;
  OutputStream stream = OutputStream::kStdout;
  std::span<const std::uint8_t> bytes;  // inside the frame
};

// The rank of a GuestOutput frame of our protocol version, from its header
// and first field alone (nothing else is checked); nothing for any other frame.
std::optional<std::int32_t> guest_output_rank(std::span<const std::uint8_t> frame);

// decode_frame() of a GuestOutput frame, every check included, with the bytes
// left where they are. `verify_checksum` false skips the CRC only: for frames
// that crossed no wire (every daemon of the job on this machine).
Expected<GuestOutputView> view_guest_output(std::span<const std::uint8_t> frame,
                                            bool verify_checksum = true);

}  // namespace mosix
