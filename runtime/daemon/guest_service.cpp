#include "runtime/daemon/guest_service.h"

#include <spdlog/spdlog.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/core/overloaded.h"
#include "runtime/sys/runtime_dir.h"
#include "runtime/sys/stale_sockets.h"

namespace mosix {

namespace asio = boost::asio;
using boost::system::error_code;

struct GuestService::Connection {
  explicit Connection(asio::io_context& io, int fd) : sd(io, fd) {}
  ~Connection() { drop_ends(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  void drop_ends() {
    for (auto& [index, fd] : ends) ::close(fd);
    ends.clear();
  }
  asio::posix::stream_descriptor sd;
  FrameReader reader;
  std::array<char, 1 << 16> buf{};
  std::deque<Frame> out;  // frames not yet written; out.front() is being written
  std::size_t out_done = 0;    // of out.front(), the bytes written
  std::uint64_t popped = 0;    // frames of out written whole so far: out.front() is frame `popped`
  std::map<std::uint64_t, int> ends;  // a direct link's end to write with frame N (link_directly)
  bool waiting_write = false;  // for room in the socket to write more
  bool closed = false;
  int link_fd = -1;            // its descriptor number in the guest (GuestAttach)
  bool frozen = false;         // its guest is stopped for a move: nothing is written (detach)
  std::size_t in_front = 0;    // frozen: the frames of out that went with the move
  bool gone = false;           // its guest moved away: read until its end, never written
  std::int32_t rank = -1;  // once attached
  bool deputy = false;     // a deputy (compat/deputy): it asked for a body, `rank` is the body's
  bool body_ended = false; // its body's GuestExited went to it
};

namespace {
// Request ids of deputies' GuestSpawn: the top bit tells their replies from
// guests' own.
constexpr std::uint64_t kDeputyRequestBit = 1ull << 63;
}  // namespace

GuestService::GuestService(DaemonContext& context) : context_(context) {}

GuestService::~GuestService() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

Status GuestService::start() {
  auto dir = sys::runtime_dir();
  if (!dir) return dir.error();
  if (int n = sys::remove_stale_sockets(*dir); n > 0) {
    spdlog::debug("{}: removed {} sockets of jobs that were killed", context_.node_name(), n);
  }
  std::string job = context_.options().job_id.empty() ? std::to_string(::getpid()) : context_.options().job_id;
  std::string path = *dir + "/guests-" + job + "-" + std::to_string(context_.rank()) + ".sock";
  ::unlink(path.c_str());
  auto fd = listen_unix(path);
  if (!fd) return fd.error();
  path_ = path;
  listener_ = std::make_unique<asio::posix::stream_descriptor>(context_.io(), *fd);
  accept_next();
  return {};
}

void GuestService::accept_next() {
  listener_->async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    if (ec || context_.shutting_down()) return;
    int fd = ::accept4(listener_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      auto uid = peer_uid(fd);
      if (!uid || *uid != ::getuid()) {
        ::close(fd);  // only the job's owner's processes
      } else {
        auto c = std::make_shared<Connection>(context_.io(), fd);
        read(c);
      }
    }
    accept_next();
  });
}

void GuestService::read(const std::shared_ptr<Connection>& c) {
  c->sd.async_read_some(asio::buffer(c->buf), [this, c](error_code ec, size_t n) {
    if (ec || c->closed) {
      close(c);
      return;
    }
    auto messages = c->reader.feed(c->buf.data(), n);
    if (!messages) {
      spdlog::warn("{}: a guest's socket spoke garbage: {}", context_.node_name(), messages.error().message);
      close(c);
      return;
    }
    for (Message& m : *messages) from_guest(c, std::move(m));
    read(c);
  });
}

void GuestService::from_guest(const std::shared_ptr<Connection>& c, Message message) {
  std::visit(Overloaded{
                 [&](const GuestAttach& attach) {
                   if (c->rank >= 0) return;
                   c->rank = attach.rank;
                   c->link_fd = attach.link_fd;
                   // Its link before (shut for reading by a checkpoint, or
                   // closed): what it had not been given goes first here.
                   if (auto old = attached_.find(attach.rank);
                       old != attached_.end() && !old->second->deputy && !old->second->frozen) {
                     stopped_reading(old->second);
                   }
                   attached_[attach.rank] = c;
                   moved_.erase(attach.rank);
                   arriving_.erase(attach.rank);
                   auto it = waiting_.find(attach.rank);
                   if (it != waiting_.end()) {
                     for (Frame& f : it->second) c->out.push_back(std::move(f));
                     waiting_.erase(it);
                     write(c);
                   }
                 },
                 [&](GuestSpawn& spawn) {
                   if (spawn.flags & kGuestSpawnDeputy) {
                     // A deputy, before any attach: its parent_rank is the
                     // rank its family descends from, as it says.
                     if (c->rank >= 0 || c->deputy) return;
                     c->deputy = true;
                     spawn.count = 1;
                     spawn.request_id = kDeputyRequestBit | next_deputy_request_++;
                     asking_deputies_[spawn.request_id] = c;
                     context_.send(0, spawn);
                     return;
                   }
                   if (c->rank < 0) return;
                   spawn.parent_rank = c->rank;
                   context_.send(0, spawn);
                 },
                 [&](GuestStdin& in) {
                   if (!c->deputy || c->rank < 0) return;
                   in.rank = c->rank;
                   if (deputy_route_) deputy_route_(in);
                 },
                 [&](GuestSignal& sig) {
                   if (!c->deputy || c->rank < 0) return;
                   sig.rank = c->rank;
                   sig.not_before_cpu_us = 0;
                   if (deputy_route_) deputy_route_(sig);
                 },
                 [&](OutputCredit& credit) {
                   if (!c->deputy || c->rank < 0) return;
                   credit.rank = c->rank;
                   if (deputy_route_) deputy_route_(credit);
                 },
                 [&](HomeKill& k) {
                   if (!k.answered) {
                     // A body's agent asks on a connection of its own; the
                     // home finds the rank's deputy.
                     if (c->deputy) return;
                     k.request_id = next_kill_++;
                     k.asker_node = context_.rank();
                     killers_[k.request_id] = c;
                     context_.send(0, k);
                   } else if (c->deputy && c->rank == k.rank) {  // a deputy answers for its own body only
                     answer_kill(k, k.error);
                   }
                 },
                 [&](GuestMessage& m) {
                   if (c->rank < 0) return;
                   m.source_rank = c->rank;  // a guest speaks for itself only
                   if (m.kind == kDirectAsk) {
                     link_directly(c, m.dest_rank);
                     return;
                   }
                   // To a guest attached here: straight to it. Otherwise through
                   // the home, which knows where every rank runs. The two routes
                   // may overtake each other: a receiver that needs order per
                   // sender numbers its messages (compat/pvm does).
                   if (m.dest_rank != kFromHome && attached_.count(m.dest_rank)) {
                     deliver(m, m.dest_rank);
                   } else {
                     context_.send(0, m);
                   }
                 },
                 [&](SocketForward& m) {
                   // A socket option of a forwarded socket, asked by the agent
                   // on a connection of its own (compat/agent/forwarded_options.cpp).
                   if (c->rank >= 0 || c->deputy || !socket_option_route_ ||
                       m.op != static_cast<std::uint32_t>(SocketOp::kOption)) {
                     return;
                   }
                   socket_option_route_(std::move(m), [this, c](const SocketForward& reply) {
                     if (c->closed) return;
                     c->out.push_back(encode_frame(reply));
                     write(c);
                   });
                 },
                 [&](const auto&) {
                   spdlog::warn("{}: a guest sent {}: ignored", context_.node_name(),
                                message_type_name(message_type(message)));
                 },
             },
             message);
}

void GuestService::home_kill(const HomeKill& kill, int deputy_node) {
  if (deputy_node < 0) {
    answer_kill(kill, ESRCH);
  } else if (deputy_node == context_.rank()) {
    kill_asked(kill);
  } else {
    context_.send(deputy_node, kill);
  }
}

void GuestService::kill_asked(const HomeKill& kill) {
  auto it = attached_.find(kill.rank);
  if (it == attached_.end() || !it->second->deputy || it->second->closed || it->second->body_ended) {
    answer_kill(kill, ESRCH);
    return;
  }
  it->second->out.push_back(encode_frame(kill));
  write(it->second);
}

void GuestService::answer_kill(HomeKill kill, int error) {
  kill.answered = true;
  kill.error = error;
  if (kill.asker_node == context_.rank()) {
    kill_answered(kill);
  } else {
    context_.send(kill.asker_node, kill);
  }
}

void GuestService::kill_answered(const HomeKill& kill) {
  auto it = killers_.find(kill.request_id);
  if (it == killers_.end()) return;
  std::shared_ptr<Connection> c = it->second.lock();
  killers_.erase(it);
  if (c == nullptr || c->closed) return;
  c->out.push_back(encode_frame(kill));
  write(c);
}

void GuestService::spawn_answered(const GuestSpawnReply& reply) {
  if (!(reply.request_id & kDeputyRequestBit)) {
    deliver(reply, reply.parent_rank);
    return;
  }
  auto asked = asking_deputies_.find(reply.request_id);
  if (asked == asking_deputies_.end()) return;
  std::shared_ptr<Connection> c = std::move(asked->second);
  asking_deputies_.erase(asked);
  if (reply.status == 0 && reply.ranks.size() == 1) {
    c->rank = reply.ranks[0];
    if (c->closed) {
      // The deputy died while it asked: its body goes too, and nothing
      // waits for it here any more.
      if (deputy_route_) deputy_route_(GuestSignal{c->rank, SIGKILL, 0});
      waiting_.erase(c->rank);
      return;
    }
    attached_[c->rank] = c;
  }
  c->out.push_back(encode_frame(reply));
  // What the body sent before this reply came back (on the home node the
  // reply takes the transport's loop, the body's end may not): after it.
  if (auto it = c->rank >= 0 ? waiting_.find(c->rank) : waiting_.end(); it != waiting_.end()) {
    for (Frame& f : it->second) c->out.push_back(std::move(f));
    waiting_.erase(it);
  }
  write(c);
}

void GuestService::deliver(const Message& message, std::int32_t rank) {
  auto it = attached_.find(rank);
  if (it == attached_.end()) {
    append_to_link(rank, encode_frame(message));
    return;
  }
  if (it->second->deputy && std::holds_alternative<GuestExited>(message)) it->second->body_ended = true;
  it->second->out.push_back(encode_frame(message));
  write(it->second);
}

// Written here and now until the socket is full, then again once it has
// room: at any moment the daemon knows exactly what reached the guest's
// socket (out_done), which a move needs (detach).
void GuestService::write(const std::shared_ptr<Connection>& conn) {
  // A copy: `conn` may be the table's own entry (attached_), which
  // stopped_reading() and close() erase while this still uses it.
  const std::shared_ptr<Connection> c = conn;
  if (c->waiting_write || c->closed || c->frozen || c->gone) return;
  while (!c->out.empty()) {
    const Frame& f = c->out.front();
    auto end = c->out_done == 0 ? c->ends.find(c->popped) : c->ends.end();
    ssize_t n = end != c->ends.end() ? send_with_end(c->sd.native_handle(), f, end->second)
                                     : ::send(c->sd.native_handle(), f.data() + c->out_done, f.size() - c->out_done,
                                              MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0 && end != c->ends.end()) {
      ::close(end->second);
      c->ends.erase(end);
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->waiting_write = true;
      c->sd.async_wait(asio::posix::stream_descriptor::wait_write, [this, c](error_code ec) {
        c->waiting_write = false;
        if (ec) {
          close(c);
          return;
        }
        write(c);
      });
      return;
    }
    if (n < 0 && errno == EPIPE && c->rank >= 0 && !c->deputy) {
      stopped_reading(c);
      return;
    }
    if (n <= 0) {
      close(c);
      return;
    }
    c->out_done += static_cast<std::size_t>(n);
    if (c->out_done == f.size()) {
      c->out.pop_front();
      ++c->popped;
      c->out_done = 0;
    }
  }
}

// Two guests of this node get a one-way link of their own (kDirectAsk,
// core/protocol_guest_service.h) when both are attached here. Each end goes
// with its frame, after what was queued for that guest before. If one frame
// does not get there (its guest moves or ends first), the other side sees the
// link's end and both go on through this daemon.
void GuestService::link_directly(const std::shared_ptr<Connection>& from, std::int32_t rank) {
  auto it = attached_.find(rank);
  if (it == attached_.end() || rank == from->rank) return;
  const std::shared_ptr<Connection> to = it->second;
  auto writable = [](const Connection& c) { return !c.deputy && !c.closed && !c.frozen && !c.gone; };
  if (!writable(*from) || !writable(*to)) return;
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return;
  pass_end(from, GuestMessage{rank, from->rank, kDirectOut, 0, {}}, ends[0]);
  pass_end(to, GuestMessage{from->rank, rank, kDirectIn, 0, {}}, ends[1]);
}

void GuestService::pass_end(const std::shared_ptr<Connection>& c, GuestMessage m, int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return;
  }
  for (int i = 0; i < 8; ++i) m.bytes.push_back(static_cast<std::uint8_t>(st.st_ino >> (8 * i)));
  c->ends[c->popped + c->out.size()] = fd;
  c->out.push_back(encode_frame(m));
  write(c);
}

