// mosix-pmix: the PMIx server of one node of an MPI job, in a process of its
// own beside the node daemon (pmix_wire.h says why). The daemon starts it
// with the job's namespace, its node, the folder for the library's files and
// whether other nodes share this host, and two sockets: 3 for requests it
// waits for, 4 for what goes either way unasked. It ends when the daemon
// closes them (or dies).
//   mosix-pmix NSPACE NODE PARENT_DIR SHARED_HOST(0|1)
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "runtime/core/protocol.h"
#include "runtime/daemon/pmix_server.h"
#include "runtime/daemon/pmix_wire.h"

namespace {

using mosix::pmix_wire::Kind;
using mosix::pmix_wire::Packet;

constexpr int kRequests = 3, kEvents = 4;

std::mutex g_write;  // the library's thread writes events too

void send_event(int node, const mosix::Message& message) {
  const mosix::Frame frame = mosix::encode_frame(message);
  std::lock_guard lock(g_write);
  if (auto s = mosix::pmix_wire::write_packet(kEvents, Packet{Kind::kFrame, node, std::string(frame.begin(), frame.end())});
      !s) {
    spdlog::error("{}", s.error().message);
  }
}

// A request of the daemon: answered on the request socket.
void answer(mosix::PmixServer& server, const Packet& p) {
  Packet reply{Kind::kError, p.node, {}};
  if (p.kind == Kind::kAddClient) {
    std::vector<std::string> env = mosix::pmix_wire::unpack_env(p.payload);
    if (auto s = server.add_client(p.node, env); !s) {
      reply.payload = s.error().message;
    } else {
      reply.kind = Kind::kEnv;
      reply.payload = mosix::pmix_wire::pack_env(env);
    }
  } else if (p.kind == Kind::kNamespace) {
    auto m = mosix::decode_frame(std::span(reinterpret_cast<const std::uint8_t*>(p.payload.data()), p.payload.size()));
    if (!m || !std::holds_alternative<mosix::MpiNamespace>(*m)) {
      reply.payload = "the node daemon's namespace is no MpiNamespace";
    } else if (auto s = server.add_namespace(std::get<mosix::MpiNamespace>(*m)); !s) {
      reply.payload = s.error().message;
    } else {
      reply.kind = Kind::kNamespace;
    }
  } else if (p.kind == Kind::kInMpi) {
    reply.kind = Kind::kInMpi;
    reply.payload = server.in_mpi(p.node) ? "1" : "0";
  } else {
    reply.payload = "unknown request " + std::to_string(static_cast<int>(p.kind));
  }
  if (auto s = mosix::pmix_wire::write_packet(kRequests, reply); !s) spdlog::error("{}", s.error().message);
}

// What another node sent this one's server.
void take_event(mosix::PmixServer& server, const Packet& p) {
  auto message = mosix::decode_frame(
      std::span(reinterpret_cast<const std::uint8_t*>(p.payload.data()), p.payload.size()));
  if (!message) {
    spdlog::error("{}", message.error().message);
    return;
  }
  if (auto* r = std::get_if<mosix::FenceRelease>(&*message)) {
    server.fence_released(*r);
  } else if (auto* q = std::get_if<mosix::ModexRequest>(&*message)) {
    server.modex_asked(p.node, *q);
  } else if (auto* a = std::get_if<mosix::ModexReply>(&*message)) {
    server.modex_answered(*a);
  } else if (auto* n = std::get_if<mosix::NameReply>(&*message)) {
    server.names_answered(*n);
  } else if (auto* s = std::get_if<mosix::MpiSpawnReply>(&*message)) {
    server.spawn_answered(*s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_logger_mt("mosix-pmix");
  logger->set_pattern("mosix-pmix: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);
  if (const char* env = std::getenv("MOSIX_LOG")) spdlog::set_level(spdlog::level::from_str(env));
  if (argc != 5) {
    spdlog::error("started by the node daemon only: mosix-pmix NSPACE NODE PARENT_DIR SHARED_HOST");
    return 2;
  }
  // A Ctrl-C, Ctrl-\ or Ctrl-Z at the user's terminal reaches the whole
  // foreground group, this helper too. The node daemon passes it on to the
  // ranks as mosixrun's signal rule says; the ranks' PMIx server must stay
  // until they have ended (or their MPI_Finalize and abort would find it
  // gone). The helper ends when the daemon closes its sockets; SIGTERM and
  // SIGKILL still end it.
  for (int sig : {SIGINT, SIGQUIT, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU}) ::signal(sig, SIG_IGN);
  auto first = mosix::pmix_wire::read_packet(kEvents);
  if (!first || !*first || (*first)->kind != Kind::kMap) {
    spdlog::error("the node daemon sent no job map");
    return 1;
  }
  const std::string& map_frame = (*first)->payload;
  auto map = mosix::decode_frame(std::span(reinterpret_cast<const std::uint8_t*>(map_frame.data()), map_frame.size()));
  if (!map || !std::holds_alternative<mosix::MpiJobMap>(*map)) {
    spdlog::error("the node daemon's job map is no MpiJobMap");
    return 1;
  }
  mosix::PmixJob job;
  job.nspace = argv[1];
  job.this_node = std::atoi(argv[2]);
  job.parent_dir = argv[3];
  job.shared_host = std::strcmp(argv[4], "1") == 0;
  job.map = std::get<mosix::MpiJobMap>(*map);
  mosix::PmixServer server(
      std::move(job),
      mosix::PmixServer::Hooks{
          [](mosix::FenceContribution part) { send_event(0, part); },
          [](int node, mosix::ModexRequest request) { send_event(node, request); },
          [](int node, mosix::ModexReply reply) { send_event(node, reply); },
          [](mosix::Message names) { send_event(0, names); },
          [](mosix::MpiSpawn spawn) { send_event(0, spawn); },
      });
  pollfd fds[2] = {{kRequests, POLLIN, 0}, {kEvents, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll: {}", std::strerror(errno));
      return 1;
    }
    for (int k = 0; k < 2; ++k) {
      if (fds[k].revents == 0) continue;
      auto p = mosix::pmix_wire::read_packet(fds[k].fd);
      if (!p) {
        spdlog::error("{}", p.error().message);
        return 1;
      }
      if (!*p) return 0;  // the node daemon closed its end: the job is over
      if (k == 0) {
        answer(server, **p);
      } else {
        take_event(server, **p);
      }
    }
  }
}
