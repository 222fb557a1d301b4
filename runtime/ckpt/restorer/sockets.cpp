// Sockets made again in phase 1 (before the point of no return): an
// address taken meanwhile, an option this process may not set, or a socket
// whose addresses belong to another network namespace or machine refuses
// the restore while the image can still be restarted elsewhere.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>
#include <string>

#include "runtime/ckpt/restorer/restorer.h"

namespace mosix::ckpt::restorer {
namespace {

std::string this_boot_id() {
  char buf[64] = {};
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

bool same_boot(const SocketRecord& s) {
  std::string text = this_boot_id();
  std::uint64_t id[2];
  parse_boot_id(text.data(), text.size(), id);
  return id[0] == s.boot_id[0] && id[1] == s.boot_id[1];
}

// A unix socket's path, when it names one in the file system (not unbound,
// not abstract).
std::string unix_path(Blob addr) {
  if (addr.size() <= sizeof(sa_family_t)) return "";
  const auto* p = reinterpret_cast<const char*>(addr.data()) + sizeof(sa_family_t);
  std::size_t n = addr.size() - sizeof(sa_family_t);
  if (p[0] == '\0') return "";
  return std::string(p, strnlen(p, n));
}

// A unix socket file left at `path` by the checkpointed process, which no
// longer listens there, is removed so the name can be bound again; a file
// someone else answers at, or one that is not a socket, refuses.
void free_unix_path(const std::string& what, const std::string& path, int type) {
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) refuse(what + path + " exists and is not a socket");
  int probe = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) refuse(what + "cannot make a unix socket: " + strerror(errno));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  memcpy(un.sun_path, path.data(), path.size() < sizeof un.sun_path - 1 ? path.size() : sizeof un.sun_path - 1);
  int r = connect(probe, reinterpret_cast<sockaddr*>(&un), sizeof un);
  int err = errno;
  close(probe);
  if (r == 0 || err == EAGAIN || err == EINPROGRESS)
    refuse(what + "another socket answers at " + path + " now; stop it or restart elsewhere");
  if (err != ECONNREFUSED) refuse(what + "cannot tell whether " + path + " is in use: " + strerror(err));
  if (unlink(path.c_str()) != 0) refuse(what + "cannot remove the old socket file " + path + ": " + strerror(errno));
}

SocketRecord socket_record(const Fd& f, const std::string& what) {
  SocketRecord s;
  if (ImageStatus st = decode(Blob(f.data.data(), f.data.size()), &s); !st)
    refuse(what + "a malformed socket record: " + std::string(st.message()));
  return s;
}

// Sets the recorded options on a new socket and reads each back.
void set_options(int fd, const SocketRecord& s, const std::string& what) {
  for (std::uint32_t i = 0; i < s.option_count; ++i) {
    const SocketOption& o = s.options[i];
    int half = 0;
    const void* value = o.value.data();
    socklen_t len = static_cast<socklen_t>(o.value.size());
    if (o.level == SOL_SOCKET && (o.name == SO_RCVBUF || o.name == SO_SNDBUF) && len == sizeof half) {
      memcpy(&half, value, sizeof half);
      half /= 2;  // the kernel doubles what it is given
      value = &half;
    }
    unsigned char back[kMaxSocketOptionValue] = {};
    socklen_t back_len = sizeof back;
    errno = 0;
    if (setsockopt(fd, o.level, o.name, value, len) != 0 || getsockopt(fd, o.level, o.name, back, &back_len) != 0 ||
        back_len != o.value.size() || memcmp(back, o.value.data(), back_len) != 0)
      refuse(what + "option " + std::to_string(o.level) + "/" + std::to_string(o.name) +
             " cannot be set again here: " + (errno != 0 ? strerror(errno) : "it reads back otherwise"));
  }
}

// Puts a new socket at the program's number with its status and fd flags.
void put_at(int fd, const FdRecord& r, const std::string& what) {
  if (fcntl(fd, F_SETFL, static_cast<int>(r.open_flags) & O_NONBLOCK) != 0)
    refuse(what + "cannot set its status flags: " + strerror(errno));
  int cloexec = (r.fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0;
  if (fd != r.fd) {
    if (dup3(fd, r.fd, cloexec) < 0) refuse(what + "dup3: " + strerror(errno));
    close(fd);
  } else if (!cloexec) {
    fcntl(fd, F_SETFD, 0);
  }
}

// Sends again, from `from`, what was queued to be read on the end `to`
// records: a stream's bytes in order from offset 0, or one message per
// record numbered from 0.
// A stream's bytes go in one send: each send is a buffer of its own, and
// many small ones fill the sending end's buffer before their bytes would
// (the image may hold a queue as many pieces as it was written in). The
// sending end's buffer is made room for them first, and set back after.
void refill(int from, const Fd& to, bool stream, const std::string& what) {
  std::uint64_t next = 0;
  std::vector<std::uint8_t> all;
  for (const FileData& d : to.contents) {
    if (d.offset != next) refuse(what + "its queued data has a gap or is out of order (a damaged image)");
    if (stream) {
      all.insert(all.end(), d.bytes.begin(), d.bytes.end());
    } else {
      ssize_t n = send(from, d.bytes.data(), d.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n != static_cast<ssize_t>(d.bytes.size()))
        refuse(what + "its queued data cannot be queued again: " + (n < 0 ? strerror(errno) : "a short send"));
    }
    next += stream ? d.bytes.size() : 1;
  }
  if (all.empty()) return;
  int before = 0;
  socklen_t len = sizeof before;
  bool have = getsockopt(from, SOL_SOCKET, SO_SNDBUF, &before, &len) == 0;
  int room = static_cast<int>(std::min<std::size_t>(all.size() + (64 << 10), 1 << 28));
  if (setsockopt(from, SOL_SOCKET, SO_SNDBUFFORCE, &room, sizeof room) != 0)
    setsockopt(from, SOL_SOCKET, SO_SNDBUF, &room, sizeof room);  // capped at net.core.wmem_max
  ssize_t n = send(from, all.data(), all.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(all.size()))
    refuse(what + "its queued data (" + std::to_string(all.size()) + " bytes) cannot be queued again: " +
           (n < 0 ? strerror(errno) : "a short send"));
  if (have) {
    int half = before / 2;  // the kernel doubles what it is given
    setsockopt(from, SOL_SOCKET, SO_SNDBUF, &half, sizeof half);
  }
}

// The other end's inode (0: closed) and this end's shutdown bits
// (image_format.h, SocketState::pair).
void pair_peer(const SocketRecord& s, const std::string& what, std::uint64_t* ino, int* shut) {
  if (s.family != AF_UNIX || s.peer.size() != 9 || s.peer[8] > 3) refuse(what + "a malformed socketpair record");
  memcpy(ino, s.peer.data(), 8);
  *shut = s.peer[8];
}

// shutdown() again with an end's bits, once its queue is refilled.
void shut(int fd, int bits, const std::string& what) {
  static constexpr int kHow[] = {-1, SHUT_RD, SHUT_WR, SHUT_RDWR};
  if (bits != 0 && shutdown(fd, kHow[bits]) != 0) refuse(what + "cannot shut it down again: " + strerror(errno));
}

// Both ends of a socketpair, made when the first of them in the image is
// reached; the second is then in place already. One whose other end was
// closed gets a new pair, its queue refilled from the other end, which is
// then closed (a stream end sees the end of the stream as before).
void place_pair(const Image& img, const Fd& f, const SocketRecord& s, const std::string& what) {
  std::uint64_t peer_ino;
  int bits;
  pair_peer(s, what, &peer_ino, &bits);
  const Fd* other = nullptr;
  bool first = true;
  for (const Fd& g : img.fds) {
    if (&g == &f) {
      if (other != nullptr) first = false;
      continue;
    }
    if (peer_ino != 0 && g.rec.kind == FdKind::socket && g.rec.inode == peer_ino) other = other == nullptr ? &g : other;
  }
  if (peer_ino != 0 && other == nullptr) refuse(what + "the other end of its socketpair is not in the image");
  if (!first) return;  // made with the other end
  std::string other_what = other != nullptr ? "fd " + std::to_string(other->rec.fd) + " (socket): " : what;
  SocketRecord o;
  std::uint64_t back_ino = 0;
  int other_bits = 0;
  if (other != nullptr) {
    o = socket_record(*other, other_what);
    if (o.state != SocketState::pair) refuse(what + "its socketpair's other end does not match it");
    pair_peer(o, other_what, &back_ino, &other_bits);
    if (back_ino != f.rec.inode || o.type != s.type)
      refuse(what + "its socketpair's other end (fd " + std::to_string(other->rec.fd) + ") does not match it");
  }
  int ends[2];
  if (socketpair(AF_UNIX, static_cast<int>(s.type) | SOCK_CLOEXEC, 0, ends) != 0)
    refuse(what + "cannot make the socketpair again: " + strerror(errno));
  set_options(ends[0], s, what);
  if (other != nullptr) set_options(ends[1], o, other_what);
  bool stream = s.type == SOCK_STREAM;
  refill(ends[1], f, stream, what);
  if (other != nullptr) refill(ends[0], *other, stream, other_what);
  shut(ends[0], bits, what);
  if (other != nullptr) shut(ends[1], other_bits, other_what);
  put_at(ends[0], f.rec, what);
  if (other != nullptr) put_at(ends[1], other->rec, other_what);
  else close(ends[1]);
}

}  // namespace

void make_tree_pair(const Fd& a, const Fd& b, int ends[2]) {
  std::string what_a = "fd " + std::to_string(a.rec.fd) + " (socket): ";
  std::string what_b = "fd " + std::to_string(b.rec.fd) + " (socket): ";
  SocketRecord sa = socket_record(a, what_a), sb = socket_record(b, what_b);
  std::uint64_t peer_a = 0, peer_b = 0;
  int bits_a = 0, bits_b = 0;
  if (sa.state != SocketState::pair || sb.state != SocketState::pair)
    refuse(what_a + "a socketpair end of the tree whose record is not a socketpair end's");
  pair_peer(sa, what_a, &peer_a, &bits_a);
  pair_peer(sb, what_b, &peer_b, &bits_b);
  if (peer_a != b.rec.inode || peer_b != a.rec.inode || sa.type != sb.type)
    refuse(what_a + "its socketpair's other end (socket:[" + std::to_string(b.rec.inode) + "]) does not match it");
  if (socketpair(AF_UNIX, static_cast<int>(sa.type) | SOCK_CLOEXEC, 0, ends) != 0)
    refuse(what_a + "cannot make the socketpair again: " + strerror(errno));
  set_options(ends[0], sa, what_a);
  set_options(ends[1], sb, what_b);
  bool stream = sa.type == SOCK_STREAM;
  refill(ends[1], a, stream, what_a);
  refill(ends[0], b, stream, what_b);
  shut(ends[0], bits_a, what_a);
  shut(ends[1], bits_b, what_b);
}

namespace {

// The forwarded sockets the daemon sent, by forwarding id.
std::map<std::uint64_t, int>& forwarded() {
  static std::map<std::uint64_t, int> m;
  return m;
}

}  // namespace

int g_sockets_fd = -1;

int receive_forwarded(int above) {
  int top = above - 1;
  if (g_sockets_fd < 0) return top;
  constexpr std::size_t kBatch = 32;  // what the daemon sends at most in one message
  for (;;) {
    std::uint8_t ids[8 * kBatch];
    iovec iov{ids, sizeof ids};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kBatch)];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = recvmsg(g_sockets_fd, &m, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) break;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    std::size_t count = n > 0 ? static_cast<std::size_t>(n) / 8 : 0;
    if (n <= 0 || n % 8 != 0 || c == nullptr || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(sizeof(int) * count) || (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0)
      refuse(std::string("the node daemon's forwarded sockets came malformed") + (n < 0 ? ": " : "") +
             (n < 0 ? strerror(errno) : ""));
    for (std::size_t k = 0; k < count; ++k) {
      int got;
      memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof got);
      std::uint64_t id = 0;
      for (int i = 7; i >= 0; --i) id = id << 8 | ids[k * 8 + static_cast<std::size_t>(i)];
      int moved = fcntl(got, F_DUPFD_CLOEXEC, above);
      if (moved < 0) refuse(std::string("cannot move a forwarded socket: ") + strerror(errno));
      close(got);
      forwarded()[id] = moved;
      top = moved > top ? moved : top;
    }
  }
  close(g_sockets_fd);
  g_sockets_fd = -1;
  // Inherited descriptors among them are not the program's.
  for (int fd = above; fd < top; ++fd) {
    bool ours = false;
    for (const auto& [id, got] : forwarded()) ours = ours || got == fd;
    if (!ours) close(fd);
  }
  return top;
}

