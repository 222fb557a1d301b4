#include "runtime/core/range_set.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace mosix {
namespace {

using Parts = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

Parts parts(const RangeSet& s, std::uint64_t a, std::uint64_t b, bool covered) {
  Parts out;
  s.parts(a, b, covered, [&](std::uint64_t x, std::uint64_t y) { out.emplace_back(x, y); });
  return out;
}

TEST(RangeSet, AddMergesTouchingAndOverlapping) {
  RangeSet s;
  s.add(10, 20);
  s.add(30, 40);
  EXPECT_EQ(s.ranges().size(), 2u);
  s.add(20, 30);  // touches both
  ASSERT_EQ(s.ranges().size(), 1u);
  EXPECT_EQ(s.ranges()[0], (Range{10, 40}));
  s.add(5, 12);
  s.add(38, 50);
  s.add(60, 70);
  s.add(0, 1);
  ASSERT_EQ(s.ranges().size(), 3u);
  EXPECT_EQ(s.ranges()[0], (Range{0, 1}));
  EXPECT_EQ(s.ranges()[1], (Range{5, 50}));
  EXPECT_EQ(s.ranges()[2], (Range{60, 70}));
  s.add(7, 9);  // inside
  EXPECT_EQ(s.ranges().size(), 3u);
  s.add(3, 3);  // empty
  EXPECT_EQ(s.bytes(), 1u + 45u + 10u);
}

TEST(RangeSet, RemoveSplits) {
  RangeSet s;
  s.add(0, 100);
  s.remove(40, 60);
  ASSERT_EQ(s.ranges().size(), 2u);
  EXPECT_EQ(s.ranges()[0], (Range{0, 40}));
  EXPECT_EQ(s.ranges()[1], (Range{60, 100}));
  s.remove(30, 70);
  EXPECT_EQ(s.ranges()[0], (Range{0, 30}));
  EXPECT_EQ(s.ranges()[1], (Range{70, 100}));
  s.remove(0, 1000);
  EXPECT_TRUE(s.empty());
}

TEST(RangeSet, PartsInsideAndOutside) {
  RangeSet s;
  s.add(10, 20);
  s.add(30, 40);
  EXPECT_EQ(parts(s, 0, 50, true), (Parts{{10, 20}, {30, 40}}));
  EXPECT_EQ(parts(s, 0, 50, false), (Parts{{0, 10}, {20, 30}, {40, 50}}));
  EXPECT_EQ(parts(s, 15, 35, true), (Parts{{15, 20}, {30, 35}}));
  EXPECT_EQ(parts(s, 15, 35, false), (Parts{{20, 30}}));
  EXPECT_EQ(parts(s, 12, 18, false), (Parts{}));
  EXPECT_EQ(parts(s, 41, 45, true), (Parts{}));
  EXPECT_EQ(parts(s, 41, 45, false), (Parts{{41, 45}}));
  EXPECT_TRUE(s.contains(11, 19));
  EXPECT_FALSE(s.contains(15, 31));
  EXPECT_FALSE(s.contains(20, 30));
}

}  // namespace
}  // namespace mosix
