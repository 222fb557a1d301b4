// mosixctl restart IMAGE|-: restores a process in the foreground; "-" reads
// the image from standard input (the restorer copies it into memory first).
// The image of a rank suspended in its running job (mosixctl checkpoint
// --kill of a job's guest) goes back into that job instead: the job
// restores it as that rank on its node, and waits for it as before.
//
// mosixctl replaces itself with the restorer (exec), which in turn becomes
// the restored process: it keeps mosixctl's pid, stdin/stdout/stderr,
// terminal and parent. So the shell sees the restored program's own exit
// status (128+S when killed by S), signals sent to this pid (or from the
// terminal) reach the program directly, and `$!` of a backgrounded restart
// is the guest's pid for the next `mosixctl checkpoint` — nothing to relay,
// nothing to get wrong. An image the restorer refuses makes it exit 2 with
// one line saying why, before anything is changed.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "launcher/mosixctl/commands.h"
#include "runtime/job/control.h"
#include "runtime/job/job_registry.h"
#include "runtime/sys/install_path.h"
#include "runtime/sys/errno_text.h"

namespace mosix::ctl {
namespace {

// $MOSIX_RESTORER, else mosix-restore next to this mosixctl.
std::string restorer_path() {
  if (const char* env = std::getenv("MOSIX_RESTORER"); env != nullptr && *env != '\0') return env;
  auto restorer = sys::installed_program("mosix-restore");
  if (!restorer) throw CommandError("cannot find this program's directory; set MOSIX_RESTORER");
  return *restorer;
}

// The image of a rank that `mosixctl checkpoint --kill` suspended in its
// running job: that job restores it, as that rank, on its node. True when a
// job took it (said on stdout).
bool restart_in_job(const std::string& image) {
  if (image == "-") return false;
  std::error_code ec;
  std::string path = std::filesystem::absolute(image, ec).string();
  if (ec) return false;
  for (const JobRecord& job : list_jobs()) {
    auto reply = control_request(job, {{"cmd", "restart"}, {"image", path}});
    if (!reply) continue;  // a job that ends meanwhile, or an older mosixrun
    if (reply->value("ok", false)) {
      std::cout << "rank " << reply->value("rank", -1) << " of job " << job.id << " restarts on "
                << reply->value("node", "") << "\n";
      return true;
    }
    if (reply->value("mine", false)) throw CommandError(reply->value("error", "the job refused the restart"));
  }
  return false;
}

void run_restart(const std::string& image) {
  if (restart_in_job(image)) return;
  std::string restorer = restorer_path();
  spdlog::debug("restart: exec {} {}", restorer, image);
  std::fflush(nullptr);
  execl(restorer.c_str(), "mosix-restore", image.c_str(), static_cast<char*>(nullptr));
  throw CommandError("cannot run the restorer " + restorer + ": " + sys::errno_text(errno));
}

}  // namespace

void register_restart(CLI::App& app) {
  auto image = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "restart", "Restore a process from its image, in the foreground (it becomes this process)");
  cmd->add_option("image", *image, "Image written by mosixctl checkpoint, or - to read it from standard input")
      ->required();
  cmd->callback([image] { run_restart(*image); });
}

}  // namespace mosix::ctl
