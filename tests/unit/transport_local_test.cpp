#include "runtime/transport/local/local_transport.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <map>
#include <thread>
#include <vector>

namespace mosix {
namespace {

using ::testing::HasSubstr;

std::vector<std::unique_ptr<LocalTransport>> group(int n) {
  auto g = LocalTransport::create_group(n);
  EXPECT_TRUE(g.ok());
  return std::move(*g);
}

bool readable(const Transport& t) {
  pollfd pfd{t.event_fd(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1;
}

Frame numbered(int from, int seq) {
  return encode_frame(GuestStarted{from, seq, 0});
}

std::pair<int, int> number_of(const Delivery& d) {
  auto m = decode_delivery(d);
  EXPECT_TRUE(m.ok());
  const auto& s = std::get<GuestStarted>(*m);
  return {s.rank, s.pid};
}

TEST(LocalTransportTest, RanksAndSize) {
  auto g = group(3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(g[r]->rank(), r);
    EXPECT_EQ(g[r]->size(), 3);
  }
}

TEST(LocalTransportTest, ZeroRanksIsRefused) {
  auto g = LocalTransport::create_group(0);
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.error().message, HasSubstr("at least one rank"));
}

TEST(LocalTransportTest, SendToSelfWithOneRank) {
  auto g = group(1);
  ASSERT_TRUE(send_message(*g[0], 0, Shutdown{"done"}).ok());
  auto in = g[0]->receive();
  ASSERT_TRUE(in.ok());
  ASSERT_EQ(in->size(), 1u);
  EXPECT_EQ((*in)[0].source, 0);
  EXPECT_EQ(decode_delivery((*in)[0]).value(), Message{Shutdown{"done"}});
}

TEST(LocalTransportTest, EventFdIsReadableExactlyWhileFramesWait) {
  auto g = group(2);
  EXPECT_FALSE(readable(*g[1]));
  ASSERT_TRUE(send_message(*g[0], 1, NodeLost{1, {}}).ok());
  ASSERT_TRUE(send_message(*g[0], 1, NodeLost{2, {}}).ok());
  EXPECT_TRUE(readable(*g[1]));
  EXPECT_FALSE(readable(*g[0]));
  auto in = g[1]->receive();
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->size(), 2u);
  EXPECT_FALSE(readable(*g[1]));
  ASSERT_TRUE(send_message(*g[0], 1, NodeLost{3, {}}).ok());
  EXPECT_TRUE(readable(*g[1]));
}

TEST(LocalTransportTest, ReceiveWithNothingWaitingIsEmpty) {
  auto g = group(2);
  auto in = g[0]->receive();
  ASSERT_TRUE(in.ok());
  EXPECT_TRUE(in->empty());
  auto waited = receive_wait(*g[0], 0);
  ASSERT_TRUE(waited.ok());
  EXPECT_TRUE(waited->empty());
}

TEST(LocalTransportTest, OrderPerSenderIsKeptWhenSendersInterleave) {
  auto g = group(4);
  constexpr int kCount = 500;
  for (int seq = 0; seq < kCount; ++seq) {
    for (int from = 1; from < 4; ++from) ASSERT_TRUE(g[from]->send(0, numbered(from, seq)).ok());
  }
  auto in = g[0]->receive();
  ASSERT_TRUE(in.ok());
  ASSERT_EQ(in->size(), 3u * kCount);
  std::map<int, int> next;
  for (const auto& d : *in) {
    auto [from, seq] = number_of(d);
    EXPECT_EQ(d.source, from);
    EXPECT_EQ(seq, next[from]++) << "from rank " << from;
  }
}

// Every rank on its own thread sends to every rank (itself included) and
// waits on its event fd until it has everything.
TEST(LocalTransportTest, AllToAllFromThreads) {
  constexpr int kRanks = 5;
  constexpr int kCount = 200;
  auto g = group(kRanks);
  std::vector<std::map<int, std::vector<int>>> got(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      for (int seq = 0; seq < kCount; ++seq) {
        for (int dest = 0; dest < kRanks; ++dest) ASSERT_TRUE(g[r]->send(dest, numbered(r, seq)).ok());
      }
      int received = 0;
      while (received < kRanks * kCount) {
        auto in = receive_wait(*g[r], -1);
        ASSERT_TRUE(in.ok());
        for (const auto& d : *in) {
          got[r][d.source].push_back(number_of(d).second);
          ++received;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<int> expected(kCount);
  for (int i = 0; i < kCount; ++i) expected[i] = i;
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_EQ(got[r].size(), static_cast<std::size_t>(kRanks));
    for (const auto& [from, seqs] : got[r]) EXPECT_EQ(seqs, expected) << from << "->" << r;
  }
}

TEST(LocalTransportTest, LargeFrameArrivesIntact) {
  auto g = group(2);
  ImageChunk chunk{7, 0, Bytes(64u << 20)};
  for (std::size_t i = 0; i < chunk.bytes.size(); i += 4093) chunk.bytes[i] = static_cast<std::uint8_t>(i >> 12);
  ASSERT_TRUE(send_message(*g[0], 1, chunk).ok());
  auto in = g[1]->receive();
  ASSERT_TRUE(in.ok());
  ASSERT_EQ(in->size(), 1u);
  auto m = decode_delivery((*in)[0]);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(std::get<ImageChunk>(*m), chunk);
}

TEST(LocalTransportTest, FrameOverTheLimitIsRefused) {
  auto g = group(2);
  Status s = g[0]->send(1, Frame(kFrameHeaderSize + kMaxPayloadSize + 1));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr("send large data in pieces"));
}

TEST(LocalTransportTest, UnknownRankIsRefusedNamingTheRange) {
  auto g = group(3);
  for (int bad : {-1, 3, 100}) {
    Status s = send_message(*g[0], bad, Shutdown{});
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.error().message, HasSubstr("rank " + std::to_string(bad) + ": no such rank"));
    EXPECT_THAT(s.error().message, HasSubstr("ranks 0..2"));
  }
}

TEST(LocalTransportTest, ClosedEndpointsRefuseSends) {
  auto g = group(2);
  ASSERT_TRUE(g[1]->close().ok());
  Status to_closed = send_message(*g[0], 1, Shutdown{});
  ASSERT_FALSE(to_closed.ok());
  EXPECT_THAT(to_closed.error().message, HasSubstr("rank 1: that rank has closed"));
  Status from_closed = send_message(*g[1], 0, Shutdown{});
  ASSERT_FALSE(from_closed.ok());
  EXPECT_THAT(from_closed.error().message, HasSubstr("closed"));
}

TEST(LocalTransportTest, FramesQueuedBeforeCloseCanStillBeReceived) {
  auto g = group(2);
  ASSERT_TRUE(send_message(*g[0], 1, Shutdown{"last"}).ok());
  ASSERT_TRUE(g[1]->close().ok());
  auto in = g[1]->receive();
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->size(), 1u);
}

TEST(LocalTransportTest, DecodeDeliveryNamesTheSender) {
  Delivery d{4, Frame{1, 2, 3}};
  auto m = decode_delivery(d);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message, HasSubstr("message from rank 4: truncated frame"));
}

}  // namespace
}  // namespace mosix
