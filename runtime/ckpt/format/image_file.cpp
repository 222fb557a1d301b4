#include "runtime/ckpt/format/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <spdlog/spdlog.h>

namespace mosix::ckpt {
namespace {

std::string errno_text(int err) {
  const char* d = strerrordesc_np(err);
  return d ? d : "errno " + std::to_string(err);
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Status to_status(const ImageStatus& s) {
  if (s.ok()) return Status::Ok();
  return make_error(s.message());
}

Status to_status(const ImageStatus& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  return make_error(context + ": " + s.message());
}

AtomicImageFile::AtomicImageFile(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}

AtomicImageFile::AtomicImageFile(AtomicImageFile&& other) noexcept
    : path_(std::move(other.path_)), temp_path_(std::move(other.temp_path_)), fd_(std::exchange(other.fd_, -1)) {
  other.temp_path_.clear();
}

AtomicImageFile& AtomicImageFile::operator=(AtomicImageFile&& other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    temp_path_ = std::move(other.temp_path_);
    fd_ = std::exchange(other.fd_, -1);
    other.temp_path_.clear();
  }
  return *this;
}

AtomicImageFile::~AtomicImageFile() { discard(); }

void AtomicImageFile::discard() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) {
    if (unlink(temp_path_.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("cannot remove temporary image {}: {}", temp_path_, errno_text(errno));
    temp_path_.clear();
  }
}

Expected<AtomicImageFile> AtomicImageFile::create(const std::string& path) {
  if (path.empty() || path.back() == '/') return make_error("image path '" + path + "' names no file");
  std::string dir = dir_of(path);
  std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  std::string temp = (dir == "/" ? "" : dir) + "/." + base + ".tmp.XXXXXX";
  int fd = mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    return make_error("cannot create a temporary image in " + dir + ": " + errno_text(errno) +
                      " (check that the directory exists and is writable)");
  }
  // mkostemp already uses 0600; say so explicitly against a future change.
  if (fchmod(fd, 0600) != 0) {
    int err = errno;
    close(fd);
    unlink(temp.c_str());
    return make_error("cannot set mode 0600 on " + temp + ": " + errno_text(err));
  }
  return AtomicImageFile(path, temp, fd);
}

Status AtomicImageFile::commit() {
  if (fd_ < 0 || temp_path_.empty()) return make_error("image " + path_ + " was already committed or discarded");
  if (fsync(fd_) != 0) return make_error("cannot sync image " + temp_path_ + ": " + errno_text(errno));
  int fd = std::exchange(fd_, -1);
  if (close(fd) != 0) return make_error("cannot close image " + temp_path_ + ": " + errno_text(errno));
  if (rename(temp_path_.c_str(), path_.c_str()) != 0)
    return make_error("cannot rename " + temp_path_ + " to " + path_ + ": " + errno_text(errno));
  temp_path_.clear();
  std::string dir = dir_of(path_);
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) != 0) spdlog::warn("cannot sync directory {}: {}", dir, errno_text(errno));
    close(dfd);
  }
  return Status::Ok();
}

Expected<ImageSummary> verify_image_file(const std::string& path) {
  ImageSummary summary;
  if (ImageStatus s = verify_image_path(path.c_str(), &summary); !s) return make_error(path + ": " + s.message());
  return summary;
}

std::string default_image_dir(const char* xdg_state_home, const char* home) {
  if (xdg_state_home && xdg_state_home[0] == '/') return std::string(xdg_state_home) + "/mosix";
  if (home && home[0] == '/') return std::string(home) + "/.local/state/mosix";
  return {};
}

}  // namespace mosix::ckpt
