#include "runtime/ckpt/format/image_file.h"

#include <string>

namespace mosix::ckpt {

Status to_status(const ImageStatus& s) {
  if (s.ok()) return Status::Ok();
  return make_error(s.message());
}

Status to_status(const ImageStatus& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  return make_error(context + ": " + s.message());
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
