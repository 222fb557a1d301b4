// Runtime-side helpers around the image format: verification of an image
// file, and ImageStatus as mosix::Status (images are written atomically with
// sys::AtomicFile). Part of mosix_ckpt, not of the format library (it
// allocates), so never used inside a guest.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_status.h"
#include "runtime/core/expected.h"

namespace mosix::ckpt {

Status to_status(const ImageStatus& s);
// The same, with "CONTEXT: " in front of the message.
Status to_status(const ImageStatus& s, const std::string& context);

// Reads and checks the whole image at path (verify_image_path).
Expected<ImageSummary> verify_image_file(const std::string& path);

// Checks the image at `path` while another process (the agent) still writes
// it, so that the read-back check overlaps the writing instead of following
// it: a thread reads what is there from the start and waits (polling every
// 0.2 ms) for more until finish() says the writer is done, then reads to the
// end. The writer must write the file from its start, in order, each byte
// once (the image format is a stream: the agent writes pipes the same way).
// finish() returns what verify_image_file(path) would have; it also fails
// when the file holds another number of bytes than `written_bytes`.
class ImageFollower {
 public:
  explicit ImageFollower(const std::string& path);
  ImageFollower(const ImageFollower&) = delete;
  ImageFollower& operator=(const ImageFollower&) = delete;
  ~ImageFollower();  // a follower not finished is told the writer is done
  // The writer is done (it wrote written_bytes, or failed: then the result
  // is of no use). Waits for the check.
  Expected<ImageSummary> finish(std::uint64_t written_bytes);

 private:
  std::string path_;
  std::atomic<bool> written_{false};
  Expected<ImageSummary> result_;
  std::thread thread_;
};

// Where images go by default: $XDG_STATE_HOME/mosix, or
// $HOME/.local/state/mosix when XDG_STATE_HOME is unset or not absolute.
// Empty when neither variable is usable.
std::string default_image_dir(const char* xdg_state_home, const char* home);

}  // namespace mosix::ckpt