// The first bytes of `f` with `fd` (SCM_RIGHTS): what send() returns.
ssize_t GuestService::send_with_end(int sock, const Frame& f, int fd) {
  iovec iov{const_cast<std::uint8_t*>(f.data()), f.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void GuestService::close(const std::shared_ptr<Connection>& c) {
  if (c->closed) return;
  // What was not written to a task waits for its next attach (a restart of
  // its image), as when it stopped reading.
  if (c->rank >= 0 && !c->deputy && !c->gone && !c->frozen) stopped_reading(c);
  c->closed = true;
  error_code ignored;
  c->sd.close(ignored);
  if (c->rank >= 0) {
    auto it = attached_.find(c->rank);
    if (it != attached_.end() && it->second == c) attached_.erase(it);
    // A deputy gone before its body ended (killed by SIGKILL): the body
    // must not outlive the pid its parent knows.
    if (c->deputy && !c->body_ended && deputy_route_) deputy_route_(GuestSignal{c->rank, SIGKILL, 0});
  }
}

// A guest's link across a move. The guest is stopped; its library holds in
// its memory (which moves) every byte it read, and the start of a frame it
// read part of. What it had not read is in its socket's queue and in `out`:
// both go with the move (kLinkFront), in order, and the library's partial
// frame goes on with them on the next node. Taken from the queue with a
// peek, so a move that fails leaves the link as it was.
// A rank that is not attached (its link was shut by an image to a file, or
// it has not attached yet) takes what waits here for it instead.
Expected<std::optional<Bytes>> GuestService::detach(std::int32_t rank, pid_t pid) {
  auto it = attached_.find(rank);
  if (it == attached_.end()) {
    auto w = waiting_.find(rank);
    if (w == waiting_.end() || w->second.empty() || arriving_.count(rank)) return std::optional<Bytes>{};
    Bytes front;
    for (const Frame& f : w->second) front.insert(front.end(), f.begin(), f.end());
    detached_waiting_[rank] = w->second.size();
    return std::optional<Bytes>{std::move(front)};
  }
  if (it->second->deputy || it->second->closed || it->second->gone) return std::optional<Bytes>{};
  Connection& c = *it->second;
  const std::string who = "rank " + std::to_string(rank) + "'s link to its node daemon";
  if (c.link_fd < 0) return make_error(who + ": its descriptor number is not known");
  c.frozen = true;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  int fd = pidfd < 0 ? -1 : static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, c.link_fd, 0));
  const int err = errno;
  if (pidfd >= 0) ::close(pidfd);
  if (fd < 0) {
    stay(rank);
    return make_error(who + ": cannot take fd " + std::to_string(c.link_fd) + " (" + std::strerror(err) + ")");
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  int queued = 0;
  Bytes front;
  bool ok = ::ioctl(fd, SIOCINQ, &queued) == 0 && queued >= 0;
  if (ok && queued > 0) {
    // A frame that came with a descriptor (a direct link's end, link_directly)
    // ends a peek: peeked on from where the last one ended (SO_PEEK_OFF), the
    // descriptors closed (the move takes the bytes, not them: the library
    // drops a link whose end it lacks).
    front.resize(static_cast<std::size_t>(queued));
    int off = 0;
    ok = ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) == 0;
    std::size_t got = 0;
    while (ok && got < front.size()) {
      iovec iov{front.data() + got, front.size() - got};
      alignas(cmsghdr) char control[CMSG_SPACE(16 * sizeof(int))];
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = control;
      m.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0 && errno == EINTR) continue;
      for (cmsghdr* cm = CMSG_FIRSTHDR(&m); cm != nullptr; cm = CMSG_NXTHDR(&m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        for (std::size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
          int passed = -1;
          std::memcpy(&passed, CMSG_DATA(cm) + i * sizeof(int), sizeof passed);
          ::close(passed);
        }
      }
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    off = -1;
    ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);  // the guest's socket: as it was
    ok = ok && got == front.size();
  }
  ::close(fd);
  if (!ok) {
    stay(rank);
    return make_error(who + ": what it had not read could not be taken");
  }
  for (std::size_t i = 0; i < c.out.size(); ++i) {
    const Frame& f = c.out[i];
    front.insert(front.end(), f.begin() + static_cast<std::ptrdiff_t>(i == 0 ? c.out_done : 0), f.end());
  }
  c.in_front = c.out.size();
  return std::optional<Bytes>{std::move(front)};
}

