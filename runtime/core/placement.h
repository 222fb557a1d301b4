// Initial placement of a job's copies on nodes: which node each rank starts
// on. Pure: the nodes' last known loads in, one node index per rank out.
//
// Default (MapBy::kLoad): copies are placed one at a time, each on the node
// whose load would be lowest with it added (load is per unit of capacity,
// so a node twice as fast takes twice the copies), among the nodes that have
// the memory the copy needs and, if a host list gave slots, a free slot.
// Ties go to the faster node, then to the lower index. Loads already on the
// nodes count, so a busy node gets fewer copies.
//
// MapBy::kSlot and MapBy::kNode keep mpirun's meaning: by slot fills each
// node's slots in order before the next node; by node deals ranks round-robin
// one per node, skipping full nodes. With --oversubscribe, ranks beyond the
// slots are spread evenly (by slot: each node takes an equal share of the
// excess in one block; by node: the round-robin goes on over all nodes).
// These modes ignore load but still check memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/hostlist.h"
#include "runtime/core/node_state.h"

namespace mosix {

enum class MapBy { kLoad, kSlot, kNode };

struct PlacementRequest {
  int copies = 1;
  std::uint64_t memory_per_copy = 0;  // bytes each copy needs; 0: unknown, not checked
  MapBy map_by = MapBy::kLoad;
  // Slots per node, in the order of the nodes; a value < 0 means "as many as
  // the node has cores". Empty: no host list; kLoad then has no slot limit
  // and kSlot/kNode use the cores.
  std::vector<int> slots;
  bool oversubscribe = false;
};

// One node index (into `nodes`) per rank, or an Error naming why no
// placement exists: not enough slots without --oversubscribe, or no node with
// the memory a copy needs.
Expected<std::vector<std::size_t>> place(std::span<const NodeLoad> nodes,
                                         const PlacementRequest& request);

// Placement at exec (fork and forget): where a guest's child that starts a
// program runs. It stays on its parent's node `here` while that node has a
// free core with it added (runnable + 1 <= cores): a script's helpers and a
// pipeline's stages cost nothing to keep, and a lone child gains nothing
// from a move. Otherwise it goes to the node whose load with it added is
// lowest (ties to the faster node, then the lower index), if that load is
// lower than here's with it; else it stays. Loads are as place()'s: the
// caller adds what it placed since each node last reported.
// With `leave` (mosixrun --spread always) it goes to the least loaded other
// node whatever here's load, if there is one.
std::size_t place_at_exec(std::span<const NodeLoad> nodes, std::size_t here, bool leave = false);

// Slots of a host list, for PlacementRequest::slots: the given count, or -1
// ("the node's cores") where the user gave none.
std::vector<int> slots_from_hosts(std::span<const HostSlots> hosts);

// A node as a home for a rank lost with its node, restarted from its image.
// `usable` is false for a node that is gone, has not said hello, or takes no
// copies (0 slots: a home that only routes).
struct RestartCandidate {
  bool usable = false;
  double speed = 1.0;  // per core
  int cores = 1;
  int ranks = 0;       // ranks it holds now
};

// Where the next lost rank restarts: the usable node with the fewest ranks per
// unit of capacity (speed x cores) once it holds it; ties go to the lower
// index. None when no node is usable. The caller counts the rank on the node
// it picked before asking for the next.
std::optional<std::size_t> pick_restart_node(std::span<const RestartCandidate> nodes);

}  // namespace mosix
