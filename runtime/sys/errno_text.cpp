#include "runtime/sys/errno_text.h"

#include <cstring>

namespace mosix::sys {

std::string errno_text(int err) {
  if (const char* text = strerrordesc_np(err)) return text;
  return "Unknown error " + std::to_string(err);
}

}  // namespace mosix::sys
