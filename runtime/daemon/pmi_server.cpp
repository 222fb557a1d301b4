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
#include <cstdlib>
#include <cstring>

#include "runtime/core/environment.h"
#include "runtime/core/fence.h"
#include "runtime/daemon/guest_process.h"

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
      if (auto command = pmi::parse_v2(rest.substr(6, *length))) {
        serve_v2(c, *command);
      } else {
        spdlog::warn("{}: rank {}: not a PMI-2 command: {}", context_.node_name(), c.rank,
                     std::string(rest.substr(6, std::min<std::size_t>(*length, 80))));
      }
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
    int appnum = 0;
    for (int before = 0; appnum < static_cast<int>(c.world->app_sizes.size()); ++appnum) {
      before += static_cast<int>(c.world->app_sizes[static_cast<std::size_t>(appnum)]);
      if (c.wrank < before) break;
    }
    if (appnum >= static_cast<int>(c.world->app_sizes.size())) appnum = 0;
    send(c, pmi::reply("appnum", {{"appnum", std::to_string(appnum)}}));
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
  } else if (cmd == "publish_name" || cmd == "lookup_name" || cmd == "unpublish_name") {
    const std::uint64_t id = kPmiRequestBit | next_request_++;
    const std::string service = m.get("service");
    if (cmd == "publish_name") {
      names_waiting_[id] = {c.rank, "publish_result"};
      context_.send(0, NamePublish{id, {PublishedName{service, m.get("port"), c.rank}}});
    } else if (cmd == "lookup_name") {
      names_waiting_[id] = {c.rank, "lookup_result"};
      context_.send(0, NameLookup{id, {service}, false});
    } else {
      names_waiting_[id] = {c.rank, "unpublish_result"};
      context_.send(0, NameUnpublish{id, c.rank, {service}});
    }
  } else {
    spdlog::warn("{}: rank {}: PMI command {} is not served", context_.node_name(), c.rank, cmd);
  }
}

// PMI-2 (Slurm's pmi2 plugin and Hydra answer the same): the same state as
// PMI-1's, other names; a request's thrid (a threaded client's) comes back.
void PmiServer::serve_v2(Client& c, const pmi::Command& m) {
  const std::string& cmd = m.cmd;
  auto answer = [&](const std::string& name, std::vector<std::pair<std::string, std::string>> fields) {
    if (auto thrid = m.fields.find("thrid"); thrid != m.fields.end()) fields.emplace_back("thrid", thrid->second);
    send(c, pmi::reply_v2(name, fields));
  };
  auto found = [&](const std::string& name, const std::map<std::string, std::string>& space, const std::string& key) {
    auto it = space.find(key);
    if (it == space.end()) {
      answer(name, {{"rc", "0"}, {"found", "FALSE"}});
    } else {
      answer(name, {{"rc", "0"}, {"found", "TRUE"}, {"value", it->second}});
    }
  };
  if (cmd == "fullinit") {
    in_mpi_.insert(c.rank);
    answer("fullinit-response", {{"rc", "0"}, {"pmi-version", "2"}, {"pmi-subversion", "0"},
                                 {"rank", std::to_string(c.wrank)}, {"size", std::to_string(c.world->rank_nodes.size())},
                                 {"appnum", "0"}, {"debugged", "FALSE"}, {"pmiverbose", "FALSE"}});
  } else if (cmd == "job-getid") {
    answer("job-getid-response", {{"rc", "0"}, {"jobid", c.world->kvsname}});
  } else if (cmd == "info-getjobattr") {
    found("info-getjobattr-response", c.world->kvs, m.get("key"));
  } else if (cmd == "kvs-put") {
    const std::string key = m.get("key"), value = m.get("value");
    if (!pmi::valid_key(key) || !pmi::valid_value(value) || value.find(';') != std::string::npos) {
      answer("kvs-put-response", {{"rc", "-1"}, {"errmsg", "invalid_key_or_value"}});
      return;
    }
    c.world->kvs[key] = value;
    c.world->puts.emplace_back(key, value);
    answer("kvs-put-response", {{"rc", "0"}});
  } else if (cmd == "kvs-get") {
    found("kvs-get-response", c.world->kvs, m.get("key"));
  } else if (cmd == "kvs-fence") {
    c.in_barrier = true;
    c.fence_thrid = m.get("thrid");
    maybe_contribute(*c.world);
  } else if (cmd == "info-putnodeattr") {
    const std::string key = m.get("key");
    node_attrs_[key] = m.get("value");
    answer("info-putnodeattr-response", {{"rc", "0"}});
    // Copies of this node that wait for it get it now.
    for (auto it = node_waits_.begin(); it != node_waits_.end();) {
      if (it->key != key) {
        ++it;
        continue;
      }
      if (auto waiting = clients_.find(it->rank); waiting != clients_.end()) {
        std::vector<std::pair<std::string, std::string>> fields = {{"rc", "0"}, {"found", "TRUE"},
                                                                   {"value", node_attrs_[key]}};
        if (!it->thrid.empty()) fields.emplace_back("thrid", it->thrid);
        send(*waiting->second, pmi::reply_v2("info-getnodeattr-response", fields));
      }
      it = node_waits_.erase(it);
    }
  } else if (cmd == "info-getnodeattr") {
    const std::string key = m.get("key");
    if (!node_attrs_.count(key) && m.get("wait") == "TRUE") {
      node_waits_.push_back(NodeWait{c.rank, key, m.get("thrid")});
      return;
    }
    found("info-getnodeattr-response", node_attrs_, key);
  } else if (cmd == "finalize") {
    in_mpi_.erase(c.rank);
    answer("finalize-response", {{"rc", "0"}});
  } else if (cmd == "abort") {
    in_mpi_.erase(c.rank);
    spdlog::debug("{}: rank {} aborts (PMI-2): {}", context_.node_name(), c.rank, m.get("msg"));
    if (on_abort_) on_abort_(c.rank, 1);
  } else {
    // spawn, name-publish/-lookup/-unpublish: not served over PMI-2 yet.
    spdlog::warn("{}: rank {}: PMI-2 command {} is not served", context_.node_name(), c.rank, cmd);
    answer(cmd + "-response", {{"rc", "-1"}, {"errmsg", "not_supported_by_mosixrun"}});
  }
}

