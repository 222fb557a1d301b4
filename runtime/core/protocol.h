// The messages node daemons exchange, and their wire format. Every message
// type has one symmetric field list (see protocol.cpp) that sizes, packs and
// unpacks it in explicit little-endian; a frame wraps the payload in a 16-byte
// header with a magic, the protocol version, the type, the payload length and
// a CRC32C. decode_frame() refuses anything truncated, corrupted, of an unknown
// type or of another protocol version, and says which. Pure: std only.
//
// Stable forever, so that daemons of different releases can refuse each other
// by name: the 16-byte header layout, the type code of Hello (1), and the first
// three fields of Hello (protocol_version, mosix_version, node_name).
//
// The messages themselves are declared by family in protocol_cluster.h,
// protocol_guests.h, protocol_migration.h, protocol_mpi.h and
// protocol_guest_service.h; message_type.h holds the version and type codes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>

#include "runtime/core/expected.h"
#include "runtime/core/message_type.h"
#include "runtime/core/protocol_cluster.h"
#include "runtime/core/protocol_guest_service.h"
#include "runtime/core/protocol_guests.h"
#include "runtime/core/protocol_migration.h"
#include "runtime/core/protocol_mpi.h"
#include "runtime/core/protocol_sockets.h"

namespace mosix {

using Message = std::variant<Hello, HelloReject, LoadReport, SpawnGuest, GuestStarted,
                             GuestOutput, GuestStdin, GuestSignal, GuestExited, Shutdown,
                             ImageBegin, ImageChunk, ImageEnd, NodeLost, MigrateRequest,
                             MigrateResult, OutputCredit, BalanceReport, MigrateProgress, OutputFds,
                             MpiJobMap, FenceContribution, FenceRelease, ModexRequest, ModexReply,
                             NamePublish, NameLookup, NameUnpublish, NameReply, GuestAttach, GuestSpawn,
                             GuestSpawnReply, GuestMessage, MpiSpawn, MpiSpawnReply, MpiNamespace, StdinCredit, PtyResize,
                             PrecopyPages, SocketForward, PrecopyTaken, HomeKill>;

MessageType message_type(const Message& message);
// "Hello", "GuestOutput", ...; "unknown" for a code no message has.
std::string_view message_type_name(MessageType type);

// The message as one frame (header + payload), ready for any transport.
Frame encode_frame(const Message& message);
// The same for one alternative, without building a Message (no copy of its bytes).
template <typename M>
  requires(!std::is_same_v<M, Message> && std::is_constructible_v<Message, const M&>)
Frame encode_frame(const M& message);

// The message in a frame: the header is checked first (magic, version,
// length, checksum), then the payload, which must be consumed exactly.
Expected<Message> decode_frame(std::span<const std::uint8_t> frame);

struct FrameHeader {
  std::uint16_t version = kProtocolVersion;
  MessageType type = MessageType::kHello;
  std::uint32_t payload_size = 0;
  std::uint32_t checksum = 0;
};

// The header at the start of `bytes` (which may hold more, e.g. a stream):
// checks size, magic, protocol version and the length limit, not the checksum.
Expected<FrameHeader> parse_frame_header(std::span<const std::uint8_t> bytes);

// The protocol version a frame claims, if it starts with the magic. Lets a
// receiver tell a version mismatch from corruption.
std::optional<std::uint16_t> frame_protocol_version(std::span<const std::uint8_t> frame);

// Wrap an already encoded payload. `version` other than kProtocolVersion is
// for tests that play a daemon of another release.
Frame make_frame(MessageType type, std::span<const std::uint8_t> payload,
                 std::uint16_t version = kProtocolVersion);

// Encoded payload of a message, without header.
Bytes encode_payload(const Message& message);

// Does the daemon that sent `peer` speak our protocol? The error names the
// node, its release and both protocol versions.
Status check_hello(const Hello& peer, std::string_view our_mosix_version);

// CRC32C (Castagnoli), continuing from `crc` (0 to start).
std::uint32_t crc32c(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0);

// GuestOutput frames without copies of their bytes, for the output path: a
// node encodes straight from its read buffer, the home node forwards the frame
// as it came (routing on the rank alone), mosixrun writes the bytes out from
// where they arrived. Same bytes on the wire as encode_frame(GuestOutput).
Frame encode_guest_output(std::int32_t rank, OutputStream stream,
                          std::span<const std::uint8_t> bytes);
// A GuestOutput frame is this much longer than the output it carries.
inline constexpr std::size_t kGuestOutputOverhead = kFrameHeaderSize + 9;

struct GuestOutputView {
  std::int32_t rank = 0;
  OutputStream stream = OutputStream::kStdout;
  std::span<const std::uint8_t> bytes;  // inside the frame
};

// The rank of a GuestOutput frame of our protocol version, from its header
// and first field alone (nothing else is checked); nothing for any other frame.
std::optional<std::int32_t> guest_output_rank(std::span<const std::uint8_t> frame);

// decode_frame() of a GuestOutput frame, every check included, with the bytes
// left where they are. `verify_checksum` false skips the CRC only: for frames
// that crossed no wire (every daemon of the job on this machine).
Expected<GuestOutputView> view_guest_output(std::span<const std::uint8_t> frame,
                                            bool verify_checksum = true);

}  // namespace mosix