void close_unplaced_forwarded() {
  for (const auto& [id, fd] : forwarded()) close(fd);
  forwarded().clear();
}

void place_forwarded(const Fd& f) {
  std::string what = "fd " + std::to_string(f.rec.fd) + " (forwarded socket): ";
  if (f.data.size() != 12) refuse(what + "a malformed record");
  std::uint64_t id = 0;
  for (int i = 7; i >= 0; --i) id = id << 8 | f.data[static_cast<std::size_t>(i)];
  auto it = forwarded().find(id);
  if (it == forwarded().end())
    refuse(what + "the node daemon did not pass it (restore it through a node daemon of its job)");
  put_at(it->second, f.rec, what);
  forwarded().erase(it);
}

void place_socket(const Image& img, const Fd& f) {
  const FdRecord& r = f.rec;
  std::string what = "fd " + std::to_string(r.fd) + " (socket): ";
  // A socketpair end between processes of a tree, made before the forks.
  if (int made = tree_socket(r.inode); made >= 0) {
    int fd = fcntl(made, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) refuse(what + "cannot place a socketpair end of the tree: " + strerror(errno));
    put_at(fd, r, what);
    return;
  }
  SocketRecord s = socket_record(f, what);
  if (s.state == SocketState::pair) {
    place_pair(img, f, s, what);
    return;
  }
  if (!f.contents.empty()) refuse(what + "queued data for a socket that is not a socketpair's end (a damaged image)");
  bool addressed = !s.local.empty() || s.state == SocketState::connected;
  if (addressed) {
    struct stat ns{};
    if (stat("/proc/self/ns/net", &ns) != 0 || ns.st_ino != s.netns || !same_boot(s))
      refuse(what + "its addresses belong to the network of the machine and namespace it was checkpointed in; "
                    "restart it there");
  }
  int fd = socket(static_cast<int>(s.family), static_cast<int>(s.type) | SOCK_CLOEXEC, static_cast<int>(s.protocol));
  if (fd < 0) refuse(what + "cannot make the socket again: " + strerror(errno));
  set_options(fd, s, what);
  if (!s.local.empty()) {
    std::string path = s.family == AF_UNIX ? unix_path(s.local) : "";
    if (!path.empty()) free_unix_path(what, path, static_cast<int>(s.type));
    if (bind(fd, reinterpret_cast<const sockaddr*>(s.local.data()), static_cast<socklen_t>(s.local.size())) != 0)
      refuse(what + "cannot bind its address again: " + strerror(errno) +
             (errno == EADDRINUSE ? " (another socket holds it now)" : ""));
  }
  if (s.state == SocketState::listening && listen(fd, s.backlog != 0 ? static_cast<int>(s.backlog) : SOMAXCONN) != 0)
    refuse(what + "cannot listen again: " + strerror(errno));
  put_at(fd, r, what);
}

// After every socket is placed (a datagram socket may be connected to
// another of the same process, bound later): the connections again.
void connect_sockets(const Image& img) {
  for (const Fd& f : img.fds) {
    if (f.rec.kind != FdKind::socket) continue;
    SocketRecord s;
    if (!decode(Blob(f.data.data(), f.data.size()), &s) || s.state != SocketState::connected) continue;
    if (connect(f.rec.fd, reinterpret_cast<const sockaddr*>(s.peer.data()), static_cast<socklen_t>(s.peer.size())) != 0)
      refuse("fd " + std::to_string(f.rec.fd) + " (socket): cannot connect to its peer address again: " +
             strerror(errno));
  }
}

}  // namespace mosix::ckpt::restorer
