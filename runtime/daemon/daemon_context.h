// What the parts of one node daemon share: its event loop, its transport to
// the other node daemons, its options, its name and clock, which nodes the
// home node declared gone, and whether it is shutting down. The parts (guest
// table, migrations, load agent, checkpoint scheduler, home router) each hold
// a reference to one; the node daemon owns it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "runtime/core/protocol.h"
#include "runtime/daemon/node_daemon_options.h"
#include "runtime/transport/transport.h"

namespace mosix {

class DaemonContext {
 public:
  DaemonContext(boost::asio::io_context& io, Transport& transport, const NodeDaemonOptions& options);
  DaemonContext(const DaemonContext&) = delete;
  DaemonContext& operator=(const DaemonContext&) = delete;

  boost::asio::io_context& io() { return io_; }
  Transport& transport() { return transport_; }
  const NodeDaemonOptions& options() const { return options_; }
  int rank() const { return transport_.rank(); }
  int size() const { return transport_.size(); }

  // This node in messages and logs: its host name, or vnodeN on a virtual
  // cluster (set once the node knows which it is).
  const std::string& node_name() const { return node_name_; }
  void set_node_name(std::string name) { node_name_ = std::move(name); }

  // Seconds since the daemon started, on the steady clock.
  double now() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  // Queues `message` for node `dest`; a failure is logged (a broken
  // transport says so again at its next receive()).
  void send(int dest, const Message& message);

  // Nodes the home node declared gone: they have no say any more, and
  // nothing is sent to them.
  bool is_lost(int node) const {
    return node >= 0 && static_cast<size_t>(node) < lost_.size() && lost_[static_cast<size_t>(node)];
  }
  void mark_lost(int node);

  bool shutting_down() const { return shutting_down_; }
  void begin_shutdown() { shutting_down_ = true; }

 private:
  boost::asio::io_context& io_;
  Transport& transport_;
  const NodeDaemonOptions& options_;
  std::string node_name_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::vector<char> lost_;
  bool shutting_down_ = false;
};

}  // namespace mosix
