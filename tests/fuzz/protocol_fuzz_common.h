// Shared by the protocol fuzz target's seed generator and its g++ driver
// (test code, may allocate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/core/crc32c.h"
#include "runtime/core/protocol.h"

namespace mosix::fuzz {

// Recomputes the CRC32C of every frame as far as the lengths can be
// followed, so that mutated inputs reach the payload decoders instead of
// stopping at the checksum.
inline void fix_frame_checksums(std::vector<std::uint8_t>& bytes) {
  std::size_t at = 0;
  while (bytes.size() - at >= kFrameHeaderSize) {
    std::uint8_t* h = bytes.data() + at;
    std::uint32_t len = h[8] | h[9] << 8 | h[10] << 16 | static_cast<std::uint32_t>(h[11]) << 24;
    if (len > bytes.size() - at - kFrameHeaderSize) return;
    std::uint32_t crc = mosix::crc32c(mosix::crc32c(0, h, 12), h + kFrameHeaderSize, len);
    for (int i = 0; i < 4; ++i) h[12 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    at += kFrameHeaderSize + len;
  }
}

}  // namespace mosix::fuzz
