// Sockets a restore can make again: what the kernel shows of one (its kind,
// addresses, state, options), checked to be all there is. See sockets.h.
//
// Options: each one below that differs from a new socket's of the same kind
// is recorded, after trying it on that new socket (set, read back): an
// option this process could not set again refuses the checkpoint, not the
// restore. Not seen, and so not carried (docs/mosixctl.md): multicast
// memberships and an eBPF program attached with SO_ATTACH_BPF.
#include "compat/agent/sockets.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "compat/agent/raw.h"

namespace mosix::agent {
namespace {

using mosix::ckpt::SocketRecord;
using mosix::ckpt::SocketState;

constexpr unsigned kInet = 1, kInet6 = 2, kUnix = 4, kAll = 7;    // families
constexpr unsigned kStream = 1, kDgram = 2, kAny = 3;              // types
constexpr unsigned kTcpClose = 7, kTcpListen = 10;                 // tcp_states.h

struct Option {
  int level;
  int name;
  unsigned families;
  unsigned types;
};

// The options a restore sets again when they differ from a new socket's.
constexpr Option kOptions[] = {
    {SOL_SOCKET, SO_REUSEADDR, kAll, kAny},       {SOL_SOCKET, SO_REUSEPORT, kInet | kInet6, kAny},
    {SOL_SOCKET, SO_KEEPALIVE, kAll, kAny},       {SOL_SOCKET, SO_BROADCAST, kAll, kAny},
    {SOL_SOCKET, SO_LINGER, kAll, kAny},          {SOL_SOCKET, SO_OOBINLINE, kAll, kAny},
    {SOL_SOCKET, SO_RCVBUF, kAll, kAny},          {SOL_SOCKET, SO_SNDBUF, kAll, kAny},
    {SOL_SOCKET, SO_RCVLOWAT, kAll, kAny},        {SOL_SOCKET, 20 /* SO_RCVTIMEO_OLD */, kAll, kAny},
    {SOL_SOCKET, 21 /* SO_SNDTIMEO_OLD */, kAll, kAny}, {SOL_SOCKET, SO_PRIORITY, kAll, kAny},
    {SOL_SOCKET, SO_PASSCRED, kAll, kAny},        {SOL_SOCKET, SO_DONTROUTE, kAll, kAny},
    {SOL_SOCKET, 29 /* SO_TIMESTAMP_OLD */, kAll, kAny}, {SOL_SOCKET, SO_MARK, kAll, kAny},
    {SOL_SOCKET, SO_PASSSEC, kAll, kAny},         {SOL_SOCKET, SO_BINDTODEVICE, kInet | kInet6, kAny},
    {SOL_SOCKET, 72 /* SO_BUF_LOCK */, kAll, kAny},
    {IPPROTO_TCP, TCP_NODELAY, kInet | kInet6, kStream},      {IPPROTO_TCP, TCP_MAXSEG, kInet | kInet6, kStream},
    {IPPROTO_TCP, TCP_CORK, kInet | kInet6, kStream},         {IPPROTO_TCP, TCP_KEEPIDLE, kInet | kInet6, kStream},
    {IPPROTO_TCP, TCP_KEEPINTVL, kInet | kInet6, kStream},    {IPPROTO_TCP, TCP_KEEPCNT, kInet | kInet6, kStream},
    {IPPROTO_TCP, TCP_SYNCNT, kInet | kInet6, kStream},       {IPPROTO_TCP, TCP_LINGER2, kInet | kInet6, kStream},
    {IPPROTO_TCP, TCP_DEFER_ACCEPT, kInet | kInet6, kStream}, {IPPROTO_TCP, TCP_WINDOW_CLAMP, kInet | kInet6, kStream},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, kInet | kInet6, kStream}, {IPPROTO_TCP, TCP_NOTSENT_LOWAT, kInet | kInet6, kStream},
    {IPPROTO_TCP, TCP_FASTOPEN, kInet | kInet6, kStream},
    {IPPROTO_IP, IP_TOS, kInet, kAny},            {IPPROTO_IP, IP_TTL, kInet, kAny},
    {IPPROTO_IP, IP_RECVERR, kInet, kAny},        {IPPROTO_IP, IP_FREEBIND, kInet | kInet6, kAny},
    {IPPROTO_IP, IP_PKTINFO, kInet, kAny},        {IPPROTO_IP, IP_MTU_DISCOVER, kInet, kAny},
    {IPPROTO_IP, IP_MULTICAST_TTL, kInet, kDgram}, {IPPROTO_IP, IP_MULTICAST_LOOP, kInet, kDgram},
    {IPPROTO_IP, IP_TRANSPARENT, kInet, kAny},
    {IPPROTO_IPV6, IPV6_V6ONLY, kInet6, kAny},    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, kInet6, kAny},
    {IPPROTO_IPV6, IPV6_RECVPKTINFO, kInet6, kAny}, {IPPROTO_IPV6, IPV6_TCLASS, kInet6, kAny},
    {IPPROTO_IPV6, IPV6_RECVERR, kInet6, kAny},   {IPPROTO_IPV6, IPV6_MTU_DISCOVER, kInet6, kAny},
    {IPPROTO_IPV6, IPV6_MULTICAST_HOPS, kInet6, kDgram}, {IPPROTO_IPV6, IPV6_MULTICAST_LOOP, kInet6, kDgram},
    {IPPROTO_IPV6, IPV6_TRANSPARENT, kInet6, kAny}, {IPPROTO_IPV6, 78 /* IPV6_FREEBIND */, kInet6, kAny},
};

