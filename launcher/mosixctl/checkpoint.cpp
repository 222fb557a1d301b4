// mosixctl checkpoint PID|RANK [--job ID] [-o IMAGE] [--leave-running|--stop|
// --kill] [--compress none|fast|best] [--tree] [--json]: has the agent inside a
// guest write its image (runtime/ckpt/request.h), shows progress, and prints
// the path and size of the verified image. --tree takes the process and all
// its descendants together (checkpoint_tree.cpp). Exit 0 only for a
// complete, verified image.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "launcher/mosixctl/commands.h"
#include "runtime/ckpt/format/image_file.h"
#include "runtime/ckpt/request.h"
#include "runtime/ckpt/tree_request.h"
#include "runtime/job/job_registry.h"
#include "runtime/sys/private_path.h"
#include "runtime/sys/errno_text.h"

namespace mosix::ctl {
namespace {

struct CheckpointOptions {
  std::string target;
  std::string job;
  std::string output;
  std::string compress = "none";
  std::string ckpt_dir;
  bool leave_running = false;
  bool stop = false;
  bool kill = false;
  bool tree = false;
  bool json = false;
};

long parse_number(const std::string& text) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 0) throw CommandError("'" + text + "' is neither a pid nor a rank");
  return v;
}

// Whether `pid` is a rank of a running job (the job registry says so).
bool job_member(pid_t pid) {
  for (const JobRecord& j : list_jobs())
    for (const GuestRecord& g : j.guests)
      if (g.pid == pid && g.state != "exited") return true;
  return false;
}

// The guest's pid: TARGET itself when it is the pid of a guest (and no --job
// was given), else the pid of rank TARGET of the one running job (or of
// job ID).
pid_t resolve_target(const CheckpointOptions& o) {
  long n = parse_number(o.target);
  if (o.job.empty() && n > 0 && ckpt::check_guest(static_cast<pid_t>(n)).ok()) return static_cast<pid_t>(n);
  std::vector<JobRecord> jobs = list_jobs();
  std::vector<const JobRecord*> matching;
  for (const JobRecord& j : jobs)
    if (o.job.empty() || j.id == o.job) matching.push_back(&j);
  if (!o.job.empty() && matching.empty())
    throw CommandError("no running job " + o.job + " of yours on this node (see mosixctl status)");
  std::vector<std::pair<const JobRecord*, const GuestRecord*>> found;
  for (const JobRecord* j : matching)
    for (const GuestRecord& g : j->guests)
      if (g.rank == n) found.emplace_back(j, &g);
  if (found.empty()) {
    if (!o.job.empty()) throw CommandError("job " + o.job + " has no rank " + o.target);
    if (Status s = ckpt::check_guest(static_cast<pid_t>(n)); n > 0 && !s.ok() && jobs.empty())
      throw CommandError(s.error().message);
    throw CommandError("'" + o.target + "' is neither the pid of a guest nor a rank of a running job");
  }
  if (found.size() > 1)
    throw CommandError("rank " + o.target + " exists in " + std::to_string(found.size()) +
                       " running jobs: choose one with --job ID (see mosixctl status)");
  const auto& [job, guest] = found.front();
  if (guest->state == "exited")
    throw CommandError("rank " + o.target + " of job " + job->id + " has exited");
  if (Status s = ckpt::check_guest(guest->pid); !s.ok())
    throw CommandError("rank " + o.target + " of job " + job->id + " (pid " + std::to_string(guest->pid) +
                       " on node " + guest->node + "): " + s.error().message);
  return guest->pid;
}

std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string c;
  std::getline(in, c);
  return c.empty() ? "process" : c;
}

