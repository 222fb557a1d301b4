#include "runtime/topology/topology_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <spdlog/spdlog.h>

#include "runtime/core/crc32c.h"
#include "runtime/sys/atomic_file.h"
#include "runtime/sys/errno_text.h"
#include "runtime/sys/private_path.h"
#include "runtime/sys/runtime_dir.h"

namespace mosix {
namespace {

constexpr const char* kMagic = "mosix-topology-cache 1";
// An hwloc export of a machine with thousands of PUs is a few MiB.
constexpr off_t kMaxFileBytes = 64 << 20;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  std::size_t start = s.find_first_not_of(" \t");
  return start == std::string::npos ? std::string() : s.substr(start);
}

Expected<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot read " + path + ": " + sys::errno_text(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string hex32(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "%08x", v);
  return text;
}

std::string key_line(const TopologyCacheKey& key) {
  return "key boot=" + key.boot_id + " cpus=" + key.cpus + " mems=" + key.mems +
         " hwloc=" + key.hwloc;
}

}  // namespace

Expected<TopologyCacheKey> this_process_cache_key() {
  TopologyCacheKey key;
  auto boot = read_small_file("/proc/sys/kernel/random/boot_id");
  if (!boot) return boot.error();
  key.boot_id = trim(*boot);
  auto status = read_small_file("/proc/self/status");
  if (!status) return status.error();
  std::istringstream lines(*status);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("Cpus_allowed_list:", 0) == 0) key.cpus = trim(line.substr(18));
    if (line.rfind("Mems_allowed_list:", 0) == 0) key.mems = trim(line.substr(18));
  }
  if (key.boot_id.empty() || key.cpus.empty() || key.mems.empty()) {
    return make_error("cannot tell this boot and this process's CPUs from /proc");
  }
  key.hwloc = hwloc_library_version();
  return key;
}

std::string topology_cache_path(const std::string& dir, const TopologyCacheKey& key) {
  std::string where = key.cpus + "/" + key.mems;
  return dir + "/topology-" + hex32(crc32c(0, where.data(), where.size())) + ".xml";
}

Expected<Topology> read_cached_topology(const std::string& path, const TopologyCacheKey& key) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": " + sys::errno_text(errno));
  std::string refused;
  struct stat st {};
  if (auto trusted = sys::check_trusted_fd(fd, path); !trusted) {
    refused = trusted.error().message;
  } else if (::fstat(fd, &st) != 0) {
    refused = path + ": cannot stat: " + sys::errno_text(errno);
  } else if (st.st_size > kMaxFileBytes) {
    refused = path + ": too large";
  }
  std::string text;
  if (refused.empty()) {
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::read(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    if (done != text.size()) refused = path + ": cannot read it whole";
  }
  ::close(fd);
  if (!refused.empty()) return make_error(refused);

  // Header: magic, key, checksum and length of the XML that follows.
  std::size_t pos = 0;
  auto next_line = [&]() -> std::string {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      pos = text.size();
      return {};
    }
    std::string l = text.substr(pos, end - pos);
    pos = end + 1;
    return l;
  };
  if (next_line() != kMagic) return make_error(path + ": not a topology cache file");
  if (next_line() != key_line(key)) return make_error(path + ": of another boot or binding");
  std::string sum = next_line();
  unsigned long crc = 0, length = 0;
  char extra = 0;
  if (std::sscanf(sum.c_str(), "crc32c %lx bytes %lu%c", &crc, &length, &extra) != 2) {
    return make_error(path + ": damaged header");
  }
  std::string_view xml(text.data() + pos, text.size() - pos);
  if (xml.size() != length || crc32c(0, xml.data(), xml.size()) != crc) {
    return make_error(path + ": damaged (length or checksum)");
  }
  auto topology = load_topology_xml(std::string(xml));
  if (!topology) return make_error(path + ": " + topology.error().message);
  return topology;
}

Status write_cached_topology(const std::string& path, const TopologyCacheKey& key,
                             const std::string& xml) {
  std::string text = std::string(kMagic) + "\n" + key_line(key) + "\ncrc32c " +
                     hex32(crc32c(0, xml.data(), xml.size())) + " bytes " +
                     std::to_string(xml.size()) + "\n" + xml;
  return sys::write_file_atomically(path, text, sys::Durability::kVolatile);
}

Expected<CachedProbe> probe_this_node_cached(const std::string& dir) {
  auto key = this_process_cache_key();
  std::string path;
  if (!key) {
    spdlog::debug("topology: not cached: {}", key.error().message);
  } else if (auto ok = sys::ensure_private_dir(dir); !ok) {
    spdlog::debug("topology: not cached: {}", ok.error().message);
  } else {
    path = topology_cache_path(dir, *key);
    auto cached = read_cached_topology(path, *key);
    if (cached) return CachedProbe{std::move(cached).value(), true};
    spdlog::debug("topology: probing this node ({})", cached.error().message);
  }
  // The cache holds the XML export, and a later hit loads it: take this
  // probe's result from the same XML, so that a hit and a miss agree.
  auto xml = this_node_xml();
  if (!xml) return xml.error();
  auto topology = load_topology_xml(*xml);
  if (!topology) return topology.error();
  if (!path.empty()) {
    if (auto written = write_cached_topology(path, *key, *xml); !written) {
      spdlog::debug("topology: not cached: {}", written.error().message);
    }
  }
  return CachedProbe{std::move(topology).value(), false};
}

std::string default_topology_cache_dir() {
  const char* off = std::getenv("MOSIX_TOPOLOGY_CACHE");
  if (off != nullptr && std::strcmp(off, "0") == 0) return {};
  for (const char* name : {"HWLOC_XMLFILE", "HWLOC_FSROOT", "HWLOC_SYNTHETIC", "HWLOC_COMPONENTS",
                           "HWLOC_CPUKINDS_INFO", "HWLOC_THISSYSTEM", "HWLOC_ALLOW"}) {
    if (std::getenv(name) != nullptr) return {};
  }
  return sys::runtime_dir_path();
}

}  // namespace mosix
