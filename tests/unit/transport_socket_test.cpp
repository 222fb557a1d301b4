#include "runtime/transport/socket/socket_transport.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

namespace mosix {
namespace {

using ::testing::HasSubstr;

class SocketTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mosix-socket-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // What mosixd --launch does: every listening socket first, then the ranks in any order.
  std::vector<int> listeners(int n) {
    std::vector<int> fds;
    for (int r = 0; r < n; ++r) {
      if (r == n - 1) {
        fds.push_back(-1);
        break;
      }
      auto fd = SocketTransport::listen_socket(dir_, r, n);
      EXPECT_TRUE(fd.ok()) << fd.error().message;
      fds.push_back(*fd);
    }
    return fds;
  }

  std::vector<std::unique_ptr<SocketTransport>> group(int n) {
    std::vector<int> fds = listeners(n);
    std::vector<std::unique_ptr<SocketTransport>> g;
    for (int r = 0; r < n; ++r) {
      auto t = SocketTransport::create(SocketTransport::Options{r, n, dir_, fds[r]});
      EXPECT_TRUE(t.ok()) << t.error().message;
      g.push_back(std::move(*t));
    }
    return g;
  }

  // A raw connection to rank `to`, introduced as rank `as` of a group of `size`.
  int raw_peer(int to, int as, int size) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = SocketTransport::socket_path(dir_, to);
    std::strcpy(addr.sun_path, path.c_str());
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::uint8_t hello[16] = {'M', 'S', 'K', 'T', 1, 0, 0, 0};
    hello[8] = static_cast<std::uint8_t>(as);
    hello[12] = static_cast<std::uint8_t>(size);
    EXPECT_EQ(::write(fd, hello, sizeof hello), 16);
    return fd;
  }

  std::string dir_;
};

// Receives until `count` frames have come (the transport reports no error meanwhile).
std::vector<Delivery> receive_n(Transport& t, std::size_t count) {
  std::vector<Delivery> all;
  while (all.size() < count) {
    auto in = receive_wait(t, -1);
    EXPECT_TRUE(in.ok()) << in.error().message;
    if (!in.ok()) break;
    for (Delivery& d : *in) all.push_back(std::move(d));
  }
  return all;
}

// Waits for the transport to report itself broken; returns the error.
std::string receive_error(Transport& t) {
  for (;;) {
    auto in = receive_wait(t, -1);
    if (!in.ok()) return in.error().message;
  }
}

Frame numbered(int from, int seq) { return encode_frame(GuestStarted{from, seq, 0}); }

std::pair<int, int> number_of(const Delivery& d) {
  auto m = decode_delivery(d);
  EXPECT_TRUE(m.ok());
  const auto& s = std::get<GuestStarted>(*m);
  return {s.rank, s.pid};
}

TEST_F(SocketTransportTest, RanksAndSize) {
  auto g = group(3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(g[r]->rank(), r);
    EXPECT_EQ(g[r]->size(), 3);
  }
}

TEST_F(SocketTransportTest, SendToSelf) {
  auto g = group(1);
  ASSERT_TRUE(send_message(*g[0], 0, Shutdown{"done"}).ok());
  auto in = receive_n(*g[0], 1);
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].source, 0);
  EXPECT_EQ(decode_delivery(in[0]).value(), Message{Shutdown{"done"}});
}

TEST_F(SocketTransportTest, EveryMessageArrivesWhole) {
  auto g = group(2);
  Hello hello;
  hello.node_name = "vnode1";
  hello.rank = 1;
  ASSERT_TRUE(send_message(*g[1], 0, hello).ok());
  ASSERT_TRUE(send_message(*g[0], 1, GuestSignal{3, 15}).ok());
  auto at0 = receive_n(*g[0], 1);
  auto at1 = receive_n(*g[1], 1);
  EXPECT_EQ(at0[0].source, 1);
  EXPECT_EQ(decode_delivery(at0[0]).value(), Message{hello});
  EXPECT_EQ(at1[0].source, 0);
  EXPECT_EQ(decode_delivery(at1[0]).value(), (Message{GuestSignal{3, 15}}));
}

