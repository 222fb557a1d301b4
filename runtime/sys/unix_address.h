// The address of a unix socket at a path, for bind() and connect(); an error
// naming the path when it does not fit in sockaddr_un (108 bytes with its
// terminating zero). Header-only: used by SocketTransport and the daemon's
// unix sockets (runtime/daemon/frame_socket.h).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "runtime/core/expected.h"

namespace mosix::sys {

inline Expected<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return make_error("socket path too long (" + std::to_string(path.size()) + " bytes): " + path +
                      ": set XDG_RUNTIME_DIR to a shorter directory");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace mosix::sys
