#include "runtime/daemon/frame_socket.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mosix {
namespace {

using ::testing::HasSubstr;

Bytes pattern(std::size_t n, unsigned seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 31 + seed);
  return b;
}

// A stream of frames: small and large output of two ranks, other messages between.
std::vector<Message> stream_messages() {
  return {
      GuestOutput{0, OutputStream::kStdout, pattern(10, 1)},
      GuestStarted{1, 4242, 1},
      GuestOutput{1, OutputStream::kStderr, pattern(70000, 2)},
      GuestOutput{1, OutputStream::kStdout, pattern(256 << 10, 3)},
      GuestExited{0, 3, 0},
      GuestOutput{0, OutputStream::kStdout, {}},
      GuestOutput{1, OutputStream::kStdout, pattern(5 << 20, 4)},  // more than the first buffer
      Shutdown{"done"},
  };
}

Bytes stream_bytes(const std::vector<Message>& messages) {
  Bytes all;
  for (const Message& m : messages) {
    Frame f = encode_frame(m);
    all.insert(all.end(), f.begin(), f.end());
  }
  return all;
}

// Reads `all` into the reader in pieces of `piece` bytes (at most what
// space() offers) and decodes every frame next() hands out.
std::vector<Message> read_in_place(const Bytes& all, std::size_t piece) {
  FrameReader reader;
  std::vector<Message> out;
  std::size_t at = 0;
  while (at < all.size()) {
    auto space = reader.space();
    EXPECT_GE(space.size(), 64u << 10);
    std::size_t n = std::min({piece, space.size(), all.size() - at});
    std::memcpy(space.data(), all.data() + at, n);
    reader.filled(n);
    at += n;
    for (;;) {
      auto frame = reader.next();
      EXPECT_TRUE(frame.ok());
      if (!frame.ok() || frame->empty()) break;
      auto message = decode_frame(*frame);
      EXPECT_TRUE(message.ok());
      if (message.ok()) out.push_back(std::move(*message));
    }
  }
  EXPECT_TRUE(reader.empty());
  return out;
}

TEST(FrameReaderTest, InPlaceReadingGivesEveryFrameWhateverThePieces) {
  const auto messages = stream_messages();
  const Bytes all = stream_bytes(messages);
  for (std::size_t piece : {1ul, 7ul, 16ul, 4096ul, 65536ul + 3, 1ul << 20, 64ul << 20}) {
    if (piece == 1 || piece == 7) {
      // Byte by byte through the small frames only (the large ones take long).
      std::vector<Message> small(messages.begin(), messages.begin() + 3);
      EXPECT_EQ(read_in_place(stream_bytes(small), piece), small) << "pieces of " << piece;
      continue;
    }
    EXPECT_EQ(read_in_place(all, piece), messages) << "pieces of " << piece;
  }
}

TEST(FrameReaderTest, OutputIsViewedWhereItArrived) {
  FrameReader reader;
  const Frame frame = encode_frame(GuestOutput{3, OutputStream::kStdout, pattern(1000, 5)});
  auto space = reader.space();
  std::memcpy(space.data(), frame.data(), frame.size());
  reader.filled(frame.size());
  auto next = reader.next();
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), frame.size());
  EXPECT_EQ(next->data(), space.data());
  auto view = view_guest_output(*next);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->bytes.data(), space.data() + (frame.size() - 1000));
}

TEST(FrameReaderTest, FeedDecodesAcrossCalls) {
  const auto messages = stream_messages();
  const Bytes all = stream_bytes(messages);
  FrameReader reader;
  std::vector<Message> out;
  for (std::size_t at = 0; at < all.size(); at += 100000) {
    const std::size_t n = std::min<std::size_t>(100000, all.size() - at);
    auto got = reader.feed(reinterpret_cast<const char*>(all.data() + at), n);
    ASSERT_TRUE(got.ok()) << got.error().message;
    out.insert(out.end(), got->begin(), got->end());
  }
  EXPECT_EQ(out, messages);
  EXPECT_TRUE(reader.empty());
}

