// mosixctl migrate RANK|PID NODE|home|best [--job ID] [--json]: moves a
// running guest of a job to another node of it (the job's control socket
// carries the order; the node daemons stream its image). Exit 0 when the
// guest runs on the target; 1 with the reason when it stays where it was.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "launcher/mosixctl/commands.h"
#include "runtime/job/control.h"

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
  auto guests = request_guests(job);
  if (!guests) throw CommandError(guests.error().message);
  for (const GuestView& g : *guests) {
    if (g.rank == n) return static_cast<int>(n);
  }
  for (const GuestView& g : *guests) {
    if (g.pid == n) return g.rank;
  }
  throw CommandError("job " + job.id + " has no rank or guest pid " + target + " (see mosixctl ps)");
}

// While a move takes more than a second, its progress on stderr (from the
// job's `ps`: checkpoint, transfer, restore): one line redrawn on a
// terminal; otherwise a line at each phase and every 2 s within one.
template <typename Future>
void show_progress(const JobRecord& job, int rank, Future& pending) {
  using namespace std::chrono_literals;
  const bool tty = ::isatty(2) == 1;
  const auto start = std::chrono::steady_clock::now();
  std::string shown;
  auto printed_at = start;
  while (pending.wait_for(250ms) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() - start < 1s) continue;
    auto guests = request_guests(job);
    if (!guests) continue;
    std::string now;
    for (const GuestView& g : *guests) {
      if (g.rank == rank) now = g.migration_progress;
    }
    if (now.empty() || now == shown) continue;
    if (tty) {
      std::fprintf(stderr, "\rmoving rank %d: %-40s", rank, now.c_str());
    } else if (now.substr(0, now.find(':')) != shown.substr(0, shown.find(':')) ||
               std::chrono::steady_clock::now() - printed_at >= 2s) {
      std::fprintf(stderr, "moving rank %d: %s\n", rank, now.c_str());
      printed_at = std::chrono::steady_clock::now();
    }
    shown = now;
  }
  if (tty && !shown.empty()) std::fprintf(stderr, "\r%-60s\r", "");
}

void run_migrate(const MigrateOptions& o) {
  auto job = pick_job(o.job);
  if (!job) throw CommandError(job.error().message);
  int rank = resolve_rank(*job, o.target);
  auto pending = std::async(std::launch::async, [&] {
    return control_request(*job, {{"cmd", "migrate"}, {"rank", rank}, {"to", o.to}}, 600000);
  });
  show_progress(*job, rank, pending);
  auto reply = pending.get();
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
            << reply->value("bytes", 0ull) << " bytes, stopped " << reply->value("stopped_ms", 0u) << " ms";
  if (unsigned rounds = reply->value("rounds", 0u); rounds > 0) {
    std::cout << " (" << reply->value("precopy_bytes", 0ull) << " bytes pre-copied in " << rounds
              << (rounds == 1 ? " round" : " rounds") << " before";
    if (auto early = reply->value("early_bytes", 0ull); early > 0) std::cout << ", " << early << " put in place then";
    std::cout << ")";
  }
  std::cout << "\n";
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
