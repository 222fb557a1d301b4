// Forwarded sockets across a move (socket_forwarding.h): the source takes
// the stopped guest's real sockets or drains and detaches its relays; the
// target makes the guest's new ends (or lends back the real sockets it
// holds) and attaches them once the guest runs.
#include <cerrno>
#include <dirent.h>
#include <string_view>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/daemon/socket_forwarding.h"

namespace mosix {
namespace {

using boost::asio::posix::stream_descriptor;

SocketForward op(SocketOp o, int rank, std::uint64_t id) { return socket_op(o, rank, id); }

Expected<int> take_fd(pid_t pid, int fd) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return make_error(std::string("pidfd_open: ") + std::strerror(errno));
  int got = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  int err = errno;
  ::close(pidfd);
  if (got < 0) return make_error("cannot take its fd " + std::to_string(fd) + " (pidfd_getfd: " + std::strerror(err) + ")");
  ::fcntl(got, F_SETFD, FD_CLOEXEC);
  return got;
}

// What is queued to be read on the guest's end `fd` of a relay, taken out:
// the holder gives it back to whichever end the guest has next.
Expected<Bytes> take_unread(pid_t pid, int fd) {
  auto got = take_fd(pid, fd);
  if (!got) return got.error();
  Bytes all;
  for (;;) {
    std::size_t at = all.size();
    all.resize(at + (64u << 10));
    ssize_t n = ::recv(*got, all.data() + at, 64u << 10, MSG_DONTWAIT);
    all.resize(at + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
  }
  ::close(*got);
  return all;
}

int domain_of(int fd) {
  int v = 0;
  socklen_t len = sizeof v;
  return ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == 0 ? v : -1;
}

// Sends (id, descriptor) pairs over `channel`, 32 to a message (what
// mosix-restore --sockets takes).
bool send_fds(int channel, const std::vector<std::pair<std::uint64_t, int>>& fds) {
  for (std::size_t at = 0; at < fds.size(); at += 32) {
    std::size_t n = std::min<std::size_t>(32, fds.size() - at);
    std::uint8_t ids[8 * 32];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 32)] = {};
    for (std::size_t k = 0; k < n; ++k)
      for (std::size_t b = 0; b < 8; ++b) ids[k * 8 + b] = static_cast<std::uint8_t>(fds[at + k].first >> (8 * b));
    iovec iov{ids, 8 * n};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    for (std::size_t k = 0; k < n; ++k) std::memcpy(CMSG_DATA(c) + k * sizeof(int), &fds[at + k].second, sizeof(int));
    ssize_t r;
    do {
      r = ::sendmsg(channel, &m, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r != static_cast<ssize_t>(8 * n)) return false;
  }
  return true;
}

}  // namespace

// Whether the stopped guest `pid` has a socket open (its image may then
// forward some).
bool SocketForwarding::has_socket(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return true;  // cannot tell: the image says
  bool any = false;
  while (dirent* e = ::readdir(d)) {
    char link[64] = {};
    if (e->d_name[0] == '.') continue;
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), link, sizeof link - 1);
    if (n > 7 && std::string_view(link, 7) == "socket:") any = true;
  }
  ::closedir(d);
  return any;
}

