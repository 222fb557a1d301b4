#include "compat/pvm/pack.h"

#include <cstring>
#include <gtest/gtest.h>

namespace mosix::pvm {
namespace {

TEST(PvmTidTest, RanksPrintAsPvmsTaskIds) {
  EXPECT_EQ(tid_of_rank(0), 0x40001);
  EXPECT_EQ(tid_of_rank(1), 0x40002);
  EXPECT_EQ(rank_of_tid(0x40002), 1);
  EXPECT_EQ(host_tid(0), 0x40000);
  EXPECT_EQ(host_tid(2), 0xc0000);
}

TEST(PvmTidTest, WhatIsNoTaskIdHasNoRank) {
  for (int tid : {0, -1, -23, 0x40000, 0x80001, static_cast<int>(0x80000000u)}) {
    EXPECT_EQ(rank_of_tid(tid), -1) << std::hex << tid;
  }
}

TEST(PvmPackTest, DefaultEncodingIsNetworkByteOrder) {
  std::vector<std::uint8_t> buf;
  int i = 0x01020304;
  short s = 0x0506;
  double d = 1.0;
  pack_items(buf, Encoding::kDefault, &i, 1, 1, sizeof i);
  pack_items(buf, Encoding::kDefault, &s, 1, 1, sizeof s);
  pack_items(buf, Encoding::kDefault, &d, 1, 1, sizeof d);
  std::vector<std::uint8_t> want = {1, 2, 3, 4, 5, 6, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(buf, want);
}

TEST(PvmPackTest, RawEncodingCopiesTheHostsBytes) {
  std::vector<std::uint8_t> buf;
  int i = 0x01020304;
  pack_items(buf, Encoding::kRaw, &i, 1, 1, sizeof i);
  ASSERT_EQ(buf.size(), sizeof i);
  EXPECT_EQ(std::memcmp(buf.data(), &i, sizeof i), 0);
}

// Every item size the API packs, in every encoding, with a stride: what
// comes out is what went in, at the places the stride names.
TEST(PvmPackTest, EveryTypeRoundTripsWithStride) {
  for (Encoding enc : {Encoding::kDefault, Encoding::kRaw, Encoding::kInPlace}) {
    for (std::size_t size : {1u, 2u, 4u, 8u}) {
      std::vector<std::uint8_t> items(6 * size), back(6 * size, 0);
      for (std::size_t b = 0; b < items.size(); ++b) items[b] = static_cast<std::uint8_t>(b * 7 + 1);
      std::vector<std::uint8_t> buf;
      pack_items(buf, enc, items.data(), 3, 2, size);  // items 0, 2, 4
      EXPECT_EQ(buf.size(), 3 * size);
      std::size_t pos = 0;
      ASSERT_TRUE(unpack_items(buf, pos, enc, back.data(), 3, 2, size));
      EXPECT_EQ(pos, buf.size());
      for (std::size_t item : {0u, 2u, 4u}) {
        EXPECT_EQ(std::memcmp(&items[item * size], &back[item * size], size), 0) << size << " item " << item;
      }
      for (std::size_t item : {1u, 3u, 5u}) EXPECT_EQ(back[item * size], 0) << "stride gap written";
    }
  }
}

TEST(PvmPackTest, UnpackingPastTheEndFailsAndMovesNothing) {
  std::vector<std::uint8_t> buf;
  int v[2] = {7, 8};
  pack_items(buf, Encoding::kDefault, v, 2, 1, sizeof(int));
  std::size_t pos = 0;
  int out[3] = {};
  EXPECT_FALSE(unpack_items(buf, pos, Encoding::kDefault, out, 3, 1, sizeof(int)));
  EXPECT_EQ(pos, 0u);
  ASSERT_TRUE(unpack_items(buf, pos, Encoding::kDefault, out, 2, 1, sizeof(int)));
  EXPECT_EQ(out[0], 7);
  EXPECT_EQ(out[1], 8);
  EXPECT_FALSE(unpack_items(buf, pos, Encoding::kDefault, out, 1, 1, sizeof(int)));
}

TEST(PvmPackTest, StringsKeepTheirLengthAndEnd) {
  for (Encoding enc : {Encoding::kDefault, Encoding::kRaw}) {
    std::vector<std::uint8_t> buf;
    pack_string(buf, enc, "hello, world");
    pack_string(buf, enc, "");
    char out[32];
    std::size_t pos = 0;
    ASSERT_TRUE(unpack_string(buf, pos, enc, out));
    EXPECT_STREQ(out, "hello, world");
    ASSERT_TRUE(unpack_string(buf, pos, enc, out));
    EXPECT_STREQ(out, "");
    EXPECT_FALSE(unpack_string(buf, pos, enc, out));
    buf.pop_back();  // the second string's length is cut
    pos = 0;
    ASSERT_TRUE(unpack_string(buf, pos, enc, out));
    EXPECT_FALSE(unpack_string(buf, pos, enc, out));
  }
}

}  // namespace
}  // namespace mosix::pvm
