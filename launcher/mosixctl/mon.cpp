// mosixctl mon: a live view of every node's load as bars, refreshed each
// second, like MOSIX's mosmon. --once draws one frame (for scripts, tests and
// terminals that are not terminals); --json writes each frame as one line of
// JSON, the nodes as `mosixctl ps --json` shows them.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>
#include <unistd.h>

#include "launcher/mosixctl/commands.h"
#include "runtime/job/control.h"

namespace mosix::ctl {
namespace {

struct MonOptions {
  std::string job;
  bool once = false;
  bool json = false;
  double interval = 1.0;
};

volatile std::sig_atomic_t g_stop = 0;

std::string bar(double value, double full, int width) {
  int n = full > 0 ? static_cast<int>(value / full * width + 0.5) : 0;
  n = std::max(0, std::min(width, n));
  return std::string(static_cast<size_t>(n), '#') + std::string(static_cast<size_t>(width - n), '.');
}

std::string frame(const JobRecord& job, const std::vector<NodeView>& nodes) {
  std::string out = "mosix mon - job " + job.id + ": " + job.command + "\n\n";
  double top = 1.0;
  for (const NodeView& n : nodes) top = std::max(top, n.load);
  char line[256];
  std::snprintf(line, sizeof line, "%-10s %6s %5s %6s %6s %6s  load (full bar = %.2f)\n", "NODE",
                "SPEED", "CORES", "GUESTS", "LOAD", "CPU", top);
  out += line;
  for (const NodeView& n : nodes) {
    std::snprintf(line, sizeof line, "%-10s %6.2f %5d %6d %6.2f %6.2f  |%s|\n", n.name.c_str(), n.speed, n.cores,
                  n.guests, n.load, n.cpu, bar(n.load, top, 40).c_str());
    out += line;
  }
  return out;
}

void run_mon(const MonOptions& o) {
  auto job = pick_job(o.job);
  if (!job) throw CommandError(job.error().message);
  bool tty = ::isatty(1);
  std::signal(SIGINT, [](int) { g_stop = 1; });
  for (bool first = true; !g_stop; first = false) {
    auto nodes = request_nodes(*job);
    if (!nodes) {
      if (!first) break;  // the job ended while we watched
      throw CommandError(nodes.error().message);
    }
    std::string text;
    if (o.json) {
      nlohmann::json out = {{"version", 1}, {"job", job->id}, {"nodes", nlohmann::json::array()}};
      for (const NodeView& n : *nodes) out["nodes"].push_back(to_json(n));
      text = out.dump() + "\n";
    } else {
      text = frame(*job, *nodes);
      if (tty && !o.once) std::fputs("\033[H\033[2J", stdout);
    }
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    if (o.once) return;
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval));
  }
}

}  // namespace

void register_mon(CLI::App& app) {
  auto o = std::make_shared<MonOptions>();
  CLI::App* cmd = app.add_subcommand("mon", "Live view of every node's load, like MOSIX's mosmon");
  cmd->add_option("--job", o->job, "Job id (needed when several jobs run)");
  cmd->add_flag("--once", o->once, "Draw one frame and exit");
  cmd->add_flag("--json", o->json, "Each frame as one line of JSON (the nodes as in mosixctl ps --json)");
  cmd->add_option("--interval", o->interval, "Seconds between frames (default 1)")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->callback([o] { run_mon(*o); });
}

}  // namespace mosix::ctl
