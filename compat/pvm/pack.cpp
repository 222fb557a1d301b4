#include "compat/pvm/pack.h"

#include <cstring>

namespace mosix::pvm {
namespace {

// One item, `size` bytes, written big-endian from the host's order.
void put_be(std::uint8_t* out, const std::uint8_t* item, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) out[i] = item[size - 1 - i];  // little-endian hosts
}

bool host_is_little() {
  const std::uint16_t one = 1;
  std::uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

void encode(std::uint8_t* out, const std::uint8_t* item, std::size_t size, Encoding enc) {
  if (enc != Encoding::kDefault || size == 1 || !host_is_little()) {
    std::memcpy(out, item, size);
  } else {
    put_be(out, item, size);
  }
}

}  // namespace

std::size_t datatype_size(int datatype) {
  static const std::size_t kSizes[] = {1, 1, sizeof(short), sizeof(int), sizeof(float), 2 * sizeof(float),
                                       sizeof(double), 2 * sizeof(double), sizeof(long), sizeof(short),
                                       sizeof(int), sizeof(long)};
  if (datatype < 0 || datatype >= static_cast<int>(sizeof kSizes / sizeof kSizes[0])) return 0;
  return kSizes[datatype];
}

void pack_items(std::vector<std::uint8_t>& buf, Encoding enc, const void* items, int count, int stride,
                std::size_t size) {
  if (count <= 0) return;
  if (stride < 1) stride = 1;
  const auto* p = static_cast<const std::uint8_t*>(items);
  std::size_t at = buf.size();
  buf.resize(at + static_cast<std::size_t>(count) * size);
  for (int i = 0; i < count; ++i) {
    encode(buf.data() + at, p + static_cast<std::size_t>(i) * static_cast<std::size_t>(stride) * size, size, enc);
    at += size;
  }
}

bool unpack_items(const std::vector<std::uint8_t>& buf, std::size_t& pos, Encoding enc, void* items, int count,
                  int stride, std::size_t size) {
  if (count <= 0) return true;
  if (stride < 1) stride = 1;
  const std::size_t need = static_cast<std::size_t>(count) * size;
  if (pos > buf.size() || buf.size() - pos < need) return false;
  auto* p = static_cast<std::uint8_t*>(items);
  for (int i = 0; i < count; ++i) {
    // Decoding is the same swap as encoding.
    encode(p + static_cast<std::size_t>(i) * static_cast<std::size_t>(stride) * size, buf.data() + pos, size, enc);
    pos += size;
  }
  return true;
}

void pack_string(std::vector<std::uint8_t>& buf, Encoding enc, const char* s) {
  std::uint32_t len = static_cast<std::uint32_t>(std::strlen(s));
  pack_items(buf, enc, &len, 1, 1, sizeof len);
  pack_items(buf, enc, s, static_cast<int>(len), 1, 1);
}

bool unpack_string(const std::vector<std::uint8_t>& buf, std::size_t& pos, Encoding enc, char* out) {
  std::size_t at = pos;
  std::uint32_t len = 0;
  if (!unpack_items(buf, at, enc, &len, 1, 1, sizeof len)) return false;
  if (buf.size() - at < len) return false;
  std::memcpy(out, buf.data() + at, len);
  out[len] = '\0';
  pos = at + len;
  return true;
}

}  // namespace mosix::pvm
