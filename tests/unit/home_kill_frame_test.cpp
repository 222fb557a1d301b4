#include "runtime/core/home_kill_frame.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/core/protocol.h"

namespace mosix {
namespace {

// The agent's frame is encode_frame()'s, byte for byte, both ways.
TEST(HomeKillFrameTest, SameBytesAsTheProtocol) {
  const HomeKill asked{(1ull << 40) | 77, 12, 3, -4321, 10, false, 0, 4322, true, -1, (1ull << 60) | 42};
  home_kill_frame::Fields f{asked.request_id, asked.rank, asked.asker_node, asked.pid, asked.signo, false, 0,
                            asked.tid, asked.queued, asked.code, asked.value};
  std::uint8_t out[home_kill_frame::kSize];
  home_kill_frame::encode(f, out);
  const Frame frame = encode_frame(asked);
  ASSERT_EQ(frame.size(), home_kill_frame::kSize);
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), out));

  const HomeKill answer{asked.request_id, 12, 3, -4321, 10, true, 3, 4322, true, -1, (1ull << 60) | 42};
  const Frame back = encode_frame(answer);
  std::uint8_t in[home_kill_frame::kSize];
  std::copy(back.begin(), back.end(), in);
  home_kill_frame::Fields got;
  ASSERT_TRUE(home_kill_frame::decode(in, got));
  EXPECT_EQ(got.request_id, answer.request_id);
  EXPECT_EQ(got.rank, 12);
  EXPECT_EQ(got.asker_node, 3);
  EXPECT_EQ(got.pid, -4321);
  EXPECT_EQ(got.signo, 10);
  EXPECT_TRUE(got.answered);
  EXPECT_EQ(got.error, 3);
  EXPECT_EQ(got.tid, 4322);
  EXPECT_TRUE(got.queued);
  EXPECT_EQ(got.code, -1);
  EXPECT_EQ(got.value, (1ull << 60) | 42);
}

TEST(HomeKillFrameTest, RefusesDamagedFrames) {
  std::uint8_t good[home_kill_frame::kSize];
  home_kill_frame::encode({1, 2, 3, 4, 5, true, 0, 6, true, -1, 7}, good);
  home_kill_frame::Fields f;
  ASSERT_TRUE(home_kill_frame::decode(good, f));
  for (std::size_t i = 0; i < home_kill_frame::kSize; ++i) {
    std::uint8_t bad[home_kill_frame::kSize];
    std::copy(good, good + home_kill_frame::kSize, bad);
    bad[i] ^= 0x40;
    EXPECT_FALSE(home_kill_frame::decode(bad, f)) << "byte " << i;
  }
  const Frame other = encode_frame(GuestSignal{1, 2, 0});
  std::uint8_t wrong[home_kill_frame::kSize] = {};
  std::copy(other.begin(), other.begin() + static_cast<std::ptrdiff_t>(std::min(other.size(), home_kill_frame::kSize)), wrong);
  EXPECT_FALSE(home_kill_frame::decode(wrong, f));
}

}  // namespace
}  // namespace mosix
