// The node daemon and its PMIx helper (mosix-pmix) talk over two stream
// socket pairs in packets: a u32 length (of what follows), a u8 kind, an i32
// node or rank, then the payload. One pair carries requests the daemon waits
// for (a copy's registration, whether a copy is inside MPI); the other what
// goes either way unasked (the job's map, fences and modex requests to and
// from other nodes, as protocol frames).
//
// Why a helper at all: a node daemon started by mpirun is itself an MPI
// program, a PMIx client of Open MPI's orted; libpmix holds one role per
// process, and PMIx_server_init in a client fails inside the library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/expected.h"

namespace mosix::pmix_wire {

enum class Kind : std::uint8_t {
  kMap = 1,        // daemon -> helper, first: the job's MpiJobMap frame
  kFrame = 2,      // a protocol frame; `node`: the node it comes from or goes to
  kAddClient = 3,  // daemon -> helper: register copy `node` (its rank)
  kEnv = 4,        // helper -> daemon: its environment, "NAME=value" each ended by '\0'
  kError = 5,      // helper -> daemon: the request failed; the payload says why
  kInMpi = 6,      // daemon -> helper: is copy `node` inside MPI? Reply: payload "1" or "0"
  // daemon -> helper: register the spawned namespace in the payload (an
  // MpiNamespace frame), before any of its copies here. Reply: kNamespace.
  kNamespace = 7,
};

struct Packet {
  Kind kind = Kind::kFrame;
  std::int32_t node = 0;
  std::string payload;
};

// Largest packet: the biggest protocol frame and its header.
inline constexpr std::uint32_t kMaxPacket = (256u << 20) + 64;

// Writes one packet whole; the error names the errno.
Status write_packet(int fd, const Packet& packet);
// Reads one packet, blocking; nothing at a clean end of the stream.
Expected<std::optional<Packet>> read_packet(int fd);

// A copy's environment in a payload: each "NAME=value" ended by '\0'.
std::string pack_env(const std::vector<std::string>& env);
std::vector<std::string> unpack_env(const std::string& payload);

// The packet's header, for a reader that has its bytes: length, kind, node.
inline constexpr std::size_t kHeaderSize = 9;
Packet parse_header(const std::uint8_t* header, std::uint32_t& length);

}  // namespace mosix::pmix_wire