// The guest shut its link for reading: a checkpoint to a file took what was
// queued on it (compat/agent/runtime_link.cpp), or the guest is gone. What
// was not written waits, first, for the rank's next attach (the task attaches
// again once it has read the rest of this link), with whatever comes for it
// meanwhile; the connection is read until its end.
void GuestService::stopped_reading(const std::shared_ptr<Connection>& conn) {
  const std::shared_ptr<Connection> c = conn;  // erased from attached_ below
  Frame rest;
  for (std::size_t i = 0; i < c->out.size(); ++i) {
    const Frame& f = c->out[i];
    rest.insert(rest.end(), f.begin() + static_cast<std::ptrdiff_t>(i == 0 ? c->out_done : 0), f.end());
  }
  c->out.clear();
  c->out_done = 0;
  c->drop_ends();
  c->gone = true;
  auto it = attached_.find(c->rank);
  if (it != attached_.end() && it->second == c) attached_.erase(it);
  if (!rest.empty()) waiting_[c->rank].push_front(std::move(rest));
}

void GuestService::stay(std::int32_t rank) {
  detached_waiting_.erase(rank);
  auto it = attached_.find(rank);
  if (it == attached_.end() || !it->second->frozen) return;
  it->second->frozen = false;
  it->second->in_front = 0;
  write(it->second);
}

