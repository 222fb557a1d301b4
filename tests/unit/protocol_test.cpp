#include "runtime/core/protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace mosix {
namespace {

using ::testing::HasSubstr;

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

// One filled-in value of every message type, with values that exercise
// signs, zero bytes, large lengths and non-ASCII data.
std::vector<Message> every_message() {
  Bytes binary(70000);
  for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<std::uint8_t>(i * 7);
  return {
      Hello{kProtocolVersion, "0.1.0", "node-07", 7, 1.75, 64, 256ull << 30},
      HelloReject{"this job runs mosix 0.1.0; node-07 runs 0.2.0"},
      LoadReport{{{0, 0.5, 1.0, 1ull << 33, 0, 1, -1.0},
                  {3, 2.25, 2.0, 12345, 1500, 64, 1234.5, 0.75},
                  {65535, 0.0, 0.5, 0, 4000000000u, 0, 0.0}}},
      SpawnGuest{-0x1234, {"./app", "--flag", "", "arg with spaces"},
                 {"PATH=/usr/bin", "OMPI_COMM_WORLD_RANK=3"}, "/home/user/run", kSpawnStdin,
                 1ull << 40, "/opt/app/bin/app"},
      GuestStarted{3, 424242, 2},
      GuestOutput{3, OutputStream::kStderr, bytes_of(std::string("line\0with nul\n", 14))},
      GuestStdin{0, binary, true},
      GuestSignal{kAllRanks, 15},
      GuestExited{5, 0, 9, false, 1234, "/home/u/.local/state/mosix/pvm_stream-77.img"},
      Shutdown{"job finished"},
      ImageBegin{0xfedcba9876543210ull, 12, 1ull << 36},
      ImageChunk{0xfedcba9876543210ull, 1ull << 35, binary},
      ImageEnd{0xfedcba9876543210ull, 1ull << 36},
      NodeLost{9, {{1, 2}, {3, 0}}},
      MigrateRequest{0x0102030405060708ull, 7, 2, kSpawnStdin, 417.25},
      MigrateResult{0x0102030405060708ull, 7, false, true, "fd 3 is a socket", 1, 2, 31337,
                    1ull << 34, 4000000000u, 512ull << 20, 3, 500ull << 20},
      OutputCredit{5, 1ull << 40},
      BalanceReport{2, {{1, "below margin", "load 2.00 ..."}, {3, "pinned", ""}}},
      MigrateProgress{0x0102030405060708ull, 7, MigratePhase::kTransfer, 3ull << 30, 1ull << 33},
      OutputFds{2},
      MpiJobMap{{0, 0, 1, 2}, {"home", "vnode1", "node-07"}},
      FenceContribution{3, {0, 2, 5}, bytes_of(std::string("blob\0", 5))},
      FenceRelease{3, {}, -1, {}},
      ModexRequest{0x0102030405060708ull, 6},
      ModexReply{0x0102030405060708ull, 0, {1, 2, 3}},
      NamePublish{9, {{"ocean", "tag#0$port", 2}, {"", "", 0}}},
      NameLookup{10, {"ocean", "sky"}, true},
      NameUnpublish{11, 2, {}},
      NameReply{10, -46, {{"ocean", "tag#0$port", 2}}},
      GuestAttach{4, 7},
      GuestSpawn{12, 3, 2, {"hello_other", "-v"}, {"PATH=/usr/bin"}, "/tmp", "vnode2", kGuestSpawnDeputy | kGuestSpawnStdin, "/usr/bin/hello_other"},
      GuestSpawnReply{12, 3, 0, "", {5, 6}, {2, 1}},
      GuestMessage{5, 0, 7, -3, {0, 1, 2, 255}},
      MpiSpawn{13, 0, {{3, {"worker", "-x"}, {"OMPI_PARENT_PORT=1.0:77"}, "/tmp", ""}, {1, {"other"}, {}, "", "vnode1"}}, {"PARENT_ROOT_PORT_NAME=tag#0$"}},
      MpiSpawnReply{13, -46, "no such program", "mosix.42.1"},
      MpiNamespace{"mosix.42.1", 4, {1, 2, 1, 0}, {3, 1}, 0, kSpawnPmi, {"PARENT_ROOT_PORT_NAME=tag#0$"}},
      StdinCredit{9, 65536},
      PtyResize{0, 24, 80},
      PrecopyPages{0x0102030405060708ull, 0x7f0000001000ull, Bytes{1, 0, 2}, 1ull << 21, 1ull << 26},
      SocketForward{6, -3, (1ull << 63) | 5, 1, 17, true, true, 0x0a0b0c0d0e0f1011ull, binary, Bytes{0, 0xff}},
      PrecopyTaken{0x0102030405060708ull, 1ull << 33},
      HomeKill{(1ull << 63) | 9, 5, 2, -4321, 10, true, 3, 4400, true, -1, (1ull << 62) | 5},
  };
}

TEST(ProtocolTest, EveryMessageTypeRoundTrips) {
  const auto messages = every_message();
  ASSERT_EQ(messages.size(), std::variant_size_v<Message>);
  for (const Message& m : messages) {
    const Frame frame = encode_frame(m);
    auto back = decode_frame(frame);
    ASSERT_TRUE(back.ok()) << message_type_name(message_type(m)) << ": " << back.error().message;
    EXPECT_EQ(*back, m) << message_type_name(message_type(m));
  }
}

TEST(ProtocolTest, DefaultMessagesRoundTrip) {
  const std::vector<Message> all = every_message();
  for (std::size_t i = 0; i < std::variant_size_v<Message>; ++i) {
    const Message& m = all[i];
    Message empty = std::visit([](const auto& v) -> Message { return std::decay_t<decltype(v)>{}; }, m);
    auto back = decode_frame(encode_frame(empty));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, empty);
  }
}

