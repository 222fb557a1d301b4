// Shared by the checkpoint-image fuzz target, its seed generator and its
// g++ driver (test code, may allocate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/ckpt/format/crc32c.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/core/little_endian.h"

namespace mosix::ckpt::fuzz {

// Recomputes the preamble's and every chunk's CRC32C as far as the framing
// can be followed, so that mutated inputs reach the record decoders instead
// of stopping at the first checksum.
inline void fix_checksums(std::vector<std::uint8_t>& image) {
  if (image.size() < kPreambleSize) return;
  store_le<std::uint32_t>(image.data() + 12, crc32c(0, image.data(), 12));
  std::size_t at = kPreambleSize;
  while (image.size() - at >= kFrameSize) {
    std::uint32_t len = load_le<std::uint32_t>(image.data() + at);
    if (len > image.size() - at - kFrameSize) return;
    std::uint32_t crc = crc32c(crc32c(0, image.data() + at, 12), image.data() + at + kFrameSize, len);
    store_le<std::uint32_t>(image.data() + at + 12, crc);
    at += kFrameSize + len;
  }
}

}  // namespace mosix::ckpt::fuzz
