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

inline constexpr int kMaxOwnSockets = 1024;
inline constexpr std::size_t kMaxPairQueue = 1 << 20;
inline constexpr int kMaxPairMessages = 4096;

// Room for one socket's description; lives in the checkpoint's scratch.
struct SocketScratch {
  // The process's own sockets (inode, fd), filled before any is looked at:
  // a unix socket connected to one of them is a socketpair it holds whole.
  std::uint64_t own_ino[kMaxOwnSockets];
  long own_fd[kMaxOwnSockets];
  int nown;
  // One pair end's queue while its file data records are written: the
  // bytes, and for a datagram or seqpacket socket each message's length.
  std::uint8_t queue[kMaxPairQueue];
  std::size_t queued;
  std::uint32_t msg_len[kMaxPairMessages];
  int nmsgs;
  std::uint8_t diag[4096];  // a sock_diag request and answer
  unsigned shutdown;        // the last socket_image_data's shutdown bits (a pair end's)
  long partner;             // the last socket_image_data's pair end: its other end,
                            // kPeerClosed, kPeerElsewhere, or -1 when it is no pair end
  bool tree;                // a tree's member: a pair end whose other end another
                            // process holds is taken (the requester checks that
                            // process is in the tree)
  std::uint64_t peer_ino;   // pair_partner's kPeerElsewhere: the other end's inode
  std::uint64_t elsewhere[kMaxOwnSockets][2];  // check_fds: such ends, {inode, other end's}
  int nelsewhere;
  mosix::ckpt::SocketRecord rec;
  std::uint8_t local[mosix::ckpt::kMaxSocketAddress];
  std::uint8_t peer[mosix::ckpt::kMaxSocketAddress];
  std::uint8_t values[mosix::ckpt::kMaxSocketOptions + 1][mosix::ckpt::kMaxSocketOptionValue];  // + a spare
  std::uint8_t encoded[2048];
  char net[512 << 10];  // /proc/net/tcp or tcp6, for a listener's backlog
};

// The other end of the unix socket `fd` when the process holds it too (a
// socketpair; both unnamed), kPeerClosed when every process closed it, else
// kPeerElsewhere when another process holds it (its inode in s->peer_ino),
// -1 when the kernel does not say. `shutdown`: fd's own shutdown bits
// (RCV_SHUTDOWN 1, SEND_SHUTDOWN 2).
inline constexpr long kPeerClosed = -2;
inline constexpr long kPeerElsewhere = -3;

// The inode and device (as stat shows them) of the file the unix socket
// `fd` was bound to; false when the kernel does not say.
bool bound_file(long fd, std::uint64_t* ino, std::uint64_t* dev, SocketScratch* s);
long pair_partner(long fd, SocketScratch* s, unsigned* shutdown);

// Copies what is queued to be read on the pair end `fd` into s->queue (and
// s->msg_len per message) without taking it (a peek offset). False with
// the reason in `error`: more than 1 MiB or 4096 messages, an empty
// message, descriptors in flight (SCM_RIGHTS), a peek offset of the
// program's own (SO_PEEK_OFF).
bool peek_pair_queue(long fd, SocketScratch* s, char* error, std::size_t error_cap);

// The image data of socket `fd` (image_format.h, kind socket), encoded into
// s->encoded; its length, or -1 with the reason in `error` (after "fd N "):
// a connected stream socket (but a socketpair the process holds both ends
// of: pair_partner), datagrams or connections waiting
// to be read or accepted, a socket filter, a family or type a restore does
// not make; and, for a move to another node (`for_move`), an address of
// this node: its clients would lose it.
long socket_image_data(long fd, bool for_move, SocketScratch* s, char* error, std::size_t error_cap);

// The image data of the runtime's link (runtime_link.cpp) if `fd` is it,
// encoded into s->encoded: for a move a plain unix stream socket, else a
// socketpair end whose other end is closed (s->partner kPeerClosed: its
// queue is written after it); else -1.
long runtime_link_image_data(long fd, bool for_move, SocketScratch* s);

// Reads what is queued on the socket `fd` (shut for reading; every thread
// stopped) to the end of *held, an anonymous mapping it makes or grows
// (*cap bytes, *len used), so an image carries it as memory.
void hold_socket_queue(long fd, std::uint8_t** held, std::size_t* cap, std::size_t* len);
// Encodes into s->encoded a unix stream socketpair end whose other end is
// closed (s->partner kPeerClosed); its length, or -1.
long closed_pair_image_data(SocketScratch* s);

// The image data of a direct link between two PVM tasks (direct_links.cpp)
// if `fd` is one: a socketpair end whose other end is closed, its queue
// taken into memory first; else -1.
long direct_link_image_data(long fd, SocketScratch* s);
// Whether `fd` is such a link (between nodes a TCP socket, or the listener
// that offers one): a move never forwards it (forwarded.cpp), its image is
// the ended socket above.
bool is_direct_link(long fd);

}  // namespace mosix::agent
