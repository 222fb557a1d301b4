// HomeKill (protocol_guest_service.h) as one frame in a fixed buffer, for
// the guest agent: its kill() may run in a signal handler, where nothing may
// allocate (compat/agent/home_kill.cpp). The bytes are encode_frame()'s and
// decode_frame() reads them (tests/unit/home_kill_frame_test.cpp). Header-only;
// it needs crc32c.cpp, which the agent has through the image format library.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/core/crc32c.h"
#include "runtime/core/little_endian.h"
#include "runtime/core/message_type.h"

namespace mosix::home_kill_frame {

// request_id u64, rank, asker_node, pid, signo i32, answered u8, error i32,
// tid i32, queued u8, code i32, value u64.
inline constexpr std::size_t kPayloadSize = 8 + 4 * 4 + 1 + 4 + 4 + 1 + 4 + 8;
inline constexpr std::size_t kSize = kFrameHeaderSize + kPayloadSize;

struct Fields {
  std::uint64_t request_id = 0;
  std::int32_t rank = 0;
  std::int32_t asker_node = 0;
  std::int32_t pid = 0;
  std::int32_t signo = 0;
  bool answered = false;
  std::int32_t error = 0;
  std::int32_t tid = 0;
  bool queued = false;
  std::int32_t code = 0;
  std::uint64_t value = 0;
};

inline std::uint32_t checksum(const std::uint8_t* frame) {
  return crc32c(crc32c(0, frame, 12), frame + kFrameHeaderSize, kPayloadSize);
}

inline void encode(const Fields& f, std::uint8_t (&out)[kSize]) {
  out[0] = 'M', out[1] = 'O', out[2] = 'S', out[3] = 'X';
  store_le<std::uint16_t>(out + 4, kProtocolVersion);
  store_le<std::uint16_t>(out + 6, static_cast<std::uint16_t>(MessageType::kHomeKill));
  store_le<std::uint32_t>(out + 8, static_cast<std::uint32_t>(kPayloadSize));
  std::uint8_t* p = out + kFrameHeaderSize;
  store_le<std::uint64_t>(p, f.request_id);
  store_le<std::uint32_t>(p + 8, static_cast<std::uint32_t>(f.rank));
  store_le<std::uint32_t>(p + 12, static_cast<std::uint32_t>(f.asker_node));
  store_le<std::uint32_t>(p + 16, static_cast<std::uint32_t>(f.pid));
  store_le<std::uint32_t>(p + 20, static_cast<std::uint32_t>(f.signo));
  p[24] = f.answered ? 1 : 0;
  store_le<std::uint32_t>(p + 25, static_cast<std::uint32_t>(f.error));
  store_le<std::uint32_t>(p + 29, static_cast<std::uint32_t>(f.tid));
  p[33] = f.queued ? 1 : 0;
  store_le<std::uint32_t>(p + 34, static_cast<std::uint32_t>(f.code));
  store_le<std::uint64_t>(p + 38, f.value);
  store_le<std::uint32_t>(out + 12, checksum(out));
}

// False unless `in` is a whole, intact HomeKill frame of this version.
inline bool decode(const std::uint8_t (&in)[kSize], Fields& f) {
  if (in[0] != 'M' || in[1] != 'O' || in[2] != 'S' || in[3] != 'X') return false;
  if (load_le<std::uint16_t>(in + 4) != kProtocolVersion ||
      load_le<std::uint16_t>(in + 6) != static_cast<std::uint16_t>(MessageType::kHomeKill) ||
      load_le<std::uint32_t>(in + 8) != kPayloadSize || load_le<std::uint32_t>(in + 12) != checksum(in)) {
    return false;
  }
  const std::uint8_t* p = in + kFrameHeaderSize;
  f.request_id = load_le<std::uint64_t>(p);
  f.rank = static_cast<std::int32_t>(load_le<std::uint32_t>(p + 8));
  f.asker_node = static_cast<std::int32_t>(load_le<std::uint32_t>(p + 12));
  f.pid = static_cast<std::int32_t>(load_le<std::uint32_t>(p + 16));
  f.signo = static_cast<std::int32_t>(load_le<std::uint32_t>(p + 20));
  f.answered = p[24] != 0;
  f.error = static_cast<std::int32_t>(load_le<std::uint32_t>(p + 25));
  f.tid = static_cast<std::int32_t>(load_le<std::uint32_t>(p + 29));
  f.queued = p[33] != 0;
  f.code = static_cast<std::int32_t>(load_le<std::uint32_t>(p + 34));
  f.value = load_le<std::uint64_t>(p + 38);
  return true;
}

}  // namespace mosix::home_kill_frame
