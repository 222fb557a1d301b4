// The only file that includes <hwloc.h>: probes this node or loads an XML
// export, and turns hwloc's object tree into a mosix::Topology.
#include <hwloc.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <tuple>

#include <spdlog/spdlog.h>

#include "runtime/sys/errno_text.h"
#include "runtime/topology/topology.h"
#include "runtime/topology/topology_cache.h"

namespace mosix {
namespace {

struct TopologyDeleter {
  void operator()(hwloc_topology* t) const { hwloc_topology_destroy(t); }
};
using HwlocTopology = std::unique_ptr<hwloc_topology, TopologyDeleter>;

struct BitmapDeleter {
  void operator()(hwloc_bitmap_s* b) const { hwloc_bitmap_free(b); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

// hwloc loads its plugins (PCI, OpenCL, NVML, ...) when its first topology is
// initialised; they only find I/O devices, which we do not report, and
// loading them costs tens of milliseconds of every mosixrun start. The XML
// plugin brings libxml2 and ICU's 30 MiB of data with it, while hwloc's own
// XML parser reads and writes the same files. Keep them out unless the user
// chose otherwise, without leaving the setting in the environment our guests
// inherit.
class NoHwlocPlugins {
 public:
  NoHwlocPlugins() {
    if (!std::getenv("HWLOC_PLUGINS_BLACKLIST") && !std::getenv("HWLOC_COMPONENTS")) {
      ::setenv("HWLOC_PLUGINS_BLACKLIST",
               "hwloc_pci,hwloc_opencl,hwloc_cuda,hwloc_nvml,hwloc_rsmi,hwloc_levelzero,hwloc_gl,"
               "hwloc_xml_libxml",
               1);
      set_ = true;
    }
  }
  ~NoHwlocPlugins() {
    if (set_) ::unsetenv("HWLOC_PLUGINS_BLACKLIST");
  }

 private:
  bool set_ = false;
};

Expected<HwlocTopology> init_topology() {
  hwloc_topology_t raw = nullptr;
  NoHwlocPlugins no_plugins;
  if (hwloc_topology_init(&raw) != 0) {
    return make_error("hwloc: cannot initialise a topology: " + sys::errno_text(errno));
  }
  // hwloc drops instruction caches by default; we report them.
  hwloc_topology_set_icache_types_filter(raw, HWLOC_TYPE_FILTER_KEEP_ALL);
  return HwlocTopology(raw);
}

// Restricts a freshly probed topology to the CPUs this process is bound to.
// hwloc already drops the PUs the cgroup cpuset forbids; the affinity mask
// (taskset, a batch system's binding) narrows that further.
void restrict_to_binding(hwloc_topology_t topo) {
  Bitmap bound(hwloc_bitmap_alloc());
  if (!bound || hwloc_get_cpubind(topo, bound.get(), HWLOC_CPUBIND_PROCESS) != 0) {
    spdlog::debug("topology: cannot read this process's CPU binding ({}); using every allowed CPU",
                  sys::errno_text(errno));
    return;
  }
  hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(topo);
  hwloc_bitmap_and(bound.get(), bound.get(), all);
  if (hwloc_bitmap_iszero(bound.get()) || hwloc_bitmap_isequal(bound.get(), all)) return;
  if (hwloc_topology_restrict(topo, bound.get(), 0) != 0) {
    spdlog::warn("topology: cannot restrict the topology to this process's CPU binding: {}",
                 sys::errno_text(errno));
  }
}

Expected<HwlocTopology> load_this_node() {
  auto topo = init_topology();
  if (!topo) return topo.error();
  if (hwloc_topology_load(topo->get()) != 0) {
    return make_error("hwloc: cannot probe this node's topology: " + sys::errno_text(errno));
  }
  restrict_to_binding(topo->get());
  return std::move(topo).value();
}

const char* cache_type_name(hwloc_obj_cache_type_e type) {
  switch (type) {
    case HWLOC_OBJ_CACHE_DATA: return "data";
    case HWLOC_OBJ_CACHE_INSTRUCTION: return "instruction";
    case HWLOC_OBJ_CACHE_UNIFIED: return "unified";
  }
  return "unified";
}

int cache_type_rank(const std::string& type) {
  if (type == "data") return 0;
  if (type == "instruction") return 1;
  return 2;
}

std::vector<CacheLevel> collect_caches(hwloc_topology_t topo) {
  static constexpr hwloc_obj_type_t kCacheTypes[] = {
      HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L4CACHE,
      HWLOC_OBJ_L5CACHE, HWLOC_OBJ_L1ICACHE, HWLOC_OBJ_L2ICACHE, HWLOC_OBJ_L3ICACHE};
  // (level, type, size) -> count: one entry per distinct cache, so a hybrid
  // CPU's L2 of performance and of efficiency cores stay apart.
  std::map<std::tuple<int, int, std::uint64_t>, CacheLevel> by_key;
  for (hwloc_obj_type_t type : kCacheTypes) {
    hwloc_obj_t obj = nullptr;
    while ((obj = hwloc_get_next_obj_by_type(topo, type, obj)) != nullptr) {
      CacheLevel c;
      c.level = static_cast<int>(obj->attr->cache.depth);
      c.type = cache_type_name(obj->attr->cache.type);
      c.size_bytes = obj->attr->cache.size;
      auto key = std::make_tuple(c.level, cache_type_rank(c.type), c.size_bytes);
      auto [it, inserted] = by_key.emplace(key, c);
      ++it->second.count;
    }
  }
  std::vector<CacheLevel> caches;
  for (auto& [key, c] : by_key) caches.push_back(c);
  return caches;
}

// Groups the PUs by core, in hwloc's logical order. A PU outside any core
// object (some virtual machines report none) is a core of its own.
void collect_cores(hwloc_topology_t topo, Topology& out, std::vector<hwloc_obj_t>& first_pu) {
  std::map<hwloc_obj_t, std::size_t> core_index;
  hwloc_obj_t pu = nullptr;
  while ((pu = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, pu)) != nullptr) {
    hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
    hwloc_obj_t key = core != nullptr ? core : pu;
    auto [it, inserted] = core_index.emplace(key, out.core_pus.size());
    if (inserted) {
      out.core_pus.emplace_back();
      first_pu.push_back(pu);
    }
    out.core_pus[it->second].push_back(static_cast<int>(pu->os_index));
  }
  out.pus = static_cast<int>(hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU));
  out.cores = static_cast<int>(out.core_pus.size());
}

// CPU kinds that still have PUs in this (possibly restricted) topology. A
// machine with one kind reports none.
void collect_kinds(hwloc_topology_t topo, Topology& out, const std::vector<hwloc_obj_t>& first_pu) {
  int nr = hwloc_cpukinds_get_nr(topo, 0);
  if (nr < 2) return;
  hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(topo);
  std::vector<Bitmap> sets;
  for (int i = 0; i < nr; ++i) {
    Bitmap set(hwloc_bitmap_alloc());
    int efficiency = -1;
    unsigned nr_infos = 0;
    hwloc_info_s* infos = nullptr;
    if (!set || hwloc_cpukinds_get_info(topo, static_cast<unsigned>(i), set.get(), &efficiency,
                                        &nr_infos, &infos, 0) != 0) {
      spdlog::debug("topology: cannot read CPU kind {}: {}", i, sys::errno_text(errno));
      continue;
    }
    hwloc_bitmap_and(set.get(), set.get(), all);
    if (hwloc_bitmap_iszero(set.get())) continue;
    CoreKind kind;
    kind.efficiency = efficiency;
    for (unsigned j = 0; j < nr_infos; ++j) {
      if (infos[j].name != nullptr && std::strcmp(infos[j].name, "CoreType") == 0 &&
          infos[j].value != nullptr) {
        kind.core_type = infos[j].value;
      }
    }
    kind.pus = hwloc_bitmap_weight(set.get());
    out.kinds.push_back(kind);
    sets.push_back(std::move(set));
  }
  if (out.kinds.size() < 2) {
    out.kinds.clear();
    return;
  }
  out.core_kind.assign(out.core_pus.size(), -1);
  for (std::size_t c = 0; c < first_pu.size(); ++c) {
    for (std::size_t k = 0; k < sets.size(); ++k) {
      if (hwloc_bitmap_isset(sets[k].get(), first_pu[c]->os_index)) {
        out.core_kind[c] = static_cast<int>(k);
        ++out.kinds[k].cores;
        break;
      }
    }
  }
}

Expected<Topology> convert(hwloc_topology_t topo) {
  Topology out;
  std::vector<hwloc_obj_t> first_pu;
  collect_cores(topo, out, first_pu);
  if (out.pus == 0) return make_error("hwloc: the topology has no processing unit");
  out.sockets = std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE));
  out.numa_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  hwloc_obj_t node = nullptr;
  while ((node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)) != nullptr) {
    out.memory_bytes += node->attr->numanode.local_memory;
  }
  out.caches = collect_caches(topo);
  collect_kinds(topo, out, first_pu);
  return out;
}

}  // namespace