TEST(ProtocolTest, TypeNamesAreDistinct) {
  std::set<std::string_view> names;
  for (const Message& m : every_message()) names.insert(message_type_name(message_type(m)));
  EXPECT_EQ(names.size(), std::variant_size_v<Message>);
  EXPECT_EQ(message_type_name(static_cast<MessageType>(999)), "unknown");
}

// The exact bytes of a small message: explicit little-endian, fixed header.
TEST(ProtocolTest, WireFormatIsLittleEndianWithFixedHeader) {
  const Frame frame = encode_frame(GuestSignal{0x01020304, -2, 0x0807060504030201u});
  const std::vector<std::uint8_t> expected_start = {
      'M', 'O', 'S', 'X',       // magic
      kProtocolVersion, 0,      // version
      8, 0,                     // type GuestSignal
      16, 0, 0, 0,              // payload length
  };
  ASSERT_EQ(frame.size(), kFrameHeaderSize + 16);
  EXPECT_EQ(std::vector<std::uint8_t>(frame.begin(), frame.begin() + 12), expected_start);
  const std::vector<std::uint8_t> payload = {4, 3, 2, 1, 0xfe, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(std::vector<std::uint8_t>(frame.begin() + 16, frame.end()), payload);
}

TEST(ProtocolTest, DoubleKeepsEveryBit) {
  Hello h;
  h.speed = 0.1 + 0.2;
  auto back = decode_frame(encode_frame(h));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<Hello>(*back).speed, h.speed);
}

TEST(ProtocolTest, Crc32cMatchesTheStandardCheckValue) {
  const Bytes check = bytes_of("123456789");
  EXPECT_EQ(crc32c(check), 0xE3069283u);
  EXPECT_EQ(crc32c({}), 0u);
}

TEST(ProtocolTest, Crc32cContinues) {
  Bytes data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31 + 5);
  const std::span<const std::uint8_t> all(data);
  for (std::size_t cut : {0, 1, 7, 8, 9, 500, 999, 1000}) {
    EXPECT_EQ(crc32c(all.subspan(cut), crc32c(all.first(cut))), crc32c(all)) << cut;
  }
}

