#include "runtime/topology/node_load.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

namespace mosix {
namespace {

Expected<std::string> read_proc_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

Expected<LoadAverage> parse_loadavg(const std::string& text) {
  std::istringstream in(text);
  LoadAverage load;
  char slash = 0;
  if (!(in >> load.avg1 >> load.avg5 >> load.avg15 >> load.running >> slash >> load.threads) ||
      slash != '/') {
    return make_error("cannot parse /proc/loadavg: '" + text.substr(0, 64) + "'");
  }
  return load;
}

Expected<MemoryInfo> parse_meminfo(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::optional<std::uint64_t> total;
  std::optional<std::uint64_t> available;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    std::uint64_t value = 0;
    std::string unit;
    if (!(fields >> name >> value)) continue;
    fields >> unit;
    std::uint64_t bytes = unit == "kB" ? value * 1024 : value;
    if (name == "MemTotal:") total = bytes;
    if (name == "MemAvailable:") available = bytes;
  }
  if (!total || !available) {
    return make_error("/proc/meminfo has no MemTotal or MemAvailable line (Linux 3.14 or later "
                      "is needed)");
  }
  return MemoryInfo{*total, *available};
}

Expected<LoadAverage> read_loadavg() {
  auto text = read_proc_file("/proc/loadavg");
  if (!text) return text.error();
  return parse_loadavg(text.value());
}

Expected<MemoryInfo> read_meminfo() {
  auto text = read_proc_file("/proc/meminfo");
  if (!text) return text.error();
  return parse_meminfo(text.value());
}

}  // namespace mosix
