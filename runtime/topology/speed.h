// MOSIX speed: how fast one core of this node runs ordinary integer and
// floating-point code, relative to a reference machine (speed 1.0). A node
// of speed 2 finishes the same single-threaded work in half the time; the
// balancer uses it to weigh load. Measured once by `mosixctl tune` and kept in
// $XDG_STATE_HOME/mosix/speed.json (else ~/.local/state/mosix/speed.json).
//
// The kernel is single-core and deterministic: a serial chain of 64-bit
// xorshift/multiply steps, a data-dependent branch, reads and writes of a
// 2 KiB table (L1-resident) and a serial floating-point multiply-add chain
// with a division every 16 steps. Its score is kernel units (2^14 steps) per
// second of CPU time of the best of several short runs: other programs taking
// their share of the CPU do not lower it, and what they do to caches and
// shared cores lowers it only if they do it for the whole calibration.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/core/expected.h"

namespace mosix {

// Bumped whenever the kernel changes; a stored speed measured with another
// kernel is not used.
inline constexpr int kSpeedKernelVersion = 1;
// The kernel's score on the reference machine: the project's development VM
// (a 2-vCPU KVM guest on an Intel Xeon at 2.6 GHz, model 167; GCC 12 -O2),
// so that machine has speed 1.0. A build without optimisation scores lower:
// calibrate with the build that runs the jobs.
inline constexpr double kReferenceScore = 8500.0;

struct SpeedRecord {
  double speed = 1.0;     // score / kReferenceScore
  double score = 0.0;     // kernel units per second, best short run
  int cores = 0;          // cores of this node when it was measured
  std::string date;       // UTC, ISO 8601: "2025-01-31T12:00:00Z"
  int kernel_version = kSpeedKernelVersion;

  bool operator==(const SpeedRecord&) const = default;
};

struct CalibrationProgress {
  int runs_done = 0;
  int runs_total = 0;
  double best_speed = 0.0;  // best speed so far
};
using CalibrationCallback = std::function<void(const CalibrationProgress&)>;

// Runs the kernel for about `duration` of CPU time (at most 3 x `duration` of
// wall time on a busy node), split into short runs of 0.25 s (at least one),
// and returns the best. Calls `progress` after each run when it is set.
SpeedRecord calibrate(std::chrono::milliseconds duration = std::chrono::seconds(3),
                      const CalibrationCallback& progress = {});

// Runs `units` kernel units from `seed` and returns a value that depends on
// all of them (the timing loop chains it into the next seed, so no compiler
// can hoist or drop the work).
std::uint64_t run_speed_kernel(std::uint64_t units, std::uint64_t seed);

// Where the speed is stored, given the values of XDG_STATE_HOME and HOME
// (null or empty when unset). A relative XDG_STATE_HOME is ignored, as the
// XDG base directory specification says.
Expected<std::string> speed_file_path(const char* xdg_state_home, const char* home);
// The same for this process's environment (HOME falls back to the password
// database).
Expected<std::string> speed_file_path();

nlohmann::json speed_to_json(const SpeedRecord& record);
Expected<SpeedRecord> speed_from_json(const nlohmann::json& json);

// Writes `record` to `path` atomically (temporary file, then rename),
// creating the missing directories with mode 0700.
Status store_speed(const SpeedRecord& record, const std::string& path);
// The stored record; nullopt when `path` does not exist. A record measured
// with another kernel version, or an unreadable file, is an error.
Expected<std::optional<SpeedRecord>> load_speed(const std::string& path);
// This node's stored speed, or `fallback` (logged) when it was never
// calibrated or cannot be read. What mosixd uses.
double stored_speed_or(double fallback = 1.0);

}  // namespace mosix
