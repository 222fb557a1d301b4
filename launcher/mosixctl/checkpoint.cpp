// mosixctl checkpoint PID [-o IMAGE] [--leave-running|--stop|--kill]
// [--compress none|fast|best]: asks the agent inside a guest to write its
// image (runtime/ckpt/restorer/protocol.h), shows progress, verifies the
// image and only then gives it its final name. Exit 0 only for a complete,
// verified image.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "launcher/mosixctl/commands.h"
#include "runtime/ckpt/format/image_file.h"
#include "runtime/ckpt/restorer/protocol.h"

namespace mosix::ctl {
namespace {

struct CheckpointOptions {
  std::string target;
  std::string output;
  std::string compress = "none";
  std::string ckpt_dir;
  bool leave_running = false;
  bool stop = false;
  bool kill = false;
};

std::string runtime_dir() {
  std::string run = "/run/user/" + std::to_string(getuid());
  struct stat st{};
  if (stat(run.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return run + "/mosix";
  return "/tmp/mosix-" + std::to_string(getuid());
}

void make_private_dir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw CommandError("cannot create " + dir + ": " + std::strerror(errno));
  struct stat st{};
  if (stat(dir.c_str(), &st) != 0 || st.st_uid != getuid() || (st.st_mode & 077) != 0)
    throw CommandError(dir + " must be a directory owned by you with mode 0700");
}

pid_t resolve_target(const std::string& target) {
  char* end = nullptr;
  long pid = std::strtol(target.c_str(), &end, 10);
  if (target.empty() || *end != '\0' || pid <= 0)
    throw CommandError("'" + target + "' is not a pid");
  if (::kill(static_cast<pid_t>(pid), 0) != 0)
    throw CommandError("no process " + target + " of yours (" + std::strerror(errno) +
                       "); job ranks are accepted once mosixrun registers its jobs");
  std::ifstream maps("/proc/" + target + "/maps");
  std::string line;
  bool guest = false;
  while (std::getline(maps, line)) guest = guest || line.find("/libmosix.so") != std::string::npos;
  if (!guest)
    throw CommandError("process " + target +
                       " is not a guest: libmosix.so is not loaded in it (start it under "
                       "mosixrun, or with LD_PRELOAD=libmosix.so)");
  return static_cast<pid_t>(pid);
}

std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string c;
  std::getline(in, c);
  return c.empty() ? "process" : c;
}

// Removes the request and the status FIFO however the command ends.
struct RequestFiles {
  std::string request, fifo;
  ~RequestFiles() {
    if (!request.empty()) unlink(request.c_str());
    if (!fifo.empty()) unlink(fifo.c_str());
  }
};

// Waits for the agent's lines on the status FIFO; returns the image size.
std::uint64_t await_result(int fifo, int pidfd, pid_t pid, const std::string& what) {
  std::string buffer;
  bool connected = false;
  int idle_ticks = 0;
  for (;;) {
    pollfd fds[2] = {{fifo, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int n = poll(fds, 2, 1000);
    if (n < 0 && errno == EINTR) continue;
    if (fds[0].revents & POLLIN) {
      connected = true;
      char chunk[1024];
      ssize_t got = read(fifo, chunk, sizeof chunk);
      if (got > 0) buffer.append(chunk, static_cast<std::size_t>(got));
      for (std::size_t eol; (eol = buffer.find('\n')) != std::string::npos;) {
        std::string line = buffer.substr(0, eol);
        buffer.erase(0, eol + 1);
        if (line.rfind("progress ", 0) == 0) {
          std::cerr << "mosixctl: " << what << ": " << std::stoull(line.substr(9)) / (1 << 20)
                    << " MiB written\n";
        } else if (line.rfind("ok ", 0) == 0) {
          return std::stoull(line.substr(3));
        } else if (line.rfind("error ", 0) == 0) {
          throw CommandError(what + " refused: " + line.substr(6));
        }
      }
      continue;
    }
    if (fds[0].revents & POLLHUP && connected)
      throw CommandError(what + ": the agent closed its status channel without a result");
    if (fds[1].revents & POLLIN)
      throw CommandError(what + ": process " + std::to_string(pid) + " ended before its image was complete");
    if (!connected && ++idle_ticks >= 30)
      throw CommandError(what + ": no answer from process " + std::to_string(pid) +
                         " within 30 s (is it blocking signal " +
                         std::to_string(ckpt::kRequestSignal) + "?)");
  }
}

void run_checkpoint(const CheckpointOptions& o) {
  if ((o.leave_running ? 1 : 0) + (o.stop ? 1 : 0) + (o.kill ? 1 : 0) > 1)
    throw CommandError("give at most one of --leave-running, --stop, --kill");
  ckpt::Compression compression;
  if (!ckpt::parse_compression(o.compress, &compression))
    throw CommandError("--compress takes none, fast or best, not '" + o.compress + "'");
  pid_t pid = resolve_target(o.target);
  std::string what = "checkpoint of " + std::to_string(pid);

  std::string output = o.output;
  if (output.empty()) {
    std::string dir = o.ckpt_dir.empty()
                          ? ckpt::default_image_dir(getenv("XDG_STATE_HOME"), getenv("HOME"))
                          : o.ckpt_dir;
    if (dir.empty()) throw CommandError("no image directory: give -o IMAGE or --ckpt-dir DIR");
    std::string parent = dir.substr(0, dir.rfind('/'));
    if (!parent.empty()) mkdir(parent.c_str(), 0700);
    make_private_dir(dir);
    output = dir + "/" + comm_of(pid) + "-" + std::to_string(pid) + ".img";
  }
  auto file = ckpt::AtomicImageFile::create(output);
  if (!file) throw CommandError(file.error().message);

  std::string dir = runtime_dir();
  make_private_dir(dir);
  RequestFiles files;
  std::string base = dir + "/ckpt-" + std::to_string(pid);
  files.fifo = base + ".status." + std::to_string(getpid());
  unlink(files.fifo.c_str());
  if (mkfifo(files.fifo.c_str(), 0600) != 0)
    throw CommandError("cannot create " + files.fifo + ": " + std::strerror(errno));
  int fifo = open(files.fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fifo < 0) throw CommandError("cannot open " + files.fifo + ": " + std::strerror(errno));
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) throw CommandError("cannot watch process " + std::to_string(pid) + ": " + std::strerror(errno));

  const char* mode = o.kill ? "kill" : o.stop ? "stop" : "leave";
  std::string temp_request = base + ".req.tmp";
  {
    std::ofstream req(temp_request, std::ios::trunc);
    req << "out=" << file->temp_path() << "\nstatus=" << files.fifo << "\nmode=" << mode
        << "\ncompress=" << o.compress << "\n";
    if (!req) throw CommandError("cannot write " + temp_request);
  }
  chmod(temp_request.c_str(), 0600);
  files.request = base + ".req";
  if (rename(temp_request.c_str(), files.request.c_str()) != 0)
    throw CommandError("cannot write " + files.request + ": " + std::strerror(errno));
  spdlog::debug("{}: request {} ({} mode), signal {}", what, files.request, mode, ckpt::kRequestSignal);
  if (::kill(pid, ckpt::kRequestSignal) != 0)
    throw CommandError("cannot signal process " + std::to_string(pid) + ": " + std::strerror(errno));

  std::uint64_t size = await_result(fifo, pidfd, pid, what);
  close(fifo);
  if (o.kill) {
    pollfd p{pidfd, POLLIN, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  }
  close(pidfd);
  auto summary = ckpt::verify_image_file(file->temp_path());
  if (!summary) throw CommandError(what + ": the image does not verify: " + summary.error().message);
  if (auto st = file->commit(); !st) throw CommandError(st.error().message);
  std::cout << output << " " << size << " bytes\n";
}

}  // namespace

void register_checkpoint(CLI::App& app) {
  auto opts = std::make_shared<CheckpointOptions>();
  CLI::App* cmd = app.add_subcommand(
      "checkpoint", "Write the image of a running guest; it keeps running unless --stop or --kill");
  cmd->add_option("target", opts->target, "Pid of the guest (as ps shows it)")->required();
  cmd->add_option("-o,--output", opts->output, "Image file (default: CKPT_DIR/<name>-<pid>.img)");
  cmd->add_option("--ckpt-dir", opts->ckpt_dir, "Directory for images (default $XDG_STATE_HOME/mosix)");
  cmd->add_option("--compress", opts->compress, "Page compression: none, fast or best")
      ->default_val("none");
  cmd->add_flag("--leave-running", opts->leave_running, "Let the process run on (the default)");
  cmd->add_flag("--stop", opts->stop, "Leave the process stopped (SIGSTOP) after the checkpoint");
  cmd->add_flag("--kill", opts->kill, "Kill the process once its image is written");
  cmd->callback([opts] { run_checkpoint(*opts); });
}

}  // namespace mosix::ctl
