#include "runtime/core/fence.h"

namespace mosix {

std::optional<FenceCollector::Release> FenceCollector::contribute(int node, FenceContribution contribution,
                                                                  const std::vector<std::uint32_t>& rank_nodes) {
  auto key = std::make_pair(contribution.ranks, contribution.fence_id);
  auto [it, fresh] = pending_.try_emplace(key);
  Pending& p = it->second;
  bool unknown_rank = false;
  if (fresh) {
    if (contribution.ranks.empty()) {
      for (std::uint32_t n : rank_nodes) p.expected.insert(static_cast<int>(n));
    }
    for (std::int32_t r : contribution.ranks) {
      if (r < 0 || static_cast<std::size_t>(r) >= rank_nodes.size()) {
        unknown_rank = true;
      } else {
        p.expected.insert(static_cast<int>(rank_nodes[static_cast<std::size_t>(r)]));
      }
    }
  }
  p.expected.insert(node);  // it has participants, whatever the map says
  p.data.try_emplace(node, std::move(contribution.data));  // a second word from a node changes nothing
  Release release;
  release.message.fence_id = key.second;
  release.message.ranks = key.first;
  if (unknown_rank) {
    release.message.status = kFenceFailed;
  } else {
    if (p.data.size() < p.expected.size()) return std::nullopt;
    for (auto& [n, bytes] : p.data) release.message.data.insert(release.message.data.end(), bytes.begin(), bytes.end());
  }
  release.nodes.assign(p.expected.begin(), p.expected.end());
  pending_.erase(it);
  return release;
}

std::vector<FenceCollector::Release> FenceCollector::node_lost(int node) {
  std::vector<Release> failed;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!it->second.expected.count(node)) {
      ++it;
      continue;
    }
    Release r;
    r.message.fence_id = it->first.second;
    r.message.ranks = it->first.first;
    r.message.status = kFenceFailed;
    for (int n : it->second.expected) {
      if (n != node) r.nodes.push_back(n);
    }
    failed.push_back(std::move(r));
    it = pending_.erase(it);
  }
  return failed;
}

}  // namespace mosix