void GuestService::moved(std::int32_t rank, int node) {
  moved_[rank] = node;
  if (auto d = detached_waiting_.find(rank); d != detached_waiting_.end()) {
    // What waited here went with it; what came since detach follows.
    Bytes after;
    if (auto w = waiting_.find(rank); w != waiting_.end()) {
      for (std::size_t i = d->second; i < w->second.size(); ++i) {
        after.insert(after.end(), w->second[i].begin(), w->second[i].end());
      }
      waiting_.erase(w);
    }
    detached_waiting_.erase(d);
    if (!after.empty()) send_link(node, rank, kLinkAfter, std::move(after));
  }
  auto it = attached_.find(rank);
  if (it == attached_.end() || !it->second->frozen) return;
  std::shared_ptr<Connection> c = it->second;
  attached_.erase(it);
  c->gone = true;  // what the guest wrote before it stopped is still read and routed
  Bytes after;
  for (std::size_t i = c->in_front; i < c->out.size(); ++i) after.insert(after.end(), c->out[i].begin(), c->out[i].end());
  c->out.clear();
  c->drop_ends();
  if (!after.empty()) send_link(node, rank, kLinkAfter, std::move(after));
}

void GuestService::not_arrived(std::int32_t rank) {
  if (arriving_.erase(rank) != 0) waiting_.erase(rank);
}

