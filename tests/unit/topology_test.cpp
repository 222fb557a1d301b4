#include "runtime/topology/topology.h"

#include <sched.h>

#include <numeric>
#include <string>

#include <gtest/gtest.h>

namespace mosix {

void PrintTo(const CacheLevel& c, std::ostream* os) {
  *os << "L" << c.level << " " << c.type << " " << c.size_bytes << " B x" << c.count;
}
void PrintTo(const CoreKind& k, std::ostream* os) {
  *os << "kind(efficiency " << k.efficiency << ", " << k.core_type << ", " << k.cores
      << " cores, " << k.pus << " PUs)";
}

namespace {

constexpr std::uint64_t kGiB = 1024ull * 1024 * 1024;

std::string fixture(const std::string& name) {
  return std::string(MOSIX_FIXTURES_DIR) + "/hwloc/" + name;
}

Topology load(const std::string& name) {
  auto t = load_topology_xml_file(fixture(name));
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return t.ok() ? t.value() : Topology{};
}

struct Counts {
  const char* file;
  int sockets, cores, pus, numa_nodes;
  std::uint64_t memory_bytes;
  std::size_t kinds;
};

class FixtureCounts : public testing::TestWithParam<Counts> {};

TEST_P(FixtureCounts, CountsAndMemoryMatchTheMachine) {
  const Counts& want = GetParam();
  Topology t = load(want.file);
  EXPECT_EQ(t.sockets, want.sockets);
  EXPECT_EQ(t.cores, want.cores);
  EXPECT_EQ(t.pus, want.pus);
  EXPECT_EQ(t.numa_nodes, want.numa_nodes);
  EXPECT_EQ(t.memory_bytes, want.memory_bytes);
  EXPECT_EQ(t.kinds.size(), want.kinds);
}

TEST_P(FixtureCounts, CorePusCoverEveryPuOnce) {
  Topology t = load(GetParam().file);
  ASSERT_EQ(t.core_pus.size(), static_cast<std::size_t>(t.cores));
  std::vector<int> seen;
  for (const auto& pus : t.core_pus) {
    EXPECT_FALSE(pus.empty());
    seen.insert(seen.end(), pus.begin(), pus.end());
  }
  std::sort(seen.begin(), seen.end());
  std::vector<int> expected(static_cast<std::size_t>(t.pus));
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(seen, expected);
}

TEST_P(FixtureCounts, JsonRoundTripIsExact) {
  Topology t = load(GetParam().file);
  auto back = topology_from_json(to_json(t));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back.value(), t);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FixtureCounts,
    testing::Values(Counts{"two_socket_server.xml", 2, 32, 64, 2, 256 * kGiB, 0},
                    Counts{"hybrid_laptop.xml", 1, 14, 20, 1, 16 * kGiB, 2},
                    Counts{"this_vm.xml", 1, 2, 2, 1, 4792201216ull, 0}),
    [](const testing::TestParamInfo<Counts>& info) {
      std::string name = info.param.file;
      return name.substr(0, name.find('.'));
    });

TEST(TwoSocketServer, CachesPerLevel) {
  Topology t = load("two_socket_server.xml");
  std::vector<CacheLevel> want = {{1, "data", 49152, 32},
                                  {1, "instruction", 32768, 32},
                                  {2, "unified", 1048576, 32},
                                  {3, "unified", 37748736, 2}};
  EXPECT_EQ(t.caches, want);
}

TEST(TwoSocketServer, SmtSiblingsAreNumberedAsTheBiosDoes) {
  Topology t = load("two_socket_server.xml");
  ASSERT_EQ(t.core_pus.size(), 32u);
  EXPECT_EQ(t.core_pus[0], (std::vector<int>{0, 32}));
  EXPECT_EQ(t.core_pus[1], (std::vector<int>{1, 33}));
  EXPECT_EQ(t.core_pus[16], (std::vector<int>{16, 48}));
  EXPECT_EQ(t.core_pus[31], (std::vector<int>{31, 63}));
  EXPECT_TRUE(t.core_kind.empty());
}

TEST(HybridLaptop, KindsFromEfficientToPowerful) {
  Topology t = load("hybrid_laptop.xml");
  ASSERT_EQ(t.kinds.size(), 2u);
  EXPECT_EQ(t.kinds[0], (CoreKind{0, "IntelAtom", 8, 8}));
  EXPECT_EQ(t.kinds[1], (CoreKind{1, "IntelCore", 6, 12}));
}

TEST(HybridLaptop, EachCoreKnowsItsKindAndPus) {
  Topology t = load("hybrid_laptop.xml");
  ASSERT_EQ(t.core_kind.size(), 14u);
  for (int c = 0; c < 14; ++c) {
    const auto& pus = t.core_pus[static_cast<std::size_t>(c)];
    if (c < 6) {
      EXPECT_EQ(t.core_kind[static_cast<std::size_t>(c)], 1) << "core " << c;
      EXPECT_EQ(pus, (std::vector<int>{2 * c, 2 * c + 1})) << "core " << c;
    } else {
      EXPECT_EQ(t.core_kind[static_cast<std::size_t>(c)], 0) << "core " << c;
      EXPECT_EQ(pus, (std::vector<int>{6 + c})) << "core " << c;
    }
  }
}

TEST(HybridLaptop, CachesAndSummary) {
  Topology t = load("hybrid_laptop.xml");
  std::vector<CacheLevel> want = {{1, "data", 49152, 14},
                                  {1, "instruction", 32768, 14},
                                  {2, "unified", 1310720, 14},
                                  {3, "unified", 25165824, 1}};
  EXPECT_EQ(t.caches, want);
  EXPECT_EQ(summary(t),
            "1 socket, 14 cores, 20 PUs, 1 NUMA node, 16.0 GiB (6 IntelCore + 8 IntelAtom cores)");
}

TEST(ThisVm, Caches) {
  Topology t = load("this_vm.xml");
  std::vector<CacheLevel> want = {{1, "data", 49152, 2},
                                  {1, "instruction", 65536, 2},
                                  {2, "unified", 2097152, 2},
                                  {3, "unified", 503316480, 1}};
  EXPECT_EQ(t.caches, want);
  EXPECT_EQ(t.core_pus, (std::vector<std::vector<int>>{{0}, {1}}));
}

TEST(LoadTopology, RefusesWhatIsNotAnHwlocExport) {
  EXPECT_FALSE(load_topology_xml("").ok());
  EXPECT_FALSE(load_topology_xml("this is not xml").ok());
  EXPECT_FALSE(load_topology_xml("<?xml version=\"1.0\"?><nothing/>").ok());
}

TEST(LoadTopology, MissingFileErrorNamesThePath) {
  auto t = load_topology_xml_file("/nonexistent/dir/topo.xml");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("/nonexistent/dir/topo.xml"), std::string::npos);
}

