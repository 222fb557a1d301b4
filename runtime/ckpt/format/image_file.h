// Runtime-side helpers around the image format: images written atomically
// to a file, verification of an image file, and ImageStatus as
// mosix::Status. Part of mosix_ckpt, not of the format library (it allocates
// and may log), so never used inside a guest.
#pragma once

#include <string>

#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_status.h"
#include "runtime/core/expected.h"

namespace mosix::ckpt {

Status to_status(const ImageStatus& s);
// The same, with "CONTEXT: " in front of the message.
Status to_status(const ImageStatus& s, const std::string& context);

// A file that appears under its final name only once complete: created as a
// hidden temporary in the same directory with mode 0600, then fsync'ed and
// renamed over `path` by commit(). Dropped without commit(), the temporary
// is removed.
class AtomicImageFile {
 public:
  static Expected<AtomicImageFile> create(const std::string& path);
  AtomicImageFile(AtomicImageFile&& other) noexcept;
  AtomicImageFile& operator=(AtomicImageFile&& other) noexcept;
  AtomicImageFile(const AtomicImageFile&) = delete;
  AtomicImageFile& operator=(const AtomicImageFile&) = delete;
  ~AtomicImageFile();

  // The temporary's descriptor, open for writing.
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  // fsync, close, rename onto path(), fsync the directory.
  Status commit();

 private:
  AtomicImageFile(std::string path, std::string temp_path, int fd);
  void discard();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
};

// Reads and checks the whole image at path (verify_image_path).
Expected<ImageSummary> verify_image_file(const std::string& path);

// Where images go by default: $XDG_STATE_HOME/mosix, or
// $HOME/.local/state/mosix when XDG_STATE_HOME is unset or not absolute.
// Empty when neither variable is usable.
std::string default_image_dir(const char* xdg_state_home, const char* home);

}  // namespace mosix::ckpt
