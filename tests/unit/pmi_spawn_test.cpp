#include "runtime/core/pmi_spawn.h"

#include <gtest/gtest.h>

namespace mosix::pmi {
namespace {

// What MPICH's PMI-2 client sends for MPI_Comm_spawn_multiple of two apps
// with a preput port and info keys (its items, after cmd=spawn).
KeyValues two_apps() {
  return {{"thrid", "0x1"},     {"ncmds", "2"},         {"preputcount", "1"}, {"ppkey0", "PARENT_ROOT_PORT_NAME"},
          {"ppval0", "port;0"}, {"subcmd", "/bin/a"},   {"maxprocs", "2"},    {"argc", "2"},
          {"argv0", "-x"},      {"argv1", "y=1"},       {"infokeycount", "2"}, {"infokey0", "wdir"},
          {"infoval0", "/tmp"}, {"infokey1", "host"},   {"infoval1", "vnode2"}, {"subcmd", "b"},
          {"maxprocs", "1"},    {"argc", "0"},          {"infokeycount", "0"}};
}

TEST(PmiSpawnTest, ReadsPmi2SpawnAsMpichSendsIt) {
  auto spawn = parse_spawn_v2(two_apps());
  ASSERT_TRUE(spawn) << spawn.error().message;
  ASSERT_EQ(spawn->apps.size(), 2u);
  EXPECT_EQ(spawn->preput, (KeyValues{{"PARENT_ROOT_PORT_NAME", "port;0"}}));
  const SpawnApp& a = spawn->apps[0];
  EXPECT_EQ(a.program, "/bin/a");
  EXPECT_EQ(a.maxprocs, 2);
  EXPECT_EQ(a.args, (std::vector<std::string>{"-x", "y=1"}));
  EXPECT_EQ(info_value(a, "wdir"), "/tmp");
  EXPECT_EQ(info_value(a, "host"), "vnode2");
  EXPECT_EQ(info_value(a, "path"), "");
  EXPECT_EQ(spawn->apps[1], (SpawnApp{"b", 1, {}, {}}));
}

TEST(PmiSpawnTest, OptionalCountsOfPmi2SpawnDefaultToZero) {
  // Older clients send no infokeycount (and Slurm's reads none); no preputcount is none.
  auto spawn = parse_spawn_v2({{"ncmds", "1"}, {"subcmd", "p"}, {"maxprocs", "3"}, {"argc", "1"}, {"argv0", "z"}});
  ASSERT_TRUE(spawn) << spawn.error().message;
  EXPECT_EQ(spawn->apps.at(0), (SpawnApp{"p", 3, {"z"}, {}}));
  EXPECT_TRUE(spawn->preput.empty());
}

struct BadCase {
  KeyValues items;
  const char* says;  // in the error
};

TEST(PmiSpawnTest, RefusesBadPmi2SpawnsSayingWhy) {
  const KeyValues app = {{"subcmd", "p"}, {"maxprocs", "1"}, {"argc", "0"}};
  auto with = [&](KeyValues top, KeyValues rest) {
    top.insert(top.end(), rest.begin(), rest.end());
    return top;
  };
  const BadCase cases[] = {
      {app, "no ncmds"},
      {with({{"ncmds", "2"}}, app), "ncmds=2 but 1 commands"},
      {{{"ncmds", "0"}}, "ncmds=0 but 0 commands"},
      {with({{"ncmds", "x"}}, app), "ncmds=x is not a number"},
      {with({{"ncmds", "1"}, {"preputcount", "1"}, {"ppkey0", "k"}}, app), "no ppval0"},
      {{{"ncmds", "1"}, {"subcmd", "p"}, {"argc", "0"}}, "command 1: no maxprocs"},
      {{{"ncmds", "1"}, {"subcmd", "p"}, {"maxprocs", "0"}, {"argc", "0"}}, "command 1: asks for 0 copies"},
      {{{"ncmds", "1"}, {"subcmd", "p"}, {"maxprocs", "-1"}, {"argc", "0"}}, "maxprocs=-1 is not a number"},
      {{{"ncmds", "1"}, {"subcmd", "p"}, {"maxprocs", "99999"}, {"argc", "0"}}, "maxprocs=99999"},
      {{{"ncmds", "1"}, {"subcmd", "p"}, {"maxprocs", "1"}}, "command 1: no argc"},
      {{{"ncmds", "1"}, {"subcmd", "p"}, {"maxprocs", "1"}, {"argc", "2"}, {"argv0", "a"}}, "no argv1"},
      {{{"ncmds", "1"}, {"subcmd", ""}, {"maxprocs", "1"}, {"argc", "0"}}, "names no program"},
      {{{"ncmds", "1"}, {"subcmd", "p"}, {"maxprocs", "1"}, {"maxprocs", "2"}, {"argc", "0"}}, "maxprocs twice"},
      {with({{"ncmds", "1"}}, with(app, {{"infokeycount", "1"}, {"infokey0", "wdir"}})), "no infoval0"},
  };
  for (const BadCase& bad : cases) {
    auto spawn = parse_spawn_v2(bad.items);
    ASSERT_FALSE(spawn) << bad.says;
    EXPECT_NE(spawn.error().message.find(bad.says), std::string::npos) << spawn.error().message;
  }
}

TEST(PmiSpawnTest, ReadsPmi1SpawnBlocks) {
  std::map<std::string, std::string> first = {
      {"nprocs", "2"},     {"execname", "/bin/a"}, {"totspawns", "2"},     {"spawnssofar", "1"},
      {"argcnt", "1"},     {"arg1", "x y"},        {"preput_num", "1"},    {"preput_key_0", "PARENT_ROOT_PORT_NAME"},
      {"preput_val_0", "p"}, {"info_num", "1"},    {"info_key_0", "wdir"}, {"info_val_0", "/tmp"}};
  auto block = parse_spawn_v1(first);
  ASSERT_TRUE(block) << block.error().message;
  EXPECT_EQ(block->app, (SpawnApp{"/bin/a", 2, {"x y"}, {{"wdir", "/tmp"}}}));
  EXPECT_EQ(block->preput, (KeyValues{{"PARENT_ROOT_PORT_NAME", "p"}}));
  EXPECT_FALSE(last_spawn_block(first));
  first["spawnssofar"] = "2";
  EXPECT_TRUE(last_spawn_block(first));
  first.erase("totspawns");
  EXPECT_TRUE(last_spawn_block(first));  // no more can be told apart

  EXPECT_FALSE(parse_spawn_v1({{"execname", "a"}}));
  EXPECT_FALSE(parse_spawn_v1({{"nprocs", "0"}, {"execname", "a"}}));
  EXPECT_FALSE(parse_spawn_v1({{"nprocs", "1"}, {"execname", ""}}));
  EXPECT_FALSE(parse_spawn_v1({{"nprocs", "1"}, {"execname", "a"}, {"argcnt", "1"}}));
  EXPECT_TRUE(parse_spawn_v1({{"nprocs", "1"}, {"execname", "a"}}));
}

}  // namespace
}  // namespace mosix::pmi
