// Files that appear under their name only once whole: written to a hidden
// temporary in the same directory, then renamed over the name. A reader sees
// the old file or the new one, never a part; a writer that fails or dies
// leaves the old one in place.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "runtime/core/expected.h"

namespace mosix::sys {

// Whether a commit waits for the disk (fsync of the file, and of the
// directory after the rename): for what must survive a crash of the machine
// (images, a node's speed); not for what a reboot clears anyway.
enum class Durability { kVolatile, kDurable };

// A file being written. create() makes the temporary ".<name>.tmp.<pid>.XXXXXX"
// next to `path`, mode 0600, exclusively; commit() renames it over `path`.
// Dropped (or moved from) without commit(), the temporary is removed.
class AtomicFile {
 public:
  static Expected<AtomicFile> create(const std::string& path);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  // The temporary's descriptor, open for writing (close-on-exec).
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  // Closes the temporary and renames it onto path() (after an fsync, and an
  // fsync of the directory after it, when kDurable). On an error the
  // temporary is gone and path() is as it was.
  Status commit(Durability durability);

 private:
  AtomicFile(std::string path, std::string temp_path, int fd);
  void discard();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
};

// The whole of `content` as the file `path`, atomically (an AtomicFile).
Status write_file_atomically(const std::string& path, std::string_view content, Durability durability);

// The pid of the process that made `file_name` as an AtomicFile temporary
// (".<name>.tmp.<pid>.XXXXXX", or ".<name>.tmp.<pid>" as earlier releases
// named them), so that a directory's owner can remove the temporaries of
// writers that died; nullopt for any other name.
std::optional<pid_t> atomic_temp_writer(std::string_view file_name);

}  // namespace mosix::sys