Expected<Topology> probe_this_node() {
  std::string cache_dir = default_topology_cache_dir();
  if (!cache_dir.empty()) {
    auto cached = probe_this_node_cached(cache_dir);
    if (cached) return std::move(cached->topology);
    spdlog::debug("topology: {}", cached.error().message);
  }
  auto topo = load_this_node();
  if (!topo) return topo.error();
  return convert(topo->get());
}

std::string hwloc_library_version() {
  unsigned v = hwloc_get_api_version();
  return std::to_string(v >> 16) + "." + std::to_string((v >> 8) & 0xff) + "." +
         std::to_string(v & 0xff);
}

Expected<std::string> this_node_xml() {
  auto topo = load_this_node();
  if (!topo) return topo.error();
  char* buffer = nullptr;
  int length = 0;
  if (hwloc_topology_export_xmlbuffer(topo->get(), &buffer, &length, 0) != 0) {
    return make_error("hwloc: cannot export this node's topology as XML: " + sys::errno_text(errno));
  }
  // length counts the terminating NUL.
  std::string xml(buffer, length > 0 ? static_cast<std::size_t>(length - 1) : 0);
  hwloc_free_xmlbuffer(topo->get(), buffer);
  return xml;
}

Expected<Topology> load_topology_xml(const std::string& xml) {
  if (xml.empty()) return make_error("hwloc: the topology XML is empty");
  auto topo = init_topology();
  if (!topo) return topo.error();
  if (hwloc_topology_set_xmlbuffer(topo->get(), xml.c_str(), static_cast<int>(xml.size() + 1)) != 0) {
    return make_error("hwloc: cannot use the topology XML: " + sys::errno_text(errno));
  }
  if (hwloc_topology_load(topo->get()) != 0) {
    return make_error("hwloc: cannot load the topology XML (is it an hwloc 2 export, as "
                      "`lstopo --of xml` writes?): " + sys::errno_text(errno));
  }
  return convert(topo->get());
}

Expected<Topology> load_topology_xml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open topology file " + path + ": " + sys::errno_text(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_error("cannot read topology file " + path);
  auto topology = load_topology_xml(text.str());
  if (!topology) return make_error(path + ": " + topology.error().message);
  return topology;
}

}  // namespace mosix
