#include "runtime/ckpt/format/crc32c.h"

#include <cpuid.h>
#include <nmmintrin.h>

#include <array>
#include <cstring>

namespace mosix::ckpt {
namespace {

constexpr std::uint32_t kPoly = 0x82f63b78;  // reflected Castagnoli polynomial

// Computed at compile time so that no initialisation runs inside a guest.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (std::uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}
constexpr auto kTables = make_tables();

std::uint32_t raw_portable(std::uint32_t c, const std::uint8_t* p, std::size_t n) {
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);  // x86_64: little-endian load
    w ^= c;
    c = kTables[7][w & 0xff] ^ kTables[6][(w >> 8) & 0xff] ^ kTables[5][(w >> 16) & 0xff] ^
        kTables[4][(w >> 24) & 0xff] ^ kTables[3][(w >> 32) & 0xff] ^ kTables[2][(w >> 40) & 0xff] ^
        kTables[1][(w >> 48) & 0xff] ^ kTables[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xff];
  return c;
}

// Shifting a raw CRC register over L zero bytes is linear: a 32x32 GF(2)
// matrix, kept as its 32 columns. This lets three independent streams run
// through the crc32 instruction at once (its latency is 3 cycles, its
// throughput 1) and be joined: raw(s, A B C) = Z(Z(raw(s, A)) ^ raw(0, B)) ^
// raw(0, C) for |B| = |C| = L, where Z shifts over L zero bytes.
constexpr std::size_t kLane = 2048;

struct Matrix {
  std::uint32_t col[32] = {};
};

constexpr std::uint32_t apply(const Matrix& m, std::uint32_t v) {
  std::uint32_t r = 0;
  for (int i = 0; i < 32; ++i) {
    if ((v >> i) & 1) r ^= m.col[i];
  }
  return r;
}

constexpr Matrix compose(const Matrix& a, const Matrix& b) {
  Matrix m;
  for (int i = 0; i < 32; ++i) m.col[i] = apply(a, b.col[i]);
  return m;
}

constexpr std::array<std::array<std::uint32_t, 256>, 4> make_shift_tables() {
  Matrix m;  // one zero byte
  for (int i = 0; i < 32; ++i) {
    std::uint32_t c = 1u << i;
    m.col[i] = (c >> 8) ^ kTables[0][c & 0xff];
  }
  for (std::size_t len = 1; len < kLane; len *= 2) m = compose(m, m);
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  for (int k = 0; k < 4; ++k) {
    for (std::uint32_t b = 0; b < 256; ++b) t[k][b] = apply(m, b << (8 * k));
  }
  return t;
}
constexpr auto kShift = make_shift_tables();

std::uint32_t shift_lane(std::uint32_t c) {
  return kShift[0][c & 0xff] ^ kShift[1][(c >> 8) & 0xff] ^ kShift[2][(c >> 16) & 0xff] ^ kShift[3][c >> 24];
}

__attribute__((target("sse4.2"))) std::uint32_t raw_sse42(std::uint32_t c, const std::uint8_t* p,
                                                          std::size_t n) {
  while (n >= 3 * kLane) {
    std::uint64_t a = c, b = 0, d = 0;
    for (std::size_t i = 0; i < kLane; i += 8) {
      std::uint64_t wa, wb, wd;
      std::memcpy(&wa, p + i, 8);
      std::memcpy(&wb, p + kLane + i, 8);
      std::memcpy(&wd, p + 2 * kLane + i, 8);
      a = _mm_crc32_u64(a, wa);
      b = _mm_crc32_u64(b, wb);
      d = _mm_crc32_u64(d, wd);
    }
    c = shift_lane(shift_lane(static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b)) ^
        static_cast<std::uint32_t>(d);
    p += 3 * kLane;
    n -= 3 * kLane;
  }
  std::uint64_t c64 = c;
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = _mm_crc32_u64(c64, w);
    p += 8;
    n -= 8;
  }
  c = static_cast<std::uint32_t>(c64);
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}

// 0: not probed yet, 1: portable, 2: SSE4.2. Racing probes agree.
int g_impl = 0;

int probe() {
  int impl = __atomic_load_n(&g_impl, __ATOMIC_RELAXED);
  if (impl != 0) return impl;
  unsigned a = 0, b = 0, c = 0, d = 0;
  impl = (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2)) ? 2 : 1;
  __atomic_store_n(&g_impl, impl, __ATOMIC_RELAXED);
  return impl;
}

}  // namespace

std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t len) {
  return ~raw_portable(~crc, static_cast<const std::uint8_t*>(data), len);
}

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t len) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  if (probe() == 2) return ~raw_sse42(~crc, p, len);
  return ~raw_portable(~crc, p, len);
}

}  // namespace mosix::ckpt
