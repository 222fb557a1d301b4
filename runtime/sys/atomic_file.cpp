#include "runtime/sys/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "runtime/sys/errno_text.h"
#include "runtime/sys/write_all.h"

namespace mosix::sys {
namespace {

constexpr std::string_view kTempMark = ".tmp.";
constexpr std::size_t kUniqueLength = 6;  // mkostemp's XXXXXX

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::exchange(other.temp_path_, {})),
      fd_(std::exchange(other.fd_, -1)) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    temp_path_ = std::exchange(other.temp_path_, {});
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

Expected<AtomicFile> AtomicFile::create(const std::string& path) {
  if (path.empty() || path.back() == '/') return make_error("'" + path + "' names no file");
  const std::string dir = dir_of(path);
  const std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  std::string temp = (dir == "/" ? "" : dir) + "/." + base + std::string(kTempMark) +
                     std::to_string(::getpid()) + "." + std::string(kUniqueLength, 'X');
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    return make_error("cannot create a temporary file for " + path + " in " + dir + ": " + errno_text(errno) +
                      " (check that the directory exists and is writable)");
  }
  // mkostemp makes it 0600 already; say so against a change of umask or libc.
  if (::fchmod(fd, 0600) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return make_error("cannot set mode 0600 on " + temp + ": " + errno_text(err));
  }
  return AtomicFile(path, std::move(temp), fd);
}

Status AtomicFile::commit(Durability durability) {
  if (fd_ < 0 || temp_path_.empty()) return make_error(path_ + " was already committed or discarded");
  const bool durable = durability == Durability::kDurable;
  if (durable && ::fsync(fd_) != 0) {
    const int err = errno;
    discard();
    return make_error("cannot write " + path_ + " (fsync): " + errno_text(err));
  }
  if (::close(std::exchange(fd_, -1)) != 0) {
    const int err = errno;
    discard();
    return make_error("cannot write " + path_ + ": " + errno_text(err));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    const std::string temp = temp_path_;
    discard();
    return make_error("cannot rename " + temp + " to " + path_ + ": " + errno_text(err));
  }
  temp_path_.clear();
  if (durable) {
    // The rename itself is on disk only once the directory is: a failure
    // here loses nothing that was there before, so it is not an error.
    const int dir_fd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      (void)::fsync(dir_fd);
      ::close(dir_fd);
    }
  }
  return Status::Ok();
}

Status write_file_atomically(const std::string& path, std::string_view content, Durability durability) {
  auto file = AtomicFile::create(path);
  if (!file) return file.error();
  if (const int err = write_all(file->fd(), content); err != 0) {
    return make_error("cannot write " + file->temp_path() + ": " + errno_text(err));
  }
  return file->commit(durability);
}

std::optional<pid_t> atomic_temp_writer(std::string_view name) {
  if (name.empty() || name[0] != '.') return std::nullopt;
  const auto mark = name.rfind(kTempMark);
  if (mark == std::string_view::npos || mark == 0) return std::nullopt;
  std::string_view rest = name.substr(mark + kTempMark.size());
  // ".<pid>.XXXXXX", or ".<pid>" alone.
  const auto dot = rest.find('.');
  if (dot != std::string_view::npos) {
    if (rest.size() - dot - 1 != kUniqueLength) return std::nullopt;
    rest = rest.substr(0, dot);
  }
  if (!all_digits(rest) || rest.size() > 9) return std::nullopt;
  const long pid = std::strtol(std::string(rest).c_str(), nullptr, 10);
  if (pid <= 0) return std::nullopt;
  return static_cast<pid_t>(pid);
}

}  // namespace mosix::sys
