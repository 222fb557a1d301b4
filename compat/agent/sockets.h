// Sockets a restore can make again (sockets.cpp): inet and unix sockets
// that have no connection of their own. The kernel shows a socket's kind,
// addresses and options to its owner; a restore makes a new socket with
// them before the point of no return, so an address taken meanwhile
// refuses the restore instead of losing the process.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/ckpt/format/image_format.h"

namespace mosix::agent {

// Room for one socket's description; lives in the checkpoint's scratch.
struct SocketScratch {
  mosix::ckpt::SocketRecord rec;
  std::uint8_t local[mosix::ckpt::kMaxSocketAddress];
  std::uint8_t peer[mosix::ckpt::kMaxSocketAddress];
  std::uint8_t values[mosix::ckpt::kMaxSocketOptions + 1][mosix::ckpt::kMaxSocketOptionValue];  // + a spare
  std::uint8_t encoded[2048];
  char net[512 << 10];  // /proc/net/tcp or tcp6, for a listener's backlog
};

// The image data of socket `fd` (image_format.h, kind socket), encoded into
// s->encoded; its length, or -1 with the reason in `error` (after "fd N "):
// a connected stream socket or socketpair, datagrams or connections waiting
// to be read or accepted, a socket filter, a family or type a restore does
// not make; and, for a move to another node (`for_move`), an address of
// this node: its clients would lose it.
long socket_image_data(long fd, bool for_move, SocketScratch* s, char* error, std::size_t error_cap);

}  // namespace mosix::agent
