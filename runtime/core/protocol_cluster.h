// Messages of the cluster itself: a daemon joining (Hello), the load gossip,
// a node lost and the ranks that restart, the end of the job (see protocol.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/message_type.h"

namespace mosix {

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

struct Shutdown {
  static constexpr MessageType kType = MessageType::kShutdown;
  std::string reason;
  bool operator==(const Shutdown&) const = default;
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

}  // namespace mosix