void run_checkpoint(const CheckpointOptions& o) {
  if ((o.leave_running ? 1 : 0) + (o.stop ? 1 : 0) + (o.kill ? 1 : 0) > 1)
    throw CommandError("give at most one of --leave-running, --stop, --kill");
  ckpt::CheckpointRequest r;
  if (!ckpt::parse_compression(o.compress, &r.compression))
    throw CommandError("--compress takes none, fast or best, not '" + o.compress + "'");
  r.pid = resolve_target(o);
  r.job_member = o.kill && job_member(r.pid);
  r.mode = o.kill ? ckpt::AfterCheckpoint::kKill
           : o.stop ? ckpt::AfterCheckpoint::kStop
                    : ckpt::AfterCheckpoint::kLeaveRunning;
  r.image_path = o.output;
  if (r.image_path.empty()) {
    std::string dir = o.ckpt_dir.empty()
                          ? ckpt::default_image_dir(getenv("XDG_STATE_HOME"), getenv("HOME"))
                          : o.ckpt_dir;
    if (dir.empty()) throw CommandError("no image directory: give -o IMAGE or --ckpt-dir DIR");
    // Images are code: their directory must be ours alone to write.
    if (Status s = sys::ensure_private_dir(dir); !s.ok()) throw CommandError(s.error().message);
    r.image_path = dir + "/" + comm_of(r.pid) + "-" + std::to_string(r.pid) + ".img";
  }
  // The agent opens the image inside the guest, whose working directory is
  // not ours: a relative path is made absolute here, where the user gave it.
  if (r.image_path[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == nullptr)
      throw CommandError("cannot resolve '" + r.image_path + "' (working directory: " + sys::errno_text(errno) +
                         "): give -o an absolute path");
    r.image_path = std::string(cwd) + "/" + r.image_path;
  }
  if (o.tree) {
    ckpt::TreeCheckpointRequest t;
    t.root = r.pid;
    t.image_path = r.image_path;
    t.mode = r.mode;
    t.compression = r.compression;
    t.job_member = r.job_member;
    run_tree_checkpoint(t, o.json);
    return;
  }
  std::string what = "checkpoint of " + std::to_string(r.pid);
  r.on_progress = [&what](std::uint64_t bytes) {
    std::cerr << "mosixctl: " << what << ": " << bytes / (1 << 20) << " MiB written\n";
  };
  auto result = ckpt::request_checkpoint(r);
  if (!result) throw CommandError(result.error().message);
  if (o.json)
    std::cout << "{\"version\":1,\"image\":" << nlohmann::json(result->image_path).dump()
              << ",\"bytes\":" << result->bytes << "}\n";
  else
    std::cout << result->image_path << " " << result->bytes << " bytes\n";
}

}  // namespace

void register_checkpoint(CLI::App& app) {
  auto opts = std::make_shared<CheckpointOptions>();
  CLI::App* cmd = app.add_subcommand(
      "checkpoint", "Write the image of a running guest; it keeps running unless --stop or --kill");
  cmd->add_option("target", opts->target, "Pid of the guest (as ps shows it), or a rank of a running job")
      ->required();
  cmd->add_option("--job", opts->job, "Job id (mosixctl status) whose rank TARGET is");
  cmd->add_option("-o,--output", opts->output, "Image file (default: CKPT_DIR/<name>-<pid>.img)");
  cmd->add_option("--ckpt-dir", opts->ckpt_dir, "Directory for images (default $XDG_STATE_HOME/mosix)");
  cmd->add_option("--compress", opts->compress, "Page compression: none, fast or best")
      ->default_val("none");
  cmd->add_flag("--leave-running", opts->leave_running, "Let the process run on (the default)");
  cmd->add_flag("--stop", opts->stop, "Leave the process stopped (SIGSTOP) after the checkpoint");
  cmd->add_flag("--kill", opts->kill, "Kill the process once its image is written");
  cmd->add_flag("--tree", opts->tree,
                "The process and all its descendants, stopped together; IMAGE is the tree's manifest, each "
                "process's image is IMAGE.<n>");
  cmd->add_flag("--json", opts->json, "Machine-readable result");
  cmd->callback([opts] { run_checkpoint(*opts); });
}

}  // namespace mosix::ctl
