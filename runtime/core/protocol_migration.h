// Messages of checkpoint images and migration: the image stream, pre-copy
// pages, a move's request, progress and result, and the balancer's
// verdicts (see protocol.h and docs/migration.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/message_type.h"

namespace mosix {

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
// migration_id. A later message for the same address replaces it. With no
// bytes and `hugepage` not 0, before the first round: the guest asked for
// transparent huge pages (MADV_HUGEPAGE) on [address, address + hugepage),
// so the target maps that range whole before it puts pages there.
struct PrecopyPages {
  static constexpr MessageType kType = MessageType::kPrecopyPages;
  std::uint64_t migration_id = 0;
  std::uint64_t address = 0;
  Bytes bytes;
  std::uint64_t zero = 0;
  std::uint64_t hugepage = 0;
  bool operator==(const PrecopyPages&) const = default;
};

// Pre-copy, target -> source: the target has taken `bytes` of the
// PrecopyPages bytes of `migration_id` (stored, and put in place by its
// early restorer where one runs). The source stops the guest once every
// byte it sent is taken (or after a bounded wait), so that the stop does not
// wait for the rounds' tail.
struct PrecopyTaken {
  static constexpr MessageType kType = MessageType::kPrecopyTaken;
  std::uint64_t migration_id = 0;
  std::uint64_t bytes = 0;
  bool operator==(const PrecopyTaken&) const = default;
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
  std::uint64_t early_bytes = 0;     // pre-copied bytes the target's early restorer had before the go
  bool operator==(const MigrateResult&) const = default;
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

}  // namespace mosix
