// Runtime-side helpers around the image format: verification of an image
// file, and ImageStatus as mosix::Status (images are written atomically with
// sys::AtomicFile). Part of mosix_ckpt, not of the format library (it
// allocates), so never used inside a guest.
#pragma once

#include <string>

#include "runtime/ckpt/format/image_reader.h"
#include "runtime/ckpt/format/image_status.h"
#include "runtime/core/expected.h"

namespace mosix::ckpt {

Status to_status(const ImageStatus& s);
// The same, with "CONTEXT: " in front of the message.
Status to_status(const ImageStatus& s, const std::string& context);

// Reads and checks the whole image at path (verify_image_path).
Expected<ImageSummary> verify_image_file(const std::string& path);

// Where images go by default: $XDG_STATE_HOME/mosix, or
// $HOME/.local/state/mosix when XDG_STATE_HOME is unset or not absolute.
// Empty when neither variable is usable.
std::string default_image_dir(const char* xdg_state_home, const char* home);

}  // namespace mosix::ckpt
