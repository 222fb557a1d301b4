// This node's topology, probed once per boot. hwloc's probe reads hundreds of
// /sys files (15-40 ms), and every mosixrun and node daemon needs the
// topology at start; it does not change until the machine reboots or the
// CPUs and memory nodes the process may use change. So the probe's XML export
// is kept in the user's private runtime directory, in a file named after
// those CPUs and memory nodes, and holding the key it was probed under: the
// boot id (/proc/sys/kernel/random/boot_id), the allowed CPUs and memory
// nodes (/proc/self/status), and hwloc's version. A file is used only if it
// is a regular file of ours that nobody else may write, its key is this
// process's, and its checksum (CRC32C of the XML) and hwloc's loading of it
// agree; otherwise the node is probed and the file written again (atomically:
// a temporary file renamed over it). Memory added to a running machine
// (hotplug) is not seen until the next boot.
#pragma once

#include <string>

#include "runtime/core/expected.h"
#include "runtime/topology/topology.h"

namespace mosix {

// What a cached topology depends on.
struct TopologyCacheKey {
  std::string boot_id;
  std::string cpus;   // Cpus_allowed_list of /proc/self/status, e.g. "0-3,8"
  std::string mems;   // Mems_allowed_list
  std::string hwloc;  // hwloc's API version, e.g. "2.9.0"

  bool operator==(const TopologyCacheKey&) const = default;
};

// This process's key. Fails when /proc cannot be read (then nothing is cached).
Expected<TopologyCacheKey> this_process_cache_key();

// The file in `dir` for `key`: one per set of allowed CPUs and memory nodes,
// so that processes bound differently (taskset, a batch system's binding) do
// not overwrite each other's; a new boot replaces the file.
std::string topology_cache_path(const std::string& dir, const TopologyCacheKey& key);

// The topology in the cache file at `path` if it is ours, intact and of `key`;
// otherwise an error saying why it is not used (missing, other boot, ...).
Expected<Topology> read_cached_topology(const std::string& path, const TopologyCacheKey& key);

// Writes `xml` (an hwloc export) as the cache file at `path` for `key`: a
// temporary file in the same directory, renamed over `path`.
Status write_cached_topology(const std::string& path, const TopologyCacheKey& key,
                             const std::string& xml);

struct CachedProbe {
  Topology topology;
  bool from_cache = false;  // false: probed now (and the cache written, if it could be)
};

// The topology of this node, restricted as probe_this_node's: from the cache
// in `dir` when it holds a good one for this process's key, else probed and
// stored there. `dir` must be a private directory of ours (it is created,
// mode 0700, if missing); when it cannot be used the node is probed and
// nothing is cached.
Expected<CachedProbe> probe_this_node_cached(const std::string& dir);

// Where probe_this_node() keeps its cache: the runtime directory
// (sys::runtime_dir_path(), docs/runtime-directory.md). Empty when caching is off: MOSIX_TOPOLOGY_CACHE=0, or an
// HWLOC_* variable that changes what hwloc probes (HWLOC_XMLFILE,
// HWLOC_FSROOT, HWLOC_SYNTHETIC, HWLOC_COMPONENTS, ...) is set.
std::string default_topology_cache_dir();

}  // namespace mosix
