// Socket options of a relayed socket (socket_forwarding.h,
// compat/agent/forwarded_options.cpp): a guest's setsockopt or getsockopt
// on a relayed socket is performed at once on the real socket by its
// holder, and the guest gets the holder's errno and value.
#include <algorithm>
#include <cerrno>
#include <sys/socket.h>

#include "runtime/daemon/socket_forwarding.h"

namespace mosix {
namespace {

constexpr std::size_t kMaxOptionValue = 1024;

SocketForward answer(const SocketForward& asked, int err) {
  SocketForward r = socket_op(SocketOp::kOptionReply, asked.rank, asked.id);
  r.migration_id = asked.migration_id;
  r.arg = static_cast<std::uint64_t>(err);
  return r;
}

}  // namespace

void SocketForwarding::option(SocketForward m, std::function<void(const SocketForward&)> reply) {
  const End* e = find(false, {m.rank, m.id});
  if (e == nullptr || e->peer < 0 || (e->state != State::kLive && e->state != State::kPending)) {
    reply(answer(m, ESRCH));  // the agent answers from its table
    return;
  }
  const std::uint64_t n = next_option_++;
  options_[n] = PendingOption{e->peer, std::move(reply)};
  m.migration_id = n;
  m.to_holder = true;
  send(e->peer, std::move(m));
}

void SocketForwarding::option_at_holder(int source, const SocketForward& m) {
  const End* e = find(true, {m.rank, m.id});
  if (e == nullptr || !e->sd) {
    send(source, answer(m, ESRCH));
    return;
  }
  const int fd = e->sd->native_handle();
  const int level = static_cast<int>(m.arg >> 32), name = static_cast<int>(m.arg & 0xffffffffu);
  if (m.fd == 1) {
    const int r = m.bytes.size() > kMaxOptionValue
                      ? -1
                      : ::setsockopt(fd, level, name, m.bytes.data(), static_cast<socklen_t>(m.bytes.size()));
    send(source, answer(m, r == 0 ? 0 : m.bytes.size() > kMaxOptionValue ? EINVAL : errno));
    return;
  }
  std::uint32_t want = 0;
  for (std::size_t i = 0; i < 4 && i < m.bytes.size(); ++i) want |= std::uint32_t{m.bytes[i]} << (8 * i);
  Bytes value(std::min<std::size_t>(want, kMaxOptionValue));
  socklen_t len = static_cast<socklen_t>(value.size());
  if (::getsockopt(fd, level, name, value.data(), &len) != 0) {
    send(source, answer(m, errno));
    return;
  }
  SocketForward r = answer(m, 0);
  value.resize(std::min<std::size_t>(len, value.size()));
  r.bytes = std::move(value);
  send(source, std::move(r));
}

void SocketForwarding::option_answered(const SocketForward& m) {
  auto it = options_.find(m.migration_id);
  if (it == options_.end()) return;
  auto reply = std::move(it->second.reply);
  options_.erase(it);
  reply(m);
}

void SocketForwarding::options_lost(int node) {
  for (auto it = options_.begin(); it != options_.end();) {
    if (it->second.node != node) {
      ++it;
      continue;
    }
    auto reply = std::move(it->second.reply);
    SocketForward r = socket_op(SocketOp::kOptionReply, 0, 0);
    r.migration_id = it->first;
    r.arg = ESRCH;
    it = options_.erase(it);
    reply(r);
  }
}

}  // namespace mosix
