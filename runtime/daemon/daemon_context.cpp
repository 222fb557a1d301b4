#include "runtime/daemon/daemon_context.h"

#include <spdlog/spdlog.h>

namespace mosix {

DaemonContext::DaemonContext(boost::asio::io_context& io, Transport& transport, const NodeDaemonOptions& options)
    : io_(io), transport_(transport), options_(options), lost_(static_cast<size_t>(transport.size()), 0) {}

void DaemonContext::send(int dest, const Message& message) {
  if (Status s = transport_.send(dest, encode_frame(message)); !s) {
    spdlog::error("{}: cannot send to node {}: {}", node_name_, dest, s.error().message);
  }
}

void DaemonContext::mark_lost(int node) {
  if (node >= 0 && static_cast<size_t>(node) < lost_.size()) lost_[static_cast<size_t>(node)] = 1;
}

}  // namespace mosix
