#include "runtime/topology/topology.h"

#include <cstdio>

namespace mosix {

nlohmann::json to_json(const Topology& t) {
  nlohmann::json caches = nlohmann::json::array();
  for (const auto& c : t.caches) {
    caches.push_back({{"level", c.level}, {"type", c.type}, {"size_bytes", c.size_bytes},
                      {"count", c.count}});
  }
  nlohmann::json kinds = nlohmann::json::array();
  for (const auto& k : t.kinds) {
    kinds.push_back({{"efficiency", k.efficiency}, {"core_type", k.core_type},
                     {"cores", k.cores}, {"pus", k.pus}});
  }
  return {{"sockets", t.sockets},
          {"cores", t.cores},
          {"pus", t.pus},
          {"numa_nodes", t.numa_nodes},
          {"memory_bytes", t.memory_bytes},
          {"caches", caches},
          {"kinds", kinds},
          {"core_pus", t.core_pus},
          {"core_kind", t.core_kind}};
}

Expected<Topology> topology_from_json(const nlohmann::json& j) {
  try {
    Topology t;
    t.sockets = j.at("sockets").get<int>();
    t.cores = j.at("cores").get<int>();
    t.pus = j.at("pus").get<int>();
    t.numa_nodes = j.at("numa_nodes").get<int>();
    t.memory_bytes = j.at("memory_bytes").get<std::uint64_t>();
    for (const auto& c : j.at("caches")) {
      t.caches.push_back({c.at("level").get<int>(), c.at("type").get<std::string>(),
                          c.at("size_bytes").get<std::uint64_t>(), c.at("count").get<int>()});
    }
    for (const auto& k : j.at("kinds")) {
      t.kinds.push_back({k.at("efficiency").get<int>(), k.at("core_type").get<std::string>(),
                         k.at("cores").get<int>(), k.at("pus").get<int>()});
    }
    t.core_pus = j.at("core_pus").get<std::vector<std::vector<int>>>();
    t.core_kind = j.at("core_kind").get<std::vector<int>>();
    if (t.core_pus.size() != static_cast<std::size_t>(t.cores)) {
      return make_error("topology JSON: core_pus has " + std::to_string(t.core_pus.size()) +
                        " entries but cores is " + std::to_string(t.cores));
    }
    return t;
  } catch (const nlohmann::json::exception& e) {
    return make_error(std::string("topology JSON: ") + e.what());
  }
}

namespace {

std::string plural(long n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string gib(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return text;
}

}  // namespace

std::string summary(const Topology& t) {
  std::string s = plural(t.sockets, "socket", "sockets") + ", " +
                  plural(t.cores, "core", "cores") + ", " + plural(t.pus, "PU", "PUs") + ", " +
                  plural(t.numa_nodes, "NUMA node", "NUMA nodes") + ", " + gib(t.memory_bytes);
  if (!t.kinds.empty()) {
    s += " (";
    // Most powerful kind first, as people name hybrid CPUs: "6P + 8E".
    for (auto it = t.kinds.rbegin(); it != t.kinds.rend(); ++it) {
      if (it != t.kinds.rbegin()) s += " + ";
      s += std::to_string(it->cores) + " " + (it->core_type.empty() ? "kind" : it->core_type);
    }
    s += " cores)";
  }
  return s;
}

}  // namespace mosix