Expected<std::vector<SocketForward>> SocketForwarding::leave(int rank, pid_t pid, std::uint64_t migration_id,
                                                              const std::vector<Record>& records) {
  std::vector<SocketForward> holders;
  std::vector<Key> taken;
  auto undo = [&] {
    for (const Key& k : taken) held_.erase(k);
  };
  // Real sockets the guest holds: this node holds them from now on.
  for (const Record& r : records) {
    const Key k{rank, r.id};
    SocketForward h = op(SocketOp::kHolder, rank, r.id);
    h.fd = r.fd;
    h.listening = r.listening;
    h.migration_id = migration_id;
    if (End* e = find(false, k)) {
      h.arg = static_cast<std::uint64_t>(e->peer);
      holders.push_back(std::move(h));
      continue;
    }
    auto fd = take_fd(pid, r.fd);
    if (fd && domain_of(*fd) == AF_UNIX) {
      // A relayed socket whose stream ended both ways (its relay finished)
      // and which the guest has not closed yet: it gets the same again,
      // with what it had not read.
      ::close(*fd);
      auto bytes = take_unread(pid, r.fd);
      if (!bytes) {
        undo();
        return bytes.error();
      }
      h.arg = kSocketEnded;
      h.bytes = std::move(*bytes);
      holders.push_back(std::move(h));
      continue;
    }
    if (fd && domain_of(*fd) != AF_INET && domain_of(*fd) != AF_INET6) {
      ::close(*fd);
      fd = make_error("its fd " + std::to_string(r.fd) + " is not the TCP socket its image forwards");
    }
    if (!fd || find(true, k) != nullptr) {
      if (fd) ::close(*fd);
      undo();
      return make_error(fd ? "its forwarded socket " + std::to_string(r.id) + " is held here already"
                           : fd.error().message);
    }
    End& e = held_[k];
    e.holder_side = true;
    e.listening = r.listening;
    e.sd = std::make_unique<stream_descriptor>(context_.io(), *fd);
    e.gen = next_gen_++;
    e.state = State::kDetached;
    taken.push_back(k);
    h.arg = static_cast<std::uint64_t>(context_.rank());
    holders.push_back(std::move(h));
  }
  // The guest's unread bytes, while nothing is detached yet.
  std::map<std::uint64_t, Bytes> unread;
  for (const Record& r : records) {
    End* e = find(false, {rank, r.id});
    if (e == nullptr || e->listening) continue;
    auto bytes = take_unread(pid, r.fd);
    if (!bytes) {
      undo();
      return bytes.error();
    }
    unread[r.id] = std::move(*bytes);
  }
  taken_[rank] = taken;
  // Relays here: drained and detached, each with what the guest had not read.
  for (auto& [k, e] : relays_) {
    if (k.first != rank || (e.state != State::kLive && e.state != State::kPending)) continue;
    bool kept = false;
    for (const Record& r : records) kept = kept || r.id == k.second;
    SocketForward d = op(SocketOp::kDetach, rank, k.second);
    bool was_eof = e.read_eof;
    if (!e.listening) d.bytes = drain(e);
    if (!e.listening && !e.acked) {
      d.arg = 1;  // never accepted: offered again to the guest's next listener
    } else if (!kept) {
      // The guest closed it: what it wrote goes on, then the end of it.
      SocketForward data = op(SocketOp::kData, rank, k.second);
      data.to_holder = true;
      data.bytes = std::move(d.bytes);
      if (!data.bytes.empty()) send(e.peer, std::move(data));
      if (!was_eof) {
        SocketForward eof = op(SocketOp::kEof, rank, k.second);
        eof.to_holder = true;
        send(e.peer, std::move(eof));
      }
      e.state = State::kDetached;
      e.drop_after = true;
      continue;
    }
    d.more = std::move(unread[k.second]);
    spdlog::debug("rank {}: forwarded socket {:x} detached: {} bytes on their way home, {} not read by it", rank,
                  k.second, d.bytes.size(), d.more.size() + (e.out.size() - e.out_off));
    d.more.insert(d.more.end(), e.out.begin() + static_cast<std::ptrdiff_t>(e.out_off), e.out.end());
    e.out.clear();
    e.out_off = 0;
    e.unacked = 0;  // a holder starts counting again at the next attach
    e.consumed = 0;
    e.state = State::kDetaching;
    send(e.peer, std::move(d));
    if (e.read_eof && !was_eof) {
      SocketForward eof = op(SocketOp::kEof, rank, k.second);
      eof.to_holder = true;
      send(e.peer, std::move(eof));
    }
  }
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (it->first.first == rank && it->second.state == State::kDetached && it->second.drop_after) {
      it = relays_.erase(it);
    } else {
      ++it;
    }
  }
  return holders;
}

void SocketForwarding::left(int rank) {
  taken_.erase(rank);
  for (auto it = relays_.begin(); it != relays_.end();) {
    End& e = it->second;
    if (it->first.first != rank) {
      ++it;
    } else if (e.state == State::kDetaching) {
      e.drop_after = true;  // once the holder says nothing more comes
      ++it;
    } else {
      it = relays_.erase(it);
    }
  }
}

