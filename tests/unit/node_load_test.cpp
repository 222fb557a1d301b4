#include "runtime/topology/node_load.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

TEST(ParseLoadavg, ReadsTheFiveFields) {
  auto load = parse_loadavg("0.52 0.31 0.12 2/345 6789\n");
  ASSERT_TRUE(load.ok()) << load.error().message;
  EXPECT_DOUBLE_EQ(load->avg1, 0.52);
  EXPECT_DOUBLE_EQ(load->avg5, 0.31);
  EXPECT_DOUBLE_EQ(load->avg15, 0.12);
  EXPECT_EQ(load->running, 2);
  EXPECT_EQ(load->threads, 345);
}

TEST(ParseLoadavg, RefusesGarbage) {
  EXPECT_FALSE(parse_loadavg("").ok());
  EXPECT_FALSE(parse_loadavg("0.1 0.2").ok());
  EXPECT_FALSE(parse_loadavg("0.1 0.2 0.3 4-5 6").ok());
}

TEST(ParseMeminfo, TotalAndAvailableInBytes) {
  auto mem = parse_meminfo(
      "MemTotal:        4679884 kB\n"
      "MemFree:          123456 kB\n"
      "MemAvailable:    3500000 kB\n"
      "HugePages_Total:       0\n");
  ASSERT_TRUE(mem.ok()) << mem.error().message;
  EXPECT_EQ(mem->total_bytes, 4679884ull * 1024);
  EXPECT_EQ(mem->available_bytes, 3500000ull * 1024);
}

TEST(ParseMeminfo, MissingMemAvailableIsAnError) {
  EXPECT_FALSE(parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\n").ok());
}

TEST(ReadProc, ThisNodeHasLoadAndMemory) {
  auto load = read_loadavg();
  ASSERT_TRUE(load.ok()) << load.error().message;
  EXPECT_GE(load->threads, 1);
  auto mem = read_meminfo();
  ASSERT_TRUE(mem.ok()) << mem.error().message;
  EXPECT_GT(mem->total_bytes, 0u);
  EXPECT_LE(mem->available_bytes, mem->total_bytes);
}

}  // namespace
}  // namespace mosix
