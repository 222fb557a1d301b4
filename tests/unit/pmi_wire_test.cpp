#include "runtime/core/pmi_wire.h"

#include <gtest/gtest.h>

namespace mosix::pmi {
namespace {

TEST(PmiWireTest, ParsesACommandAndItsFields) {
  auto c = parse_line("cmd=put kvsname=kvs_1 key=-bcast-1-0 value=2F6465=");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cmd, "put");
  EXPECT_EQ(c->get("kvsname"), "kvs_1");
  EXPECT_EQ(c->get("key"), "-bcast-1-0");
  EXPECT_EQ(c->get("value"), "2F6465=");  // split at the first '=' only
  EXPECT_EQ(c->get("missing"), "");
}

TEST(PmiWireTest, ACommandWithoutFieldsAndExtraSpaces) {
  auto c = parse_line("cmd=barrier_in");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cmd, "barrier_in");
  EXPECT_TRUE(c->fields.empty());
  c = parse_line("  cmd=init  pmi_version=1 pmi_subversion=1 \r");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cmd, "init");
  EXPECT_EQ(c->get("pmi_subversion"), "1");
}

TEST(PmiWireTest, RefusesWhatIsNotACommandLine) {
  for (const char* bad : {"", "   ", "mcmd=spawn", "put key=x", "cmd= key=x", "cmd=put key", "cmd=put =x"}) {
    EXPECT_FALSE(parse_line(bad)) << bad;
  }
}

TEST(PmiWireTest, RepliesAsHydraDoes) {
  EXPECT_EQ(reply("response_to_init", {{"pmi_version", "1"}, {"pmi_subversion", "1"}, {"rc", "0"}}),
            "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n");
  EXPECT_EQ(reply("barrier_out", {}), "cmd=barrier_out\n");
}

TEST(PmiWireTest, Pmi2FramesAsMpichWritesThem) {
  EXPECT_FALSE(frame_length("   1"));        // not all 6 characters yet
  EXPECT_EQ(frame_length("    27cmd=..."), 27u);
  EXPECT_EQ(frame_length("000042"), 42u);
  EXPECT_FALSE(frame_length("  x 12"));
  EXPECT_EQ(frame_length("45    cmd=..."), 45u);  // MPICH 4.0's and Slurm's libpmi2's way
  EXPECT_EQ(frame_length(" 123  "), 123u);
  EXPECT_FALSE(frame_length("1 2   "));
  EXPECT_FALSE(frame_length("      "));
  auto c = parse_v2("cmd=kvs-put;key=card-0;value=a=b;thrid=0x1;");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cmd, "kvs-put");
  EXPECT_EQ(c->get("key"), "card-0");
  EXPECT_EQ(c->get("value"), "a=b");
  EXPECT_EQ(c->get("thrid"), "0x1");
  EXPECT_FALSE(parse_v2("key=x;"));
  EXPECT_FALSE(parse_v2(""));
  const std::string frame = reply_v2("kvs-get-response", {{"rc", "0"}, {"found", "TRUE"}, {"value", "v"}});
  EXPECT_EQ(frame, "    45cmd=kvs-get-response;rc=0;found=TRUE;value=v;");
  EXPECT_EQ(frame_length(frame), frame.size() - 6);
}

