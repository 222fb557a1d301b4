#include "runtime/topology/speed.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "runtime/sys/atomic_file.h"
#include "runtime/sys/errno_text.h"
#include "runtime/sys/private_path.h"
#include "runtime/topology/topology.h"

namespace mosix {
namespace {

constexpr int kStepsPerUnit = 1 << 14;
constexpr auto kRunLength = std::chrono::milliseconds(250);

std::string utc_now_iso8601() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Kernel units per second of CPU time of one short run: it lasts until this
// thread has had `length` of CPU time, or 3 x `length` of wall time on a node
// too busy to give it that. Counting CPU time, not wall time, keeps other
// programs' share of the CPU out of the score; taking the best run keeps out
// most of what they do to the caches and to a shared core.
double timed_run(std::chrono::nanoseconds length) {
  using Clock = std::chrono::steady_clock;
  static volatile std::uint64_t sink = 0;
  std::uint64_t units = 0;
  std::uint64_t chain = sink;
  auto wall_start = Clock::now();
  auto cpu_start = thread_cpu_time();
  auto cpu = std::chrono::nanoseconds(0);
  do {
    chain = run_speed_kernel(1, chain);
    ++units;
    cpu = thread_cpu_time() - cpu_start;
  } while (cpu < length && Clock::now() - wall_start < 3 * length);
  sink = chain;
  return static_cast<double>(units) / std::chrono::duration<double>(cpu).count();
}

int node_cores() {
  if (auto topology = probe_this_node(); topology.ok()) return topology->cores;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
}  // namespace

std::uint64_t run_speed_kernel(std::uint64_t units, std::uint64_t seed) {
  std::uint32_t table[512];
  for (std::uint32_t i = 0; i < 512; ++i) table[i] = i * 2654435761u;
  std::uint64_t x = seed | 1u;
  double f = 1.0;
  double g = 0.5;
  for (std::uint64_t u = 0; u < units; ++u) {
    for (int s = 0; s < kStepsPerUnit; ++s) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::uint64_t m = x * 0x9E3779B97F4A7C15ull;
      std::uint32_t& slot = table[m >> 55];
      slot += static_cast<std::uint32_t>(m);
      if (slot & 1u) {
        x += slot;
      } else {
        x ^= slot >> 3;
      }
      f = f * 0.999999 + static_cast<double>(slot & 0xffffu) * 1e-6;
      if ((s & 15) == 15) g = g / (1.0 + f * 1e-3) + 0.5;
    }
  }
  std::uint64_t sum = 0;
  for (std::uint32_t v : table) sum += v;
  return x ^ sum ^ std::bit_cast<std::uint64_t>(f) ^ std::bit_cast<std::uint64_t>(g);
}

SpeedRecord calibrate(std::chrono::milliseconds duration, const CalibrationCallback& progress) {
  int runs = static_cast<int>(std::max<long long>(1, duration / kRunLength));
  auto length = std::max(std::chrono::nanoseconds(duration) / runs,
                         std::chrono::nanoseconds(std::chrono::milliseconds(10)));
  SpeedRecord record;
  record.kernel_version = kSpeedKernelVersion;
  for (int i = 0; i < runs; ++i) {
    double score = timed_run(length);
    spdlog::debug("speed: run {}/{}: {:.1f} units/s", i + 1, runs, score);
    record.score = std::max(record.score, score);
    if (progress) progress({i + 1, runs, record.score / kReferenceScore});
  }
  record.speed = record.score / kReferenceScore;
  record.cores = node_cores();
  record.date = utc_now_iso8601();
  return record;
}

Expected<std::string> speed_file_path(const char* xdg_state_home, const char* home) {
  if (xdg_state_home != nullptr && xdg_state_home[0] == '/') {
    return std::string(xdg_state_home) + "/mosix/speed.json";
  }
  if (home != nullptr && home[0] == '/') {
    return std::string(home) + "/.local/state/mosix/speed.json";
  }
  return make_error("cannot tell where to keep this node's speed: set HOME or XDG_STATE_HOME "
                    "to an absolute path");
}

Expected<std::string> speed_file_path() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] != '/') {
    if (const passwd* pw = getpwuid(getuid()); pw != nullptr) home = pw->pw_dir;
  }
  return speed_file_path(std::getenv("XDG_STATE_HOME"), home);
}

nlohmann::json speed_to_json(const SpeedRecord& r) {
  return {{"speed", r.speed},
          {"score", r.score},
          {"reference_score", kReferenceScore},
          {"cores", r.cores},
          {"date", r.date},
          {"kernel_version", r.kernel_version}};
}

Expected<SpeedRecord> speed_from_json(const nlohmann::json& j) {
  try {
    SpeedRecord r;
    r.speed = j.at("speed").get<double>();
    r.score = j.at("score").get<double>();
    r.cores = j.at("cores").get<int>();
    r.date = j.at("date").get<std::string>();
    r.kernel_version = j.at("kernel_version").get<int>();
    if (!(r.speed > 0.0)) return make_error("speed record: speed must be positive");
    return r;
  } catch (const nlohmann::json::exception& e) {
    return make_error(std::string("speed record: ") + e.what());
  }
}

Status store_speed(const SpeedRecord& record, const std::string& path) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (Status made = sys::ensure_private_dir(path.substr(0, slash)); !made) return made;
  }
  return sys::write_file_atomically(path, speed_to_json(record).dump(2) + "\n", sys::Durability::kDurable);
}

Expected<std::optional<SpeedRecord>> load_speed(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<SpeedRecord>();
    return make_error("cannot read " + path + ": " + sys::errno_text(errno));
  }
  std::ifstream in(path);
  if (!in) return make_error("cannot open " + path + ": " + sys::errno_text(errno));
  std::ostringstream text;
  text << in.rdbuf();
  auto json = nlohmann::json::parse(text.str(), nullptr, false);
  if (json.is_discarded()) {
    return make_error(path + " is not valid JSON: run mosixctl tune to measure again");
  }
  auto record = speed_from_json(json);
  if (!record) return make_error(path + ": " + record.error().message);
  if (record->kernel_version != kSpeedKernelVersion) {
    return make_error(path + " was measured with speed kernel " +
                      std::to_string(record->kernel_version) + ", this build uses " +
                      std::to_string(kSpeedKernelVersion) + ": run mosixctl tune");
  }
  return std::optional<SpeedRecord>(std::move(record).value());
}

double stored_speed_or(double fallback) {
  auto path = speed_file_path();
  if (!path) {
    spdlog::warn("speed: {}; using {}", path.error().message, fallback);
    return fallback;
  }
  auto record = load_speed(path.value());
  if (!record) {
    spdlog::warn("speed: {}; using {}", record.error().message, fallback);
    return fallback;
  }
  if (!record->has_value()) {
    spdlog::info("speed: this node is not calibrated (run mosixctl tune); using {}", fallback);
    return fallback;
  }
  return record->value().speed;
}

}  // namespace mosix
