#include "runtime/daemon/node_env_file.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "runtime/sys/runtime_dir.h"

namespace mosix {

namespace fs = std::filesystem;

Expected<std::unique_ptr<NodeEnvFile>> NodeEnvFile::create(const std::vector<std::string>& lines) {
  auto dir = sys::runtime_dir();
  if (!dir) return dir.error();
  // The files of daemons killed by SIGKILL (a live one's pid is kept).
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(*dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("node-", 0) != 0 || name.size() < 10 || name.substr(name.size() - 4) != ".env") continue;
    const long pid = std::atol(name.c_str() + 5);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
  const std::string path = *dir + "/node-" + std::to_string(::getpid()) + ".env";
  const std::string temp = path + ".new";
  {
    std::ofstream out(temp, std::ios::trunc);
    for (const std::string& line : lines) out << line << '\n';
    if (!out.flush()) return Error{"cannot write " + temp};
  }
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    return Error{"cannot write " + path + ": " + ec.message()};
  }
  return std::unique_ptr<NodeEnvFile>(new NodeEnvFile(path));
}

NodeEnvFile::~NodeEnvFile() {
  std::error_code ec;
  fs::remove(path_, ec);
}

}  // namespace mosix
