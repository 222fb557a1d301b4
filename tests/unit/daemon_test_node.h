// One node daemon's shared context over a one-rank LocalTransport, for the
// unit tests of the daemon's parts: what a part sends home (rank 0) comes
// back to the test, in order.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/node_daemon_options.h"
#include "runtime/transport/local/local_transport.h"

namespace mosix::test {

class TestNode {
 public:
  explicit TestNode(NodeDaemonOptions options = {}) : options_(std::move(options)) {
    options_.no_agent = true;  // nothing to preload in a test
    auto group = LocalTransport::create_group(1);
    EXPECT_TRUE(group.ok());
    transport_ = std::move((*group)[0]);
    context_ = std::make_unique<DaemonContext>(io_, *transport_, options_);
    context_->set_node_name("testnode");
  }

  DaemonContext& context() { return *context_; }
  boost::asio::io_context& io() { return io_; }

  // Everything sent home so far, without waiting.
  std::vector<Message> received() {
    std::vector<Message> got;
    auto in = transport_->receive();
    EXPECT_TRUE(in.ok());
    if (!in.ok()) return got;
    for (const Delivery& d : *in) {
      auto m = decode_delivery(d);
      EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
      if (m.ok()) got.push_back(std::move(*m));
    }
    return got;
  }

  // Runs the event loop, one handler at a time, until a message sent home
  // satisfies `last`; returns every message up to and including it. There
  // is no time limit: the test waits for what it expects (ctest ends a
  // test that hangs).
  std::vector<Message> run_until(const std::function<bool(const Message&)>& last) {
    std::vector<Message> got;
    for (;;) {
      for (Message& m : received()) {
        got.push_back(std::move(m));
        if (last(got.back())) return got;
      }
      io_.run_one();
    }
  }

  template <typename M>
  std::vector<Message> run_until_a() {
    return run_until([](const Message& m) { return std::holds_alternative<M>(m); });
  }

 private:
  NodeDaemonOptions options_;
  boost::asio::io_context io_;
  std::unique_ptr<LocalTransport> transport_;
  std::unique_ptr<DaemonContext> context_;
};

inline SpawnGuest spawn_of(int rank, std::vector<std::string> argv, std::uint32_t flags = 0) {
  SpawnGuest s;
  s.rank = rank;
  s.argv = std::move(argv);
  s.env = {"PATH=/usr/bin:/bin"};
  s.flags = flags;
  return s;
}

// The bytes of `rank`'s output on `stream` among `messages`, in order.
inline std::string output_of(const std::vector<Message>& messages, int rank, OutputStream stream) {
  std::string out;
  for (const Message& m : messages) {
    if (const auto* o = std::get_if<GuestOutput>(&m); o && o->rank == rank && o->stream == stream) {
      out.append(o->bytes.begin(), o->bytes.end());
    }
  }
  return out;
}

}  // namespace mosix::test
