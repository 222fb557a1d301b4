#include "runtime/core/hostlist.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

TEST(HostList, SlotsAndDefaults) {
  auto hosts = parse_host_list("a:2,b,c:4");
  ASSERT_TRUE(hosts.ok()) << hosts.error().message;
  ASSERT_EQ(hosts->size(), 3u);
  EXPECT_EQ((*hosts)[0], (HostSlots{"a", 2, true}));
  EXPECT_EQ((*hosts)[1], (HostSlots{"b", 1, false}));
  EXPECT_EQ((*hosts)[2], (HostSlots{"c", 4, true}));
}

TEST(HostList, RepeatedHostAddsSlots) {
  auto hosts = parse_host_list("a,b,a:3");
  ASSERT_TRUE(hosts.ok());
  ASSERT_EQ(hosts->size(), 2u);
  EXPECT_EQ((*hosts)[0].slots, 4);
}

TEST(HostList, BadEntriesNameTheProblem) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {Case{"", "empty host list"}, Case{"a,,b", "empty entry"},
                        Case{"a:0", "bad slot count"}, Case{"a:x", "bad slot count"},
                        Case{"a:-1", "bad slot count"}, Case{"a b", "bad host name"},
                        Case{":2", "bad host name"}}) {
    auto hosts = parse_host_list(c.text);
    ASSERT_FALSE(hosts.ok()) << c.text;
    EXPECT_NE(hosts.error().message.find(c.says), std::string::npos)
        << c.text << " -> " << hosts.error().message;
  }
}

TEST(Hostfile, CommentsBlankLinesAndSlots) {
  auto hosts = parse_hostfile("# cluster\n\nn1 slots=4\nn2   # two\n  n3 slots=2 max_slots=8\n",
                              "hosts.txt");
  ASSERT_TRUE(hosts.ok()) << hosts.error().message;
  ASSERT_EQ(hosts->size(), 3u);
  EXPECT_EQ((*hosts)[0], (HostSlots{"n1", 4, true}));
  EXPECT_EQ((*hosts)[1], (HostSlots{"n2", 1, false}));
  EXPECT_EQ((*hosts)[2], (HostSlots{"n3", 2, true}));
}

TEST(Hostfile, NoTrailingNewlineAndCrLf) {
  auto hosts = parse_hostfile("a slots=2\r\nb", "f");
  ASSERT_TRUE(hosts.ok()) << hosts.error().message;
  EXPECT_EQ(hosts->size(), 2u);
}

TEST(Hostfile, ErrorsCarryTheLineNumber) {
  auto bad = parse_hostfile("a slots=2\n# ok\nb slots=zero\n", "hf");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message.rfind("hf:3: bad slot count", 0), 0u) << bad.error().message;

  auto unknown = parse_hostfile("a\nb cpus=2\n", "hf");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("hf:2: unknown keyword 'cpus=2'"), std::string::npos)
      << unknown.error().message;
}

TEST(Hostfile, NamingNoHostIsAnError) {
  auto empty = parse_hostfile("# nothing\n\n", "empty.txt");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("names no host"), std::string::npos);
}

TEST(SlurmHostlist, Expands) {
  struct Case {
    const char* text;
    std::vector<std::string> hosts;
  };
  for (const Case& c : {
           Case{"n1", {"n1"}},
           Case{"n[01-04,07],gpu[1-2]", {"n01", "n02", "n03", "n04", "n07", "gpu1", "gpu2"}},
           Case{"a,b", {"a", "b"}},
           Case{"r[1-2]n[8-9]", {"r1n8", "r1n9", "r2n8", "r2n9"}},
           Case{"node[9-11]", {"node9", "node10", "node11"}},
           Case{"x[007]", {"x007"}},
       }) {
    auto hosts = expand_slurm_hostlist(c.text);
    ASSERT_TRUE(hosts.ok()) << c.text << ": " << hosts.error().message;
    EXPECT_EQ(*hosts, c.hosts) << c.text;
  }
}

TEST(SlurmHostlist, MalformedIsRefused) {
  for (const char* text : {"", "n[1-", "n[1-2", "n]1[", "n[2-1]", "n[a-b]", "n[1-2]]", "a,,b",
                           "n[[1]]"}) {
    auto hosts = expand_slurm_hostlist(text);
    EXPECT_FALSE(hosts.ok()) << text;
    if (!hosts.ok() && *text) {
      EXPECT_NE(hosts.error().message.find(text), std::string::npos) << hosts.error().message;
    }
  }
}

TEST(SlurmTasksPerNode, RepeatGrammar) {
  auto counts = expand_slurm_tasks_per_node("2(x3),1");
  ASSERT_TRUE(counts.ok()) << counts.error().message;
  EXPECT_EQ(*counts, (std::vector<int>{2, 2, 2, 1}));
  auto single = expand_slurm_tasks_per_node("4");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(*single, (std::vector<int>{4}));
  for (const char* bad : {"", "2(3)", "x", "2(x)", "2(x0)", "-1", "2(x3"}) {
    EXPECT_FALSE(expand_slurm_tasks_per_node(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace mosix
