#include "runtime/core/precopy_policy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace mosix {
namespace {

constexpr std::uint64_t kMiB = 1u << 20;

struct Case {
  const char* name;
  std::vector<std::uint64_t> sent;
  bool done;
};

TEST(PrecopyPolicyTest, StopsWhenSmallStalledOrOutOfRounds) {
  PrecopyParams p;  // 8 rounds, 4 MiB, 0.5
  const Case cases[] = {
      {"no round yet", {}, false},
      {"first round of a large guest", {512 * kMiB}, false},
      {"first round already small", {3 * kMiB}, true},
      {"idle guest: second round empty", {512 * kMiB, 0}, true},
      {"shrinking fast", {512 * kMiB, 100 * kMiB}, false},
      {"shrinking to small", {512 * kMiB, 100 * kMiB, 20 * kMiB, 4 * kMiB}, true},
      {"stalled: writes as fast as sent", {512 * kMiB, 100 * kMiB, 90 * kMiB}, true},
      {"exactly half goes on", {512 * kMiB, 256 * kMiB}, false},
      {"grew", {64 * kMiB, 128 * kMiB}, true},
      {"seven halving rounds go on", {2048 * kMiB, 1024 * kMiB, 512 * kMiB, 256 * kMiB, 128 * kMiB, 64 * kMiB, 32 * kMiB},
       false},
      {"the eighth is the last",
       {2048 * kMiB, 1024 * kMiB, 512 * kMiB, 256 * kMiB, 128 * kMiB, 64 * kMiB, 32 * kMiB, 16 * kMiB},
       true},
  };
  for (const Case& c : cases) EXPECT_EQ(precopy_done(p, c.sent), c.done) << c.name;
}

TEST(PrecopyPolicyTest, RoundLimitCountsEveryRound) {
  PrecopyParams p;
  p.max_rounds = 2;
  p.small_bytes = 0;
  p.shrink = 0.9;
  EXPECT_FALSE(precopy_done(p, std::vector<std::uint64_t>{100 * kMiB}));
  EXPECT_TRUE(precopy_done(p, std::vector<std::uint64_t>{100 * kMiB, 10 * kMiB}));
}

}  // namespace
}  // namespace mosix
