#include "runtime/topology/topology_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "runtime/sys/runtime_dir.h"

namespace mosix {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

class TopologyCache : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/mosix-topology-cache-test-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr);
    dir_ = name;
    xml_ = read_text(std::string(MOSIX_FIXTURES_DIR) + "/hwloc/two_socket_server.xml");
    ASSERT_FALSE(xml_.empty());
    key_ = {"0b6e4c53-1d2a-4f0e-9f5e-0123456789ab", "0-63", "0-1", "2.9.0"};
    path_ = topology_cache_path(dir_, key_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_, xml_, path_;
  TopologyCacheKey key_;
};

TEST_F(TopologyCache, HitReturnsTheStoredTopology) {
  ASSERT_TRUE(write_cached_topology(path_, key_, xml_).ok());
  auto cached = read_cached_topology(path_, key_);
  ASSERT_TRUE(cached.ok()) << cached.error().message;
  auto direct = load_topology_xml(xml_);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(cached.value(), direct.value());
  EXPECT_EQ(cached->cores, 32);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Nothing but the file itself is left in the directory (no temporary).
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(TopologyCache, MissWhenAbsent) {
  auto cached = read_cached_topology(path_, key_);
  ASSERT_FALSE(cached.ok());
  EXPECT_NE(cached.error().message.find(path_), std::string::npos);
}

TEST_F(TopologyCache, MissOnAnotherBoot) {
  ASSERT_TRUE(write_cached_topology(path_, key_, xml_).ok());
  TopologyCacheKey rebooted = key_;
  rebooted.boot_id = "ffffffff-1d2a-4f0e-9f5e-0123456789ab";
  EXPECT_EQ(topology_cache_path(dir_, rebooted), path_);  // the new boot replaces the file
  auto cached = read_cached_topology(path_, rebooted);
  ASSERT_FALSE(cached.ok());
  EXPECT_NE(cached.error().message.find("another boot"), std::string::npos);
}

TEST_F(TopologyCache, OtherBindingHasItsOwnFileAndKey) {
  TopologyCacheKey bound = key_;
  bound.cpus = "0-3";
  EXPECT_NE(topology_cache_path(dir_, bound), path_);
  ASSERT_TRUE(write_cached_topology(path_, key_, xml_).ok());
  EXPECT_FALSE(read_cached_topology(path_, bound).ok());
  TopologyCacheKey other_hwloc = key_;
  other_hwloc.hwloc = "2.10.0";
  EXPECT_FALSE(read_cached_topology(path_, other_hwloc).ok());
}

TEST_F(TopologyCache, CorruptFileIsIgnored) {
  ASSERT_TRUE(write_cached_topology(path_, key_, xml_).ok());
  const std::string good = read_text(path_);
  // One digit of the XML changed (a NUMA node's memory): still XML that hwloc
  // loads, so only the checksum catches it.
  std::string flipped = good;
  std::size_t at = good.find("local_memory=\"");
  ASSERT_NE(at, std::string::npos);
  at += 14;
  flipped[at] = flipped[at] == '1' ? '2' : '1';
  write_text(path_, flipped);
  EXPECT_FALSE(read_cached_topology(path_, key_).ok());
  // A byte of the XML changed that makes it no longer XML.
  flipped = good;
  flipped[good.size() - 200] ^= 0x20;
  write_text(path_, flipped);
  EXPECT_FALSE(read_cached_topology(path_, key_).ok());
  // Cut short.
  write_text(path_, good.substr(0, good.size() / 2));
  EXPECT_FALSE(read_cached_topology(path_, key_).ok());
  // Garbage, and an empty file.
  write_text(path_, "not a cache\n");
  EXPECT_FALSE(read_cached_topology(path_, key_).ok());
  write_text(path_, "");
  EXPECT_FALSE(read_cached_topology(path_, key_).ok());
  // A header that matches over an XML hwloc refuses.
  ASSERT_TRUE(write_cached_topology(path_, key_, "<?xml version=\"1.0\"?><nothing/>").ok());
  EXPECT_FALSE(read_cached_topology(path_, key_).ok());
}

TEST_F(TopologyCache, FileOthersMayWriteOrASymlinkIsRefused) {
  ASSERT_TRUE(write_cached_topology(path_, key_, xml_).ok());
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);
  auto cached = read_cached_topology(path_, key_);
  ASSERT_FALSE(cached.ok());
  EXPECT_NE(cached.error().message.find("others may write"), std::string::npos);
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  std::string real = dir_ + "/real.xml";
  fs::rename(path_, real);
  fs::create_symlink(real, path_);
  EXPECT_FALSE(read_cached_topology(path_, key_).ok());
}