TEST(ProtocolTest, EveryTruncationIsRefused) {
  for (const Message& m : every_message()) {
    const Frame frame = encode_frame(m);
    // Every prefix of small frames; a sample of prefixes of the large ones.
    const std::size_t step = frame.size() > 4096 ? 997 : 1;
    for (std::size_t len = 0; len < frame.size(); len += step) {
      auto back = decode_frame(std::span(frame).first(len));
      ASSERT_FALSE(back.ok()) << message_type_name(message_type(m)) << " cut at " << len;
      EXPECT_THAT(back.error().message, HasSubstr("truncated"));
    }
  }
}

TEST(ProtocolTest, ExtraBytesAfterTheFrameAreRefused) {
  Frame frame = encode_frame(Shutdown{"bye"});
  frame.push_back(0);
  auto back = decode_frame(frame);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.error().message, HasSubstr("oversized"));
}

TEST(ProtocolTest, EveryFlippedBitIsRefused) {
  const Frame frame = encode_frame(
      SpawnGuest{1, {"a", "b"}, {"X=1"}, "/tmp", 0, 5, ""});
  for (std::size_t byte = 0; byte < frame.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Frame bad = frame;
      bad[byte] ^= static_cast<std::uint8_t>(1u << bit);
      EXPECT_FALSE(decode_frame(bad).ok()) << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(ProtocolTest, CorruptedPayloadIsReportedAsCorruption) {
  Frame frame = encode_frame(GuestOutput{1, OutputStream::kStdout, bytes_of("hello")});
  frame.back() ^= 0x40;
  auto back = decode_frame(frame);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.error().message, HasSubstr("corrupted frame"));
}

TEST(ProtocolTest, BadMagicIsRefused) {
  Frame frame = encode_frame(NodeLost{1, {}});
  frame[0] = 'X';
  auto back = decode_frame(frame);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.error().message, HasSubstr("not a mosix frame"));
  EXPECT_FALSE(frame_protocol_version(frame).has_value());
}

// A well-formed frame (valid checksum) whose payload lies is still refused.
struct BadPayloadCase {
  MessageType type;
  Bytes payload;
  const char* expected;
};

TEST(ProtocolTest, InconsistentPayloadsAreRefused) {
  const std::vector<BadPayloadCase> cases = {
      {MessageType::kGuestOutput, {1, 0, 0, 0, 3, 0, 0, 0, 0}, "not 1 (stdout) or 2 (stderr)"},
      {MessageType::kGuestStdin, {1, 0, 0, 0, 0, 0, 0, 0, 2}, "not 0 or 1"},
      {MessageType::kShutdown, {0xff, 0xff, 0xff, 0x7f, 'a'}, "field 'reason' needs"},
      {MessageType::kLoadReport, {0xff, 0xff, 0xff, 0xff, 0}, "claims 4294967295 elements"},
      {MessageType::kNodeLost, {1, 0, 0, 0, 0, 0, 0, 0, 9}, "1 unexpected bytes after the end of a NodeLost"},
      {MessageType::kMigrateProgress, {1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 4}, "phase is 4, not 1, 2 or 3"},
      {static_cast<MessageType>(77), {}, "unknown message type 77"},
  };
  for (const auto& c : cases) {
    auto back = decode_frame(make_frame(c.type, c.payload));
    ASSERT_FALSE(back.ok()) << c.expected;
    EXPECT_THAT(back.error().message, HasSubstr(c.expected));
  }
}

TEST(ProtocolTest, OversizedAnnouncementIsRefusedFromTheHeader) {
  Frame frame = make_frame(MessageType::kImageChunk, {});
  frame[8] = 0xff;
  frame[9] = 0xff;
  frame[10] = 0xff;
  frame[11] = 0xff;
  auto header = parse_frame_header(frame);
  ASSERT_FALSE(header.ok());
  EXPECT_THAT(header.error().message, HasSubstr("large data must be sent in pieces"));
}

