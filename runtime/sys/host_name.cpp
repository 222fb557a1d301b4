#include "runtime/sys/host_name.h"

#include <unistd.h>

namespace mosix::sys {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace mosix::sys
