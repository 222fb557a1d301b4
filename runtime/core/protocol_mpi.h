// Messages of MPI wire-up across nodes: the job map, fences, direct modex,
// published names and MPI_Comm_spawn (see daemon/pmix_server.h and
// daemon/pmi_server.h, and protocol.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/message_type.h"
#include "runtime/core/protocol_guests.h"

namespace mosix {

// MPI wire-up (the PMIx servers of the nodes, see daemon/pmix_server.h).
// Home -> every node with MPI copies, before their SpawnGuest: where each
// rank of the job runs (MPI ranks do not move, so this stays true).
struct MpiJobMap {
  static constexpr MessageType kType = MessageType::kMpiJobMap;
  std::vector<std::uint32_t> rank_nodes;  // per rank: the transport rank of its node
  std::vector<std::string> node_names;    // per transport rank: its name (host, or vnodeN)
  bool operator==(const MpiJobMap&) const = default;
};

// A node -> home, once every local copy taking part entered a PMIx fence:
// their data. The fence is the `fence_id`-th over this set of ranks (every
// node counts the same fences over the same set the same way).
// A fence_id with this bit is a PMI barrier of MPICH copies (the node
// daemon's), without it a PMIx fence (the PMIx helper's); the home node
// collects both alike. Likewise a name request_id with kPmiRequestBit.
inline constexpr std::uint64_t kPmiFenceBit = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kPmiRequestBit = std::uint64_t{1} << 63;
// A PMIx fence_id with this bit is a PMIx_Connect or _Disconnect: a fence
// without data, counted apart from the fences over the same ranks.
inline constexpr std::uint64_t kConnectFenceBit = std::uint64_t{1} << 62;

struct FenceContribution {
  static constexpr MessageType kType = MessageType::kFenceContribution;
  std::uint64_t fence_id = 0;
  std::vector<std::int32_t> ranks;   // the participants, sorted; empty: the whole job
  Bytes data;                        // the PMIx library's blob for its node
  bool operator==(const FenceContribution&) const = default;
};

// Home -> each node taking part, once all of them contributed: every
// node's data one after another (the library reads the blobs in a row), or
// a failure (a node with participants was lost).
struct FenceRelease {
  static constexpr MessageType kType = MessageType::kFenceRelease;
  std::uint64_t fence_id = 0;
  std::vector<std::int32_t> ranks;
  std::int32_t status = 0;           // a PMIx status: 0 success
  Bytes data;
  bool operator==(const FenceRelease&) const = default;
};

// Direct modex: a node asks the node of `rank` for what that rank put
// (PMIx_Get of a remote rank's data before or without a collecting fence).
struct ModexRequest {
  static constexpr MessageType kType = MessageType::kModexRequest;
  std::uint64_t request_id = 0;      // the asker's, sent back in the reply
  std::int32_t rank = 0;
  bool operator==(const ModexRequest&) const = default;
};

struct ModexReply {
  static constexpr MessageType kType = MessageType::kModexReply;
  std::uint64_t request_id = 0;
  std::int32_t status = 0;           // a PMIx status: 0 success
  Bytes data;
  bool operator==(const ModexReply&) const = default;
};

// MPI_Publish_name and friends (PMIx publish/lookup/unpublish): the home
// node keeps the job's names (core/published_names.h). Node -> home; the
// home answers the asking node with NameReply.
struct PublishedName {
  std::string key;
  std::string value;                 // a string (MPI's port names), or bytes
  std::int32_t rank = 0;             // who published it
  bool bytes = false;                // value is a byte object (Open MPI's exchanges between jobs)
  bool operator==(const PublishedName&) const = default;
};

struct NamePublish {
  static constexpr MessageType kType = MessageType::kNamePublish;
  std::uint64_t request_id = 0;
  std::vector<PublishedName> names;
  bool operator==(const NamePublish&) const = default;
};

struct NameLookup {
  static constexpr MessageType kType = MessageType::kNameLookup;
  std::uint64_t request_id = 0;
  std::vector<std::string> keys;
  bool wait = false;                 // until every key is published (PMIX_WAIT)
  bool operator==(const NameLookup&) const = default;
};

struct NameUnpublish {
  static constexpr MessageType kType = MessageType::kNameUnpublish;
  std::uint64_t request_id = 0;
  std::int32_t rank = 0;
  std::vector<std::string> keys;     // empty: everything `rank` published
  bool operator==(const NameUnpublish&) const = default;
};

struct NameReply {
  static constexpr MessageType kType = MessageType::kNameReply;
  std::uint64_t request_id = 0;
  std::int32_t status = 0;           // a PMIx status: 0 success
  std::vector<PublishedName> names;  // a lookup's finds
  bool operator==(const NameReply&) const = default;
};

// MPI_Comm_spawn (PMIx spawn) of an Open MPI program: the asker's PMIx
// helper -> its node -> home. The home places each app's `count` new ranks
// as the spawn service places guests (GuestSpawn), makes them a PMIx
// namespace of their own (MpiNamespace to every node with MPI copies of
// the job, and to every node the new ranks go to), starts them as MPI
// copies and answers (MpiSpawnReply). An app's env holds only what the
// program adds to the job's environment (OMPI_PARENT_PORT, OMPI_MCA_*).
struct MpiSpawnApp {
  std::uint32_t count = 1;
  std::vector<std::string> argv;     // argv[0]: the program
  std::vector<std::string> env;      // "NAME=value" added to the job's
  std::string cwd;                   // "": the job's
  std::string where;                 // a node name, or "" for the placement's choice
  bool operator==(const MpiSpawnApp&) const = default;
};

// From an MPICH copy's PMI server (request_id with kPmiRequestBit): the
// children are MPICH copies (kSpawnPmi) and `kvs` ("key=value", PMI's
// preput: PARENT_ROOT_PORT_NAME) starts their key-value space.
struct MpiSpawn {
  static constexpr MessageType kType = MessageType::kMpiSpawn;
  std::uint64_t request_id = 0;      // the helper's, sent back in the reply
  std::int32_t parent_rank = 0;      // the asker (a rank of the job)
  std::vector<MpiSpawnApp> apps;
  std::vector<std::string> kvs;
  bool operator==(const MpiSpawn&) const = default;
};

// Home -> the asker's node -> its helper: the new namespace, or why not.
struct MpiSpawnReply {
  static constexpr MessageType kType = MessageType::kMpiSpawnReply;
  std::uint64_t request_id = 0;
  std::int32_t status = 0;           // a PMIx status: 0 success
  std::string reason;
  std::string nspace;
  bool operator==(const MpiSpawnReply&) const = default;
};

// Home -> every node with MPI copies of the job (before any copy of the new
// namespace starts): spawned ranks first_rank .. first_rank+N-1 of the job
// are ranks 0..N-1 of PMIx namespace `nspace`, rank_nodes[i] runs rank i.
struct MpiNamespace {
  static constexpr MessageType kType = MessageType::kMpiNamespace;
  std::string nspace;
  std::int32_t first_rank = 0;
  std::vector<std::uint32_t> rank_nodes;
  std::vector<std::uint32_t> app_sizes;  // ranks of each app, in order (PMIX_APPNUM)
  std::int32_t parent_rank = 0;          // the job rank that asked (PMIX_PARENT_ID)
  std::uint32_t flags = kSpawnPmix;      // kSpawnPmix: a PMIx namespace; kSpawnPmi: an MPICH (PMI) one
  std::vector<std::string> kvs;          // PMI: its key-value space's first pairs ("key=value")
  bool operator==(const MpiNamespace&) const = default;
};

}  // namespace mosix
