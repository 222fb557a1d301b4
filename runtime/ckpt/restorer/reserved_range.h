// The address range the restorer reserves for itself, which the agent never
// dumps. Header-only: the agent includes it from a signal handler.
#pragma once

#include <cstdint>

namespace mosix::ckpt {

// The restorer links itself at kRestorerBase and places its hand-over
// trampoline (the few instructions that run after the restorer is unmapped)
// at kTrampolineBase. The agent never dumps anything in [kReservedLow,
// kReservedHigh) and unmaps a leftover trampoline there before dumping.
// The range is [1.5 GiB, 4 GiB): a static non-PIE binary must be linked in
// the low 2 GiB (libc.a's weak undefined symbols and 32-bit relocations),
// the kernel puts its brk heap up to 1 GiB past its end, and programs map
// nothing there (non-PIE executables start at 4 MiB, PIE ones near 85 TiB,
// libraries and stacks near 128 TiB) unless a brk heap grows past 1.5 GiB,
// which the restorer then refuses with that reason.
inline constexpr std::uint64_t kReservedLow = 0x60000000ULL;
inline constexpr std::uint64_t kTrampolineBase = 0x60000000ULL;
inline constexpr std::uint64_t kRestorerBase = 0x68000000ULL;
inline constexpr std::uint64_t kReservedHigh = 0x100000000ULL;
// A tree's restore (restorer/tree.cpp): the page its restorers share, kept
// until the hand-over (clear of the vDSO parking at kTrampolineBase + 64 MiB,
// memory.cpp), and the staging of its shared anonymous objects, in the part
// the trampoline unmaps.
inline constexpr std::uint64_t kTreeSyncBase = 0x66000000ULL;
inline constexpr std::uint64_t kTreeStagingBase = 0xC0000000ULL;

}  // namespace mosix::ckpt
