// mosixctl tune: measures this node's MOSIX speed and stores it where mosixd
// and mosixctl status find it.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "launcher/mosixctl/commands.h"
#include "runtime/topology/speed.h"

namespace mosix::ctl {
namespace {

struct TuneOptions {
  double duration_s = 3.0;
  bool json = false;
};

// A bar redrawn in place on a terminal; one line per run otherwise, so logs
// of batch jobs stay readable.
void show_progress(const CalibrationProgress& p, bool tty) {
  if (tty) {
    constexpr int kWidth = 30;
    int filled = p.runs_total > 0 ? kWidth * p.runs_done / p.runs_total : kWidth;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\rcalibrating [%s] %3d%%  speed %.2f", bar.c_str(),
                 100 * p.runs_done / std::max(1, p.runs_total), p.best_speed);
    if (p.runs_done == p.runs_total) std::fputc('\n', stderr);
  } else {
    std::fprintf(stderr, "calibrating: run %d/%d, best speed %.2f\n", p.runs_done, p.runs_total,
                 p.best_speed);
  }
  std::fflush(stderr);
}

void run_tune(const TuneOptions& options) {
  auto path = speed_file_path();
  if (!path) throw CommandError(path.error().message);
  bool tty = isatty(STDERR_FILENO) == 1;
  auto duration = std::chrono::milliseconds(std::llround(options.duration_s * 1000.0));
  SpeedRecord record =
      calibrate(duration, [tty](const CalibrationProgress& p) { show_progress(p, tty); });
  if (Status stored = store_speed(record, path.value()); !stored) {
    throw CommandError("measured speed " + std::to_string(record.speed) +
                       " but cannot store it: " + stored.error().message);
  }
  if (options.json) {
    nlohmann::json out = speed_to_json(record);
    out["file"] = path.value();
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::printf("speed %.2f (score %.0f units/s, reference %.0f; %d cores)\n", record.speed,
              record.score, kReferenceScore, record.cores);
  std::printf("stored in %s\n", path->c_str());
}

}  // namespace

void register_tune(CLI::App& app) {
  auto options = std::make_shared<TuneOptions>();
  CLI::App* tune = app.add_subcommand(
      "tune", "Measure this node's speed relative to the reference machine and store it");
  tune->add_option("--duration", options->duration_s,
                   "Seconds of CPU time to spend measuring (best of runs of 0.25 s)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  tune->add_flag("--json", options->json, "Print the result as JSON");
  tune->callback([options] { run_tune(*options); });
}

}  // namespace mosix::ctl
