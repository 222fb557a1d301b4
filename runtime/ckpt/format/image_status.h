// ImageStatus: success or a one-line error message, held in a fixed buffer so
// that the image format code can fail inside a guest (signal context, other
// threads stopped) without allocating. The runtime converts it to
// mosix::Status with to_status() (image_file.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mosix::ckpt {

class [[nodiscard]] ImageStatus {
 public:
  static constexpr std::size_t kCapacity = 256;

  ImageStatus() = default;
  static ImageStatus Ok() { return {}; }
  // Copies at most kCapacity-1 bytes of message; an empty message becomes "error".
  static ImageStatus Failure(std::string_view message);

  bool ok() const { return message_[0] == '\0'; }
  explicit operator bool() const { return ok(); }
  // "" when ok(), else the message, NUL-terminated.
  const char* message() const { return message_; }

 private:
  friend class MessageBuilder;
  char message_[kCapacity] = {};
};

// Builds an error message piece by piece into a fixed buffer without
// allocating or touching the locale (unlike snprintf). Truncates silently.
class MessageBuilder {
 public:
  MessageBuilder& text(std::string_view s);
  MessageBuilder& dec(std::uint64_t v);
  MessageBuilder& sdec(std::int64_t v);
  MessageBuilder& hex(std::uint64_t v);  // "0x..." lower case
  // strerrordesc_np(err) or "errno N": async-signal-safe, no locale.
  MessageBuilder& errno_text(int err);
  ImageStatus status() const;
  std::string_view view() const { return {buf_, len_}; }

 private:
  char buf_[ImageStatus::kCapacity] = {};
  std::size_t len_ = 0;
};

}  // namespace mosix::ckpt
