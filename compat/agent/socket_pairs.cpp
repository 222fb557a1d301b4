// Unix socketpairs the process holds both ends of (sockets.h): the other
// end is found through sock_diag (the kernel shows a unix socket's peer
// inode to its owner there and nowhere else), and each end's queue is read
// out and sent again from the other end, as the pipes between the process's
// threads are. It runs while every other thread is stopped, so nothing else
// reads or writes the pair meanwhile.
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/ioctl.h>
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

// The peer inode and shutdown bits of unix socket `ino`; false when the
// kernel does not say (no unix_diag) or it has no peer.
bool unix_peer(std::uint64_t ino, std::uint64_t* peer, unsigned* shutdown, SocketScratch* s) {
  long nl = sys(SYS_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return false;
  DiagRequest q{};
  q.head.nlmsg_len = sizeof q;
  q.head.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  q.head.nlmsg_flags = NLM_F_REQUEST;
  q.head.nlmsg_seq = 1;
  q.req.sdiag_family = AF_UNIX;
  q.req.udiag_states = ~0U;
  q.req.udiag_ino = static_cast<std::uint32_t>(ino);
  q.req.udiag_show = UDIAG_SHOW_PEER;
  q.req.udiag_cookie[0] = q.req.udiag_cookie[1] = kNoCookie;
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  long n = sys(SYS_sendto, nl, &q, sizeof q, 0, &to, sizeof to);
  if (n == static_cast<long>(sizeof q)) n = sys(SYS_recvfrom, nl, s->diag, sizeof s->diag, 0, nullptr, nullptr);
  sys(SYS_close, nl);
  if (n < static_cast<long>(sizeof(nlmsghdr) + sizeof(unix_diag_msg))) return false;
  const auto* head = reinterpret_cast<const nlmsghdr*>(s->diag);
  if (head->nlmsg_type != SOCK_DIAG_BY_FAMILY || head->nlmsg_len > static_cast<std::uint32_t>(n)) return false;
  const auto* msg = reinterpret_cast<const unix_diag_msg*>(s->diag + sizeof(nlmsghdr));
  if (msg->udiag_ino != static_cast<std::uint32_t>(ino)) return false;
  bool found = false;
  *shutdown = 0;
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
      found = p != 0;
    } else if (type == UNIX_DIAG_SHUTDOWN && len >= 5) {
      *shutdown = s->diag[at + 4];
    }
    at += (static_cast<std::uint32_t>(len) + 3) & ~3U;
  }
  return found;
}

bool send_all(long fd, const std::uint8_t* data, std::size_t len) {
  std::size_t done = 0;
  do {
    long n = sys(SYS_sendto, fd, data + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL, nullptr, 0);
    if (n == -4 /* EINTR */) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  } while (done < len);
  return true;
}

}  // namespace

long pair_partner(long fd, SocketScratch* s) {
  struct stat st{};
  if (sys(SYS_fstat, fd, &st) != 0) return -1;
  std::uint64_t peer = 0;
  unsigned shutdown = 0;
  if (!unix_peer(st.st_ino, &peer, &shutdown, s) || shutdown != 0) return -1;
  for (int i = 0; i < s->nown; ++i)
    if (s->own_ino[i] == peer && s->own_fd[i] != fd) return s->own_fd[i];
  return -1;
}

bool take_pair_queue(long fd, long partner, SocketScratch* s, char* error, std::size_t error_cap) {
  Line e(error, error_cap);
  e.s("fd ").u(static_cast<std::uint64_t>(fd)).s(" is a socketpair end ");
  s->queued = 0;
  s->nmsgs = 0;
  int type = 0;
  socklen_t len = sizeof type;
  sys(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len);
  // What may be queued, known before anything is read, so that a queue too
  // long to carry is refused with nothing taken out: a stream's or
  // seqpacket's bytes (SIOCINQ counts them all); a datagram socket's, at
  // most what its partner may have in flight (its send buffer).
  int queued = 0, sndbuf = 0, peek_off = -1;
  sys(SYS_ioctl, fd, 0x541B /* SIOCINQ */, &queued);
  len = sizeof sndbuf;
  sys(SYS_getsockopt, partner, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
  len = sizeof peek_off;
  sys(SYS_getsockopt, fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off, &len);
  if (peek_off >= 0) {
    e.s("with a peek offset set (SO_PEEK_OFF), which a restore does not set again");
    return false;
  }
  if (queued == 0 && type != SOCK_DGRAM) return true;
  std::size_t bound = type == SOCK_DGRAM ? static_cast<std::size_t>(sndbuf) : static_cast<std::size_t>(queued);
  if (bound > kMaxPairQueue / 2) {
    e.s("with ").u(bound).s(" bytes queued or sendable to it, more than a checkpoint carries (512 KiB)");
    return false;
  }
  // First a look without taking anything (a peek offset walks the queue):
  // descriptors in flight (SCM_RIGHTS) refuse with the queue untouched,
  // since a stream's boundaries around them could not be sent again as
  // they were. The copies a peek installs are closed.
  alignas(cmsghdr) std::uint8_t control[2048];  // SCM_MAX_FD descriptors and credentials
  int zero = 0, off = -1;
  sys(SYS_setsockopt, fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero);
  bool in_flight = false, empty = false;
  for (int i = 0; i <= kMaxPairMessages; ++i) {
    iovec iov{s->queue, kMaxPairQueue};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    long n = sys(SYS_recvmsg, fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n == -4 /* EINTR */) continue;
    if (n < 0 || (n == 0 && type == SOCK_STREAM)) break;
    empty = empty || n == 0;
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
    if (n == 0) break;  // an empty datagram does not move the offset on
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
  // Read out, one message per recvmsg (a stream's bytes in runs), then sent
  // again from the partner in order, each message as it was.
  for (;;) {
    if (s->nmsgs == kMaxPairMessages) break;  // cannot happen within the bound above
    long n = sys(SYS_recvfrom, fd, s->queue + s->queued, kMaxPairQueue - s->queued, MSG_DONTWAIT, nullptr, nullptr);
    if (n == -4 /* EINTR */) continue;
    if (n <= 0) break;
    s->msg_len[s->nmsgs++] = static_cast<std::uint32_t>(n);
    s->queued += static_cast<std::size_t>(n);
  }
  std::size_t at = 0;
  bool back = true;
  for (int i = 0; i < s->nmsgs && back; ++i) {
    back = send_all(partner, s->queue + at, s->msg_len[i]);
    at += s->msg_len[i];
  }
  if (!back) {
    e.s("whose queued data could not all be put back (").u(s->queued).s(" bytes read)");
    return false;
  }
  return true;
}

}  // namespace mosix::agent
