// Little-endian field encoding for image records (internal to the format).
// WireEncoder and WireDecoder have the same method names so that one field
// list per record type, a template over the two, both encodes and decodes:
// the two directions cannot drift apart. Both stop at the first failure and
// remember which field failed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "runtime/core/little_endian.h"

namespace mosix::ckpt::wire {

enum class Failure : std::uint8_t { none, overflow, truncated, too_long, bad_count, trailing };

class WireEncoder {
 public:
  static constexpr bool kDecoding = false;
  WireEncoder(std::uint8_t* buf, std::size_t cap) : buf_(buf), cap_(cap) {}

  void u8(const std::uint8_t& v, const char* field) {
    if (std::uint8_t* p = room(1, field)) *p = v;
  }
  void u16(const std::uint16_t& v, const char* field) {
    if (std::uint8_t* p = room(2, field)) store_le<std::uint16_t>(p, v);
  }
  void u32(const std::uint32_t& v, const char* field) {
    if (std::uint8_t* p = room(4, field)) store_le<std::uint32_t>(p, v);
  }
  void u64(const std::uint64_t& v, const char* field) {
    if (std::uint8_t* p = room(8, field)) store_le<std::uint64_t>(p, v);
  }
  void i32(const std::int32_t& v, const char* field) { u32(static_cast<std::uint32_t>(v), field); }
  void i64(const std::int64_t& v, const char* field) { u64(static_cast<std::uint64_t>(v), field); }
  template <typename E>
  void enum8(const E& v, const char* field) { u8(static_cast<std::uint8_t>(v), field); }
  template <typename E>
  void enum16(const E& v, const char* field) { u16(static_cast<std::uint16_t>(v), field); }
  template <typename E>
  void enum32(const E& v, const char* field) { u32(static_cast<std::uint32_t>(v), field); }

  // A count of array elements, refused above max.
  void count(const std::uint32_t& v, std::uint32_t max, const char* field) {
    if (v > max) return fail(Failure::bad_count, field, v);
    u32(v, field);
  }
  // u32 length then bytes.
  void bytes(std::span<const std::uint8_t> v, std::size_t max, const char* field) {
    if (v.size() > max) return fail(Failure::too_long, field, v.size());
    u32(static_cast<std::uint32_t>(v.size()), field);
    if (std::uint8_t* p = room(v.size(), field)) {
      if (!v.empty()) std::memcpy(p, v.data(), v.size());
    }
  }
  void text(const std::string_view& v, std::size_t max, const char* field) {
    bytes({reinterpret_cast<const std::uint8_t*>(v.data()), v.size()}, max, field);
  }
  // A NUL-terminated fixed array, sent as text without the NUL.
  template <std::size_t N>
  void chars(const char (&v)[N], const char* field) {
    text(std::string_view(v, strnlen(v, N - 1)), N - 1, field);
  }

  bool ok() const { return failure_ == Failure::none; }
  Failure failure() const { return failure_; }
  const char* field() const { return field_; }
  std::uint64_t detail() const { return detail_; }
  std::size_t size() const { return len_; }

 private:
  std::uint8_t* room(std::size_t n, const char* field) {
    if (!ok()) return nullptr;
    if (cap_ - len_ < n) {
      fail(Failure::overflow, field, n);
      return nullptr;
    }
    std::uint8_t* p = buf_ + len_;
    len_ += n;
    return p;
  }
  void fail(Failure f, const char* field, std::uint64_t detail) {
    if (!ok()) return;
    failure_ = f;
    field_ = field;
    detail_ = detail;
  }

  std::uint8_t* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  Failure failure_ = Failure::none;
  const char* field_ = "";
  std::uint64_t detail_ = 0;
};

class WireDecoder {
 public:
  static constexpr bool kDecoding = true;
  explicit WireDecoder(std::span<const std::uint8_t> in) : in_(in) {}

  void u8(std::uint8_t& v, const char* field) {
    if (const std::uint8_t* p = take(1, field)) v = *p;
  }
  void u16(std::uint16_t& v, const char* field) {
    if (const std::uint8_t* p = take(2, field)) v = load_le<std::uint16_t>(p);
  }
  void u32(std::uint32_t& v, const char* field) {
    if (const std::uint8_t* p = take(4, field)) v = load_le<std::uint32_t>(p);
  }
  void u64(std::uint64_t& v, const char* field) {
    if (const std::uint8_t* p = take(8, field)) v = load_le<std::uint64_t>(p);
  }
  void i32(std::int32_t& v, const char* field) {
    std::uint32_t u = 0;
    u32(u, field);
    if (ok()) v = static_cast<std::int32_t>(u);
  }
  void i64(std::int64_t& v, const char* field) {
    std::uint64_t u = 0;
    u64(u, field);
    if (ok()) v = static_cast<std::int64_t>(u);
  }
  template <typename E>
  void enum8(E& v, const char* field) {
    std::uint8_t u = 0;
    u8(u, field);
    if (ok()) v = static_cast<E>(u);
  }
  template <typename E>
  void enum16(E& v, const char* field) {
    std::uint16_t u = 0;
    u16(u, field);
    if (ok()) v = static_cast<E>(u);
  }
  template <typename E>
  void enum32(E& v, const char* field) {
    std::uint32_t u = 0;
    u32(u, field);
    if (ok()) v = static_cast<E>(u);
  }

  // Leaves v at 0 on any failure, so loops over it do nothing.
  void count(std::uint32_t& v, std::uint32_t max, const char* field) {
    std::uint32_t u = 0;
    u32(u, field);
    v = 0;
    if (!ok()) return;
    if (u > max) return fail(Failure::bad_count, field, u);
    v = u;
  }
  void bytes(std::span<const std::uint8_t>& v, std::size_t max, const char* field) {
    std::uint32_t n = 0;
    u32(n, field);
    if (!ok()) return;
    if (n > max) return fail(Failure::too_long, field, n);
    if (const std::uint8_t* p = take(n, field)) v = {p, n};
  }
  void text(std::string_view& v, std::size_t max, const char* field) {
    std::span<const std::uint8_t> b;
    bytes(b, max, field);
    if (ok()) v = {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  template <std::size_t N>
  void chars(char (&v)[N], const char* field) {
    std::string_view s;
    text(s, N - 1, field);
    if (!ok()) return;
    std::memset(v, 0, N);
    if (!s.empty()) std::memcpy(v, s.data(), s.size());
  }
  // The rest of the input, for a record's trailing data.
  std::span<const std::uint8_t> rest() {
    std::span<const std::uint8_t> r = in_.subspan(pos_);
    pos_ = in_.size();
    return r;
  }
  // Call after the last field: fails if bytes are left over.
  void finish(const char* record) {
    if (ok() && pos_ != in_.size()) fail(Failure::trailing, record, in_.size() - pos_);
  }

  bool ok() const { return failure_ == Failure::none; }
  Failure failure() const { return failure_; }
  const char* field() const { return field_; }
  std::uint64_t detail() const { return detail_; }

 private:
  const std::uint8_t* take(std::size_t n, const char* field) {
    if (!ok()) return nullptr;
    if (in_.size() - pos_ < n) {
      fail(Failure::truncated, field, n);
      return nullptr;
    }
    const std::uint8_t* p = in_.data() + pos_;
    pos_ += n;
    return p;
  }
  void fail(Failure f, const char* field, std::uint64_t detail) {
    if (!ok()) return;
    failure_ = f;
    field_ = field;
    detail_ = detail;
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  Failure failure_ = Failure::none;
  const char* field_ = "";
  std::uint64_t detail_ = 0;
};

}  // namespace mosix::ckpt::wire
