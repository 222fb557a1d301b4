// The text of an errno value, for error messages.
#pragma once

#include <string>

namespace mosix::sys {

// strerror's English description of `err` ("No such file or directory"),
// "Unknown error N" for a value it does not know. Thread-safe and
// independent of the locale (strerrordesc_np), unlike strerror.
std::string errno_text(int err);

}  // namespace mosix::sys
