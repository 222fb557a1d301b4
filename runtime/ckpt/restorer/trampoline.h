// The records the hand-over trampoline (trampoline.S) reads, and its entry
// points. Offsets are fixed: trampoline.S spells them out.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mosix::ckpt {

struct TrampThread {
  std::uint64_t ucontext;     // where rt_sigreturn finds the frame's ucontext
  std::uint64_t fs_base;
  std::uint64_t tid_address;  // clear_child_tid; the new tid is stored there
  std::uint64_t robust_list;
  std::uint64_t robust_len;
  std::uint64_t rseq;
  std::uint32_t rseq_len;
  std::uint32_t rseq_sig;
  std::uint64_t pad;
};
static_assert(sizeof(TrampThread) == 64 && offsetof(TrampThread, rseq_sig) == 52);

struct TrampShared {
  std::uint32_t ready;  // threads that have registered their state
  std::uint32_t go;     // set by the leader once all are ready
  std::uint32_t need;   // threads besides the leader
  std::uint32_t pad;
  std::uint64_t unmap_addr;  // the restorer's own range
  std::uint64_t unmap_len;
};
static_assert(offsetof(TrampShared, unmap_len) == 24);

}  // namespace mosix::ckpt

extern "C" {
extern const char mosix_tramp_begin[];
extern const char mosix_tramp_clone[];
extern const char mosix_tramp_main[];
extern const char mosix_tramp_end[];
}
