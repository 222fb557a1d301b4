// The frame header: writing, sealing and checking it, and naming a peer of
// another protocol version. The payloads are protocol.cpp's.
#include <cstring>
#include <optional>
#include <string>

#include "runtime/core/crc32c.h"
#include "runtime/core/frame_layout.h"
#include "runtime/core/little_endian.h"

namespace mosix {
namespace frame_layout {

void write_header(std::uint8_t* out, std::uint16_t version, MessageType type,
                  std::uint32_t payload_size) {
  std::memcpy(out, kMagic.data(), kMagic.size());
  store_le(out + kVersionOffset, version, 2);
  store_le(out + kTypeOffset, static_cast<std::uint16_t>(type), 2);
  store_le(out + kPayloadSizeOffset, payload_size, 4);
}

std::uint32_t frame_checksum(std::span<const std::uint8_t> frame) {
  const std::uint32_t crc = crc32c(0, frame.data(), kChecksumOffset);
  return crc32c(crc, frame.data() + kFrameHeaderSize, frame.size() - kFrameHeaderSize);
}

void seal(Frame& frame) { store_le(frame.data() + kChecksumOffset, frame_checksum(frame), 4); }

Status check_frame_body(std::span<const std::uint8_t> frame, const FrameHeader& header,
                        bool verify_checksum) {
  const std::size_t carried = frame.size() - kFrameHeaderSize;
  if (carried != header.payload_size) {
    return make_error(std::string(carried < header.payload_size ? "truncated" : "oversized") +
                      " frame: header announces " + std::to_string(header.payload_size) +
                      " payload bytes, the frame carries " + std::to_string(carried));
  }
  if (!verify_checksum) return Status::Ok();
  const std::uint32_t computed = frame_checksum(frame);
  if (computed != header.checksum) {
    return make_error("corrupted frame: checksum " + std::to_string(computed) +
                      " does not match the header's " + std::to_string(header.checksum));
  }
  return Status::Ok();
}

}  // namespace frame_layout

namespace {

using namespace frame_layout;

// A length-prefixed string at `at` of the payload, moving `at` past it.
std::optional<std::string> read_string(std::span<const std::uint8_t> payload, std::size_t& at) {
  if (payload.size() - at < 4) return std::nullopt;
  const std::size_t n = load_le(payload.data() + at, 4);
  if (payload.size() - at - 4 < n) return std::nullopt;
  std::string s(reinterpret_cast<const char*>(payload.data() + at + 4), n);
  at += 4 + n;
  return s;
}

std::string version_mismatch(std::uint16_t theirs, std::span<const std::uint8_t> frame) {
  std::string who = "a peer";
  // A Hello keeps its header and first three fields in every release
  // (protocol_version u32, mosix_version, node_name): name the node.
  if (frame.size() >= kFrameHeaderSize &&
      load_le(frame.data() + kTypeOffset, 2) == static_cast<std::uint16_t>(MessageType::kHello)) {
    const auto payload = frame.subspan(kFrameHeaderSize);
    std::size_t at = 4;
    if (payload.size() >= at) {
      const auto release = read_string(payload, at);
      const auto node = release ? read_string(payload, at) : std::nullopt;
      if (node) who = "node '" + *node + "' (mosix " + *release + ")";
    }
  }
  return who + " speaks protocol version " + std::to_string(theirs) +
         ", this daemon speaks version " + std::to_string(kProtocolVersion) +
         ": install the same mosixrun release on every node";
}

}  // namespace

Frame make_frame(MessageType type, std::span<const std::uint8_t> payload,
                 std::uint16_t version) {
  Frame frame(kFrameHeaderSize + payload.size());
  if (!payload.empty()) std::memcpy(frame.data() + kFrameHeaderSize, payload.data(), payload.size());
  write_header(frame.data(), version, type, static_cast<std::uint32_t>(payload.size()));
  seal(frame);
  return frame;
}

std::optional<std::uint16_t> frame_protocol_version(std::span<const std::uint8_t> frame) {
  if (frame.size() < kVersionOffset + 2 ||
      std::memcmp(frame.data(), kMagic.data(), kMagic.size()) != 0) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(load_le(frame.data() + kVersionOffset, 2));
}

Expected<FrameHeader> parse_frame_header(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < kFrameHeaderSize) {
    return make_error("truncated frame: " + std::to_string(bytes.size()) +
                      " bytes, shorter than the " + std::to_string(kFrameHeaderSize) +
                      "-byte header");
  }
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    return make_error("not a mosix frame: bad magic (expected \"MOSX\"); is something other "
                      "than a mosix daemon talking on this channel?");
  }
  FrameHeader header;
  header.version = static_cast<std::uint16_t>(load_le(bytes.data() + kVersionOffset, 2));
  if (header.version != kProtocolVersion) return make_error(version_mismatch(header.version, bytes));
  header.type = static_cast<MessageType>(load_le(bytes.data() + kTypeOffset, 2));
  header.payload_size = static_cast<std::uint32_t>(load_le(bytes.data() + kPayloadSizeOffset, 4));
  header.checksum = static_cast<std::uint32_t>(load_le(bytes.data() + kChecksumOffset, 4));
  if (header.payload_size > kMaxPayloadSize) {
    return make_error("frame announces a payload of " + std::to_string(header.payload_size) +
                      " bytes, more than the limit of " + std::to_string(kMaxPayloadSize) +
                      "; large data must be sent in pieces");
  }
  return header;
}

}  // namespace mosix