TEST_F(SocketTransportTest, RanksMaySendBeforeTheRanksAboveHaveStarted) {
  std::vector<int> fds = listeners(3);
  auto zero = SocketTransport::create(SocketTransport::Options{0, 3, dir_, fds[0]});
  ASSERT_TRUE(zero.ok());
  ASSERT_TRUE(send_message(**zero, 2, Shutdown{"early"}).ok());
  EXPECT_GT((*zero)->pending_bytes(), 0u);
  auto one = SocketTransport::create(SocketTransport::Options{1, 3, dir_, fds[1]});
  auto two = SocketTransport::create(SocketTransport::Options{2, 3, dir_, fds[2]});
  ASSERT_TRUE(one.ok() && two.ok());
  auto in = receive_n(**two, 1);
  EXPECT_EQ(in[0].source, 0);
  EXPECT_EQ(decode_delivery(in[0]).value(), Message{Shutdown{"early"}});
}

TEST_F(SocketTransportTest, OrderPerSenderAllToAllFromOneThreadPerRank) {
  constexpr int kRanks = 4, kEach = 500;
  auto g = group(kRanks);
  std::vector<std::thread> threads;
  std::vector<std::map<int, int>> next(kRanks);  // per receiver: next number expected per sender
  std::vector<char> in_order(kRanks, 1);  // not vector<bool>: one element per thread
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      for (int i = 0; i < kEach; ++i) {
        for (int d = 0; d < kRanks; ++d) {
          Frame f = numbered(r, i);
          if (i % 50 == 7) f = encode_frame(GuestStarted{r, i, 200000});  // same size; vary content
          ASSERT_TRUE(g[r]->send(d, std::move(f)).ok());
        }
      }
      auto all = receive_n(*g[r], static_cast<std::size_t>(kRanks * kEach));
      for (const Delivery& d : all) {
        auto [from, seq] = number_of(d);
        EXPECT_EQ(from, d.source);
        if (seq != next[r][from]++) in_order[r] = 0;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_TRUE(in_order[r]) << "rank " << r;
    for (int s = 0; s < kRanks; ++s) EXPECT_EQ(next[r][s], kEach);
  }
}

TEST_F(SocketTransportTest, LargeFramesBetweenSmallOnes) {
  auto g = group(2);
  Bytes big(64u << 20);
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<std::uint8_t>(i >> 12);
  Bytes middle(300000, 7);  // larger than the read buffer, much smaller than the limit
  std::thread sender([&] {
    ASSERT_TRUE(send_message(*g[0], 1, Shutdown{"before"}).ok());
    ASSERT_TRUE(send_message(*g[0], 1, ImageChunk{9, 0, big}).ok());
    ASSERT_TRUE(send_message(*g[0], 1, ImageChunk{9, 1, middle}).ok());
    ASSERT_TRUE(send_message(*g[0], 1, Shutdown{"after"}).ok());
  });
  auto in = receive_n(*g[1], 4);
  sender.join();
  ASSERT_EQ(in.size(), 4u);
  EXPECT_EQ(decode_delivery(in[0]).value(), Message{Shutdown{"before"}});
  auto chunk = decode_delivery(in[1]);
  ASSERT_TRUE(chunk.ok());
  EXPECT_TRUE(std::get<ImageChunk>(*chunk).bytes == big);
  EXPECT_TRUE(std::get<ImageChunk>(decode_delivery(in[2]).value()).bytes == middle);
  EXPECT_EQ(decode_delivery(in[3]).value(), Message{Shutdown{"after"}});
}

// Frames of output size, read partly in place, with small ones between them
// and sizes that do not line up with the read buffer: every byte in order.
TEST_F(SocketTransportTest, OutputSizedFramesBetweenSmallOnesArriveByteExact) {
  auto g = group(2);
  constexpr int kFrames = 200;
  auto bytes_of = [](int i) {
    Bytes b(static_cast<std::size_t>(20000 + (i * 7919) % 250000));
    for (std::size_t k = 0; k < b.size(); ++k) b[k] = static_cast<std::uint8_t>(k * 31 + static_cast<std::size_t>(i));
    return b;
  };
  std::thread sender([&] {
    for (int i = 0; i < kFrames; ++i) {
      ASSERT_TRUE(send_message(*g[0], 1, ImageChunk{1, static_cast<std::uint64_t>(i), bytes_of(i)}).ok());
      if (i % 3 == 0) {
        ASSERT_TRUE(g[0]->send(1, numbered(0, i)).ok());
      }
    }
  });
  const std::size_t expected = kFrames + (kFrames + 2) / 3;
  auto in = receive_n(*g[1], expected);
  sender.join();
  ASSERT_EQ(in.size(), expected);
  std::size_t at = 0;
  for (int i = 0; i < kFrames; ++i) {
    auto m = decode_delivery(in[at++]);
    ASSERT_TRUE(m.ok()) << m.error().message;
    const auto& chunk = std::get<ImageChunk>(*m);
    EXPECT_EQ(chunk.offset, static_cast<std::uint64_t>(i));
    EXPECT_TRUE(chunk.bytes == bytes_of(i)) << "frame " << i;
    if (i % 3 == 0) {
      EXPECT_EQ(number_of(in[at++]).second, i);
    }
  }
}