long get_opt(long fd, int level, int name, void* value, socklen_t* len) {
  return sys(SYS_getsockopt, fd, level, name, value, len);
}

int int_opt(long fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  return get_opt(fd, level, name, &v, &len) == 0 ? v : -1;
}

bool same(const std::uint8_t* a, socklen_t alen, const std::uint8_t* b, socklen_t blen) {
  if (alen != blen) return false;
  for (socklen_t i = 0; i < alen; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// Whether an address is the unbound one: family only (unix), or any
// address with port 0 (inet).
bool unbound(const std::uint8_t* addr, socklen_t len, int family) {
  if (family == AF_UNIX) return len <= sizeof(sa_family_t);
  if (family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    return in->sin_port == 0 && in->sin_addr.s_addr == 0;
  }
  if (family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    bool any = true;
    for (unsigned char b : in6->sin6_addr.s6_addr) any = any && b == 0;
    return in6->sin6_port == 0 && any;
  }
  return false;
}

// A TCP listener's backlog: /proc/net/tcp(6) shows it as tx_queue (the
// listener's maximum accept queue). 0 when not found.
std::uint32_t tcp_backlog(std::uint64_t ino, int family, char* buf, std::size_t cap) {
  long n = read_file(family == AF_INET6 ? "/proc/net/tcp6" : "/proc/net/tcp", buf, cap - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  for (const char* line = buf; *line != '\0';) {
    const char* end = line;
    while (*end != '\0' && *end != '\n') ++end;
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    const char* p = line;
    const char* field[10] = {};
    for (int f = 0; f < 10 && p < end; ++f) {
      while (p < end && *p == ' ') ++p;
      field[f] = p;
      while (p < end && *p != ' ') ++p;
    }
    if (field[9] != nullptr) {
      const char* q = field[9];
      if (parse_dec(q) == ino) {
        q = field[4];
        return static_cast<std::uint32_t>(parse_hex(q));
      }
    }
    line = *end == '\n' ? end + 1 : end;
  }
  return 0;
}

// Whether a new socket may bind the address (its port cleared): false when
// the machine has no such address.
bool address_is_local(const std::uint8_t* addr, socklen_t len, int family) {
  std::uint8_t copy[mosix::ckpt::kMaxSocketAddress];
  __builtin_memcpy(copy, addr, len);
  if (family == AF_INET) reinterpret_cast<sockaddr_in*>(copy)->sin_port = 0;
  if (family == AF_INET6) reinterpret_cast<sockaddr_in6*>(copy)->sin6_port = 0;
  long probe = sys(SYS_socket, family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return true;  // cannot tell: the restore will say
  long r = sys(SYS_bind, probe, copy, len);
  sys(SYS_close, probe);
  return r != -99 /* EADDRNOTAVAIL */;
}

void boot_id(std::uint64_t out[2], char* buf, std::size_t cap) {
  long n = read_file("/proc/sys/kernel/random/boot_id", buf, cap - 1);
  mosix::ckpt::parse_boot_id(buf, n > 0 ? static_cast<std::size_t>(n) : 0, out);
}

}  // namespace

long socket_image_data(long fd, bool for_move, SocketScratch* s, char* error, std::size_t error_cap) {
  if (long n = runtime_link_image_data(fd, for_move, s); n >= 0) return n;
  if (long n = direct_link_image_data(fd, s); n >= 0) return n;
  Line e(error, error_cap);
  SocketRecord& r = s->rec;
  r = SocketRecord{};
  int family = int_opt(fd, SOL_SOCKET, SO_DOMAIN), type = int_opt(fd, SOL_SOCKET, SO_TYPE);
  int protocol = int_opt(fd, SOL_SOCKET, SO_PROTOCOL);
  unsigned fam = family == AF_INET ? kInet : family == AF_INET6 ? kInet6 : family == AF_UNIX ? kUnix : 0;
  unsigned typ = type == SOCK_STREAM || type == SOCK_SEQPACKET ? kStream : type == SOCK_DGRAM ? kDgram : 0;
  if (fam == 0 || typ == 0 || (type == SOCK_SEQPACKET && family != AF_UNIX) ||
      (fam != kUnix && protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)) {
    e.s("is a socket of family ").i(family).s(", type ").i(type).s(", protocol ").i(protocol)
        .s(", which a restore cannot make again (inet and unix sockets only)");
    return -1;
  }
  r.family = static_cast<std::uint32_t>(family);
  r.type = static_cast<std::uint32_t>(type);
  r.protocol = static_cast<std::uint32_t>(protocol);
  if (int err = int_opt(fd, SOL_SOCKET, SO_ERROR); err != 0) {
    e.s("is a socket with an error pending (").i(err).s("), which a restore would lose");
    return -1;
  }
  socklen_t local_len = sizeof s->local, peer_len = sizeof s->peer;
  if (sys(SYS_getsockname, fd, s->local, &local_len) != 0) local_len = 0;
  bool connected = sys(SYS_getpeername, fd, s->peer, &peer_len) == 0;
  bool listening = int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1;
  // Both ends of a socketpair, or one whose other end was closed: made
  // again with socketpair(), the queues carried (peek_pair_queue).
  unsigned shutdown = 0;
  long partner = connected && fam == kUnix && peer_len <= sizeof(sa_family_t) && local_len <= sizeof(sa_family_t)
                     ? pair_partner(fd, s, &shutdown)
                     : -1;
  if (partner == kPeerElsewhere && !s->tree) partner = -1;
  s->partner = partner;
  s->shutdown = shutdown;
  bool pair = partner != -1;
  if (!pair && connected && (typ == kStream || (fam == kUnix && peer_len <= sizeof(sa_family_t)))) {
    e.s("is a connected socket (").s(fam == kUnix && peer_len <= sizeof(sa_family_t) ? "a socketpair or an "
                                                                                        "unnamed peer"
                                                                                      : "a stream")
        .s("), which a restore cannot connect again: the other end would not know it");
    return -1;
  }
  if (fam != kUnix && typ == kStream) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (get_opt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
        (info.tcpi_state != kTcpClose && info.tcpi_state != kTcpListen) || info.tcpi_segs_out != 0 ||
        info.tcpi_segs_in != 0) {
      e.s("is a TCP socket that has been connected (state ").u(info.tcpi_state)
          .s("), which a restore cannot connect again");
      return -1;
    }
  }
  pollfd p{static_cast<int>(fd), POLLIN | POLLRDHUP, 0};
  timespec zero{0, 0};
  if (!pair && sys(SYS_ppoll, &p, 1, &zero, nullptr, 8) == 1) {
    if (listening && (p.revents & POLLIN)) {
      e.s("is a listening socket with connections waiting to be accepted, which a restore would lose");
      return -1;
    }
    if (!listening && (p.revents & POLLIN)) {
      e.s("is a socket with data not read yet, which a restore would lose (its senders are not the "
          "restorer's)");
      return -1;
    }
    if (typ == kDgram && (p.revents & POLLRDHUP)) {
      e.s("is a socket that was shut down, which a restore does not do again");
      return -1;
    }
  }
  std::uint32_t filter = 0;
  socklen_t flen = 0;
  if (get_opt(fd, SOL_SOCKET, SO_GET_FILTER, nullptr, &flen) == 0 && flen != 0) filter = flen;
  if (filter != 0) {
    e.s("is a socket with a filter attached (SO_ATTACH_FILTER), which a restore does not attach again");
    return -1;
  }
  if (fam == kUnix && local_len > sizeof(sa_family_t) && s->local[sizeof(sa_family_t)] != 0) {
    // Bound to a path: the restore binds it there again, so the name must
    // still be this socket's own file (a removed name would come back; one
    // another socket has now could not be bound).
    char path[sizeof(sockaddr_un::sun_path) + 1] = {};
    for (socklen_t i = sizeof(sa_family_t), k = 0; i < local_len && k < sizeof path - 1; ++i, ++k)
      path[k] = static_cast<char>(s->local[i]);
    struct stat named{};
    if (sys(SYS_lstat, path, &named) != 0 || !S_ISSOCK(named.st_mode)) {
      e.s("is a unix socket whose name ").s(path).s(" was removed, which a restore would make again");
      return -1;
    }
    std::uint64_t file_ino = 0, file_dev = 0;
    if (bound_file(fd, &file_ino, &file_dev, s) && (file_ino != named.st_ino || file_dev != named.st_dev)) {
      e.s("is a unix socket whose name ").s(path)
          .s(" is another socket's file now (its own was renamed or removed), which a restore cannot bind again");
      return -1;
    }
  }
  if (fam != kUnix && !unbound(s->local, local_len, family) &&
      int_opt(fd, family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6, family == AF_INET ? IP_FREEBIND : 78) == 0 &&
      !address_is_local(s->local, local_len, family)) {
    e.s("is a socket bound to an address this machine does not have (bound with IP_FREEBIND, since turned off), "
        "which a restore could not bind again");
    return -1;
  }
  if (for_move && !pair && (connected || listening || !unbound(s->local, local_len, family))) {
    e.s("is a socket ").s(listening ? "listening" : connected ? "connected" : "bound")
        .s(" at an address of this node, which its clients reach here: a move would take it away "
           "(close it, or checkpoint and restart on this node)");
    return -1;
  }
  r.state = pair         ? SocketState::pair
            : listening  ? SocketState::listening
            : connected  ? SocketState::connected
                         : SocketState::plain;
  if (!unbound(s->local, local_len, family)) r.local = ckpt::Blob(s->local, local_len);
  struct stat st{};
  if (pair) {
    // The other end's inode (0: closed), then this end's shutdown bits.
    std::uint64_t other = partner == kPeerElsewhere                          ? s->peer_ino
                          : partner >= 0 && sys(SYS_fstat, partner, &st) == 0 ? st.st_ino
                                                                              : 0;
    __builtin_memcpy(s->peer, &other, 8);  // little-endian x86-64
    s->peer[8] = static_cast<std::uint8_t>(shutdown);
    r.peer = ckpt::Blob(s->peer, 9);
  } else if (connected) {
    r.peer = ckpt::Blob(s->peer, peer_len);
  }
  if (listening && fam != kUnix && sys(SYS_fstat, fd, &st) == 0)
    r.backlog = tcp_backlog(st.st_ino, family, s->net, sizeof s->net);
  if (sys(SYS_stat, "/proc/self/ns/net", &st) == 0) r.netns = st.st_ino;
  boot_id(r.boot_id, s->net, sizeof s->net);

  // The options that differ from a new socket's, each tried on it.
  long fresh = sys(SYS_socket, family, type | SOCK_CLOEXEC, protocol);
  if (fresh < 0) {
    e.s("is a socket like none this process may make now (").i(-fresh).s(")");
    return -1;
  }
  bool ok = true;
  for (const Option& o : kOptions) {
    if ((o.families & fam) == 0 || (o.types & typ) == 0) continue;
    std::uint8_t* have = s->values[r.option_count];
    std::uint8_t base[mosix::ckpt::kMaxSocketOptionValue] = {}, back[mosix::ckpt::kMaxSocketOptionValue] = {};
    socklen_t hlen = mosix::ckpt::kMaxSocketOptionValue, blen = sizeof base, klen = sizeof back;
    if (get_opt(fd, o.level, o.name, have, &hlen) != 0) continue;  // not this kind's
    if (get_opt(fresh, o.level, o.name, base, &blen) == 0 && same(have, hlen, base, blen)) continue;
    // Tried on the new socket: what it reads back must be what the program's reads.
    int half = 0;
    const void* set = have;
    socklen_t slen = hlen;
    if (o.level == SOL_SOCKET && (o.name == SO_RCVBUF || o.name == SO_SNDBUF)) {
      __builtin_memcpy(&half, have, sizeof half);
      half /= 2;  // the kernel doubles what it is given
      set = &half;
      slen = sizeof half;
    }
    if (sys(SYS_setsockopt, fresh, o.level, o.name, set, slen) != 0 ||
        get_opt(fresh, o.level, o.name, back, &klen) != 0 || !same(have, hlen, back, klen)) {
      e.s("is a socket with option ").i(o.level).s("/").i(o.name)
          .s(" set to a value this process cannot set again (a restore could not give it back)");
      ok = false;
      break;
    }
    if (r.option_count == mosix::ckpt::kMaxSocketOptions) {
      e.s("is a socket with more options set than a checkpoint carries");
      ok = false;
      break;
    }
    r.options[r.option_count++] = mosix::ckpt::SocketOption{o.level, o.name, ckpt::Blob(have, hlen)};
  }
  sys(SYS_close, fresh);
  if (!ok) return -1;
  std::size_t len = 0;
  if (!mosix::ckpt::encode(r, s->encoded, sizeof s->encoded, &len)) {
    e.s("is a socket whose description does not fit in an image record");
    return -1;
  }
  return static_cast<long>(len);
}

}  // namespace mosix::agent
