// mosixctl ps: the guests of a running job (rank, real pid, home, node now,
// state, CPU time; for a child placed on another node, its parent's rank and
// its command), asked of the job itself over its control socket.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "launcher/mosixctl/commands.h"
#include "runtime/job/control.h"

namespace mosix::ctl {
namespace {

struct PsOptions {
  std::string job;
  bool json = false;
  bool explain = false;
};

// CPU seconds with two decimals, "-" when not known.
std::string cpu_text(double seconds) {
  if (seconds < 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", seconds);
  return text;
}

void run_ps(const PsOptions& o) {
  auto job = pick_job(o.job);
  if (!job) throw CommandError(job.error().message);
  auto guests = request_guests(*job);
  if (!guests) throw CommandError(guests.error().message);
  // A job that cannot say its nodes still shows its guests.
  auto nodes = request_nodes(*job);
  std::vector<NodeView> node_list = nodes ? std::move(*nodes) : std::vector<NodeView>{};
  if (o.json) {
    nlohmann::json out = {{"version", 1}, {"job", job->id}, {"command", job->command},
                          {"nodes", nlohmann::json::array()}, {"guests", nlohmann::json::array()}};
    for (const NodeView& n : node_list) out["nodes"].push_back(to_json(n));
    for (const GuestView& g : *guests) out["guests"].push_back(to_json(g));
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::printf("job %s: %s\n", job->id.c_str(), job->command.c_str());
  std::printf("%-14s %6s %5s %6s %6s %7s %10s\n", "NODE", "SPEED", "CORES", "LOAD", "CPU", "GUESTS", "FREE MEM");
  for (const NodeView& n : node_list) {
    double free_gib = static_cast<double>(n.free_memory) / (1024.0 * 1024 * 1024);
    std::printf("%-14s %6.2f %5d %6.2f %6.2f %7d %8.1f G\n", n.name.c_str(), n.speed, n.cores, n.load, n.cpu, n.guests,
                free_gib);
  }
  std::printf("\n");
  std::printf("%5s %8s %-14s %-14s %-9s %9s\n", "RANK", "PID", "HOME", "NODE", "STATE", "CPU(s)");
  for (const GuestView& g : *guests) {
    std::string state = g.state.empty() ? "?" : g.state;
    if (state == "exited") state += " " + std::to_string(g.exit_status < 0 ? 0 : g.exit_status);
    std::printf("%5d %8d %-14s %-14s %-9s %9s", g.rank, static_cast<int>(g.pid), g.home.c_str(), g.node.c_str(),
                state.c_str(), cpu_text(g.cpu_seconds).c_str());
    // A child placed on another node: whose, and what it runs.
    if (g.parent >= 0) std::printf("  child of %d: %.60s", g.parent, g.command.c_str());
    std::printf("\n");
    if (!g.cantmove.empty()) std::printf("      cantmove: %s\n", g.cantmove.c_str());
    if (o.explain) {
      std::printf("      decision: %s\n", g.explanation.empty() ? "none yet (its node decides about once a second)"
                                                               : g.explanation.c_str());
    }
  }
}

}  // namespace

void register_ps(CLI::App& app) {
  auto o = std::make_shared<PsOptions>();
  CLI::App* cmd = app.add_subcommand("ps", "The guests of a running job: rank, pid, node, state, CPU time");
  cmd->add_option("--job", o->job, "Job id (needed when several jobs run; see mosixctl status)");
  cmd->add_flag("--json", o->json, "Machine-readable output (see docs/mosixctl.md)");
  cmd->add_flag("--explain", o->explain,
                "Under each guest, its node's last rebalancing decision: verdict, load, best target, gain, cost");
  cmd->callback([o] { run_ps(*o); });
}

}  // namespace mosix::ctl
