// Direct links between two tasks of one node (docs/pvm.md, "Direct links").
// The sender asks its node daemon (kDirectAsk) when it first sends to a task,
// and again every kAskEvery messages while it has no link to it; the daemon
// passes one end of a socketpair to each if both are its guests. The
// receiver writes one byte back on its end when it has it; from then on the
// sender writes its messages to that task there, numbered as on the other
// route. A link that ends (the other task ended, moved, or was checkpointed:
// compat/agent/direct_links.cpp) is closed, and messages go through the node
// daemon again: one cut short on the link is sent again whole that way, and
// the receiver drops the piece it has of it.
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compat/pvm/task.h"

namespace mosix::pvm {
namespace {

constexpr std::uint64_t kAskEvery = 64;
constexpr std::size_t kMaxPassed = 64;
// A TCP link's receiver acknowledges after this many messages or bytes:
// what its sender keeps until then.
constexpr std::uint64_t kAckMessages = 32;
constexpr std::uint64_t kAckBytes = 1 << 20;
constexpr int kConnectMs = 1000;  // per address offered
constexpr std::size_t kHello = 12;  // the offer's nonce, then the receiver's rank

using LinkFn = int (*)(int, int);
using TakeFn = std::size_t (*)(int, void*, std::size_t);

// The agent's table of direct links (a checkpoint takes them); without the
// agent there are no checkpoints, and no direct links either.
LinkFn agent_link() {
  static LinkFn fn = reinterpret_cast<LinkFn>(::dlsym(RTLD_DEFAULT, "mosix_direct_link"));
  return fn;
}

void forget(int fd) {
  if (fd < 0) return;
  if (LinkFn fn = agent_link()) fn(fd, -1);
  ::close(fd);
}

void put(std::vector<std::uint8_t>& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

void no_delay(int fd) {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Waits up to `ms` for `events` on `fd`; false on timeout or error.
bool wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 && (p.revents & events) != 0;
  }
}

// This host's IPv4 addresses, loopback last: where a task of another node
// may reach a socket listening on every address.
std::vector<std::uint32_t> own_addresses() {
  std::vector<std::uint32_t> out, loop;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* a = list; a != nullptr && out.size() + loop.size() < 8; a = a->ifa_next) {
      if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || (a->ifa_flags & IFF_UP) == 0) continue;
      std::uint32_t v = reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr;
      ((a->ifa_flags & IFF_LOOPBACK) != 0 ? loop : out).push_back(v);
    }
    ::freeifaddrs(list);
  }
  if (loop.empty()) loop.push_back(htonl(INADDR_LOOPBACK));
  out.insert(out.end(), loop.begin(), loop.end());
  return out;
}

// A TCP connection to addr:port (network order), or -1 within kConnectMs.
int connect_tcp(std::uint32_t addr, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = addr;
  to.sin_port = port;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    int err = 0;
    socklen_t len = sizeof err;
    if (errno != EINPROGRESS || !wait_fd(fd, POLLOUT, kConnectMs) ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd);
      return -1;
    }
  }
  return fd;
}

}  // namespace

ssize_t Task::read_link(std::uint8_t* buf, std::size_t cap, int flags) {
  iovec iov{buf, cap};
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd_, &msg, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      // Named to the agent at once: an image until its frame is read carries it too.
      if (agent_link() == nullptr || agent_link()(fd, 1) != 0) {
        ::close(fd);
        continue;
      }
      passed_fds_.push_back(fd);
      if (passed_fds_.size() > kMaxPassed) {
        forget(passed_fds_.front());
        passed_fds_.pop_front();
      }
    }
  }
  return n;
}

