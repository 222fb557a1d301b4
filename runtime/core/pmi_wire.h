// PMI-1's wire protocol, as MPICH's simple PMI client speaks it over the
// descriptor PMI_FD (Hydra's and Slurm's pmi servers answer the same): one
// command a line, "cmd=NAME key=value key=value\n", each value up to the next
// space. Also what the node daemons exchange for it: the key-value pairs a
// node's copies put between two barriers, in one blob, and MPICH's
// PMI_process_mapping (which ranks share a node). Pure: std only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/core/expected.h"

namespace mosix::pmi {

// The limits the server announces (cmd=maxes): Hydra's.
inline constexpr std::size_t kKvsNameMax = 256, kKeyMax = 64, kValueMax = 1024;
// A command line longer than this is refused (the client's own limit is
// below: a key and a value at their maxima plus the names).
inline constexpr std::size_t kLineMax = 4096;

using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct Command {
  std::string cmd;                            // "put", "barrier_in", ...
  std::map<std::string, std::string> fields;  // its key=value pairs but cmd
  KeyValues items;                            // the same in their order, repeats kept (PMI-2's spawn)
  std::string get(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? std::string() : it->second;
  }
};

// One line without its '\n'. Nothing when it is not "cmd=NAME ..." (a
// multi-line "mcmd=" command, an empty line, a word without '=').
std::optional<Command> parse_line(std::string_view line);

// A reply line: "cmd=NAME k1=v1 k2=v2\n", in the order given.
std::string reply(std::string_view cmd, std::initializer_list<std::pair<std::string_view, std::string_view>> fields);
std::string reply_line(std::string_view cmd, const KeyValues& fields);

// PMI-2's wire (a client that said "cmd=init pmi_version=2" switches to it):
// each command is its length in 6 characters (decimal, aligned right or
// left), then
// "cmd=NAME;k1=v1;k2=v2;" with no newline; a ';' inside a value is written
// twice (MPICH's escape). frame_length: the length a frame
// at the start of `bytes` announces (nothing while fewer than 6 bytes are
// there, or when they are not a number).
std::optional<std::size_t> frame_length(std::string_view bytes);
// One frame's body (after its 6 characters).
std::optional<Command> parse_v2(std::string_view body);
// A whole frame: length and "cmd=NAME;k=v;...;".
std::string reply_v2(std::string_view cmd, const std::vector<std::pair<std::string, std::string>>& fields);

// Whether a key or value can go on the wire as it is (no space, newline or
// '=' in a key; no space or newline in a value; within the maxima).
bool valid_key(std::string_view key);
bool valid_value(std::string_view value);

// MPICH's PMI_process_mapping for ranks placed on nodes (`rank_nodes[r]`:
// rank r's node, any numbering): "(vector,(first,count,per_node),...)", node
// ids 0.. in ascending order of the given numbers; each block gives `count`
// nodes from `first` `per_node` consecutive ranks each.
std::string process_mapping(const std::vector<std::uint32_t>& rank_nodes);

// A node's puts in a blob: per pair u32 key length, key, u32 value length,
// value (little-endian). Blobs laid one after another read as one.
std::vector<std::uint8_t> pack(const KeyValues& pairs);
Expected<KeyValues> unpack(std::span<const std::uint8_t> blob);

}  // namespace mosix::pmi
