#include "compat/pvm/order.h"

#include <gtest/gtest.h>
#include <string>

namespace mosix::pvm {
namespace {

using Out = std::vector<std::string>;

TEST(PvmOrderTest, InOrderGoesStraightThrough) {
  PerSenderOrder<std::string> order;
  EXPECT_EQ(order.arrive(3, 0, "a"), Out{"a"});
  EXPECT_EQ(order.arrive(3, 1, "b"), Out{"b"});
  EXPECT_EQ(order.waiting(), 0u);
}

TEST(PvmOrderTest, OneThatOvertookWaitsForTheGap) {
  PerSenderOrder<std::string> order;
  EXPECT_EQ(order.arrive(3, 0, "a"), Out{"a"});
  EXPECT_EQ(order.arrive(3, 2, "c"), Out{});
  EXPECT_EQ(order.arrive(3, 3, "d"), Out{});
  EXPECT_EQ(order.waiting(), 2u);
  EXPECT_EQ(order.arrive(3, 1, "b"), (Out{"b", "c", "d"}));
  EXPECT_EQ(order.waiting(), 0u);
  EXPECT_EQ(order.arrive(3, 4, "e"), Out{"e"});
}

TEST(PvmOrderTest, SendersAreCountedApart) {
  PerSenderOrder<std::string> order;
  EXPECT_EQ(order.arrive(1, 1, "x1"), Out{});
  EXPECT_EQ(order.arrive(2, 0, "y0"), Out{"y0"});
  EXPECT_EQ(order.arrive(1, 0, "x0"), (Out{"x0", "x1"}));
}

TEST(PvmOrderTest, ANumberSeenBeforeIsDropped) {
  PerSenderOrder<std::string> order;
  EXPECT_EQ(order.arrive(1, 0, "a"), Out{"a"});
  EXPECT_EQ(order.arrive(1, 0, "again"), Out{});
  EXPECT_EQ(order.waiting(), 0u);
}

}  // namespace
}  // namespace mosix::pvm