TEST(ProtocolTest, HeaderParsesFromTheStartOfAStream) {
  Frame frame = encode_frame(Shutdown{"x"});
  frame.resize(frame.size() + 100);  // the next frame's bytes
  auto header = parse_frame_header(frame);
  ASSERT_TRUE(header.ok()) << header.error().message;
  EXPECT_EQ(header->type, MessageType::kShutdown);
  EXPECT_EQ(header->payload_size, 5u);
  EXPECT_EQ(header->version, kProtocolVersion);
}

TEST(ProtocolTest, AnotherVersionIsRefusedNamingBothVersions) {
  const Frame frame = make_frame(MessageType::kGuestStarted, encode_payload(GuestStarted{1, 2, 3}),
                                 kProtocolVersion + 1);
  EXPECT_EQ(frame_protocol_version(frame), kProtocolVersion + 1);
  auto back = decode_frame(frame);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.error().message,
              HasSubstr("speaks protocol version " + std::to_string(kProtocolVersion + 1)));
  EXPECT_THAT(back.error().message,
              HasSubstr("this daemon speaks version " + std::to_string(kProtocolVersion)));
}

TEST(ProtocolTest, AHelloOfAnotherVersionIsRefusedByNodeName) {
  // A future release's Hello: the stable prefix, then fields we do not know.
  Hello future{kProtocolVersion + 1, "9.0.0", "gpu-3", 0, 0, 0, 0};
  Bytes payload = encode_payload(future);
  payload.resize(payload.size() + 13, 0xab);
  auto back = decode_frame(make_frame(MessageType::kHello, payload, kProtocolVersion + 1));
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.error().message, HasSubstr("node 'gpu-3' (mosix 9.0.0)"));
  EXPECT_THAT(back.error().message,
              HasSubstr("speaks protocol version " + std::to_string(kProtocolVersion + 1)));
  EXPECT_THAT(back.error().message, HasSubstr("install the same mosixrun release"));
}

TEST(ProtocolTest, CheckHelloNamesNodeAndBothVersions) {
  Hello peer{kProtocolVersion + 3, "0.4.0", "n02", 2, 1.0, 4, 0};
  Status s = check_hello(peer, "0.1.0");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message, HasSubstr("node 'n02' (rank 2, mosix 0.4.0)"));
  EXPECT_THAT(s.error().message,
              HasSubstr("protocol version " + std::to_string(kProtocolVersion + 3)));
  EXPECT_THAT(s.error().message,
              HasSubstr("(mosix 0.1.0) speaks version " + std::to_string(kProtocolVersion)));
  peer.protocol_version = kProtocolVersion;
  EXPECT_TRUE(check_hello(peer, "0.1.0").ok());
}

