#include "runtime/sys/shared_memory_dir.h"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "runtime/sys/private_path.h"
#include "runtime/sys/runtime_dir.h"

namespace mosix::sys {

bool on_memory_fs(const std::string& path) {
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0) return false;
  return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
}

Expected<std::string> shared_memory_dir() {
  auto runtime = runtime_dir();
  if (runtime && on_memory_fs(*runtime)) return runtime;
  if (on_memory_fs("/dev/shm")) {
    const std::string dir = "/dev/shm/mosix-" + std::to_string(::getuid());
    if (ensure_private_dir(dir)) return dir;
  }
  return runtime;
}

}  // namespace mosix::sys
