// Between a live migration's target node daemon and the restorer it starts
// early (`mosix-restore --early FD --pages FILE`, docs/migration.md): while
// the pre-copy rounds still run at the source, the restorer takes each
// round's pages out of the page store into place, so that the restore after
// the guest stops has only the last round's pages to copy.
//
// FD is one end of a SOCK_SEQPACKET socketpair; each packet is one
// EarlyCommand, in the order the daemon wrote the page store:
//   kStage: [address, address + length) of the store holds new pages;
//   kZero:  that range became zero (a hole in the store);
//   kHugepage: the guest asked huge pages for that range (MADV_HUGEPAGE),
//           sent before any kStage in it: the restorer maps it whole, with
//           the advice, when it first stages pages there;
//   kGo:    the pre-copy is over; the packet carries, as SCM_RIGHTS, the
//           image's descriptor and, when length is 1, the forwarded-sockets
//           socket's (restorer.cpp's --sockets).
// The end of the socket without kGo means the move was given up: the
// restorer exits 0 without a word. After each kStage and kZero (not
// kHugepage) the restorer
// answers kTaken, length being the bytes of every kStage so far: they are in
// place (or, where the restorer had its own memory, left in the store).
#pragma once

#include <cstdint>

namespace mosix::ckpt {

enum class EarlyOp : std::uint32_t { kStage = 1, kZero = 2, kGo = 3, kTaken = 4, kHugepage = 5 };

struct EarlyCommand {
  EarlyOp op;
  std::uint32_t reserved;
  std::uint64_t address;
  std::uint64_t length;
};
static_assert(sizeof(EarlyCommand) == 24);

}  // namespace mosix::ckpt
