#include "runtime/core/guest_groups.h"

#include <algorithm>

#include "runtime/core/little_endian.h"

namespace mosix {

std::vector<std::uint8_t> encode_group_request(const GroupRequest& request) {
  std::vector<std::uint8_t> out(12 + request.name.size());
  auto put = [&](size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out[at + static_cast<size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  put(0, static_cast<std::uint32_t>(request.op));
  put(4, static_cast<std::uint32_t>(request.arg));
  put(8, static_cast<std::uint32_t>(request.name.size()));
  std::copy(request.name.begin(), request.name.end(), out.begin() + 12);
  return out;
}

std::optional<GroupRequest> decode_group_request(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 12) return std::nullopt;
  auto get = [&](size_t at) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(bytes[at + static_cast<size_t>(i)]) << (8 * i);
    return v;
  };
  GroupRequest r;
  std::uint32_t op = get(0);
  if (op < 1 || op > 8) return std::nullopt;
  r.op = static_cast<GroupOp>(op);
  r.arg = static_cast<std::int32_t>(get(4));
  if (get(8) != bytes.size() - 12) return std::nullopt;
  r.name.assign(bytes.begin() + 12, bytes.end());
  return r;
}

void GuestGroups::release_if_full(Group& g, std::vector<GroupAnswer>& out) {
  if (g.waiting.empty()) return;
  const int need = g.barrier_count < 0 ? size(g) : g.barrier_count;
  if (static_cast<int>(g.waiting.size()) < need) return;
  for (int r : g.waiting) out.push_back(GroupAnswer{r, 0, {}});
  g.waiting.clear();
  g.barrier_count = -1;
}

void GuestGroups::release_frozen(Group& g, std::vector<GroupAnswer>& out) {
  std::erase_if(g.freezing, [&](const std::pair<int, int>& f) {
    if (size(g) < f.second) return false;
    out.push_back(GroupAnswer{f.first, 0, {}});
    return true;
  });
}

std::vector<GroupAnswer> GuestGroups::request(int from_rank, const GroupRequest& request) {
  std::vector<GroupAnswer> out;
  auto answer = [&](int result) { out.push_back(GroupAnswer{from_rank, result, {}}); };
  if (request.name.empty()) {
    answer(kGroupNull);
    return out;
  }
  auto it = groups_.find(request.name);
  auto inst_of = [](const Group& g, int rank) {
    for (const auto& [inst, r] : g.rank_of) {
      if (r == rank) return inst;
    }
    return -1;
  };
  switch (request.op) {
    case GroupOp::kJoin: {
      Group& g = groups_[request.name];
      if (inst_of(g, from_rank) >= 0) {
        answer(kGroupDup);
        break;
      }
      int inst = 0;
      while (g.rank_of.count(inst)) ++inst;
      g.rank_of[inst] = from_rank;
      answer(inst);
      release_frozen(g, out);
      break;
    }
    case GroupOp::kLeave: {
      if (it == groups_.end()) {
        answer(kGroupNone);
        break;
      }
      int inst = inst_of(it->second, from_rank);
      if (inst < 0) {
        answer(kGroupNotMember);
        break;
      }
      it->second.rank_of.erase(inst);
      answer(0);
      release_if_full(it->second, out);
      if (it->second.rank_of.empty() && it->second.waiting.empty() && it->second.freezing.empty()) groups_.erase(it);
      break;
    }
    case GroupOp::kSize:
      answer(it == groups_.end() ? kGroupNone : size(it->second));
      break;
    case GroupOp::kInstOf: {
      if (it == groups_.end()) {
        answer(kGroupNone);
        break;
      }
      int inst = inst_of(it->second, request.arg);
      answer(inst < 0 ? kGroupNotMember : inst);
      break;
    }
    case GroupOp::kRankOf: {
      if (it == groups_.end()) {
        answer(kGroupNone);
      } else if (request.arg < 0) {
        answer(kGroupBadParam);
      } else {
        auto m = it->second.rank_of.find(request.arg);
        answer(m == it->second.rank_of.end() ? kGroupNoInst : m->second);
      }
      break;
    }
    case GroupOp::kBarrier: {
      if (it == groups_.end()) {
        answer(kGroupNone);
        break;
      }
      Group& g = it->second;
      if (inst_of(g, from_rank) < 0) {
        answer(kGroupNotMember);
        break;
      }
      if (request.arg == 0 || request.arg < -1) {
        answer(kGroupBadParam);
        break;
      }
      if (g.waiting.empty()) g.barrier_count = request.arg;
      g.waiting.push_back(from_rank);
      release_if_full(g, out);
      break;
    }
    case GroupOp::kFreeze: {
      if (request.arg < -1) {
        answer(kGroupBadParam);
        break;
      }
      Group& g = groups_[request.name];
      g.freezing.emplace_back(from_rank, request.arg);
      release_frozen(g, out);
      break;
    }
    case GroupOp::kMembers: {
      if (it == groups_.end()) {
        answer(kGroupNone);
        break;
      }
      GroupAnswer a{from_rank, size(it->second), {}};
      int top = it->second.rank_of.empty() ? -1 : it->second.rank_of.rbegin()->first;
      for (int inst = 0; inst <= top; ++inst) {
        auto m = it->second.rank_of.find(inst);
        a.ranks.push_back(m == it->second.rank_of.end() ? -1 : m->second);
      }
      out.push_back(std::move(a));
      break;
    }
  }
  return out;
}

std::vector<GroupAnswer> GuestGroups::rank_ended(int rank) {
  std::vector<GroupAnswer> out;
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& g = it->second;
    std::erase_if(g.rank_of, [&](const auto& m) { return m.second == rank; });
    std::erase(g.waiting, rank);
    std::erase_if(g.freezing, [&](const std::pair<int, int>& f) { return f.first == rank; });
    release_if_full(g, out);
    if (g.rank_of.empty() && g.waiting.empty() && g.freezing.empty()) {
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace mosix