// A connection that ended leaves event_fd(): it is not readable for ever
// (which would spin an event loop).
TEST_F(SocketTransportTest, EventFdIsQuietOnceAnEndedPeerIsRead) {
  std::vector<int> fds = listeners(2);
  auto zero = SocketTransport::create(SocketTransport::Options{0, 2, dir_, fds[0]});
  ASSERT_TRUE(zero.ok());
  int one = raw_peer(0, 1, 2);
  Frame f = encode_frame(Shutdown{"bye"});
  ASSERT_EQ(::write(one, f.data(), f.size()), static_cast<ssize_t>(f.size()));
  ::close(one);
  auto in = receive_n(**zero, 1);
  EXPECT_EQ(decode_delivery(in[0]).value(), Message{Shutdown{"bye"}});
  // The end may come in a later read: read until it is seen, then nothing is left.
  for (int i = 0; i < 100; ++i) {
    auto more = receive_wait(**zero, 0);
    ASSERT_TRUE(more.ok());
    if (more->empty()) break;
  }
  pollfd pfd{(*zero)->event_fd(), POLLIN, 0};
  auto rest = (*zero)->receive();
  ASSERT_TRUE(rest.ok());
  EXPECT_TRUE(rest->empty());
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
}

TEST_F(SocketTransportTest, WhatARankSentBeforeClosingArrivesAfterItHasGone) {
  auto g = group(2);
  constexpr int kFrames = 2000;  // more than the socket holds: close() waits until it is written
  std::thread closer([&] {
    for (int i = 0; i < kFrames; ++i) ASSERT_TRUE(g[0]->send(1, numbered(0, i)).ok());
    EXPECT_TRUE(g[0]->close().ok());
    EXPECT_EQ(g[0]->pending_bytes(), 0u);
  });
  auto in = receive_n(*g[1], kFrames);
  closer.join();
  for (int i = 0; i < kFrames; ++i) EXPECT_EQ(number_of(in[static_cast<std::size_t>(i)]).second, i);
  // Its goodbye is no failure, and frames to it are dropped quietly.
  EXPECT_TRUE(send_message(*g[1], 0, Shutdown{"to nobody"}).ok());
  EXPECT_TRUE(g[1]->close().ok());
  EXPECT_EQ(g[1]->pending_bytes(), 0u);
  auto refused = send_message(*g[0], 1, Shutdown{"late"});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message, HasSubstr("closed"));
}

TEST_F(SocketTransportTest, RanksThatTalkToEachOtherCanAllClose) {
  constexpr int kRanks = 3;
  auto g = group(kRanks);
  std::vector<std::thread> threads;
  std::vector<char> ok(kRanks, 0);
  Bytes chunk(1u << 20, 1);  // more than a socket holds, both ways
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      for (int d = 0; d < kRanks; ++d) (void)send_message(*g[r], d, ImageChunk{1, 0, chunk});
      ok[r] = g[r]->close().ok();
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) EXPECT_TRUE(ok[r]) << "rank " << r;
}

