// PMIx fences across nodes, the home node's side: each node taking part
// sends its copies' data once they all entered the fence (FenceContribution);
// when every such node has, each gets everyone's data back (FenceRelease).
// Pure: which nodes take part follows from where the participants run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "runtime/core/protocol.h"

namespace mosix {

// FenceRelease::status when a fence cannot complete: PMIx's PMIX_ERROR.
inline constexpr std::int32_t kFenceFailed = -1;

class FenceCollector {
 public:
  struct Release {
    std::vector<int> nodes;  // to send `message` to (transport ranks, ascending)
    FenceRelease message;
  };

  // `rank_nodes[r]`: the node of rank r. The release, once the last node
  // with participants contributed: their data in node order. A participant
  // the job does not have fails the fence at once (to the nodes known).
  std::optional<Release> contribute(int node, FenceContribution contribution,
                                    const std::vector<std::uint32_t>& rank_nodes);

  // A node is gone: every fence that waits for it fails, released to the
  // other nodes taking part.
  std::vector<Release> node_lost(int node);

  std::size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    std::set<int> expected;
    std::map<int, Bytes> data;  // per node that contributed
  };
  std::map<std::pair<std::vector<std::int32_t>, std::uint64_t>, Pending> pending_;
};

}  // namespace mosix
