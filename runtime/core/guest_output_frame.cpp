// GuestOutput without copies, for the output path (protocol.h says why).
// The payload is laid out as fields(GuestOutput) in protocol.cpp lays it out
// (protocol_test checks that both give the same bytes): rank (i32), stream
// (u8: 1 stdout, 2 stderr), byte count (u32), the bytes.
#include <string>

#include "runtime/core/frame_layout.h"
#include "runtime/core/little_endian.h"

namespace mosix {
namespace {

using namespace frame_layout;

constexpr std::size_t kRankAt = 0;
constexpr std::size_t kStreamAt = 4;
constexpr std::size_t kCountAt = 5;
constexpr std::size_t kGuestOutputFixed = kGuestOutputOverhead - kFrameHeaderSize;
static_assert(kGuestOutputFixed == 9);

}  // namespace

Frame encode_guest_output(std::int32_t rank, OutputStream stream,
                          std::span<const std::uint8_t> bytes) {
  const std::size_t payload = kGuestOutputFixed + bytes.size();
  Frame frame;
  frame.reserve(kFrameHeaderSize + payload);
  frame.resize(kFrameHeaderSize + kGuestOutputFixed);
  std::uint8_t* p = frame.data() + kFrameHeaderSize;
  store_le(p + kRankAt, static_cast<std::uint32_t>(rank), 4);
  store_le(p + kStreamAt, static_cast<std::uint8_t>(stream), 1);
  store_le(p + kCountAt, bytes.size(), 4);
  frame.insert(frame.end(), bytes.begin(), bytes.end());
  write_header(frame.data(), kProtocolVersion, MessageType::kGuestOutput,
               static_cast<std::uint32_t>(payload));
  seal(frame);
  return frame;
}

std::optional<std::int32_t> guest_output_rank(std::span<const std::uint8_t> frame) {
  if (frame.size() < kFrameHeaderSize + 4 ||
      load_le(frame.data() + kTypeOffset, 2) != static_cast<std::uint16_t>(MessageType::kGuestOutput) ||
      frame_protocol_version(frame) != kProtocolVersion) {
    return std::nullopt;
  }
  return static_cast<std::int32_t>(
      static_cast<std::uint32_t>(load_le(frame.data() + kFrameHeaderSize + kRankAt, 4)));
}

Expected<GuestOutputView> view_guest_output(std::span<const std::uint8_t> frame,
                                            bool verify_checksum) {
  auto header = parse_frame_header(frame);
  if (!header) return header.error();
  if (header->type != MessageType::kGuestOutput) {
    return make_error("expected a GuestOutput frame, got " +
                      std::string(message_type_name(header->type)));
  }
  if (auto body = check_frame_body(frame, *header, verify_checksum); !body) return body.error();
  const auto payload = frame.subspan(kFrameHeaderSize);
  if (payload.size() < kGuestOutputFixed) {
    return make_error("truncated GuestOutput payload: " + std::to_string(payload.size()) +
                      " bytes, shorter than its " + std::to_string(kGuestOutputFixed) +
                      "-byte rank, stream and byte count");
  }
  GuestOutputView view;
  view.rank = static_cast<std::int32_t>(static_cast<std::uint32_t>(load_le(payload.data() + kRankAt, 4)));
  const auto stream = payload[kStreamAt];
  if (stream != 1 && stream != 2) {
    return make_error("stream is " + std::to_string(stream) + ", not 1 (stdout) or 2 (stderr)");
  }
  view.stream = static_cast<OutputStream>(stream);
  const std::size_t size = load_le(payload.data() + kCountAt, 4);
  const std::size_t left = payload.size() - kGuestOutputFixed;
  if (left < size) {
    return make_error("truncated GuestOutput payload: field 'bytes' needs " + std::to_string(size) +
                      " bytes, " + std::to_string(left) + " left");
  }
  if (left > size) {
    return make_error(std::to_string(left - size) +
                      " unexpected bytes after the end of a GuestOutput payload");
  }
  view.bytes = payload.subspan(kGuestOutputFixed);
  return view;
}

}  // namespace mosix
