#include "runtime/core/proc_stat.h"

#include <gtest/gtest.h>

#include <string>

namespace mosix {
namespace {

// The fields after the command name of a real line (cat's /proc/self/stat),
// from field 3 (state) on.
constexpr const char* kAfterComm =
    "R 12612 12612 10744 0 -1 4194304 99 0 0 0 7 3 5 2 20 0 1 0 2193283 3133440 418 18446744073709551615 "
    "94393793196032 94393793215913 140733926352784 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94393793231920 "
    "94393793233536 94394706370560 140733926353536 140733926353556 140733926353556 140733926354923 0\n";

TEST(ProcStat, ParsesANormalLine) {
  auto st = parse_proc_stat(std::string("12616 (cat) ") + kAfterComm);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pid, 12616);
  EXPECT_EQ(st->comm, "cat");
  EXPECT_EQ(st->state, 'R');
  EXPECT_EQ(st->ppid, 12612);
  EXPECT_EQ(st->pgrp, 12612);
  EXPECT_EQ(st->utime, 7u);
  EXPECT_EQ(st->stime, 3u);
  EXPECT_EQ(st->cutime, 5u);
  EXPECT_EQ(st->cstime, 2u);
  EXPECT_EQ(st->starttime, 2193283u);
  EXPECT_EQ(st->flags, 4194304u);
  EXPECT_FALSE(st->zombie());
  EXPECT_FALSE(st->exiting());
}

// PF_EXITING (0x4): the process is dying (e.g. of a SIGKILL it sent itself)
// but is not a zombie yet.
TEST(ProcStat, ExitingIsSeenBeforeTheZombie) {
  auto st = parse_proc_stat("12616 (sh) R 12612 12612 10744 0 -1 4194308 99 0 0 0 7 3 0 0 20 0 1 0 2193283 3 4\n");
  ASSERT_TRUE(st);
  EXPECT_FALSE(st->zombie());
  EXPECT_TRUE(st->exiting());
}

TEST(ProcStat, CommandNameWithSpacesAndParentheses) {
  for (const std::string comm : {"a b", "x) R 1 2 (", "((", "))", ") 5 (", ""}) {
    auto st = parse_proc_stat("77 (" + comm + ") " + kAfterComm);
    ASSERT_TRUE(st) << comm;
    EXPECT_EQ(st->pid, 77) << comm;
    EXPECT_EQ(st->comm, comm);
    EXPECT_EQ(st->state, 'R') << comm;
    EXPECT_EQ(st->ppid, 12612) << comm;
    EXPECT_EQ(st->starttime, 2193283u) << comm;
  }
}

TEST(ProcStat, ZombieAndDead) {
  std::string zombie = std::string("9 (z) Z") + (kAfterComm + 1);
  ASSERT_TRUE(parse_proc_stat(zombie));
  EXPECT_TRUE(parse_proc_stat(zombie)->zombie());
  std::string dead = std::string("9 (z) X") + (kAfterComm + 1);
  EXPECT_TRUE(parse_proc_stat(dead)->zombie());
}

TEST(ProcStat, TruncatedLine) {
  // Cut at field 21, after field 22's first digit, before the state, at the name.
  const std::string full = std::string("5 (sh) ") + kAfterComm;
  const std::size_t field22 = full.find(" 2193283 ");
  ASSERT_NE(field22, std::string::npos);
  EXPECT_FALSE(parse_proc_stat(full.substr(0, field22)));
  EXPECT_TRUE(parse_proc_stat(full.substr(0, field22 + 2)));  // "2" is a whole field 22
  EXPECT_EQ(parse_proc_stat(full.substr(0, field22 + 2))->starttime, 2u);
  EXPECT_FALSE(parse_proc_stat("5 (sh) "));
  EXPECT_FALSE(parse_proc_stat("5 (sh"));
  EXPECT_FALSE(parse_proc_stat("5 (sh) R 1 1"));
  EXPECT_FALSE(parse_proc_stat(""));
}

TEST(ProcStat, Garbage) {
  EXPECT_FALSE(parse_proc_stat("hello world"));
  EXPECT_FALSE(parse_proc_stat(std::string("x (sh) ") + kAfterComm));        // pid not a number
  EXPECT_FALSE(parse_proc_stat(std::string("5 sh) ") + kAfterComm));         // no "("
  EXPECT_FALSE(parse_proc_stat(std::string("5 (sh) RS") + (kAfterComm + 1)));  // state of two letters
  std::string bad_start = std::string("5 (sh) ") + kAfterComm;
  bad_start.replace(bad_start.find("2193283"), 7, "21x3283");
  EXPECT_FALSE(parse_proc_stat(bad_start));
  std::string bad_utime = std::string("5 (sh) ") + kAfterComm;
  bad_utime.replace(bad_utime.find(" 7 3 "), 5, " - 3 ");
  EXPECT_FALSE(parse_proc_stat(bad_utime));
  EXPECT_FALSE(parse_proc_stat(std::string(") (") + kAfterComm));
}

}  // namespace
}  // namespace mosix
