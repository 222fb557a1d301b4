// A whole node daemon over a one-rank LocalTransport: the test is mosixrun
// at the other end of the job's unix socket. It hands the daemon a copy to
// start, reads what the daemon reports until the copy's end, and ends the
// job. Nothing here waits on a clock: each step waits for the daemon's word.
#include "runtime/daemon/node_daemon.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/daemon/frame_socket.h"
#include "runtime/transport/local/local_transport.h"
#include "tests/unit/daemon_test_node.h"

namespace mosix {
namespace {

using test::output_of;
using test::spawn_of;

// mosixrun's end of the job socket.
class FakeMosixrun {
 public:
  FakeMosixrun() {
    char dir[] = "/tmp/mosix-node-daemon-test.XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/job.sock";
    auto fd = listen_unix(path_);
    EXPECT_TRUE(fd.ok()) << (fd.ok() ? "" : fd.error().message);
    listen_fd_ = fd.ok() ? *fd : -1;
  }
  ~FakeMosixrun() {
    if (conn_ >= 0) ::close(conn_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  const std::string& path() const { return path_; }

  // Waits for the home node daemon to connect.
  void accept() {
    conn_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(conn_, 0);
    sender_ = std::make_unique<FrameSender>(::dup(conn_));
  }

  void send(const Message& m) { EXPECT_TRUE(sender_->send(m)); }

  // Every message from the daemon up to and including the first that
  // `last` accepts; what comes after it stays for the next call.
  std::vector<Message> read_until(const std::function<bool(const Message&)>& last) {
    std::vector<Message> got;
    for (;;) {
      while (!pending_.empty()) {
        got.push_back(std::move(pending_.front()));
        pending_.erase(pending_.begin());
        if (last(got.back())) return got;
      }
      char buf[1 << 16];
      ssize_t n = ::read(conn_, buf, sizeof buf);
      // The daemon's SIGCHLD (asio's handler has no SA_RESTART) may come to
      // this thread, when the daemon's has every signal blocked to start a guest.
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ADD_FAILURE() << "the daemon closed the job socket";
        return got;
      }
      auto messages = reader_.feed(buf, static_cast<size_t>(n));
      if (!messages) {
        ADD_FAILURE() << messages.error().message;
        return got;
      }
      for (Message& m : *messages) pending_.push_back(std::move(m));
    }
  }

  template <typename M>
  std::vector<Message> read_until_a() {
    return read_until([](const Message& m) { return std::holds_alternative<M>(m); });
  }

 private:
  std::string dir_, path_;
  int listen_fd_ = -1, conn_ = -1;
  std::unique_ptr<FrameSender> sender_;
  FrameReader reader_;
  std::vector<Message> pending_;
};

TEST(NodeDaemon, RunsAOneNodeJobOverLocalTransport) {
  FakeMosixrun mosixrun;
  auto group = LocalTransport::create_group(1);
  ASSERT_TRUE(group.ok());
  NodeDaemonOptions options;
  options.home_socket = mosixrun.path();
  options.copies = 2;
  options.no_agent = true;
  options.job_id = "unit";
  int daemon_exit = -1;
  std::thread daemon([&] { daemon_exit = run_node_daemon(*(*group)[0], options); });
  mosixrun.accept();

  auto hello = mosixrun.read_until_a<Hello>();
  EXPECT_EQ(std::get<Hello>(hello.back()).rank, 0u);
  mosixrun.send(spawn_of(0, {"sh", "-c", "echo zero; exit 3"}));
  mosixrun.send(spawn_of(1, {"sh", "-c", "echo one >&2"}));

  // Both copies start, say what they say, and end with their own status.
  std::map<int, GuestExited> ended;
  std::vector<Message> seen;
  while (ended.size() < 2) {
    auto got = mosixrun.read_until_a<GuestExited>();
    const auto& e = std::get<GuestExited>(got.back());
    ended[e.rank] = e;
    seen.insert(seen.end(), got.begin(), got.end());
  }
  EXPECT_EQ(ended[0].exit_code, 3);
  EXPECT_EQ(ended[1].exit_code, 0);
  EXPECT_EQ(output_of(seen, 0, OutputStream::kStdout), "zero\n");
  EXPECT_EQ(output_of(seen, 1, OutputStream::kStderr), "one\n");
  int started = 0;
  for (const Message& m : seen) {
    if (const auto* s = std::get_if<GuestStarted>(&m)) {
      ++started;
      EXPECT_EQ(s->node, 0u);
      EXPECT_GT(s->pid, 0);
    }
  }
  EXPECT_EQ(started, 2);

  mosixrun.send(Shutdown{"the job is over"});
  daemon.join();
  EXPECT_EQ(daemon_exit, 0);
}

TEST(NodeDaemon, AMoveToANodeNotInTheJobIsRefused) {
  FakeMosixrun mosixrun;
  auto group = LocalTransport::create_group(1);
  ASSERT_TRUE(group.ok());
  NodeDaemonOptions options;
  options.home_socket = mosixrun.path();
  options.copies = 1;
  options.no_agent = true;
  options.job_id = "unit";
  int daemon_exit = -1;
  std::thread daemon([&] { daemon_exit = run_node_daemon(*(*group)[0], options); });
  mosixrun.accept();
  mosixrun.read_until_a<Hello>();
  mosixrun.send(spawn_of(0, {"cat"}, kSpawnStdin));  // runs until its stdin ends
  mosixrun.read_until_a<GuestStarted>();

  MigrateRequest move;
  move.migration_id = 7;
  move.rank = 0;
  move.target_node = 5;
  mosixrun.send(move);
  auto got = mosixrun.read_until_a<MigrateResult>();
  const auto& result = std::get<MigrateResult>(got.back());
  EXPECT_EQ(result.migration_id, 7u);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.reason, "no node 5");