// Bit at a time, straight from the definition: the reference for the fast paths.
std::uint32_t crc32c_reference(std::span<const std::uint8_t> bytes) {
  std::uint32_t crc = ~0u;
  for (std::uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

TEST(ProtocolTest, Crc32cOfLongBuffersMatchesTheDefinition) {
  Bytes data(3 * 8192 * 2 + 3 * 256 * 3 + 77);
  std::uint32_t x = 12345;
  for (std::uint8_t& b : data) {
    x = x * 1103515245u + 12345u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  const std::span<const std::uint8_t> all(data);
  // Around every block boundary of the three-stream paths, at odd offsets too.
  for (std::size_t len : {0ul, 7ul, 8ul, 767ul, 768ul, 769ul, 2304ul, 24575ul, 24576ul, 24577ul,
                          24576ul + 768ul, 49152ul, all.size() - 1}) {
    for (std::size_t at : {0ul, 1ul, 5ul}) {
      if (at + len > all.size()) continue;
      auto part = all.subspan(at, len);
      EXPECT_EQ(crc32c(part), crc32c_reference(part)) << "length " << len << " at " << at;
    }
  }
  EXPECT_EQ(crc32c(all.subspan(30000), crc32c(all.first(30000))), crc32c_reference(all));
}

TEST(ProtocolTest, GuestOutputEncodesWithoutAMessageExactlyAsEncodeFrame) {
  Bytes big(300000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 13);
  for (const GuestOutput& out : {GuestOutput{-7, OutputStream::kStderr, bytes_of("a\n")},
                                 GuestOutput{3, OutputStream::kStdout, {}},
                                 GuestOutput{70000, OutputStream::kStdout, big}}) {
    EXPECT_EQ(encode_guest_output(out.rank, out.stream, out.bytes), encode_frame(out));
    EXPECT_EQ(encode_frame(out).size(), out.bytes.size() + kGuestOutputOverhead);
  }
}

TEST(ProtocolTest, GuestOutputViewPointsIntoTheFrame) {
  const Frame frame = encode_frame(GuestOutput{42, OutputStream::kStderr, bytes_of("line\n")});
  auto view = view_guest_output(frame);
  ASSERT_TRUE(view.ok()) << view.error().message;
  EXPECT_EQ(view->rank, 42);
  EXPECT_EQ(view->stream, OutputStream::kStderr);
  EXPECT_EQ(view->bytes.data(), frame.data() + frame.size() - 5);
  EXPECT_EQ(Bytes(view->bytes.begin(), view->bytes.end()), bytes_of("line\n"));
  EXPECT_EQ(guest_output_rank(frame), 42);
}

TEST(ProtocolTest, GuestOutputViewMakesEveryCheckDecodeMakes) {
  const Frame frame = encode_frame(GuestOutput{1, OutputStream::kStdout, bytes_of("hello")});
  for (std::size_t len = 0; len < frame.size(); ++len) {
    EXPECT_FALSE(view_guest_output(std::span(frame).first(len)).ok()) << "cut at " << len;
  }
  for (std::size_t byte = 0; byte < frame.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Frame bad = frame;
      bad[byte] ^= static_cast<std::uint8_t>(1u << bit);
      EXPECT_FALSE(view_guest_output(bad).ok()) << "byte " << byte << " bit " << bit;
    }
  }
  // Consistent checksum, inconsistent payload: the byte count says 6, 5 follow.
  Bytes payload = encode_payload(GuestOutput{1, OutputStream::kStdout, bytes_of("hello")});
  payload[5] = 6;
  auto bad = view_guest_output(make_frame(MessageType::kGuestOutput, payload));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("truncated GuestOutput payload"));
  EXPECT_FALSE(view_guest_output(encode_frame(Shutdown{"bye"})).ok());
}

TEST(ProtocolTest, GuestOutputViewCanSkipOnlyTheChecksum) {
  Frame frame = encode_frame(GuestOutput{1, OutputStream::kStdout, bytes_of("hello")});
  frame.back() ^= 0x40;  // payload byte: only the CRC can tell
  EXPECT_FALSE(view_guest_output(frame).ok());
  auto unchecked = view_guest_output(frame, false);
  ASSERT_TRUE(unchecked.ok());
  EXPECT_EQ(Bytes(unchecked->bytes.begin(), unchecked->bytes.end()), bytes_of("hell\x2f"));
  // Everything else is still checked.
  EXPECT_FALSE(view_guest_output(std::span(frame).first(frame.size() - 1), false).ok());
  Bytes payload = encode_payload(GuestOutput{1, OutputStream::kStdout, bytes_of("hello")});
  payload[4] = 3;  // stream
  EXPECT_FALSE(view_guest_output(make_frame(MessageType::kGuestOutput, payload), false).ok());
}

TEST(ProtocolTest, GuestOutputRankIsOnlyForGuestOutputOfOurVersion) {
  EXPECT_EQ(guest_output_rank(encode_frame(GuestExited{4, 0, 0})), std::nullopt);
  Bytes payload = encode_payload(GuestOutput{4, OutputStream::kStdout, bytes_of("x")});
  EXPECT_EQ(guest_output_rank(make_frame(MessageType::kGuestOutput, payload, kProtocolVersion + 1)),
            std::nullopt);
  const Frame frame = make_frame(MessageType::kGuestOutput, payload);
  EXPECT_EQ(guest_output_rank(frame), 4);
  EXPECT_EQ(guest_output_rank(std::span(frame).first(19)), std::nullopt);
}

}  // namespace
}  // namespace mosix