TEST_F(TopologyCache, ProbeWritesThenHitsAndAgrees) {
  std::string cache = dir_ + "/mosix";
  auto first = probe_this_node_cached(cache);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_FALSE(first->from_cache);
  struct stat st {};
  ASSERT_EQ(::stat(cache.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto second = probe_this_node_cached(cache);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_TRUE(second->from_cache);
  EXPECT_EQ(second->topology, first->topology);
  // The live probe agrees with the cached one (memory aside: a virtual
  // machine's can grow between two probes).
  auto xml = this_node_xml();
  ASSERT_TRUE(xml.ok());
  auto live = load_topology_xml(*xml);
  ASSERT_TRUE(live.ok());
  live->memory_bytes = second->topology.memory_bytes;
  EXPECT_EQ(live.value(), second->topology);
}

TEST_F(TopologyCache, ProbeReplacesACorruptFile) {
  std::string cache = dir_ + "/mosix";
  ASSERT_TRUE(probe_this_node_cached(cache).ok());
  auto key = this_process_cache_key();
  ASSERT_TRUE(key.ok()) << key.error().message;
  std::string file = topology_cache_path(cache, *key);
  std::string good = read_text(file);
  ASSERT_FALSE(good.empty());
  write_text(file, good.substr(0, good.size() - 10));
  auto again = probe_this_node_cached(cache);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_FALSE(again->from_cache);
  EXPECT_EQ(read_text(file), good);
  auto hit = probe_this_node_cached(cache);
  ASSERT_TRUE(hit.ok());
  EXPECT_TRUE(hit->from_cache);
}

TEST_F(TopologyCache, DirectoryOthersMayWriteIsNotUsed) {
  std::string cache = dir_ + "/shared";
  ASSERT_EQ(::mkdir(cache.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(cache.c_str(), 0777), 0);
  auto probed = probe_this_node_cached(cache);
  ASSERT_TRUE(probed.ok()) << probed.error().message;
  EXPECT_FALSE(probed->from_cache);
  EXPECT_TRUE(fs::is_empty(cache));
}

TEST(TopologyCacheKeyTest, ThisProcessHasOne) {
  auto key = this_process_cache_key();
  ASSERT_TRUE(key.ok()) << key.error().message;
  EXPECT_EQ(key->boot_id.size(), 36u);
  EXPECT_FALSE(key->cpus.empty());
  EXPECT_FALSE(key->mems.empty());
  EXPECT_FALSE(key->hwloc.empty());
}

TEST(TopologyCacheDir, OffWhenAskedOrWhenHwlocIsSteered) {
  ::setenv("MOSIX_TOPOLOGY_CACHE", "0", 1);
  EXPECT_EQ(default_topology_cache_dir(), "");
  ::unsetenv("MOSIX_TOPOLOGY_CACHE");
  ::setenv("HWLOC_XMLFILE", "/some/where.xml", 1);
  EXPECT_EQ(default_topology_cache_dir(), "");
  ::unsetenv("HWLOC_XMLFILE");
  char xdg[] = "/tmp/topology_cache_test_xdg.XXXXXX";
  ASSERT_NE(::mkdtemp(xdg), nullptr);
  ::setenv("XDG_RUNTIME_DIR", xdg, 1);
  EXPECT_EQ(default_topology_cache_dir(), std::string(xdg) + "/mosix");
  ::unsetenv("XDG_RUNTIME_DIR");
  ::rmdir(xdg);
  EXPECT_EQ(default_topology_cache_dir(), sys::runtime_dir_path());
}

}  // namespace
}  // namespace mosix