// The descriptor that came with a frame naming inode `ino`: one came with
// each such frame, in order, so any before it belonged to frames that were
// lost (a move took the bytes, not the descriptor).
int Task::claim_passed(std::uint64_t ino) {
  for (std::size_t i = 0; i < passed_fds_.size(); ++i) {
    struct stat st{};
    if (::fstat(passed_fds_[i], &st) != 0 || st.st_ino != ino) continue;
    int fd = passed_fds_[i];
    for (std::size_t j = 0; j < i; ++j) forget(passed_fds_[j]);
    passed_fds_.erase(passed_fds_.begin(), passed_fds_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    return fd;
  }
  return -1;
}

void Task::direct_offered(const GuestMessage& m) {
  if (m.bytes.size() != 8) return;
  std::uint64_t ino = 0;
  for (int i = 0; i < 8; ++i) ino |= static_cast<std::uint64_t>(m.bytes[static_cast<std::size_t>(i)]) << (8 * i);
  int fd = claim_passed(ino);
  if (fd < 0) return;
  if (m.kind == kDirectOut) {
    close_offer(m.source_rank);  // on this node: no TCP link to it
    if (out_links_.count(m.source_rank) != 0 || agent_link()(fd, 0) != 0) {
      forget(fd);
      return;
    }
    out_links_[m.source_rank] = OutLink{fd, false, false, {}, {}};
    return;
  }
  const std::uint8_t ack = 1;
  if (::send(fd, &ack, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
    forget(fd);
    return;
  }
  in_links_.push_back(InLink{fd, m.source_rank, {}, false, 0, 0, 0});
}

void Task::ask_direct(int dest_rank) {
  if (dest_rank == rank_ || dest_rank < 0 || agent_link() == nullptr || out_links_.count(dest_rank) != 0) return;
  std::uint64_t sent = sent_to_[dest_rank];
  auto [it, fresh] = ask_after_.try_emplace(dest_rank, 0);
  if (sent < it->second) return;
  it->second = sent + kAskEvery;
  (void)write_frame(encode_frame(GuestMessage{rank_, dest_rank, kDirectAsk, 0, {}}));
  // Taken only by a task of another node. Only with MOSIX_PVM_TCP=1 for
  // now: pvm_migrate_test once hung with them (docs/pvm.md).
  static const bool tcp = [] {
    const char* v = std::getenv("MOSIX_PVM_TCP");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  if (tcp) offer_tcp(dest_rank);
}

bool Task::send_direct(int dest_rank, Frame& frame, std::uint64_t seq) {
  auto it = out_links_.find(dest_rank);
  if (it == out_links_.end()) {
    if (!accept_offer(dest_rank)) return false;
    it = out_links_.find(dest_rank);
  }
  const int fd = it->second.fd;
  if (!it->second.ready) {
    std::uint8_t ack = 0;
    ssize_t n = ::recv(fd, &ack, 1, MSG_DONTWAIT);
    if (n == 1) {
      it->second.ready = true;
    } else {
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close_out(dest_rank);
      return false;
    }
  }
  std::size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Full: read what comes meanwhile (the receiver may be writing to
      // this task, as PVM's own library does while it waits).
      if (!pump(-1, fd)) break;
      it = out_links_.find(dest_rank);
      if (it == out_links_.end() || it->second.fd != fd) return false;  // it ended meanwhile
    } else {
      break;
    }
  }
  if (done == frame.size()) {
    if (it->second.tcp) it->second.kept.emplace_back(seq, std::move(frame));
    return true;
  }
  // The receiver's end is gone (it ended, moved or was checkpointed) or
  // this task's link is: what went of this frame is a piece the receiver
  // drops at the link's end; the whole frame goes the other route.
  close_out(dest_rank);
  ask_after_[dest_rank] = sent_to_[dest_rank] + kAskEvery;
  return false;
}

void Task::read_in_links(const std::vector<short>& revents) {
  static TakeFn take_held = reinterpret_cast<TakeFn>(::dlsym(RTLD_DEFAULT, "mosix_direct_link_take"));
  std::vector<std::size_t> ended;
  for (std::size_t i = 0; i < revents.size() && i < in_links_.size(); ++i) {
    if (revents[i] == 0) continue;
    InLink& l = in_links_[i];
    for (;;) {
      std::uint8_t chunk[1 << 16];
      ssize_t n = ::recv(l.fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        // Its end: first what an image took out of it into memory.
        while (take_held != nullptr) {
          std::size_t k = take_held(l.fd, chunk, sizeof chunk);
          if (k == 0) break;
          l.in.insert(l.in.end(), chunk, chunk + k);
          if (!take_frames(l.in, l.from)) break;
        }
        ended.push_back(i);
        break;
      }
      l.in.insert(l.in.end(), chunk, chunk + n);
      if (!take_frames(l.in, l.from, &l)) {
        ended.push_back(i);
        break;
      }
      // Less than asked for: the queue was empty then; poll says when more
      // comes (one recv a message, not two, on the way of a round trip).
      if (static_cast<std::size_t>(n) < sizeof chunk) break;
    }
    if (l.tcp && (ended.empty() || ended.back() != i) && !ack(l, false)) ended.push_back(i);
  }
  for (auto it = ended.rbegin(); it != ended.rend(); ++it) {
    forget(in_links_[*it].fd);  // a piece of a frame left in `in` was sent again the other way
    in_links_.erase(in_links_.begin() + static_cast<std::ptrdiff_t>(*it));
  }
}

void Task::close_out(int rank) {
  auto it = out_links_.find(rank);
  if (it == out_links_.end()) return;
  forget(it->second.fd);
  std::deque<std::pair<std::uint64_t, Frame>> kept = std::move(it->second.kept);
  out_links_.erase(it);
  // What the receiver did not acknowledge may not have reached it (a TCP
  // link's end does not say what the other end read): again by the other
  // route, in order; the receiver drops a number it has.
  for (auto& [seq, frame] : kept) {
    if (!write_frame(frame)) break;
  }
}

void Task::close_links() {
  for (auto& [rank, l] : out_links_) forget(l.fd);
  out_links_.clear();
  for (InLink& l : in_links_) forget(l.fd);
  in_links_.clear();
  for (int fd : passed_fds_) forget(fd);
  passed_fds_.clear();
  for (auto& [rank, o] : offers_) {
    forget(o.fd);
    forget(o.taken);
  }
  offers_.clear();
}

// Links between tasks of two nodes: a TCP connection the two tasks make
// themselves. The sender listens on every address of its host and tells the
// receiver (kTcpOffer, through the node daemons: the port, a nonce, its
// node's guest socket and its addresses); a receiver on another node
// connects and says the nonce and its rank. The sender keeps every message
// it wrote there until the receiver acknowledges it (the receiver writes
// back the number after the last one it took, every kAckMessages messages
// or kAckBytes bytes): a TCP link's end does not say what the other end
// read, so when the link ends (the receiver ended, moved or was
// checkpointed: its image carries the link as an ended one, see
// direct_offered) what was kept goes again through the node daemons, and the
// receiver drops the numbers it has.
void Task::offer_tcp(int dest_rank) {
  close_offer(dest_rank);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof any;
  std::uint64_t nonce = 0;
  // Named to the agent like a link out: an image carries it as an ended socket.
  if (::bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || ::listen(fd, 4) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&any), &len) != 0 ||
      ::getrandom(&nonce, sizeof nonce, 0) != static_cast<ssize_t>(sizeof nonce) || agent_link()(fd, 0) != 0) {
    ::close(fd);
    return;
  }
  offers_[dest_rank] = Offer{fd, nonce};
  std::vector<std::uint8_t> bytes;
  put(bytes, nonce, 8);
  put(bytes, any.sin_port, 2);  // network order, as it is
  put(bytes, socket_path_.size(), 2);
  bytes.insert(bytes.end(), socket_path_.begin(), socket_path_.end());
  for (std::uint32_t a : own_addresses()) put(bytes, a, 4);
  (void)write_frame(encode_frame(GuestMessage{rank_, dest_rank, kTcpOffer, 0, std::move(bytes)}));
}

