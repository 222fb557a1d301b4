#include "runtime/daemon/pmix_link.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/core/fence.h"
#include "runtime/daemon/pmix_wire.h"
#include "runtime/sys/install_path.h"

extern char** environ;

namespace mosix {

using pmix_wire::Kind;
using pmix_wire::Packet;

std::string pmix_helper_path() {
  if (const char* env = std::getenv("MOSIX_PMIX_HELPER"); env != nullptr && *env != '\0') return env;
  auto helper = sys::installed_program("mosix-pmix");
  return helper ? *helper : "mosix-pmix";  // the start fails and says so
}

PmixLink::~PmixLink() {
  events_.reset();  // closes our end of both sockets: the helper reads the end
  if (requests_ >= 0) ::close(requests_);
  if (pid_ > 0) {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

Status PmixLink::start() {
  if (!failed_.empty()) return make_error(failed_);
  if (pid_ > 0) return {};
  int req[2], evt[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, req) != 0) {
    return make_error(std::string("PMIx helper: socketpair: ") + std::strerror(errno));
  }
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, evt) != 0) {
    ::close(req[0]);
    ::close(req[1]);
    return make_error(std::string("PMIx helper: socketpair: ") + std::strerror(errno));
  }
  // The helper gets the daemon's environment without the PMIx client
  // settings of a daemon started by mpirun (they are orted's, not its own).
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    if (v.starts_with("PMIX_") && !v.starts_with("PMIX_MCA_")) continue;
    env.emplace_back(v);
  }
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string path = pmix_helper_path();
  std::string node = std::to_string(context_.rank()), shared = job_.shared_host ? "1" : "0";
  std::vector<char*> argv = {const_cast<char*>("mosix-pmix"), job_.nspace.data(), node.data(), job_.parent_dir.data(),
                             shared.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, req[1], 3);
  posix_spawn_file_actions_adddup2(&fa, evt[1], 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(req[1]);
  ::close(evt[1]);
  if (rc != 0) {
    ::close(req[0]);
    ::close(evt[0]);
    failed_ = "cannot start the PMIx helper " + path + ": " + std::strerror(rc);
    return make_error(failed_);
  }
  pid_ = pid;
  requests_ = req[0];
  events_ = std::make_unique<boost::asio::posix::stream_descriptor>(context_.io(), evt[0]);
  const Frame map = encode_frame(job_.map);
  if (Status s = pmix_wire::write_packet(evt[0], Packet{Kind::kMap, 0, std::string(map.begin(), map.end())}); !s) {
    failed_ = s.error().message;
    return s;
  }
  read_events();
  return {};
}

Status PmixLink::add_client(int rank, std::vector<std::string>& env) {
  if (Status s = start(); !s) return s;
  Packet request{Kind::kAddClient, rank, pmix_wire::pack_env(env)};
  if (Status s = pmix_wire::write_packet(requests_, request); !s) return s;
  auto reply = pmix_wire::read_packet(requests_);
  if (!reply) return reply.error();
  if (!*reply) {
    failed_ = "the PMIx helper ended (see its message above)";
    return make_error(failed_);
  }
  if ((*reply)->kind != Kind::kEnv) return make_error((*reply)->payload);
  env = pmix_wire::unpack_env((*reply)->payload);
  return {};
}

Status PmixLink::add_namespace(const MpiNamespace& space) {
  if (Status s = start(); !s) return s;
  const Frame frame = encode_frame(space);
  if (Status s = pmix_wire::write_packet(requests_, Packet{Kind::kNamespace, 0, std::string(frame.begin(), frame.end())});
      !s) {
    return s;
  }
  auto reply = pmix_wire::read_packet(requests_);
  if (!reply) return reply.error();
  if (!*reply) {
    failed_ = "the PMIx helper ended (see its message above)";
    return make_error(failed_);
  }
  if ((*reply)->kind != Kind::kNamespace) return make_error((*reply)->payload);
  return {};
}

bool PmixLink::in_mpi(int rank) {
  if (pid_ <= 0 || !failed_.empty()) return false;
  if (!pmix_wire::write_packet(requests_, Packet{Kind::kInMpi, rank, {}})) return false;
  auto reply = pmix_wire::read_packet(requests_);
  return reply && *reply && (*reply)->kind == Kind::kInMpi && (*reply)->payload == "1";
}

void PmixLink::modex_asked(int source, const ModexRequest& request) {
  if (Status s = start(); !s) {
    context_.send(source, ModexReply{request.request_id, kFenceFailed, {}});
    return;
  }
  forward(source, request);
}

void PmixLink::forward(int node, const Message& message) {
  if (!events_) return;  // no copy here yet: nothing waits for it
  const Frame frame = encode_frame(message);
  if (Status s = pmix_wire::write_packet(events_->native_handle(),
                                         Packet{Kind::kFrame, node, std::string(frame.begin(), frame.end())});
      !s) {
    spdlog::error("{}: {}", context_.node_name(), s.error().message);
  }
}

void PmixLink::read_events() {
  events_->async_read_some(boost::asio::buffer(buf_), [this](boost::system::error_code ec, std::size_t n) {
    if (ec) {
      if (ec != boost::asio::error::operation_aborted && !context_.shutting_down()) {
        spdlog::debug("{}: the PMIx helper's link ended: {}", context_.node_name(), ec.message());
      }
      return;
    }
    inbox_.insert(inbox_.end(), buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    take_events();
    read_events();
  });
}

// Whole packets from the helper: its messages for other nodes.
void PmixLink::take_events() {
  std::size_t at = 0;
  while (inbox_.size() - at >= pmix_wire::kHeaderSize) {
    std::uint32_t length = 0;
    Packet p = pmix_wire::parse_header(inbox_.data() + at, length);
    if (length < 5 || length > pmix_wire::kMaxPacket) {
      spdlog::error("{}: the PMIx helper sent a packet of {} bytes: its link is dropped", context_.node_name(), length);
      events_->close();
      inbox_.clear();
      return;
    }
    if (inbox_.size() - at < 4 + static_cast<std::size_t>(length)) break;
    const auto* body = inbox_.data() + at + pmix_wire::kHeaderSize;
    const std::size_t size = length - 5;
    at += 4 + length;
    if (p.kind != Kind::kFrame) continue;
    auto message = decode_frame(std::span(body, size));
    if (!message) {
      spdlog::error("{}: from the PMIx helper: {}", context_.node_name(), message.error().message);
      continue;
    }
    context_.send(p.node, *message);
  }
  inbox_.erase(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(at));
}

}  // namespace mosix
