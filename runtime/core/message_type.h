// The protocol's version, its frame limits and the type code of every
// message (see protocol.h, which holds the messages of every family and
// their wire format). Pure: std only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mosix {

// Bump on any change of a payload layout or of a message's meaning.
inline constexpr std::uint16_t kProtocolVersion = 28;

// Frame header: magic "MOSX", u16 version, u16 type, u32 payload length,
// u32 CRC32C of header bytes 0..11 followed by the payload.
inline constexpr std::size_t kFrameHeaderSize = 16;
// Larger payloads must be sent in pieces (ImageChunk); MPI counts are ints.
inline constexpr std::uint32_t kMaxPayloadSize = 256u << 20;

using Bytes = std::vector<std::uint8_t>;
using Frame = std::vector<std::uint8_t>;

enum class MessageType : std::uint16_t {
  kHello = 1,
  kHelloReject = 2,
  kLoadReport = 3,
  kSpawnGuest = 4,
  kGuestStarted = 5,
  kGuestOutput = 6,
  kGuestStdin = 7,
  kGuestSignal = 8,
  kGuestExited = 9,
  kShutdown = 10,
  kImageBegin = 11,
  kImageChunk = 12,
  kImageEnd = 13,
  kNodeLost = 14,
  kMigrateRequest = 15,
  kMigrateResult = 16,
  kOutputCredit = 17,
  kBalanceReport = 18,
  kMigrateProgress = 20,
  kOutputFds = 19,
  kMpiJobMap = 21,
  kFenceContribution = 22,
  kFenceRelease = 23,
  kModexRequest = 24,
  kModexReply = 25,
  kNamePublish = 26,
  kNameLookup = 27,
  kNameUnpublish = 28,
  kNameReply = 29,
  kGuestAttach = 30,
  kGuestSpawn = 31,
  kGuestSpawnReply = 32,
  kGuestMessage = 33,
  kMpiSpawn = 34,
  kMpiSpawnReply = 35,
  kMpiNamespace = 36,
  kStdinCredit = 40,
  kPtyResize = 41,
  kPrecopyPages = 42,
  kSocketForward = 43,
  kPrecopyTaken = 44,
  kHomeKill = 48,
};

}  // namespace mosix