void SocketForwarding::stayed(int rank) {
  // The real sockets stay the guest's: the copies taken go.
  if (auto t = taken_.find(rank); t != taken_.end()) {
    for (const Key& k : t->second) held_.erase(k);
    taken_.erase(t);
  }
  for (auto& [k, e] : relays_) {
    if (k.first != rank) continue;
    if (e.state == State::kDetaching) {
      e.reattach_after = true;
    } else if (e.state == State::kDetached) {
      e.state = State::kLive;
      send(e.peer, op(SocketOp::kAttach, k.first, k.second));
      pump_read(false, k);
    }
  }
}

void SocketForwarding::holder(const SocketForward& m) {
  Arrival& a = arrivals_[m.migration_id];
  a.rank = m.rank;
  a.holders.push_back(m);
}

void SocketForwarding::arrive(std::uint64_t migration_id, int rank, std::function<void(Expected<int>)> ready) {
  auto it = arrivals_.find(migration_id);
  if (it == arrivals_.end()) {
    ready(-1);
    return;
  }
  it->second.rank = rank;
  it->second.ready = std::move(ready);
  try_arrive(migration_id);
}

// Sockets held here come back when the last relay let them go.
void SocketForwarding::try_arrive(std::uint64_t migration_id) {
  auto it = arrivals_.find(migration_id);
  if (it == arrivals_.end() || !it->second.ready) return;
  Arrival& a = it->second;
  for (const SocketForward& h : a.holders) {
    if (static_cast<int>(h.arg) != context_.rank()) continue;
    End* e = find(true, {a.rank, h.id});
    if (e != nullptr && e->state == State::kDetaching) return;
  }
  auto ready = std::move(a.ready);
  a.ready = nullptr;
  Expected<int> channel = make_arrival(a);
  if (!channel) arrivals_.erase(migration_id);
  ready(std::move(channel));
}

