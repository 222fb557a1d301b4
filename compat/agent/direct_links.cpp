// compat/pvm's direct links between two tasks of one node (docs/pvm.md,
// "Direct links"): each a socketpair end the node daemon gave the library,
// one way only (the sender writes, the receiver reads). The library names
// them with mosix_direct_link(fd, incoming). Every image (for a move as to a
// file) carries such a link as a socketpair end whose other end is closed,
// so the restored task finds it ended and the two tasks talk through their
// node daemons again. A link the task reads is first shut for reading (its
// sender can write no more: its next write fails and it sends that message
// through the node daemon) and what is queued on it is taken into memory of
// the process (in the image as any memory), for the library to take
// (mosix_direct_link_take) before it sees the link's end. Nothing is lost:
// whatever the sender wrote whole is queued there; a message cut short is
// sent again whole by the other route, and the receiver drops the piece.
// Between nodes a link is a TCP socket (and, until it is taken, the socket
// listening for it): a move does not forward it (is_direct_link), and an
// incoming one is replaced, at its number, by the ended socketpair end once
// its queue is taken (TCP goes on taking data after SHUT_RD); its sender
// sends again what was not acknowledged.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cstddef>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"
#include "runtime/ckpt/request_protocol.h"

namespace mosix::agent {
namespace {

struct DirectLink {
  long fd = -1;
  std::uint64_t ino = 0;
  bool incoming = false;
  bool shut = false;  // shut for reading by an image; its queue is in held
  std::uint8_t* held = nullptr;
  std::size_t cap = 0, len = 0, off = 0;
};
// In the library's .data, so a checkpoint carries them.
constexpr int kMaxLinks = 256;
DirectLink g_links[kMaxLinks];

DirectLink* find(long fd) {
  for (DirectLink& l : g_links) {
    if (l.fd == fd && fd >= 0) return &l;
  }
  return nullptr;
}

void drop_held(DirectLink& l) {
  if (l.held != nullptr) sys(SYS_munmap, l.held, l.cap);
  l.held = nullptr;
  l.cap = l.len = l.off = 0;
}

}  // namespace

bool is_direct_link(long fd) {
  DirectLink* l = find(fd);
  struct stat st{};
  return l != nullptr && sys(SYS_fstat, fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == l->ino;
}

long direct_link_image_data(long fd, SocketScratch* s) {
  DirectLink* l = find(fd);
  if (l == nullptr) return -1;
  struct stat st{};
  if (sys(SYS_fstat, fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != l->ino) return -1;
  if (l->incoming && !l->shut) {
    sys(SYS_shutdown, fd, SHUT_RD);
    l->shut = true;
    hold_socket_queue(fd, &l->held, &l->cap, &l->len);
    // A TCP link (between nodes) goes on taking what its sender writes after
    // SHUT_RD: in its place, at the same number, an end of a socketpair
    // whose other end is closed. Its sender finds the link ended and sends
    // again what this task did not acknowledge (compat/pvm/direct.cpp).
    int domain = 0;
    socklen_t len = sizeof domain;
    int ends[2];
    if (sys(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain != AF_UNIX &&
        sys(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) == 0) {
      if (sys(SYS_dup3, ends[0], fd, O_CLOEXEC) == fd && sys(SYS_fstat, fd, &st) == 0) l->ino = st.st_ino;
      sys(SYS_close, ends[0]);
      sys(SYS_close, ends[1]);
    }
  }
  return closed_pair_image_data(s);
}

}  // namespace mosix::agent

// The library's word: `fd` is a direct link (incoming: it reads it), or,
// with incoming -1, is none any more (closed). 0, or -1 if the table is full
// (the library then does not use that link).
extern "C" __attribute__((visibility("default"))) int mosix_direct_link(int fd, int incoming) {
  using namespace mosix::agent;
  std::uint64_t old = 0;
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &kAgentSignals, &old, 8);
  int result = -1;
  if (DirectLink* l = find(fd)) {
    drop_held(*l);
    l->fd = -1;
  }
  struct stat st{};
  if (incoming < 0) {
    result = 0;
  } else if (fd >= 0 && sys(SYS_fstat, fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
    for (DirectLink& l : g_links) {
      if (l.fd >= 0) continue;
      l = DirectLink{};
      l.fd = fd;
      l.ino = st.st_ino;
      l.incoming = incoming != 0;
      result = 0;
      break;
    }
  }
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  return result;
}

// What an image took out of the incoming link `fd` (up to `cap` bytes; 0:
// nothing left), for the library to read before the link's end.
extern "C" __attribute__((visibility("default"))) std::size_t mosix_direct_link_take(int fd, void* buf, std::size_t cap) {
  using namespace mosix::agent;
  std::uint64_t old = 0;
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &kAgentSignals, &old, 8);
  std::size_t n = 0;
  if (DirectLink* l = find(fd)) {
    n = l->len - l->off < cap ? l->len - l->off : cap;
    if (n > 0) __builtin_memcpy(buf, l->held + l->off, n);
    l->off += n;
    if (l->held != nullptr && l->off == l->len) drop_held(*l);
  }
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  return n;
}
