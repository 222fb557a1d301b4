#include "runtime/daemon/pmi_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "runtime/core/environment.h"
#include "runtime/core/fence.h"

namespace mosix {

namespace asio = boost::asio;

PmiServer::PmiServer(DaemonContext& context, MpiJobMap map, std::string kvsname,
                     std::function<void(int, int)> on_abort)
    : context_(context), on_abort_(std::move(on_abort)), map_(std::move(map)) {
  auto first = std::make_unique<World>();
  first->kvsname = std::move(kvsname);
  first->rank_nodes = map_.rank_nodes;
  for (std::uint32_t node : map_.rank_nodes) {
    if (static_cast<int>(node) == context_.rank()) ++first->local_ranks;
  }
  worlds_.push_back(std::move(first));
}

PmiServer::World* PmiServer::world_of(int rank) {
  for (auto& w : worlds_) {
    if (rank >= w->first_rank && static_cast<std::size_t>(rank - w->first_rank) < w->rank_nodes.size()) return w.get();
  }
  return nullptr;
}

void PmiServer::add_world(const MpiNamespace& space) {
  for (const auto& w : worlds_) {
    if (w->kvsname == space.nspace) return;
  }
  auto w = std::make_unique<World>();
  w->kvsname = space.nspace;
  w->first_rank = space.first_rank;
  w->rank_nodes = space.rank_nodes;
  w->app_sizes = space.app_sizes;
  w->spawned = true;
  // Its parent's world, if this node knows it (the parent's node does; a
  // node new to the job knows the first copies'), else the job's.
  const World* parent = world_of(space.parent_rank);
  w->spawner = parent != nullptr ? parent->kvsname : worlds_.front()->kvsname;
  for (std::size_t r = 0; r < w->rank_nodes.size(); ++r) {
    if (static_cast<int>(w->rank_nodes[r]) == context_.rank()) ++w->local_ranks;
    w->fence_ranks.push_back(w->first_rank + static_cast<std::int32_t>(r));
  }
  w->kvs["PMI_process_mapping"] = pmi::process_mapping(w->rank_nodes);
  for (const std::string& pair : space.kvs) {
    const auto eq = pair.find('=');
    if (eq != std::string::npos) w->kvs[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  worlds_.push_back(std::move(w));
}

PmiServer::~PmiServer() = default;

Expected<int> PmiServer::add_client(int rank, std::vector<std::string>& env) {
  World* w = world_of(rank);
  if (w == nullptr) return make_error("rank " + std::to_string(rank) + " is not in the job's map");
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return make_error(std::string("PMI server: socketpair: ") + std::strerror(errno));
  }
  if (auto old = clients_.find(rank); old != clients_.end()) drop(*old->second);
  // What the server knows before any copy puts: which ranks share a node
  // (made at the first MPICH copy: an Open MPI job never needs it).
  if (!w->kvs.count("PMI_process_mapping")) w->kvs["PMI_process_mapping"] = pmi::process_mapping(w->rank_nodes);
  auto c = std::make_unique<Client>();
  c->rank = rank;
  c->world = w;
  c->wrank = rank - w->first_rank;
  c->socket = std::make_unique<asio::posix::stream_descriptor>(context_.io(), fds[0]);
  const auto& nodes = w->rank_nodes;
  int local_rank = 0;
  for (int r = 0; r < c->wrank; ++r) {
    if (nodes[static_cast<std::size_t>(r)] == nodes[static_cast<std::size_t>(c->wrank)]) ++local_rank;
  }
  set_env(env, "PMI_FD", std::to_string(fds[1]));
  set_env(env, "PMI_RANK", std::to_string(c->wrank));
  set_env(env, "PMI_SIZE", std::to_string(nodes.size()));
  set_env(env, "MPI_LOCALRANKID", std::to_string(local_rank));
  set_env(env, "MPI_LOCALNRANKS", std::to_string(w->local_ranks));
  if (w->spawned) set_env(env, "PMI_SPAWNED", "1");
  Client& ref = *c;
  clients_[rank] = std::move(c);
  read(ref);
  return fds[1];
}

void PmiServer::read(Client& c) {
  c.socket->async_read_some(asio::buffer(c.buf), [this, &c](boost::system::error_code ec, std::size_t n) {
    if (ec) {
      if (ec != asio::error::operation_aborted) drop(c);
      return;
    }
    c.inbox.append(c.buf.data(), n);
    take_lines(c);
    if (clients_.count(c.rank) && clients_[c.rank].get() == &c) read(c);
  });
}

void PmiServer::take_lines(Client& c) {
  std::size_t at = 0;
  while (at < c.inbox.size()) {
    const std::string_view rest = std::string_view(c.inbox).substr(at);
    if (c.v2) {
      auto length = pmi::frame_length(rest);
      if (!length && rest.size() < 6) break;
      if (!length || *length > pmi::kLineMax) {
        spdlog::error("{}: rank {}: not a PMI-2 frame: its PMI link is closed", context_.node_name(), c.rank);
        drop(c);
        return;
      }
      if (rest.size() < 6 + *length) break;
      at += 6 + *length;
      const std::string_view body = rest.substr(6, *length);
      if (auto command = pmi::parse_v2(body)) {
        serve_v2(c, *command);
        continue;
      }
      // Answered all the same (as its command's response, when it names
      // one), so that the copy does not wait for ever.
      spdlog::error("{}: rank {}: not a PMI-2 command: {}", context_.node_name(), c.rank,
                    std::string(body.substr(0, 80)));
      std::string name = "error";
      if (body.starts_with("cmd=") && body.find(';') > 4) name = std::string(body.substr(4, body.find(';') - 4));
      send(c, pmi::reply_v2(name + "-response", {{"rc", "-1"}, {"errmsg", "not a PMI-2 command"}}));
      continue;
    }
    const std::size_t end = rest.find('\n');
    if (end == std::string_view::npos) break;
    const std::string_view line = rest.substr(0, end);
    at += end + 1;
    if (c.in_mcmd) {
      // A spawn's app, one "key=value" a line (an argument may hold '=' and
      // blanks), up to its "endcmd".
      if (line == "endcmd") {
        c.in_mcmd = false;
        spawn_app_ended(c);
      } else if (const auto eq = line.find('='); eq != std::string_view::npos) {
        c.mcmd[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
      }
      continue;
    }
    if (line.starts_with("mcmd=")) {
      c.in_mcmd = true;
      c.mcmd.clear();
      continue;
    }
    auto command = pmi::parse_line(line);
    if (!command) {
      spdlog::warn("{}: rank {}: not a PMI command: {}", context_.node_name(), c.rank,
                   std::string(line.substr(0, 80)));
      continue;
    }
    serve(c, *command);
  }
  c.inbox.erase(0, at);
  if (c.inbox.size() > pmi::kLineMax + 6) {
    spdlog::error("{}: rank {}: a PMI line of more than {} bytes: its PMI link is closed", context_.node_name(),
                  c.rank, pmi::kLineMax);
    drop(c);
  }
}

void PmiServer::serve(Client& c, const pmi::Command& m) {
  const std::string& cmd = m.cmd;
  if (cmd == "init") {
    const bool v1 = m.get("pmi_version") == "1";
    if (m.get("pmi_version") == "2" && m.get("pmi_subversion") == "0") {
      // A PMI-2 client: its next commands come in PMI-2 frames.
      send(c, pmi::reply("response_to_init", {{"pmi_version", "2"}, {"pmi_subversion", "0"}, {"rc", "0"}}));
      c.v2 = true;
      return;
    }
    send(c, pmi::reply("response_to_init",
                       {{"pmi_version", "1"}, {"pmi_subversion", "1"}, {"rc", v1 ? "0" : "-1"}}));
    if (v1) in_mpi_.insert(c.rank);
  } else if (cmd == "get_maxes") {
    send(c, pmi::reply("maxes", {{"kvsname_max", std::to_string(pmi::kKvsNameMax)},
                                 {"keylen_max", std::to_string(pmi::kKeyMax)},
                                 {"vallen_max", std::to_string(pmi::kValueMax)}}));
  } else if (cmd == "get_appnum") {
    send(c, pmi::reply("appnum", {{"appnum", std::to_string(appnum(c))}}));
  } else if (cmd == "get_my_kvsname") {
    send(c, pmi::reply("my_kvsname", {{"kvsname", c.world->kvsname}}));
  } else if (cmd == "get_universe_size") {
    send(c, pmi::reply("universe_size", {{"size", std::to_string(c.world->rank_nodes.size())}}));
  } else if (cmd == "put") {
    const std::string key = m.get("key"), value = m.get("value");
    if (!pmi::valid_key(key) || !pmi::valid_value(value)) {
      send(c, pmi::reply("put_result", {{"rc", "-1"}, {"msg", "invalid_key_or_value"}}));
      return;
    }
    c.world->kvs[key] = value;
    c.world->puts.emplace_back(key, value);
    send(c, pmi::reply("put_result", {{"rc", "0"}, {"msg", "success"}}));
  } else if (cmd == "get") {
    auto it = c.world->kvs.find(m.get("key"));
    if (it == c.world->kvs.end()) {
      send(c, pmi::reply("get_result", {{"rc", "-1"}, {"msg", "key_not_found"}}));
    } else {
      send(c, pmi::reply("get_result", {{"rc", "0"}, {"msg", "success"}, {"value", it->second}}));
    }
  } else if (cmd == "barrier_in") {
    c.in_barrier = true;
    maybe_contribute(*c.world);
  } else if (cmd == "finalize") {
    in_mpi_.erase(c.rank);
    send(c, pmi::reply("finalize_ack", {}));
  } else if (cmd == "abort") {
    // MPICH's client has printed its message and waits to be ended, as
    // Hydra ends it: the copy is ended with its code, and the job's exit
    // rule takes it from there (it is not one that forgot MPI_Finalize).
    in_mpi_.erase(c.rank);
    int code = 1;
    const std::string text = m.get("exitcode");
    std::from_chars(text.data(), text.data() + text.size(), code);
    spdlog::debug("{}: rank {} aborts with status {}", context_.node_name(), c.rank, code);
    if (on_abort_) on_abort_(c.rank, code);
  } else if (cmd == "publish_name") {
    ask_names(c, waiting(c, Waiting::kPublish, m), m.get("port"));
  } else if (cmd == "lookup_name") {
    ask_names(c, waiting(c, Waiting::kLookup, m), "");
  } else if (cmd == "unpublish_name") {
    ask_names(c, waiting(c, Waiting::kUnpublish, m), "");
  } else {
    spdlog::warn("{}: rank {}: PMI command {} is not served", context_.node_name(), c.rank, cmd);
  }
}

void PmiServer::send(Client& c, const std::string& line) {
  // Replies are short and the copy waits for each: written at once, in full.
  boost::system::error_code ec;
  asio::write(*c.socket, asio::buffer(line), ec);
  if (ec) spdlog::debug("{}: rank {}: PMI reply lost: {}", context_.node_name(), c.rank, ec.message());
}

void PmiServer::answer(Client& c, const Waiting& w, pmi::KeyValues fields) {
  if (!w.v2) return send(c, pmi::reply_line(w.reply(), fields));
  if (!w.thrid.empty()) fields.emplace_back("thrid", w.thrid);
  send(c, pmi::reply_v2(w.reply(), fields));
}

// The copy's app in its world (PMI-1's get_appnum, PMI-2's fullinit).
int PmiServer::appnum(const Client& c) const {
  int before = 0;
  for (std::size_t app = 0; app < c.world->app_sizes.size(); ++app) {
    before += static_cast<int>(c.world->app_sizes[app]);
    if (c.wrank < before) return static_cast<int>(app);
  }
  return 0;
}

// Every copy of the world on this node entered the barrier: this node's
// puts go home.
void PmiServer::maybe_contribute(World& w) {
  int entered = 0;
  for (const auto& [rank, c] : clients_) entered += c->world == &w && c->in_barrier ? 1 : 0;
  if (entered < w.local_ranks) return;
  FenceContribution part;
  part.fence_id = kPmiFenceBit | w.barriers++;
  part.ranks = w.fence_ranks;
  part.data = pmi::pack(w.puts);
  w.puts.clear();
  context_.send(0, part);
}

void PmiServer::fence_released(const FenceRelease& release) {
  World* w = nullptr;
  for (auto& world : worlds_) {
    if (world->fence_ranks == release.ranks) w = world.get();
  }
  if (w == nullptr) return;
  if (release.status != 0) {
    spdlog::error("{}: an MPI barrier failed (a node with copies of the job was lost)", context_.node_name());
  } else if (auto pairs = pmi::unpack(release.data); !pairs) {
    spdlog::error("{}: an MPI barrier's data: {}", context_.node_name(), pairs.error().message);
  } else {
    for (auto& [k, v] : *pairs) w->kvs[std::move(k)] = std::move(v);
  }
  const std::string out = release.status == 0 ? pmi::reply("barrier_out", {}) : pmi::reply("barrier_out", {{"rc", "-1"}});
  for (auto& [rank, c] : clients_) {
    if (!c->in_barrier || c->world != w) continue;
    c->in_barrier = false;
    if (!c->v2) {
      send(*c, out);
      continue;
    }
    std::vector<std::pair<std::string, std::string>> fields = {{"rc", release.status == 0 ? "0" : "-1"}};
    if (!c->fence_thrid.empty()) fields.emplace_back("thrid", c->fence_thrid);
    send(*c, pmi::reply_v2("kvs-fence-response", fields));
  }
}

// The copy closed its end (it ended, or finalized and closed): forgotten. A
// barrier it had entered still counts as entered by nobody.
void PmiServer::drop(Client& c) {
  const int rank = c.rank;
  boost::system::error_code ignored;
  c.socket->close(ignored);
  // Its callbacks may still be queued: the object goes once they ran.
  auto it = clients_.find(rank);
  if (it == clients_.end() || it->second.get() != &c) return;
  asio::post(context_.io(), [owned = std::shared_ptr<Client>(std::move(it->second))] {});
  clients_.erase(it);
}

}  // namespace mosix