void GuestService::link_bytes(std::int32_t rank, std::uint32_t kind, Bytes bytes) {
  if (kind == kLinkFront) {
    // It is on its way here: nothing that waited for it before (a move
    // here that failed) comes before what it had not read.
    arriving_.insert(rank);
    auto& w = waiting_[rank];
    w.clear();
    if (!bytes.empty()) w.push_back(std::move(bytes));
    return;
  }
  auto it = attached_.find(rank);
  if (it != attached_.end() && !it->second->gone) {
    it->second->out.push_back(std::move(bytes));
    write(it->second);
  } else {
    append_to_link(rank, std::move(bytes));
  }
}

void GuestService::append_to_link(std::int32_t rank, Frame bytes) {
  if (!arriving_.count(rank)) {
    if (auto m = moved_.find(rank); m != moved_.end()) {
      send_link(m->second, rank, kLinkAfter, std::move(bytes));
      return;
    }
  }
  waiting_[rank].push_back(std::move(bytes));
}

void GuestService::send_link(int node, std::int32_t rank, std::uint32_t kind, Bytes bytes) {
  if (node == context_.rank()) {
    link_bytes(rank, kind, std::move(bytes));
  } else {
    context_.send(node, GuestMessage{kLinkBytes, rank, kind, 0, std::move(bytes)});
  }
}

}  // namespace mosix