void Task::tcp_offered(const GuestMessage& m) {
  const std::vector<std::uint8_t>& b = m.bytes;
  if (agent_link() == nullptr || b.size() < 12 || m.source_rank < 0 || m.source_rank == rank_) return;
  const std::uint64_t nonce = get(b.data(), 8);
  const auto port = static_cast<std::uint16_t>(get(b.data() + 8, 2));
  const std::size_t path_len = get(b.data() + 10, 2);
  if (b.size() < 12 + path_len) return;
  // A task of this node: the node daemon links the two (kDirectAsk).
  if (std::string(b.begin() + 12, b.begin() + 12 + static_cast<std::ptrdiff_t>(path_len)) == socket_path_) return;
  for (std::size_t at = 12 + path_len; at + 4 <= b.size(); at += 4) {
    int fd = connect_tcp(static_cast<std::uint32_t>(get(b.data() + at, 4)), port);
    if (fd < 0) continue;
    no_delay(fd);
    std::vector<std::uint8_t> hello;
    put(hello, nonce, 8);
    put(hello, static_cast<std::uint32_t>(rank_), 4);
    if (::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size()) ||
        agent_link()(fd, 1) != 0) {
      ::close(fd);
      continue;
    }
    in_links_.push_back(InLink{fd, m.source_rank, {}, true, 0, 0, 0});
    return;
  }
}

