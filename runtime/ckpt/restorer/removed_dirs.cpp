// Directories the program held after they were removed (its working
// directory, descriptors on them). Removed, a directory is empty and takes
// no new file, so one is made again: in phase 1 an empty directory is made
// under its old name, opened, and removed again once the program's
// descriptors on it are open; the working directory is entered through it
// in phase 2. One directory per name: the working directory and descriptors
// on a removed directory of the same name are one again (the agent refuses
// two removed directories of one name).
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "runtime/ckpt/restorer/restorer.h"

namespace mosix::ckpt::restorer {
namespace {

struct RemovedDir {
  std::string name;
  int fd;
  std::uint32_t mode;  // 0: not known (the working directory's alone)
};
std::vector<RemovedDir> g_dirs;
int g_cwd = -1;

bool removed(const std::string& path) {
  constexpr std::string_view kDeleted = " (deleted)";
  return path.size() > kDeleted.size() && path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0;
}

std::string name_of(const std::string& path) { return path.substr(0, path.size() - 10); }

int make(const std::string& path, std::uint32_t mode, int above) {
  std::string name = name_of(path);
  for (RemovedDir& d : g_dirs) {
    if (d.name != name) continue;
    if (d.mode == 0) d.mode = mode;
    return d.fd;
  }
  if (mkdir(name.c_str(), 0700) != 0)
    refuse("cannot make the removed directory " + name + " again: " + strerror(errno));
  int fd = open(name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int high = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, above);
  int err = errno;
  if (fd >= 0) close(fd);
  if (high < 0) {
    rmdir(name.c_str());
    refuse("cannot open the removed directory " + name + " made again: " + strerror(err));
  }
  g_dirs.push_back({name, high, mode});
  return high;
}

}  // namespace

bool is_removed_dir(const Fd& f) { return f.rec.kind == FdKind::directory && removed(f.path); }

bool is_removed_cwd(const Image& img) { return removed(img.cwd); }

void check_removed_dirs(const Image& img) {
  for (const Fd& f : img.fds)
    if (is_removed_dir(f) && (f.rec.open_flags & O_PATH) == 0)
      check_ghost_name("fd " + std::to_string(f.rec.fd) + " (" + f.path + ")", name_of(f.path));
  if (is_removed_cwd(img)) check_ghost_name("the working directory (" + img.cwd + ")", name_of(img.cwd));
}

std::string make_removed_dirs(const Image& img, const Fd* f, int above) {
  if (f == nullptr) {
    if (is_removed_cwd(img)) g_cwd = make(img.cwd, 0, above);
    return "";
  }
  return "/proc/self/fd/" + std::to_string(make(f->path, f->rec.mode, above));
}

void finish_removed_dirs() {
  for (const RemovedDir& d : g_dirs) {
    if (d.mode != 0 && chmod(d.name.c_str(), static_cast<mode_t>(d.mode & 07777)) != 0)
      refuse("cannot give the removed directory " + d.name + " its mode again: " + strerror(errno));
    if (rmdir(d.name.c_str()) != 0) refuse("cannot remove the directory " + d.name + " again: " + strerror(errno));
    if (d.fd != g_cwd) close(d.fd);
  }
  g_dirs.clear();
}

void enter_removed_cwd() {
  if (g_cwd < 0) return;
  if (fchdir(g_cwd) != 0) die("fchdir", -errno);
  close(g_cwd);
  g_cwd = -1;
}

}  // namespace mosix::ckpt::restorer
