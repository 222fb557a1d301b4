#include "runtime/ckpt/format/image_status.h"

#include <cstring>

namespace mosix::ckpt {

ImageStatus ImageStatus::Failure(std::string_view message) {
  MessageBuilder m;
  m.text(message.empty() ? std::string_view("error") : message);
  return m.status();
}

MessageBuilder& MessageBuilder::text(std::string_view s) {
  std::size_t room = ImageStatus::kCapacity - 1 - len_;
  std::size_t n = s.size() < room ? s.size() : room;
  if (n) std::memcpy(buf_ + len_, s.data(), n);
  len_ += n;
  buf_[len_] = '\0';
  return *this;
}

MessageBuilder& MessageBuilder::dec(std::uint64_t v) {
  char tmp[24];
  int i = sizeof tmp;
  do {
    tmp[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  return text({tmp + i, sizeof tmp - i});
}

MessageBuilder& MessageBuilder::sdec(std::int64_t v) {
  if (v < 0) {
    text("-");
    return dec(~static_cast<std::uint64_t>(v) + 1);
  }
  return dec(static_cast<std::uint64_t>(v));
}

MessageBuilder& MessageBuilder::hex(std::uint64_t v) {
  char tmp[18];
  int i = sizeof tmp;
  do {
    tmp[--i] = "0123456789abcdef"[v & 0xf];
    v >>= 4;
  } while (v);
  tmp[--i] = 'x';
  tmp[--i] = '0';
  return text({tmp + i, sizeof tmp - i});
}

MessageBuilder& MessageBuilder::errno_text(int err) {
  const char* d = strerrordesc_np(err);
  if (d) return text(d);
  return text("errno ").sdec(err);
}

ImageStatus MessageBuilder::status() const {
  ImageStatus s;
  std::memcpy(s.message_, buf_, len_);
  s.message_[len_] = '\0';
  if (len_ == 0) std::memcpy(s.message_, "error", 6);
  return s;
}

}  // namespace mosix::ckpt