TEST_F(SocketTransportTest, ARankThatDiesIsDroppedAndTheOthersGoOn) {
  std::vector<int> fds = listeners(3);
  auto zero = SocketTransport::create(SocketTransport::Options{0, 3, dir_, fds[0]});
  ASSERT_TRUE(zero.ok());
  auto one = SocketTransport::create(SocketTransport::Options{1, 3, dir_, fds[1]});
  ASSERT_TRUE(one.ok());
  int two = raw_peer(0, 2, 3);
  Frame f = encode_frame(Shutdown{"last words"});
  ASSERT_EQ(::write(two, f.data(), f.size()), static_cast<ssize_t>(f.size()));
  ::close(two);  // as the kernel does for a daemon killed by SIGKILL
  auto in = receive_n(**zero, 1);  // what it said before dying still arrives
  EXPECT_EQ(in[0].source, 2);
  EXPECT_EQ(decode_delivery(in[0]).value(), Message{Shutdown{"last words"}});
  // Frames to it go nowhere, quietly; the others still talk.
  Bytes chunk(1u << 20, 3);  // more than a socket holds: written until the break is seen
  EXPECT_TRUE(send_message(**zero, 2, ImageChunk{1, 0, chunk}).ok());
  EXPECT_TRUE(send_message(**zero, 1, Shutdown{"still here"}).ok());
  auto at1 = receive_n(**one, 1);
  EXPECT_EQ(decode_delivery(at1[0]).value(), Message{Shutdown{"still here"}});
  (*zero)->forget(2);
  EXPECT_TRUE(send_message(**zero, 2, Shutdown{"dropped"}).ok());
  // Nor does closing wait for it (rank 1 never heard from rank 2: it forgets it too).
  (*one)->forget(2);
  std::thread closing([&] { EXPECT_TRUE((*one)->close().ok()); });
  EXPECT_TRUE((*zero)->close().ok());
  closing.join();
  EXPECT_EQ((*zero)->pending_bytes(), 0u);
}

TEST_F(SocketTransportTest, AForgottenRankThatNeverConnectedIsNotWaitedFor) {
  std::vector<int> fds = listeners(2);
  auto zero = SocketTransport::create(SocketTransport::Options{0, 2, dir_, fds[0]});
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(send_message(**zero, 1, Shutdown{"never read"}).ok());
  (*zero)->forget(1);
  EXPECT_TRUE((*zero)->close().ok());
  EXPECT_EQ((*zero)->pending_bytes(), 0u);
}

TEST_F(SocketTransportTest, SomethingThatIsNotAFrameBreaksTheTransport) {
  std::vector<int> fds = listeners(2);
  auto zero = SocketTransport::create(SocketTransport::Options{0, 2, dir_, fds[0]});
  ASSERT_TRUE(zero.ok());
  int one = raw_peer(0, 1, 2);
  const char junk[] = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_GT(::write(one, junk, sizeof junk), 0);
  EXPECT_THAT(receive_error(**zero), HasSubstr("not a mosix frame"));
  ::close(one);
}

TEST_F(SocketTransportTest, AStrangerOfAnotherGroupIsRefused) {
  std::vector<int> fds = listeners(2);
  auto zero = SocketTransport::create(SocketTransport::Options{0, 2, dir_, fds[0]});
  ASSERT_TRUE(zero.ok());
  int one = raw_peer(0, 1, 5);
  EXPECT_THAT(receive_error(**zero), HasSubstr("group of 5 connected to a group of 2"));
  ::close(one);
}

TEST_F(SocketTransportTest, ASocketNameGoesOnceEveryRankAboveHasConnected) {
  auto g = group(3);
  // The ranks' threads accept in their own time: a goodbye round trip means
  // every connection has been accepted.
  std::vector<std::thread> threads;
  for (auto& t : g) threads.emplace_back([&t] { EXPECT_TRUE(t->close().ok()); });
  for (auto& t : threads) t.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_FALSE(std::filesystem::exists(SocketTransport::socket_path(dir_, r))) << "rank " << r;
  }
}

TEST_F(SocketTransportTest, AMissingRankBelowIsNamed) {
  auto t = SocketTransport::create(SocketTransport::Options{1, 2, dir_, -1});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.error().message, HasSubstr("cannot reach node daemon rank 0"));
}

TEST_F(SocketTransportTest, LimitsAndUnknownRanks) {
  auto g = group(2);
  EXPECT_THAT(g[0]->send(2, numbered(0, 0)).error().message, HasSubstr("no such rank"));
  EXPECT_THAT(g[0]->send(-1, numbered(0, 0)).error().message, HasSubstr("no such rank"));
  EXPECT_THAT(g[0]->send(1, Frame(kFrameHeaderSize + kMaxPayloadSize + 1)).error().message,
              HasSubstr("exceeds the limit"));
  auto bad = SocketTransport::create(SocketTransport::Options{2, 2, dir_, -1});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("does not exist"));
}

}  // namespace
}  // namespace mosix
