// CRC32C (Castagnoli, reflected polynomial 0x82f63b78, initial and final
// XOR 0xffffffff): the project's one implementation, for the transport's
// frames and the checkpoint image's chunks. It uses the SSE4.2 crc32
// instruction when the CPU has it, slicing-by-8 tables otherwise; both give
// the same values.
//
// The image format library compiles crc32c.cpp too (into the preload agent
// and the static restorer), so it stays self-contained: no includes beyond
// <cstddef>/<cstdint> and the compiler's <cpuid.h>, no libc calls, no
// allocation, no exceptions, nothing initialised at run time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mosix {

// Extends `crc` (0 to start) with len bytes at data and returns the new CRC:
// crc32c(crc32c(0, a), b) == crc32c(0, a ++ b). crc32c(0, "123456789", 9) is 0xe3069283.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t len);
// The table version alone, so tests can compare it with the instruction's.
std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t len);

}  // namespace mosix
