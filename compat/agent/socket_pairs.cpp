// Unix socketpairs the process holds both ends of, or one end of when the
// other was closed (sockets.h): the other end is found through sock_diag
// (the kernel shows a unix socket's peer inode and shutdown state to its
// owner there and nowhere else), and each end's queue is copied with a
// peek offset, which leaves it as it was. It runs while every other thread
// is stopped, so nothing else reads or writes the pair meanwhile.
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"

namespace mosix::agent {
namespace {

constexpr std::uint32_t kNoCookie = ~0U;  // INET_DIAG_NOCOOKIE

struct DiagRequest {
  nlmsghdr head;
  unix_diag_req req;
};

enum class Diag { error, gone, found };

// What sock_diag says of unix socket `ino`: its peer's inode (0: none), its
// shutdown bits and, with `vfs`, the file it was bound to. Gone when no
// such socket is open any more (closed by every process), error when the
// kernel does not say (no unix_diag).
Diag unix_diag(std::uint64_t ino, std::uint64_t* peer, unsigned* shutdown, SocketScratch* s,
               unix_diag_vfs* vfs = nullptr) {
  *peer = 0;
  *shutdown = 0;
  long nl = sys(SYS_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return Diag::error;
  DiagRequest q{};
  q.head.nlmsg_len = sizeof q;
  q.head.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  q.head.nlmsg_flags = NLM_F_REQUEST;
  q.head.nlmsg_seq = 1;
  q.req.sdiag_family = AF_UNIX;
  q.req.udiag_states = ~0U;
  q.req.udiag_ino = static_cast<std::uint32_t>(ino);
  q.req.udiag_show = UDIAG_SHOW_PEER | (vfs != nullptr ? UDIAG_SHOW_VFS : 0);
  q.req.udiag_cookie[0] = q.req.udiag_cookie[1] = kNoCookie;
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  long n = sys(SYS_sendto, nl, &q, sizeof q, 0, &to, sizeof to);
  if (n == static_cast<long>(sizeof q)) n = sys(SYS_recvfrom, nl, s->diag, sizeof s->diag, 0, nullptr, nullptr);
  sys(SYS_close, nl);
  const auto* head = reinterpret_cast<const nlmsghdr*>(s->diag);
  if (n >= static_cast<long>(sizeof(nlmsghdr) + sizeof(int)) && head->nlmsg_type == NLMSG_ERROR) {
    int err;
    __builtin_memcpy(&err, s->diag + sizeof(nlmsghdr), sizeof err);
    return err == -ENOENT ? Diag::gone : Diag::error;
  }
  if (n < static_cast<long>(sizeof(nlmsghdr) + sizeof(unix_diag_msg))) return Diag::error;
  if (head->nlmsg_type != SOCK_DIAG_BY_FAMILY || head->nlmsg_len > static_cast<std::uint32_t>(n)) return Diag::error;
  const auto* msg = reinterpret_cast<const unix_diag_msg*>(s->diag + sizeof(nlmsghdr));
  if (msg->udiag_ino != static_cast<std::uint32_t>(ino)) return Diag::error;
  // The attributes after the message, each 4-byte aligned (rtattr layout).
  for (std::uint32_t at = sizeof(nlmsghdr) + sizeof(unix_diag_msg); at + 4 <= head->nlmsg_len;) {
    std::uint16_t len, type;
    __builtin_memcpy(&len, s->diag + at, 2);
    __builtin_memcpy(&type, s->diag + at + 2, 2);
    if (len < 4 || at + len > head->nlmsg_len) break;
    if (type == UNIX_DIAG_PEER && len >= 8) {
      std::uint32_t p;
      __builtin_memcpy(&p, s->diag + at + 4, 4);
      *peer = p;
    } else if (type == UNIX_DIAG_VFS && vfs != nullptr && len >= 4 + sizeof *vfs) {
      __builtin_memcpy(vfs, s->diag + at + 4, sizeof *vfs);
    } else if (type == UNIX_DIAG_SHUTDOWN && len >= 5) {
      *shutdown = s->diag[at + 4];
    }
    at += (static_cast<std::uint32_t>(len) + 3) & ~3U;
  }
  return Diag::found;
}

}  // namespace

bool bound_file(long fd, std::uint64_t* ino, std::uint64_t* dev, SocketScratch* s) {
  struct stat st{};
  if (sys(SYS_fstat, fd, &st) != 0) return false;
  std::uint64_t peer = 0;
  unsigned shutdown = 0;
  unix_diag_vfs vfs{};
  if (unix_diag(st.st_ino, &peer, &shutdown, s, &vfs) != Diag::found || vfs.udiag_vfs_ino == 0) return false;
  *ino = vfs.udiag_vfs_ino;
  *dev = user_dev(vfs.udiag_vfs_dev);
  return true;
}

long pair_partner(long fd, SocketScratch* s, unsigned* shutdown) {
  struct stat st{};
  if (sys(SYS_fstat, fd, &st) != 0) return -1;
  std::uint64_t peer = 0, peers_peer = 0;
  unsigned peers_shutdown = 0;
  if (unix_diag(st.st_ino, &peer, shutdown, s) != Diag::found) return -1;
  // A connected end whose peer has no inode: the peer was released (closed
  // by every process); the kernel keeps it only for this end's sake.
  if (peer == 0) return kPeerClosed;
  for (int i = 0; i < s->nown; ++i)
    if (s->own_ino[i] == peer && s->own_fd[i] != fd) return s->own_fd[i];
  // Not the process's: closed by everyone (its bytes already sent stay
  // queued here), or another process's.
  s->peer_ino = peer;
  Diag d = unix_diag(peer, &peers_peer, &peers_shutdown, s);
  return d == Diag::gone ? kPeerClosed : d == Diag::found ? kPeerElsewhere : -1;
}

bool peek_pair_queue(long fd, SocketScratch* s, char* error, std::size_t error_cap) {
  Line e(error, error_cap);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is a socketpair end ");
  s->queued = 0;
  s->nmsgs = 0;
  int type = 0, peek_off = -1;
  socklen_t len = sizeof type;
  sys(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len);
  len = sizeof peek_off;
  sys(SYS_getsockopt, fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off, &len);
  if (peek_off >= 0) {
    e.s("with a peek offset set (SO_PEEK_OFF), which a restore does not set again");
    return false;
  }
  // A peek offset walks the queue without taking anything: one message per
  // recvmsg (a stream's bytes in runs). Descriptors in flight (SCM_RIGHTS)
  // refuse; the copies a peek installs are closed.
  alignas(cmsghdr) std::uint8_t control[2048];  // SCM_MAX_FD descriptors and credentials
  int zero = 0, off = -1;
  sys(SYS_setsockopt, fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero);
  bool in_flight = false, empty = false, full = false;
  for (;;) {
    if (s->nmsgs == kMaxPairMessages || s->queued == kMaxPairQueue) {
      full = true;
      break;
    }
    iovec iov{s->queue + s->queued, kMaxPairQueue - s->queued};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    long n = sys(SYS_recvmsg, fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n == -4 /* EINTR */) continue;
    // 0 from a stream, or from a seqpacket end that cannot read any more
    // (RCV_SHUTDOWN), is the end of the data, not an empty message.
    if (n < 0 || (n == 0 && (type == SOCK_STREAM || (type == SOCK_SEQPACKET && (s->shutdown & 1) != 0)))) break;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      in_flight = true;
      auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t k = 0; k < count; ++k) {
        int copy;
        __builtin_memcpy(&copy, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
        sys(SYS_close, copy);
      }
    }
    if ((m.msg_flags & MSG_TRUNC) != 0) full = true;
    if (n == 0 || in_flight || full) {
      empty = n == 0;  // an empty datagram does not move the offset on
      break;
    }
    s->msg_len[s->nmsgs++] = static_cast<std::uint32_t>(n);
    s->queued += static_cast<std::size_t>(n);
  }
  sys(SYS_setsockopt, fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
  if (in_flight) {
    e.s("with descriptors in flight (SCM_RIGHTS), which a restore cannot send again");
    return false;
  }
  if (empty) {
    e.s("with an empty message queued, which an image does not carry");
    return false;
  }
  if (full) {
    e.s("with more than 1 MiB or 4096 messages queued, more than a checkpoint carries");
    return false;
  }
  return true;
}

}  // namespace mosix::agent
