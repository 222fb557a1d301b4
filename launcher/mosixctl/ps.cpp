// mosixctl ps: the guests of a running job (rank, real pid, home, node now,
// state, CPU time), asked of the job itself over its control socket.
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

void run_ps(const PsOptions& o) {
  auto job = pick_job(o.job);
  if (!job) throw CommandError(job.error().message);
  auto reply = control_request(*job, {{"cmd", "ps"}});
  if (!reply) throw CommandError(reply.error().message);
  if (!reply->value("ok", false)) throw CommandError(reply->value("error", "the job refused"));
  auto nodes = control_request(*job, {{"cmd", "nodes"}});
  nlohmann::json node_list = nodes && nodes->value("ok", false) ? (*nodes)["nodes"] : nlohmann::json::array();
  if (o.json) {
    nlohmann::json out = {{"version", 1}, {"job", job->id}, {"command", job->command},
                          {"nodes", node_list}, {"guests", (*reply)["guests"]}};
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::printf("job %s: %s\n", job->id.c_str(), job->command.c_str());
  std::printf("%-14s %6s %5s %6s %7s %10s\n", "NODE", "SPEED", "CORES", "LOAD", "GUESTS", "FREE MEM");
  for (const auto& n : node_list) {
    double free_gib = n.value("free_memory", 0.0) / (1024.0 * 1024 * 1024);
    std::printf("%-14s %6.2f %5d %6.2f %7d %8.1f G\n", n.value("name", "?").c_str(),
                n.value("speed", 0.0), n.value("cores", 0), n.value("load", 0.0),
                n.value("guests", 0), free_gib);
  }
  std::printf("\n");
  std::printf("%5s %8s %-14s %-14s %-9s %9s\n", "RANK", "PID", "HOME", "NODE", "STATE", "CPU(s)");
  for (const auto& g : (*reply)["guests"]) {
    double cpu = g.value("cpu_seconds", -1.0);
    std::string state = g.value("state", "?");
    if (state == "exited") state += " " + std::to_string(g.value("exit_status", 0));
    std::printf("%5d %8d %-14s %-14s %-9s %9s\n", g.value("rank", -1), g.value("pid", 0),
                g.value("home", "").c_str(), g.value("node", "").c_str(), state.c_str(),
                cpu < 0 ? "-" : std::to_string(cpu).substr(0, std::to_string(cpu).find('.') + 3).c_str());
    if (std::string why = g.value("cantmove", ""); !why.empty()) std::printf("      cantmove: %s\n", why.c_str());
    if (o.explain) {
      std::string line = g.contains("decision") ? g["decision"].value("explanation", "") : "";
      std::printf("      decision: %s\n", line.empty() ? "none yet (its node decides about once a second)" : line.c_str());
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
