// mosixctl migrate RANK|PID NODE|home|best [--job ID] [--json]: moves a
// running guest of a job to another node of it (the job's control socket
// carries the order; the node daemons stream its image). Exit 0 when the
// guest runs on the target; 1 with the reason when it stays where it was.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "launcher/mosixctl/commands.h"
#include "runtime/daemon/control.h"

namespace mosix::ctl {
namespace {

struct MigrateOptions {
  std::string target;
  std::string to;
  std::string job;
  bool json = false;
};

// A rank of the job, or the rank of the guest whose real pid this is.
int resolve_rank(const JobRecord& job, const std::string& target) {
  char* end = nullptr;
  long n = std::strtol(target.c_str(), &end, 10);
  if (target.empty() || *end != '\0' || n < 0) throw CommandError("'" + target + "' is neither a rank nor a pid");
  auto reply = control_request(job, {{"cmd", "ps"}});
  if (!reply) throw CommandError(reply.error().message);
  for (const auto& g : (*reply)["guests"]) {
    if (g.value("rank", -1) == n) return static_cast<int>(n);
  }
  for (const auto& g : (*reply)["guests"]) {
    if (g.value("pid", 0) == n) return g.value("rank", -1);
  }
  throw CommandError("job " + job.id + " has no rank or guest pid " + target + " (see mosixctl ps)");
}

void run_migrate(const MigrateOptions& o) {
  auto job = pick_job(o.job);
  if (!job) throw CommandError(job.error().message);
  int rank = resolve_rank(*job, o.target);
  auto reply = control_request(*job, {{"cmd", "migrate"}, {"rank", rank}, {"to", o.to}}, 600000);
  if (!reply) throw CommandError(reply.error().message);
  if (o.json) {
    nlohmann::json out = *reply;
    out["version"] = 1;
    out["job"] = job->id;
    std::cout << out.dump(2) << "\n";
    if (!reply->value("ok", false)) throw CommandError(reply->value("error", "the migration failed"));
    return;
  }
  if (!reply->value("ok", false)) throw CommandError(reply->value("error", "the migration failed"));
  std::cout << "rank " << rank << " moved from " << reply->value("from", "?") << " to "
            << reply->value("to", "?") << " (pid " << reply->value("pid", 0) << "): "
            << reply->value("bytes", 0ull) << " bytes, stopped " << reply->value("stopped_ms", 0u)
            << " ms\n";
}

}  // namespace

void register_migrate(CLI::App& app) {
  auto o = std::make_shared<MigrateOptions>();
  CLI::App* cmd = app.add_subcommand("migrate", "Move a running guest of a job to another node");
  cmd->add_option("target", o->target, "Rank of the guest in its job, or its real pid")->required();
  cmd->add_option("node", o->to, "Node name (mosixctl status), home, or best (the least loaded)")
      ->required();
  cmd->add_option("--job", o->job, "Job id (needed when several jobs run; see mosixctl status)");
  cmd->add_flag("--json", o->json, "Machine-readable result: bytes moved, stopped time");
  cmd->callback([o] { run_migrate(*o); });
}

}  // namespace mosix::ctl
