// load_le/store_le: the byte order every format of the project uses, on any
// host; the typed forms and the run-time-width forms agree.
#include "runtime/core/little_endian.h"

#include <array>
#include <cstdint>

#include <gtest/gtest.h>

namespace mosix {
namespace {

constexpr std::array<std::uint8_t, 8> kBytes = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

TEST(LittleEndian, LeastSignificantByteFirst) {
  EXPECT_EQ(load_le<std::uint8_t>(kBytes.data()), 0x01u);
  EXPECT_EQ(load_le<std::uint16_t>(kBytes.data()), 0x2301u);
  EXPECT_EQ(load_le<std::uint32_t>(kBytes.data()), 0x67452301u);
  EXPECT_EQ(load_le<std::uint64_t>(kBytes.data()), 0xefcdab8967452301ull);
  EXPECT_EQ(load_le<std::uint32_t>(kBytes.data() + 3), 0xcdab8967u) << "any alignment";
}

TEST(LittleEndian, StoreIsLoadsInverse) {
  std::array<std::uint8_t, 9> out{};
  store_le<std::uint64_t>(out.data() + 1, 0xefcdab8967452301ull);
  EXPECT_EQ(out[0], 0u) << "nothing before";
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(out[i + 1], kBytes[i]) << i;
  store_le<std::uint16_t>(out.data(), 0xbeef);
  EXPECT_EQ(out[0], 0xefu);
  EXPECT_EQ(out[1], 0xbeu);
  EXPECT_EQ(out[2], 0x23u) << "nothing after";
  store_le<std::uint32_t>(out.data(), 0xdeadbeefu);
  EXPECT_EQ(load_le<std::uint32_t>(out.data()), 0xdeadbeefu);
}

TEST(LittleEndian, RunTimeWidthsAgreeWithTheTypedForms) {
  for (std::size_t width = 1; width <= 8; ++width) {
    std::array<std::uint8_t, 8> out{};
    store_le(out.data(), 0xefcdab8967452301ull, width);
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(out[i], i < width ? kBytes[i] : 0u) << width << " " << i;
    const std::uint64_t mask = width == 8 ? ~0ull : (1ull << (8 * width)) - 1;
    EXPECT_EQ(load_le(kBytes.data(), width), 0xefcdab8967452301ull & mask) << width;
  }
  EXPECT_EQ(load_le(kBytes.data(), 4), load_le<std::uint32_t>(kBytes.data()));
  EXPECT_EQ(load_le(kBytes.data(), 2), load_le<std::uint16_t>(kBytes.data()));
}

constexpr std::uint32_t round_trip(std::uint32_t v) {
  std::uint8_t b[4] = {};
  store_le(b, v);
  return load_le<std::uint32_t>(b);
}
static_assert(round_trip(0x12345678u) == 0x12345678u, "usable in constant expressions");
static_assert(load_le(kBytes.data(), 3) == 0x452301u);

}  // namespace
}  // namespace mosix