// The receiver of an offer to dest_rank connected: its link out.
bool Task::accept_offer(int dest_rank) {
  auto it = offers_.find(dest_rank);
  if (it == offers_.end()) return false;
  Offer& o = it->second;
  if (o.taken < 0) {
    o.taken = ::accept4(o.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (o.taken < 0) {
      // Not yet; or no socket any more (an image carried it as an ended one).
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) close_offer(dest_rank);
      return false;
    }
    // Named at once: an image carries it as an ended socket.
    if (agent_link()(o.taken, 0) != 0) {
      ::close(o.taken);
      o.taken = -1;
      return false;
    }
  }
  // Its hello, without waiting for it: until it is there whole, messages
  // go the other way.
  const int fd = o.taken;
  std::uint8_t hello[kHello];
  ssize_t n = ::recv(fd, hello, kHello, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (n > 0 && static_cast<std::size_t>(n) < kHello) return false;
  if (n != static_cast<ssize_t>(kHello) || ::recv(fd, hello, kHello, MSG_DONTWAIT) != n ||
      get(hello, 8) != o.nonce || static_cast<int>(get(hello + 8, 4)) != dest_rank) {
    forget(fd);  // not the task it was offered to: the offer stays
    o.taken = -1;
    return false;
  }
  o.taken = -1;
  close_offer(dest_rank);
  no_delay(fd);
  out_links_[dest_rank] = OutLink{fd, true, true, {}, {}};
  return true;
}

void Task::close_offer(int dest_rank) {
  auto it = offers_.find(dest_rank);
  if (it == offers_.end()) return;
  forget(it->second.fd);
  forget(it->second.taken);
  offers_.erase(it);
}

// The receiver's acknowledgements on a TCP link out: what it has is dropped
// from what the link keeps. The link's end sends the rest the other way.
void Task::read_acks(int rank) {
  auto it = out_links_.find(rank);
  if (it == out_links_.end() || !it->second.tcp) return;
  OutLink& l = it->second;
  for (;;) {
    std::uint8_t chunk[256];
    ssize_t n = ::recv(l.fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      close_out(rank);
      ask_after_[rank] = sent_to_[rank];  // ask again with the next message
      return;
    }
    l.acks.insert(l.acks.end(), chunk, chunk + n);
  }
  std::size_t at = 0;
  std::uint64_t upto = 0;
  for (; at + 8 <= l.acks.size(); at += 8) upto = std::max(upto, get(l.acks.data() + at, 8));
  l.acks.erase(l.acks.begin(), l.acks.begin() + static_cast<std::ptrdiff_t>(at));
  while (!l.kept.empty() && l.kept.front().first < upto) l.kept.pop_front();
}

bool Task::ack(InLink& l, bool now) {
  if (l.unacked == 0 || (!now && l.unacked < kAckMessages && l.unacked_bytes < kAckBytes)) return true;
  std::vector<std::uint8_t> a;
  put(a, l.next, 8);
  // A link back with no room (its sender does not read it now) is tried
  // again later; one that took part of it is ended (the sender sends again).
  ssize_t n = ::send(l.fd, a.data(), a.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(a.size())) {
    l.unacked = 0;
    l.unacked_bytes = 0;
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

}  // namespace mosix::pvm
