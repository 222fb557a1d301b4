// The target's early restorer (runtime/ckpt/early_protocol.h): started as
// the arriving guest with the first pre-copied pages, it takes each round's
// pages into place while the guest still runs at the source, so that the
// restore after the stop copies only the last round's. Any trouble with it
// (it cannot start, it dies, its socket stays full) lets it go: the restore
// then starts a restorer after the stop, as without an early start.
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/daemon/migration.h"
#include "runtime/daemon/migration_internal.h"

namespace mosix {

namespace asio = boost::asio;
using migration_internal::memfd_path;

void Migrations::start_early(Incoming& in) {
  in.early_tried = true;
  if (!early_start_ || in.pages < 0 || guests_.find(in.request.rank) != nullptr) return;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) return;
  // The restorer's end blocks: it waits for each word.
  ::fcntl(sv[1], F_SETFL, ::fcntl(sv[1], F_GETFL) & ~O_NONBLOCK);
  GuestStart start;
  start.launch.rank = in.request.rank;
  start.launch.path = restorer_path();
  start.launch.argv = {"mosix-restore", "--early", std::to_string(sv[1]), "--pages", memfd_path(in.pages)};
  start.launch.pass_fd = sv[1];
  start.launch.env = {"PATH=/usr/bin:/bin"};
  start.flags = in.request.flags;
  start.phase = GuestPhase::kIncoming;
  start.work_before = in.request.work_done;
  auto started = guests_.start_local_guest(std::move(start));
  ::close(sv[1]);
  if (!started) {
    ::close(sv[0]);
    spdlog::debug("{}: no early restorer for rank {}: {}", context_.node_name(), in.request.rank,
                  started.error().message);
    return;
  }
  in.guest = *started;
  in.guest->stdin_held = true;  // what the source had not read goes first (early_go)
  in.early = std::make_unique<asio::posix::stream_descriptor>(context_.io(), sv[0]);
  for (const auto& [address, length] : in.hugepage) early_word(in, ckpt::EarlyOp::kHugepage, address, length);
  read_early(in.request.migration_id);
}

// The restorer's answers: how much of the pre-copy it has taken, for the
// source (PrecopyTaken). Its end of the socket closing before the go means
// it is gone.
void Migrations::read_early(std::uint64_t id) {
  auto it = incoming_.find(id);
  if (it == incoming_.end() || !it->second->early) return;
  Incoming& in = *it->second;
  in.early->async_read_some(
      asio::buffer(&in.early_answer, sizeof in.early_answer), [this, id](boost::system::error_code ec, std::size_t n) {
        auto again = incoming_.find(id);
        if (ec == asio::error::operation_aborted || again == incoming_.end() || !again->second->early) return;
        Incoming& in = *again->second;
        if (ec || n != sizeof in.early_answer || in.early_answer.op != ckpt::EarlyOp::kTaken) {
          spdlog::debug("{}: the early restorer of rank {} is gone", context_.node_name(), in.request.rank);
          drop_early(in);
          return;
        }
        context_.send(in.source, PrecopyTaken{id, in.early_answer.length});
        read_early(id);
      });
}

void Migrations::early_word(Incoming& in, ckpt::EarlyOp op, std::uint64_t address, std::uint64_t length) {
  if (!in.early) return;
  // Pages come in address order within a round: a word for the range right
  // after the last one waiting extends it.
  if (!in.early_words.empty()) {
    ckpt::EarlyCommand& last = in.early_words.back();
    if (last.op == op && op != ckpt::EarlyOp::kGo && last.address + last.length == address) {
      last.length += length;
      return;
    }
  }
  in.early_words.push_back(ckpt::EarlyCommand{op, 0, address, length});
  flush_early(in.request.migration_id);
}

void Migrations::flush_early(std::uint64_t id) {
  auto it = incoming_.find(id);
  if (it == incoming_.end() || !it->second->early || it->second->early_waiting) return;
  Incoming& in = *it->second;
  const int fd = in.early->native_handle();
  while (!in.early_words.empty()) {
    const ckpt::EarlyCommand& c = in.early_words.front();
    iovec iov{const_cast<ckpt::EarlyCommand*>(&c), sizeof c};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    int fds[2] = {in.memfd, in.go_sockets};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)];
    if (c.op == ckpt::EarlyOp::kGo) {
      const std::size_t n = in.go_sockets >= 0 ? 2 : 1;
      m.msg_control = control;
      m.msg_controllen = CMSG_SPACE(n * sizeof(int));
      cmsghdr* h = CMSG_FIRSTHDR(&m);
      h->cmsg_level = SOL_SOCKET;
      h->cmsg_type = SCM_RIGHTS;
      h->cmsg_len = CMSG_LEN(n * sizeof(int));
      std::memcpy(CMSG_DATA(h), fds, n * sizeof(int));
    }
    ssize_t w = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      in.early_waiting = true;
      in.early->async_wait(asio::posix::stream_descriptor::wait_write, [this, id](boost::system::error_code ec) {
        auto again = incoming_.find(id);
        if (ec || again == incoming_.end()) return;
        again->second->early_waiting = false;
        flush_early(id);
      });
      return;
    }
    if (w != static_cast<ssize_t>(sizeof c)) {
      // The restorer is gone (it refused, or was killed).
      spdlog::debug("{}: the early restorer of rank {} is gone: {}", context_.node_name(), in.request.rank,
                    w < 0 ? std::strerror(errno) : "a short write");
      const bool was_go = c.op == ckpt::EarlyOp::kGo;
      const int sockets = in.go_sockets;
      in.go_sockets = -1;
      drop_early(in);
      if (was_go) launch_restorer(id, sockets);
      return;
    }
    const bool go = c.op == ckpt::EarlyOp::kGo;
    in.early_words.pop_front();
    if (go) {
      in.early.reset();  // the restorer has the image now
      if (in.go_sockets >= 0) ::close(in.go_sockets);
      in.go_sockets = -1;
      // The stdin the guest had not read at the source goes before any that
      // came here since (held until now).
      LocalGuest& g = *in.guest;
      if (in.stdin_left.empty()) in.stdin_left.push_back(GuestStdin{g.rank, {}, false});
      for (auto left = in.stdin_left.rbegin(); left != in.stdin_left.rend(); ++left) {
        if (left->eof) g.stdin_eof = true;
        guests_.give_back_stdin(g, std::move(*left));
      }
      in.stdin_left.clear();
      in.early_bytes = in.precopied;
      restorer_started(id);
      return;
    }
  }
}

void Migrations::drop_early(Incoming& in) {
  const bool had = in.early != nullptr;
  in.early.reset();
  in.early_words.clear();
  in.early_waiting = false;
  if (in.guest != nullptr) {
    if (in.guest->running) ::kill(-in.guest->proc.pid, SIGKILL);
    guests_.retire(in.request.rank);
    in.guest = nullptr;
  }
  // What is stored counts as taken from now on (precopy_pages).
  if (had && !in.going) context_.send(in.source, PrecopyTaken{in.request.migration_id, in.precopied});
}

// The image is complete: the early restorer gets it (and the forwarded
// sockets' socket) after every word before it. False when there is no
// early restorer (any more): the caller starts one after the stop.
bool Migrations::early_go(Incoming& in, int sockets) {
  if (!in.early || in.guest == nullptr || !in.guest->running) {
    drop_early(in);
    return false;
  }
  in.go_sockets = sockets;
  in.early_words.push_back(ckpt::EarlyCommand{ckpt::EarlyOp::kGo, 0, 0, sockets >= 0 ? 1u : 0u});
  flush_early(in.request.migration_id);
  return true;
}

}  // namespace mosix