  mosixrun.send(GuestStdin{0, {}, true});
  auto end = mosixrun.read_until_a<GuestExited>();
  EXPECT_EQ(std::get<GuestExited>(end.back()).exit_code, 0);
  mosixrun.send(Shutdown{"the job is over"});
  daemon.join();
  EXPECT_EQ(daemon_exit, 0);
}

// mosixrun hands the daemon it runs the topology it probed: the daemon
// reports and binds by that one and does not probe the node again.
TEST(NodeDaemon, TakesTheTopologyItIsGivenInsteadOfProbing) {
  FakeMosixrun mosixrun;
  auto group = LocalTransport::create_group(1);
  ASSERT_TRUE(group.ok());
  NodeDaemonOptions options;
  options.home_socket = mosixrun.path();
  options.copies = 1;
  options.no_agent = true;
  options.job_id = "unit";
  Topology given;
  given.sockets = 1;
  given.cores = 3;
  given.pus = 3;
  given.numa_nodes = 1;
  given.memory_bytes = 12345;
  given.core_pus = {{0}, {0}, {0}};
  options.topology = given;
  int daemon_exit = -1;
  std::thread daemon([&] { daemon_exit = run_node_daemon(*(*group)[0], options); });
  mosixrun.accept();
  auto hello = mosixrun.read_until_a<Hello>();
  EXPECT_EQ(std::get<Hello>(hello.back()).cores, 3u);
  EXPECT_EQ(std::get<Hello>(hello.back()).memory_bytes, 12345u);
  mosixrun.send(spawn_of(0, {"sh", "-c", "exit 0"}));
  auto end = mosixrun.read_until_a<GuestExited>();
  EXPECT_EQ(std::get<GuestExited>(end.back()).exit_code, 0);
  mosixrun.send(Shutdown{"the job is over"});
  daemon.join();
  EXPECT_EQ(daemon_exit, 0);
}

}  // namespace
}  // namespace mosix
