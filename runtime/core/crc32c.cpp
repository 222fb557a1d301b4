#include "runtime/core/crc32c.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "runtime/core/little_endian.h"

namespace mosix {
namespace {

constexpr std::uint32_t kPoly = 0x82f63b78;  // reflected Castagnoli polynomial

// Every table is computed at compile time: nothing runs before the first
// call, inside a guest or in the restorer.
struct SliceTables {
  std::uint32_t t[8][256] = {};
};

constexpr SliceTables make_slice_tables() {
  SliceTables s;
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    s.t[0][i] = c;
  }
  for (int k = 1; k < 8; ++k) {
    for (std::uint32_t i = 0; i < 256; ++i) s.t[k][i] = (s.t[k - 1][i] >> 8) ^ s.t[0][s.t[k - 1][i] & 0xff];
  }
  return s;
}
constexpr SliceTables kSlice = make_slice_tables();

// The raw register (no pre/post inversion) over n bytes, slicing by 8.
std::uint32_t raw_portable(std::uint32_t c, const std::uint8_t* p, std::size_t n) {
  const auto& t = kSlice.t;
  while (n >= 8) {
    const std::uint64_t w = load_le<std::uint64_t>(p) ^ c;
    c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
        t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__)
// The crc32 instruction takes 3 cycles and can start every cycle: three
// streams side by side (blocks A, B, C of one length L) run three times
// faster than one. The register after A B C is shift(shift(a) ^ b) ^ c,
// where a, b, c are the three streams' registers (b and c started from 0)
// and shift() appends L zero bytes: a linear map of the 32 register bits,
// applied a byte at a time from four tables. Long blocks for the bulk of a
// large buffer, short ones for what is left and for mid-sized buffers.
constexpr std::size_t kLongBlock = 8192;
constexpr std::size_t kShortBlock = 256;

// A 32x32 matrix over GF(2), kept as its 32 columns.
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

struct ShiftTables {
  std::uint32_t t[4][256] = {};
};

// The tables that append `zero_bytes` (a power of two) zero bytes to a register.
constexpr ShiftTables make_shift_tables(std::size_t zero_bytes) {
  Matrix m;  // one zero byte
  for (int i = 0; i < 32; ++i) {
    const std::uint32_t c = 1u << i;
    m.col[i] = (c >> 8) ^ kSlice.t[0][c & 0xff];
  }
  for (std::size_t len = 1; len < zero_bytes; len *= 2) {
    Matrix square;
    for (int i = 0; i < 32; ++i) square.col[i] = apply(m, m.col[i]);
    m = square;
  }
  ShiftTables s;
  for (int k = 0; k < 4; ++k) {
    for (std::uint32_t b = 0; b < 256; ++b) s.t[k][b] = apply(m, b << (8 * k));
  }
  return s;
}
constexpr ShiftTables kLongShift = make_shift_tables(kLongBlock);
constexpr ShiftTables kShortShift = make_shift_tables(kShortBlock);

inline std::uint32_t shift(const ShiftTables& s, std::uint32_t c) {
  return s.t[0][c & 0xff] ^ s.t[1][(c >> 8) & 0xff] ^ s.t[2][(c >> 16) & 0xff] ^ s.t[3][c >> 24];
}

// Runs whole groups of three `block`-byte blocks, advancing p and n.
template <std::size_t block>
__attribute__((target("sse4.2"), always_inline)) inline std::uint32_t three_streams(
    std::uint32_t c, const std::uint8_t*& p, std::size_t& n, const ShiftTables& s) {
  while (n >= 3 * block) {
    std::uint64_t a = c, b = 0, d = 0;
    for (std::size_t i = 0; i < block; i += 8) {
      a = __builtin_ia32_crc32di(a, load_le<std::uint64_t>(p + i));
      b = __builtin_ia32_crc32di(b, load_le<std::uint64_t>(p + block + i));
      d = __builtin_ia32_crc32di(d, load_le<std::uint64_t>(p + 2 * block + i));
    }
    c = shift(s, shift(s, static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b)) ^
        static_cast<std::uint32_t>(d);
    p += 3 * block;
    n -= 3 * block;
  }
  return c;
}

__attribute__((target("sse4.2"))) std::uint32_t raw_sse42(std::uint32_t c, const std::uint8_t* p,
                                                          std::size_t n) {
  if (n >= 3 * kLongBlock) c = three_streams<kLongBlock>(c, p, n, kLongShift);
  if (n >= 3 * kShortBlock) c = three_streams<kShortBlock>(c, p, n, kShortShift);
  std::uint64_t c64 = c;
  while (n >= 8) {
    c64 = __builtin_ia32_crc32di(c64, load_le<std::uint64_t>(p));
    p += 8;
    n -= 8;
  }
  c = static_cast<std::uint32_t>(c64);
  if (n >= 4) {
    std::uint32_t w;
    __builtin_memcpy(&w, p, 4);
    c = __builtin_ia32_crc32si(c, w);
    p += 4;
    n -= 4;
  }
  while (n--) c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}

// 0: not probed yet, 1: portable, 2: SSE4.2. Racing probes agree. The cpuid
// instruction, not __builtin_cpu_supports: that one relies on libgcc's
// constructor having run, which the restorer and a guest do not promise.
int g_impl = 0;

bool have_sse42() {
  int impl = __atomic_load_n(&g_impl, __ATOMIC_RELAXED);
  if (impl == 0) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    impl = (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2)) ? 2 : 1;
    __atomic_store_n(&g_impl, impl, __ATOMIC_RELAXED);
  }
  return impl == 2;
}
#endif

}  // namespace

std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t len) {
  return ~raw_portable(~crc, static_cast<const std::uint8_t*>(data), len);
}

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t len) {
  const auto* p = static_cast<const std::uint8_t*>(data);
#if defined(__x86_64__)
  if (have_sse42()) return ~raw_sse42(~crc, p, len);
#endif
  return ~raw_portable(~crc, p, len);
}

}  // namespace mosix
