// Little-endian integers in byte buffers: the project's wire and image
// formats store every integer this way, whatever the host's byte order.
// Header-only and dependency-free: core, the image format (inside guests
// too) and the transports include it.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace mosix {

// The unsigned integer T stored at p (sizeof(T) bytes, least significant first).
template <std::unsigned_integral T>
constexpr T load_le(const std::uint8_t* p) {
  if (!std::is_constant_evaluated()) {
    if constexpr (std::endian::native == std::endian::little) {
      T v;
      __builtin_memcpy(&v, p, sizeof v);  // one load
      return v;
    }
  }
  T v = 0;
  for (std::size_t i = sizeof(T); i-- > 0;) v = static_cast<T>((v << 8) | p[i]);
  return v;
}

// Stores v at p (sizeof(T) bytes, least significant first).
template <std::unsigned_integral T>
constexpr void store_le(std::uint8_t* p, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// The same for a field `width` bytes wide (1 to 8), for encoders that pick
// the width at run time.
constexpr std::uint64_t load_le(const std::uint8_t* p, std::size_t width) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < width; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}
constexpr void store_le(std::uint8_t* p, std::uint64_t v, std::size_t width) {
  for (std::size_t i = 0; i < width; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace mosix