TEST(PmiWireTest, Pmi2KeepsItemsInOrderAndReadsMpichsEscape) {
  // A spawn's apps repeat their keys: every item is kept, in order.
  auto c = parse_v2("cmd=spawn;thrid=0x7;ncmds=2;subcmd=a;argv0=x;subcmd=b;argv0=y;");
  ASSERT_TRUE(c);
  const KeyValues want = {{"thrid", "0x7"}, {"ncmds", "2"}, {"subcmd", "a"}, {"argv0", "x"}, {"subcmd", "b"},
                          {"argv0", "y"}};
  EXPECT_EQ(c->items, want);
  // MPICH doubles a ';' inside a value; an empty value ends at its ';'.
  c = parse_v2("cmd=kvs-put;key=k;value=a;;b;;;x=;y=1;");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->get("value"), "a;b;");
  EXPECT_EQ(c->get("x"), "");
  EXPECT_EQ(c->get("y"), "1");
  EXPECT_EQ(reply_v2("name-lookup-response", {{"rc", "0"}, {"port", "p;q"}}),
            "    40cmd=name-lookup-response;rc=0;port=p;;q;");
  EXPECT_EQ(parse_v2("cmd=x;port=p;;q;")->get("port"), "p;q");
  EXPECT_EQ(parse_v2(std::string_view("cmd=x;a=1;\0zz;b=2;", 18))->items, (KeyValues{{"a", "1"}}));
  EXPECT_EQ(reply_line("spawn_result", {{"rc", "-1"}, {"errmsg", "spawn_failed"}}),
            "cmd=spawn_result rc=-1 errmsg=spawn_failed\n");
}

TEST(PmiWireTest, KeysAndValuesThatFitTheWire) {
  EXPECT_TRUE(valid_key("-allgather-shm-1-0"));
  EXPECT_FALSE(valid_key(""));
  EXPECT_FALSE(valid_key("a b"));
  EXPECT_FALSE(valid_key("a=b"));
  EXPECT_FALSE(valid_key(std::string(kKeyMax + 1, 'k')));
  EXPECT_TRUE(valid_value(""));
  EXPECT_TRUE(valid_value("a=b"));
  EXPECT_FALSE(valid_value("a\nb"));
  EXPECT_TRUE(valid_value(std::string(kValueMax, 'v')));
  EXPECT_FALSE(valid_value(std::string(kValueMax + 1, 'v')));
}

struct MappingCase {
  std::vector<std::uint32_t> rank_nodes;
  const char* want;
};

TEST(PmiWireTest, ProcessMappingAsMpichReadsIt) {
  const MappingCase cases[] = {
      {{0}, "(vector,(0,1,1))"},
      {{0, 0, 0, 0}, "(vector,(0,1,4))"},
      {{0, 0, 1, 1, 2, 2}, "(vector,(0,3,2))"},        // by slot: blocks
      {{0, 1, 2, 0, 1, 2}, "(vector,(0,3,1),(0,3,1))"},  // by node: round robin
      {{1, 1, 2}, "(vector,(0,1,2),(1,1,1))"},          // node numbers need not start at 0
      {{2, 0, 0}, "(vector,(1,1,1),(0,1,2))"},
      {{5, 5, 9, 9}, "(vector,(0,2,2))"},
  };
  for (const MappingCase& c : cases) EXPECT_EQ(process_mapping(c.rank_nodes), c.want);
}

TEST(PmiWireTest, ProcessMappingOfALargeRoundRobinJob) {
  std::vector<std::uint32_t> rank_nodes(65536);
  for (std::size_t r = 0; r < rank_nodes.size(); ++r) rank_nodes[r] = static_cast<std::uint32_t>(r % 1024);
  std::string want = "(vector";
  for (int k = 0; k < 64; ++k) want += ",(0,1024,1)";
  EXPECT_EQ(process_mapping(rank_nodes), want + ")");
}

TEST(PmiWireTest, BlobsRoundTripAndReadInARow) {
  const KeyValues a = {{"k1", "v1"}, {"empty", ""}}, b = {{"k2", std::string(300, 'x')}};
  auto blob = pack(a);
  const auto more = pack(b);
  blob.insert(blob.end(), more.begin(), more.end());
  auto got = unpack(blob);
  ASSERT_TRUE(got);
  KeyValues want = a;
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(*got, want);
  EXPECT_TRUE(unpack({}));
  EXPECT_TRUE(unpack({})->empty());
}

TEST(PmiWireTest, ACutBlobIsAnError) {
  auto blob = pack({{"key", "value"}});
  for (std::size_t cut = 1; cut < blob.size(); ++cut) {
    EXPECT_FALSE(unpack(std::span(blob.data(), cut))) << cut;
  }
}

}  // namespace
}  // namespace mosix::pmi
