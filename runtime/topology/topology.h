// What a node is made of, as hwloc sees it: packages, cores, PUs, NUMA nodes,
// memory, caches and CPU kinds, in plain values that the rest of the runtime
// can copy, compare and send. Probing this node honours the CPUs the process
// may use (cgroup cpuset and the affinity it was started with); loading an
// XML file reproduces another machine exactly as it was exported.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/expected.h"

namespace mosix {

// The caches of one level and type, e.g. 32 L1d caches of 48 KiB each.
struct CacheLevel {
  int level = 0;             // 1, 2, 3, ...
  std::string type;          // "data", "instruction" or "unified"
  std::uint64_t size_bytes = 0;  // size of one cache of this level
  int count = 0;             // how many there are

  bool operator==(const CacheLevel&) const = default;
};

// One kind of core on a hybrid CPU (hwloc cpukinds). Kinds are listed from the
// most energy-efficient to the most powerful.
struct CoreKind {
  int efficiency = -1;       // hwloc's rank, higher is faster; -1 if unknown
  std::string core_type;     // hwloc info "CoreType" (e.g. "IntelCore", "IntelAtom"), or empty
  int cores = 0;             // cores whose PUs are all of this kind
  int pus = 0;               // PUs of this kind

  bool operator==(const CoreKind&) const = default;
};

struct Topology {
  int sockets = 0;
  int cores = 0;             // usable cores; a PU without a core object counts as a core
  int pus = 0;               // usable hardware threads
  int numa_nodes = 0;
  std::uint64_t memory_bytes = 0;  // memory of the usable NUMA nodes
  std::vector<CacheLevel> caches;  // by level, then data before instruction
  std::vector<CoreKind> kinds;     // empty on a CPU with one kind of core
  // OS indexes (as sched_setaffinity takes them) of the PUs of each core, in
  // hwloc's logical order; core_pus.size() == cores. Bind rank i to
  // core_pus[i % cores].
  std::vector<std::vector<int>> core_pus;
  // Index into `kinds` of each core, parallel to core_pus; empty when kinds is.
  std::vector<int> core_kind;

  bool operator==(const Topology&) const = default;
};

// The topology of the machine this process runs on, restricted to the CPUs it
// is allowed to use. Probed once per boot and binding, then read from a cache
// (topology_cache.h).
Expected<Topology> probe_this_node();
// This node's topology (with the same restriction) as hwloc XML, probed now,
// to be loaded elsewhere with load_topology_xml.
Expected<std::string> this_node_xml();
// The version of the hwloc library in use, e.g. "2.9.0".
std::string hwloc_library_version();
// A topology exported by hwloc (lstopo --of xml, hwloc_topology_export_xml).
Expected<Topology> load_topology_xml(const std::string& xml);
Expected<Topology> load_topology_xml_file(const std::string& path);

// JSON of a topology; field names are those of the struct. Stable: documented
// in docs/mosixctl.md (mosixctl status --json).
nlohmann::json to_json(const Topology& topology);
Expected<Topology> topology_from_json(const nlohmann::json& json);

// One line for people: "2 sockets, 32 cores, 64 PUs, 2 NUMA nodes, 256 GiB".
std::string summary(const Topology& topology);

}  // namespace mosix