Expected<int> SocketForwarding::make_arrival(Arrival& a) {
  std::vector<std::pair<std::uint64_t, int>> fds;
  auto close_all = [&] {
    for (auto& [id, fd] : fds) ::close(fd);
  };
  for (const SocketForward& h : a.holders) {
    const Key k{a.rank, h.id};
    if (h.arg == kSocketEnded) {
      // Its stream ended: what it had not read, then the end of it.
      int ends[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
        close_all();
        return make_error(std::string("socketpair: ") + std::strerror(errno));
      }
      int big = static_cast<int>(std::min<std::size_t>(h.bytes.size() + (64u << 10), 64u << 20));
      ::setsockopt(ends[1], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
      ::setsockopt(ends[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
      std::size_t at = 0;
      while (at < h.bytes.size()) {
        ssize_t n = ::send(ends[0], h.bytes.data() + at, h.bytes.size() - at, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<std::size_t>(n);
      }
      ::close(ends[0]);
      if (at < h.bytes.size()) {
        ::close(ends[1]);
        close_all();
        return make_error("cannot queue what fd " + std::to_string(h.fd) + " had not read");
      }
      ::shutdown(ends[1], SHUT_WR);
      fds.emplace_back(h.id, ends[1]);
      continue;
    }
    if (static_cast<int>(h.arg) == context_.rank()) {
      End* e = find(true, k);
      if (e == nullptr) {
        close_all();
        return make_error("its forwarded socket on fd " + std::to_string(h.fd) + " is no longer held here");
      }
      bool clients_waiting = false;
      for (auto& [ck, c] : held_) clients_waiting = clients_waiting || (ck.first == a.rank && c.parent == h.id && c.unaccepted);
      // Its own socket again, when nothing of its stream is on the way.
      if (e->state == State::kDetached && e->prefix.empty() && e->out_off == e->out.size() && !clients_waiting &&
          !e->read_eof && !e->shut) {
        int fd = ::fcntl(e->sd->native_handle(), F_DUPFD_CLOEXEC, 3);
        if (fd >= 0) {
          e->state = State::kLent;
          a.lent.push_back(k);
          fds.emplace_back(h.id, fd);
          continue;
        }
      }
    }
    End& r = relays_[k];
    r = End{};
    r.listening = h.listening;
    r.peer = static_cast<int>(h.arg);
    r.gen = next_gen_++;
    r.state = State::kPending;
    int guest = -1;
    if (h.listening) {
      guest = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un un{};
      un.sun_family = AF_UNIX;
      socklen_t len = sizeof un;
      // A bound wait for the agent's accept, which holds its signals while
      // it takes a client another thread may have taken (forwarded.cpp).
      timeval wait{0, 100 * 1000};
      if (guest >= 0) ::setsockopt(guest, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
      if (guest < 0 || ::bind(guest, reinterpret_cast<sockaddr*>(&un), sizeof(sa_family_t)) != 0 ||
          ::listen(guest, SOMAXCONN) != 0 || ::getsockname(guest, reinterpret_cast<sockaddr*>(&un), &len) != 0) {
        if (guest >= 0) ::close(guest);
        guest = -1;
      } else {
        const auto* p = reinterpret_cast<const char*>(&un);
        r.listener.assign(p, p + len);
      }
    } else {
      int ends[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) == 0) {
        r.sd = std::make_unique<stream_descriptor>(context_.io(), ends[0]);
        guest = ends[1];
        struct stat st {};
        if (::fstat(guest, &st) == 0) r.guest_ino = st.st_ino;
      }
    }
    if (guest < 0) {
      relays_.erase(k);
      close_all();
      return make_error(std::string("cannot make a relayed socket: ") + std::strerror(errno));
    }
    a.relays.push_back(k);
    fds.emplace_back(h.id, guest);
  }
  if (fds.empty()) return -1;
  int channel[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
    close_all();
    return make_error(std::string("socketpair: ") + std::strerror(errno));
  }
  int sndbuf = 1 << 20;
  ::setsockopt(channel[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  bool sent = send_fds(channel[0], fds);
  int err = errno;
  close_all();
  ::close(channel[0]);
  if (!sent) {
    ::close(channel[1]);
    return make_error(std::string("cannot pass the forwarded sockets to the restorer: ") + std::strerror(err));
  }
  return channel[1];
}

void SocketForwarding::arrived(std::uint64_t migration_id, int rank, pid_t pid) {
  auto it = arrivals_.find(migration_id);
  if (it == arrivals_.end()) return;
  for (const Key& k : it->second.lent) held_.erase(k);  // the guest has it now
  for (const Key& k : it->second.relays) {
    End* e = find(false, k);
    if (e == nullptr || e->state != State::kPending) continue;
    e->state = State::kLive;
    e->guest = pid;
    SocketForward a = op(SocketOp::kAttach, k.first, k.second);
    a.arg = 1;
    send(e->peer, std::move(a));
    pump_read(false, k);
  }
  spdlog::debug("rank {}: {} forwarded sockets relayed here, {} its own again", rank, it->second.relays.size(),
                it->second.lent.size());
  arrivals_.erase(it);
}

void SocketForwarding::not_arrived(std::uint64_t migration_id, int rank) {
  auto it = arrivals_.find(migration_id);
  if (it == arrivals_.end()) return;
  for (const Key& k : it->second.lent)
    if (End* e = find(true, k)) e->state = State::kDetached;
  for (const Key& k : it->second.relays) relays_.erase(k);
  (void)rank;
  arrivals_.erase(it);
}

void SocketForwarding::node_lost(int node) {
  // The guest's ends of what it held read as reset; clients of a relay that
  // is gone are closed.
  std::vector<Key> gone;
  for (auto& [k, e] : relays_)
    if (e.peer == node) gone.push_back(k);
  for (const Key& k : gone) reset(k);
  for (auto it = held_.begin(); it != held_.end();) it = it->second.peer == node ? held_.erase(it) : std::next(it);
  options_lost(node);
}

// Its listeners relayed here: the holder closes the real ones (the port is
// free, clients are refused). Its connections drain as they would: the
// guest's ends are closed, so their relays read what it wrote, then the end.
void SocketForwarding::forget(int rank) {
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (it->first.first != rank || !it->second.listening) {
      ++it;
      continue;
    }
    SocketForward c = op(SocketOp::kClose, rank, it->first.second);
    c.to_holder = true;
    send(it->second.peer, std::move(c));
    it = relays_.erase(it);
  }
}

}  // namespace mosix
