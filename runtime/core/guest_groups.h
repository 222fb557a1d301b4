// Named groups of a job's guests, kept by the home node for compat/pvm's
// group functions (pvm_joingroup, pvm_lvgroup, pvm_gsize, pvm_getinst,
// pvm_gettid, pvm_barrier; pvm_bcast and pvm_reduce use the member list).
// A member's instance number is the lowest free one when it joins; a
// barrier releases its waiters once `count` members (-1: the group's size at
// that moment) wait in it. A freeze (pvm_freezegroup) answers once the group
// has `count` members (-1: at once). A rank that ends leaves every group. Results are
// a value >= 0 or a negative code below (PVM's own numbers, so the library
// passes them on). Pure: std only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace mosix {

enum class GroupOp : std::int32_t { kJoin = 1, kLeave = 2, kSize = 3, kInstOf = 4, kRankOf = 5, kBarrier = 6, kMembers = 7,
                                     kFreeze = 8 };

inline constexpr int kGroupBadParam = -2;
inline constexpr int kGroupNull = -17;      // no name
inline constexpr int kGroupDup = -18;       // already a member
inline constexpr int kGroupNone = -19;      // no such group
inline constexpr int kGroupNotMember = -20;
inline constexpr int kGroupNoInst = -21;

struct GroupRequest {
  GroupOp op = GroupOp::kSize;
  std::string name;
  std::int32_t arg = 0;  // kInstOf: a rank; kRankOf: an instance; kBarrier, kFreeze: the count
};

// The request's bytes in a GuestMessage (little-endian), and back.
std::vector<std::uint8_t> encode_group_request(const GroupRequest& request);
std::optional<GroupRequest> decode_group_request(std::span<const std::uint8_t> bytes);

struct GroupAnswer {
  int to_rank = 0;
  int result = 0;
  std::vector<std::int32_t> ranks;  // kMembers: the members' ranks by instance (-1: a hole)
};

class GuestGroups {
 public:
  // Answers to send: the asker's, or none yet (a barrier not full), plus
  // those of waiters it released.
  std::vector<GroupAnswer> request(int from_rank, const GroupRequest& request);
  // The rank ended: it leaves its groups, which may release a barrier.
  std::vector<GroupAnswer> rank_ended(int rank);

 private:
  struct Group {
    std::map<int, int> rank_of;   // instance -> rank
    std::vector<int> waiting;     // ranks in the barrier
    int barrier_count = -1;
    std::vector<std::pair<int, int>> freezing;  // (rank, size it waits for)
  };
  int size(const Group& g) const { return static_cast<int>(g.rank_of.size()); }
  void release_if_full(Group& g, std::vector<GroupAnswer>& out);
  void release_frozen(Group& g, std::vector<GroupAnswer>& out);
  std::map<std::string, Group> groups_;
};

}  // namespace mosix
