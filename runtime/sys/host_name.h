// This machine's host name.
#pragma once

#include <string>

namespace mosix::sys {

// gethostname(), or "localhost" when it fails.
std::string host_name();

}  // namespace mosix::sys
