// The pure parts of compat/pvm: task ids, and packing values into a message
// buffer and out of it in PVM's encodings. PvmDataDefault writes every value
// in network byte order (the XDR convention, so nodes of either byte order
// read each other), one byte per char; PvmDataRaw and PvmDataInPlace copy the
// sender's bytes as they are (both ends must share a byte order, as in PVM).
// A string is its length (4 bytes in the buffer's order) and its bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mosix::pvm {

// A task's id is PVM's: host part 1 (bits 18..29), local part the job's
// rank + 1, so rank 1 prints as t40002, as PVM's second task on its first host.
inline constexpr int kTidHost = 0x40000;
inline constexpr int kTidLocalMask = 0x3ffff;
inline constexpr int kTidHostMask = 0x3ffc0000;
inline int tid_of_rank(int rank) { return kTidHost | ((rank + 1) & kTidLocalMask); }
// The rank a tid names, or -1 for anything that is no task's id of ours.
inline int rank_of_tid(int tid) {
  if (tid <= 0 || (tid & kTidHostMask) != kTidHost || (tid & kTidLocalMask) == 0) return -1;
  return (tid & kTidLocalMask) - 1;
}
// The id of host (node) `index`, as pvm_config and pvm_tidtohost give it.
inline int host_tid(int index) { return (index + 1) << 18; }

// Bytes of one item of a pvm_psend/pvm_reduce data type (pvm3.h's PVM_STR = 0
// .. PVM_ULONG = 11; a complex is two floats, a double complex two doubles);
// 0 for any other code.
std::size_t datatype_size(int datatype);

enum class Encoding : int { kDefault = 0, kRaw = 1, kInPlace = 2 };

// `count` items of `size` bytes each, `stride` items apart in memory.
// Returns false (nothing written) for an item size the encoding cannot take.
void pack_items(std::vector<std::uint8_t>& buf, Encoding enc, const void* items, int count, int stride,
                std::size_t size);
// Reads them back from `pos` on; false (pos unchanged) if the buffer ends first.
bool unpack_items(const std::vector<std::uint8_t>& buf, std::size_t& pos, Encoding enc, void* items, int count,
                  int stride, std::size_t size);
void pack_string(std::vector<std::uint8_t>& buf, Encoding enc, const char* s);
// The string at `pos` into `out` (with its NUL); false if it is not complete.
bool unpack_string(const std::vector<std::uint8_t>& buf, std::size_t& pos, Encoding enc, char* out);

}  // namespace mosix::pvm