TEST(FrameReaderTest, ACorruptStreamStaysCorrupt) {
  Frame frame = encode_frame(GuestExited{1, 0, 0});
  frame[0] = 'X';
  FrameReader reader;
  auto got = reader.feed(reinterpret_cast<const char*>(frame.data()), frame.size());
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.error().message, HasSubstr("bad magic"));
  const Frame good = encode_frame(GuestExited{1, 0, 0});
  EXPECT_FALSE(reader.feed(reinterpret_cast<const char*>(good.data()), good.size()).ok());
  EXPECT_FALSE(reader.next().ok());
}

TEST(FrameReaderTest, ACorruptedPayloadIsRefusedByFeed) {
  Frame frame = encode_frame(GuestOutput{1, OutputStream::kStdout, pattern(100, 1)});
  frame.back() ^= 1;
  FrameReader reader;
  auto got = reader.feed(reinterpret_cast<const char*>(frame.data()), frame.size());
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.error().message, HasSubstr("corrupted frame"));
}

TEST(FrameSenderTest, SendsMessagesAndFramesInOrder) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  FrameSender sender(sv[0]);
  const Frame output = encode_guest_output(2, OutputStream::kStderr, pattern(3000, 9));
  ASSERT_TRUE(sender.send(GuestStarted{2, 7, 0}));
  ASSERT_TRUE(sender.send_frame(output));
  ::close(sv[0]);
  FrameReader reader;
  std::vector<Message> got;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(sv[1], buf, sizeof buf);
    if (n <= 0) break;
    auto messages = reader.feed(buf, static_cast<size_t>(n));
    ASSERT_TRUE(messages.ok());
    got.insert(got.end(), messages->begin(), messages->end());
  }
  ::close(sv[1]);
  EXPECT_EQ(got, (std::vector<Message>{GuestStarted{2, 7, 0},
                                        GuestOutput{2, OutputStream::kStderr, pattern(3000, 9)}}));
}

TEST(FrameSenderTest, DescriptorsTravelWithTheFrame) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  FrameSender sender(sv[0]);
  ASSERT_TRUE(sender.send(GuestStarted{1, 2, 3}));
  ASSERT_TRUE(sender.send_with_fds(OutputFds{}, std::array<int, 2>{p[1], p[1]}));
  ASSERT_TRUE(sender.send(GuestStarted{4, 5, 6}));
  FrameReader reader;
  std::vector<int> fds;
  std::vector<Message> got;
  while (got.size() < 3) {
    char buf[7];  // small reads: the descriptors come with the OutputFds bytes wherever a read starts
    ssize_t n = recv_with_fds(sv[1], buf, sizeof buf, fds);
    ASSERT_GT(n, 0);
    auto messages = reader.feed(buf, static_cast<size_t>(n));
    ASSERT_TRUE(messages.ok());
    for (Message& m : *messages) {
      if (std::holds_alternative<OutputFds>(m)) {
        EXPECT_EQ(fds.size(), 2u);
      }
      got.push_back(std::move(m));
    }
  }
  EXPECT_EQ(got, (std::vector<Message>{GuestStarted{1, 2, 3}, OutputFds{}, GuestStarted{4, 5, 6}}));
  ASSERT_EQ(fds.size(), 2u);
  // A copy of our pipe's write end, close-on-exec.
  EXPECT_NE(fds[0], p[1]);
  EXPECT_EQ(::fcntl(fds[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(p[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  for (int fd : {fds[0], fds[1], p[0], p[1], sv[0], sv[1]}) ::close(fd);
}

TEST(FrameSenderTest, FailsOnceThePeerIsGone) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ::close(sv[1]);
  FrameSender sender(sv[0]);
  EXPECT_FALSE(sender.send_frame(encode_frame(Shutdown{"bye"})));
  EXPECT_FALSE(sender.send(Shutdown{"bye"}));
  ::close(sv[0]);
}

}  // namespace
}  // namespace mosix
