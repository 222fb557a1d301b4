#include "runtime/daemon/guest_service.h"

#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>
#include <csignal>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/core/overloaded.h"
#include "runtime/sys/runtime_dir.h"
#include "runtime/sys/stale_sockets.h"

namespace mosix {

namespace asio = boost::asio;
using boost::system::error_code;

struct GuestService::Connection {
  explicit Connection(asio::io_context& io, int fd) : sd(io, fd) {}
  asio::posix::stream_descriptor sd;
  FrameReader reader;
  std::array<char, 1 << 16> buf{};
  std::deque<Frame> out;  // frames not yet written; out.front() is being written
  bool writing = false;
  bool closed = false;
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
                   attached_[attach.rank] = c;
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
                 [&](GuestMessage& m) {
                   if (c->rank < 0) return;
                   m.source_rank = c->rank;  // a guest speaks for itself only
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
                 [&](const auto&) {
                   spdlog::warn("{}: a guest sent {}: ignored", context_.node_name(),
                                message_type_name(message_type(message)));
                 },
             },
             message);
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
    waiting_[rank].push_back(encode_frame(message));
    return;
  }
  if (it->second->deputy && std::holds_alternative<GuestExited>(message)) it->second->body_ended = true;
  it->second->out.push_back(encode_frame(message));
  write(it->second);
}

void GuestService::write(const std::shared_ptr<Connection>& c) {
  if (c->writing || c->closed || c->out.empty()) return;
  c->writing = true;
  asio::async_write(c->sd, asio::buffer(c->out.front()), [this, c](error_code ec, size_t) {
    c->writing = false;
    if (ec) {
      close(c);
      return;
    }
    c->out.pop_front();
    write(c);
  });
}

void GuestService::close(const std::shared_ptr<Connection>& c) {
  if (c->closed) return;
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

}  // namespace mosix