TEST(TopologyJson, RefusesInconsistentCores) {
  Topology t = load("this_vm.xml");
  nlohmann::json j = to_json(t);
  j["cores"] = 3;
  EXPECT_FALSE(topology_from_json(j).ok());
  EXPECT_FALSE(topology_from_json(nlohmann::json::object()).ok());
}

TEST(ProbeThisNode, UsesOnlyCpusThisProcessMayRunOn) {
  auto t = probe_this_node();
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_GE(t->cores, 1);
  EXPECT_GE(t->pus, t->cores);
  EXPECT_GE(t->sockets, 1);
  EXPECT_GT(t->memory_bytes, 0u);
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  int total = 0;
  for (const auto& pus : t->core_pus) {
    for (int pu : pus) {
      EXPECT_TRUE(CPU_ISSET(pu, &allowed)) << "PU " << pu << " is outside this process's affinity";
      ++total;
    }
  }
  EXPECT_EQ(total, t->pus);
  EXPECT_EQ(total, CPU_COUNT(&allowed));
}

TEST(ProbeThisNode, RoundTripsThroughXml) {
  auto probed = probe_this_node();
  ASSERT_TRUE(probed.ok()) << probed.error().message;
  auto xml = this_node_xml();
  ASSERT_TRUE(xml.ok()) << xml.error().message;
  auto loaded = load_topology_xml(xml.value());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  // A virtual machine's memory can grow between two probes (memory hotplug),
  // so only its presence is compared.
  EXPECT_GT(loaded->memory_bytes, 0u);
  loaded->memory_bytes = probed->memory_bytes;
  EXPECT_EQ(loaded.value(), probed.value());
}

}  // namespace
}  // namespace mosix
