#include "runtime/transport/transport.h"

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace mosix {

Expected<Message> decode_delivery(const Delivery& delivery) {
  auto message = decode_frame(delivery.frame);
  if (!message) {
    return make_error("message from rank " + std::to_string(delivery.source) + ": " +
                      message.error().message);
  }
  return message;
}

Expected<std::vector<Delivery>> receive_wait(Transport& transport, int timeout_ms) {
  pollfd pfd{transport.event_fd(), POLLIN, 0};
  int n;
  while ((n = ::poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  if (n < 0) return make_error(std::string("waiting for the transport: ") + std::strerror(errno));
  if (n == 0) return std::vector<Delivery>{};
  return transport.receive();
}

}  // namespace mosix