void PmiServer::send(Client& c, const std::string& line) {
  // Replies are short and the copy waits for each: written at once, in full.
  boost::system::error_code ec;
  asio::write(*c.socket, asio::buffer(line), ec);
  if (ec) spdlog::debug("{}: rank {}: PMI reply lost: {}", context_.node_name(), c.rank, ec.message());
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

void PmiServer::names_answered(const NameReply& reply) {
  auto it = names_waiting_.find(reply.request_id);
  if (it == names_waiting_.end()) return;
  const auto [rank, cmd] = it->second;
  names_waiting_.erase(it);
  auto c = clients_.find(rank);
  if (c == clients_.end()) return;
  const bool ok = reply.status == 0 && (cmd != "lookup_result" || !reply.names.empty());
  if (cmd == "lookup_result" && ok) {
    send(*c->second, pmi::reply(cmd, {{"info", "ok"}, {"port", reply.names.front().value}, {"rc", "0"}}));
  } else {
    send(*c->second, pmi::reply(cmd, {{"info", ok ? "ok" : "not_found"}, {"rc", ok ? "0" : "-1"}}));
  }
}

// The end of one app of a spawn: once the last one came (spawnssofar of
// totspawns), the spawn goes to the home node. A program that cannot be run
// from here is refused at once (as for Open MPI: pmix_server.cpp).
void PmiServer::spawn_app_ended(Client& c) {
  auto field = [&](const std::string& key) {
    auto it = c.mcmd.find(key);
    return it == c.mcmd.end() ? std::string() : it->second;
  };
  auto number = [&](const std::string& key) {
    int n = 0;
    const std::string text = field(key);
    std::from_chars(text.data(), text.data() + text.size(), n);
    return n;
  };
  auto refuse = [&](const std::string& why) {
    spdlog::error("{}: rank {}: MPI_Comm_spawn: {}", context_.node_name(), c.rank, why);
    c.spawn = MpiSpawn{};
    send(c, pmi::reply("spawn_result", {{"rc", "-1"}, {"errmsg", "spawn_failed"}}));
  };
  MpiSpawnApp app;
  app.count = static_cast<std::uint32_t>(std::max(0, number("nprocs")));
  app.argv.push_back(field("execname"));
  for (int i = 1; i <= number("argcnt"); ++i) app.argv.push_back(field("arg" + std::to_string(i)));
  for (int i = 0; i < number("info_num"); ++i) {
    const std::string key = field("info_key_" + std::to_string(i)), value = field("info_val_" + std::to_string(i));
    if (key == "wdir") app.cwd = value;
    if (key == "host" && value.find(',') == std::string::npos) app.where = value;
  }
  if (c.spawn.apps.empty()) {
    for (int i = 0; i < number("preput_num"); ++i) {
      c.spawn.kvs.push_back(field("preput_key_" + std::to_string(i)) + "=" + field("preput_val_" + std::to_string(i)));
    }
  }
  if (app.count == 0 || app.argv[0].empty()) return refuse("an app names no program or no copies");
  const char* path = std::getenv("PATH");
  if (auto found = resolve_program(app.argv[0], path != nullptr ? path : "/usr/bin:/bin", app.cwd); !found) {
    return refuse(found.error().message);
  }
  c.spawn.apps.push_back(std::move(app));
  if (number("spawnssofar") < number("totspawns")) return;
  MpiSpawn request = std::move(c.spawn);
  c.spawn = MpiSpawn{};
  request.request_id = kPmiRequestBit | next_request_++;
  request.parent_rank = c.rank;
  spawns_waiting_[request.request_id] = c.rank;
  context_.send(0, request);
}

void PmiServer::spawn_answered(const MpiSpawnReply& reply) {
  auto it = spawns_waiting_.find(reply.request_id);
  if (it == spawns_waiting_.end()) return;
  const int rank = it->second;
  spawns_waiting_.erase(it);
  auto c = clients_.find(rank);
  if (c == clients_.end()) return;
  if (reply.status != 0) {
    spdlog::error("{}: rank {}: MPI_Comm_spawn: {}", context_.node_name(), rank, reply.reason);
    send(*c->second, pmi::reply("spawn_result", {{"rc", "-1"}, {"errmsg", "spawn_failed"}}));
  } else {
    send(*c->second, pmi::reply("spawn_result", {{"rc", "0"}}));
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
