#include "runtime/sys/private_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "runtime/sys/errno_text.h"

namespace mosix::sys {
namespace {

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Owner and write bits, common to directories and files.
Status check_owner_and_mode(const struct stat& st, const std::string& name, const char* what) {
  if (st.st_uid != geteuid()) {
    return make_error(name + " belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " +
                      std::to_string(geteuid()) + "): " + what + " must be your own; remove it or use another");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return make_error(name + " has mode " + octal_mode(st.st_mode) + ": others may write to it; " +
                      "make it private (chmod go-w " + name + ")");
  }
  return Status::Ok();
}

Status check_dir_stat(const struct stat& st, const std::string& dir) {
  if (S_ISLNK(st.st_mode)) {
    return make_error(dir + " is a symbolic link: a private directory must be a real directory; remove the link");
  }
  if (!S_ISDIR(st.st_mode)) return make_error(dir + " is not a directory: remove it or use another");
  return check_owner_and_mode(st, dir, "a private directory");
}

// mkdir -p with mode 0700 for each directory made.
Status make_dirs(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return Status::Ok();
  if (errno != ENOENT) return make_error("cannot create directory " + dir + ": " + errno_text(errno));
  auto slash = dir.find_last_not_of('/');
  slash = slash == std::string::npos ? std::string::npos : dir.rfind('/', slash);
  if (slash == std::string::npos || slash == 0) {
    return make_error("cannot create directory " + dir + ": " + errno_text(ENOENT));
  }
  if (Status s = make_dirs(dir.substr(0, slash)); !s.ok()) return s;
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error("cannot create directory " + dir + ": " + errno_text(errno));
  }
  return Status::Ok();
}

}  // namespace

Status check_private_dir(const std::string& dir) {
  struct stat st{};
  if (lstat(dir.c_str(), &st) != 0) return make_error("cannot inspect " + dir + ": " + errno_text(errno));
  return check_dir_stat(st, dir);
}

Status ensure_private_dir(const std::string& dir) {
  if (dir.empty()) return make_error("an empty directory name was given");
  if (Status s = make_dirs(dir); !s.ok()) return s;
  return check_private_dir(dir);
}

Status check_trusted_file(const std::string& path) {
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) return make_error("cannot inspect " + path + ": " + errno_text(errno));
  if (S_ISLNK(st.st_mode)) {
    return make_error(path + " is a symbolic link: it is not trusted; give the file itself");
  }
  if (!S_ISREG(st.st_mode)) return make_error(path + " is not a regular file");
  return check_owner_and_mode(st, path, "a file to trust");
}

Status check_trusted_fd(int fd, const std::string& name) {
  struct stat st{};
  if (fstat(fd, &st) != 0) return make_error("cannot inspect " + name + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) return make_error(name + " is not a regular file");
  return check_owner_and_mode(st, name, "a file to trust");
}

}  // namespace mosix::sys
