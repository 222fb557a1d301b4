// libFuzzer target for what arrives from the network: one input is taken both
// as a single frame (decode_frame and the GuestOutput fast path, which must
// agree) and as a byte stream cut into frames by FrameReader, fed in pieces
// of a size the input's length chooses. Each input is tried as it is and
// with its checksums repaired (to get past them to the payload decoders). A
// message that decodes must encode to a frame that decodes to the same bytes
// again. Any crash, sanitizer report or abort() is a finding.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "runtime/core/protocol.h"
#include "runtime/daemon/frame_socket.h"
#include "tests/fuzz/protocol_fuzz_common.h"

namespace {

using mosix::Frame;
using mosix::Message;

void check_round_trip(const Message& m) {
  Frame once = mosix::encode_frame(m);
  auto again = mosix::decode_frame(once);
  if (!again) std::abort();
  if (mosix::encode_frame(*again) != once) std::abort();
}

void one_frame(std::span<const std::uint8_t> in) {
  auto message = mosix::decode_frame(in);
  if (message) check_round_trip(*message);
  (void)mosix::parse_frame_header(in);
  (void)mosix::frame_protocol_version(in);
  (void)mosix::guest_output_rank(in);
  (void)mosix::view_guest_output(in, false);
  auto view = mosix::view_guest_output(in, true);
  // The fast path for output accepts exactly the GuestOutput frames that
  // decode_frame() accepts, and sees the same rank, stream and bytes.
  const auto* out = message ? std::get_if<mosix::GuestOutput>(&*message) : nullptr;
  if (static_cast<bool>(view) != (out != nullptr)) std::abort();
  if (view && (view->rank != out->rank || view->stream != out->stream ||
               !std::equal(view->bytes.begin(), view->bytes.end(), out->bytes.begin(), out->bytes.end())))
    std::abort();
  if (view && mosix::guest_output_rank(in) != view->rank) std::abort();
}

void stream(std::span<const std::uint8_t> in) {
  const std::size_t piece = 1 + in.size() % 64;
  mosix::FrameReader reader;
  for (std::size_t at = 0; at < in.size(); at += piece) {
    std::size_t n = std::min(piece, in.size() - at);
    auto messages = reader.feed(reinterpret_cast<const char*>(in.data() + at), n);
    if (!messages) {
      // Corrupt stays corrupt.
      if (reader.feed("", 0)) std::abort();
      return;
    }
    for (const Message& m : *messages) check_round_trip(m);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  one_frame(in);
  stream(in);
  std::vector<std::uint8_t> repaired(data, data + size);
  mosix::fuzz::fix_frame_checksums(repaired);
  if (repaired != std::vector<std::uint8_t>(data, data + size)) {
    one_frame(repaired);
    stream(repaired);
  }
  return 0;
}
