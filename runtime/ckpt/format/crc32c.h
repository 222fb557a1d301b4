// CRC32C (Castagnoli, the iSCSI polynomial), used for every chunk of an
// image. Uses the SSE4.2 crc32 instruction when the CPU has it, a
// slicing-by-8 table otherwise; both give the same values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mosix::ckpt {

// Extends `crc` (0 to start) with len bytes at data and returns the new CRC:
// crc32c(crc32c(0, a), b) == crc32c(0, a ++ b). crc32c(0, "123456789") is 0xe3069283.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t len);
// The portable table version, exposed so tests can compare the two.
std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t len);

}  // namespace mosix::ckpt
