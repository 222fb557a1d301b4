// Inside runtime/core only: the byte layout of a frame's 16-byte header, and
// the checks every decoder of a whole frame makes. protocol.cpp (every
// message), frame.cpp (the header) and guest_output_frame.cpp (the output
// path's copy-free GuestOutput) share it. Users of the protocol include
// protocol.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"

namespace mosix::frame_layout {

inline constexpr std::array<std::uint8_t, 4> kMagic = {'M', 'O', 'S', 'X'};
inline constexpr std::size_t kVersionOffset = 4;      // u16
inline constexpr std::size_t kTypeOffset = 6;         // u16
inline constexpr std::size_t kPayloadSizeOffset = 8;  // u32
inline constexpr std::size_t kChecksumOffset = 12;    // u32, covers bytes 0..11 and the payload

// Fills the header's first 12 bytes; seal() adds the checksum.
void write_header(std::uint8_t* out, std::uint16_t version, MessageType type,
                  std::uint32_t payload_size);
std::uint32_t frame_checksum(std::span<const std::uint8_t> frame);
void seal(Frame& frame);

// The rest of a whole frame's checks once parse_frame_header() accepted its
// header: the payload it carries is the size announced and, if
// `verify_checksum`, the checksum matches.
Status check_frame_body(std::span<const std::uint8_t> frame, const FrameHeader& header,
                        bool verify_checksum = true);

}  // namespace mosix::frame_layout
