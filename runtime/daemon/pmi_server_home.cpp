// What a PMI server asks the home node for (pmi_server.h), for PMI-1's and
// PMI-2's clients alike: names (publish, lookup, unpublish: kept at the home
// node, core/published_names.h) and spawns (MpiSpawn, home_mpi_spawn.cpp).
// A request waits here until its answer, which goes back in the protocol the
// copy asked in.
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "runtime/core/published_names.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/daemon/pmi_server.h"

namespace mosix {

std::string PmiServer::Waiting::reply() const {
  switch (kind) {
    case kSpawn: return v2 ? "spawn-response" : "spawn_result";
    case kPublish: return v2 ? "name-publish-response" : "publish_result";
    case kLookup: return v2 ? "name-lookup-response" : "lookup_result";
    case kUnpublish: return v2 ? "name-unpublish-response" : "unpublish_result";
  }
  return {};
}

PmiServer::Waiting PmiServer::waiting(const Client& c, Waiting::Kind kind, const pmi::Command& request) {
  Waiting w;
  w.kind = kind;
  w.rank = c.rank;
  w.v2 = c.v2;
  w.thrid = request.get("thrid");
  w.name = request.get(c.v2 ? "name" : "service");
  return w;
}

void PmiServer::ask_names(Client& c, Waiting w, const std::string& port) {
  if (w.name.empty()) {
    spdlog::error("{}: rank {}: a PMI name request names no name", context_.node_name(), c.rank);
    return answer(c, w, {{"rc", "-1"}, {w.v2 ? "errmsg" : "info", w.v2 ? "no name given" : "no_name"}});
  }
  const std::uint64_t id = kPmiRequestBit | next_request_++;
  switch (w.kind) {
    case Waiting::kPublish: context_.send(0, NamePublish{id, {PublishedName{w.name, port, c.rank}}}); break;
    case Waiting::kLookup: context_.send(0, NameLookup{id, {w.name}, false}); break;
    default: context_.send(0, NameUnpublish{id, c.rank, {w.name}}); break;
  }
  names_waiting_[id] = std::move(w);
}

void PmiServer::names_answered(const NameReply& reply) {
  auto it = names_waiting_.find(reply.request_id);
  if (it == names_waiting_.end()) return;
  const Waiting w = std::move(it->second);
  names_waiting_.erase(it);
  auto c = clients_.find(w.rank);
  if (c == clients_.end()) return;
  const bool lookup = w.kind == Waiting::kLookup;
  const bool ok = reply.status == 0 && (!lookup || !reply.names.empty());
  if (!w.v2) {
    if (lookup && ok) return answer(*c->second, w, {{"info", "ok"}, {"port", reply.names.front().value}, {"rc", "0"}});
    return answer(*c->second, w, {{"info", ok ? "ok" : "not_found"}, {"rc", ok ? "0" : "-1"}});
  }
  // PMI-2: MPICH's client reads the port as "port" (as Hydra answers),
  // Slurm's plugin answers it as "value": both are there.
  if (lookup && ok) {
    const std::string& port = reply.names.front().value;
    return answer(*c->second, w, {{"rc", "0"}, {"port", port}, {"value", port}, {"found", "TRUE"}});
  }
  if (ok) return answer(*c->second, w, {{"rc", "0"}});
  std::string why = "the name service failed (status " + std::to_string(reply.status) + ")";
  if (reply.status == kNameDuplicate) why = "name " + w.name + " is published already";
  if (reply.status == kNameNotFound || (lookup && reply.status == 0)) {
    why = lookup ? "no name " + w.name + " is published" : "name " + w.name + " is not published by this rank";
  }
  pmi::KeyValues fields = {{"rc", "-1"}, {"errmsg", why}};
  if (lookup) fields.emplace_back("found", "FALSE");
  answer(*c->second, w, std::move(fields));
}

// The end of one app of a PMI-1 spawn: once the last one came (spawnssofar
// of totspawns), the spawn goes on, or is refused for the first app that
// was wrong (the client waits for one answer to the whole spawn).
void PmiServer::spawn_app_ended(Client& c) {
  const bool last = pmi::last_spawn_block(c.mcmd);
  if (auto block = pmi::parse_spawn_v1(c.mcmd); !block) {
    if (c.spawn_error.empty()) c.spawn_error = block.error().message;
  } else {
    if (c.spawn.apps.empty()) c.spawn.preput = std::move(block->preput);
    c.spawn.apps.push_back(std::move(block->app));
  }
  if (!last) return;
  pmi::Spawn spawn = std::move(c.spawn);
  const std::string error = std::move(c.spawn_error);
  c.spawn = pmi::Spawn{};
  c.spawn_error.clear();
  Waiting w;
  w.kind = Waiting::kSpawn;
  w.rank = c.rank;
  if (!error.empty()) return refuse_spawn(c, w, error);
  request_spawn(c, std::move(spawn), std::move(w));
}

// PMI-2's cmd=spawn: the whole spawn in one frame.
void PmiServer::spawn_v2(Client& c, const pmi::Command& m) {
  Waiting w = waiting(c, Waiting::kSpawn, m);
  auto spawn = pmi::parse_spawn_v2(m.items);
  if (!spawn) return refuse_spawn(c, w, spawn.error().message);
  request_spawn(c, std::move(*spawn), std::move(w));
}

// A spawn as either protocol asked for it goes to the home node as one
// MpiSpawn. A program that cannot be run from here is refused at once (as
// for Open MPI: pmix_server.cpp). MPI_Info keys: wdir, host (one node:
// a list is left to the placement), path (where the program is).
void PmiServer::request_spawn(Client& c, pmi::Spawn spawn, Waiting w) {
  MpiSpawn request;
  const char* path_env = std::getenv("PATH");
  for (pmi::SpawnApp& app : spawn.apps) {
    MpiSpawnApp out;
    out.count = static_cast<std::uint32_t>(app.maxprocs);
    std::string program = std::move(app.program);
    if (const std::string dir = pmi::info_value(app, "path"); !dir.empty() && program.find('/') == std::string::npos) {
      program = dir + "/" + program;
    }
    out.cwd = pmi::info_value(app, "wdir");
    std::string host = pmi::info_value(app, "host");
    if (host.empty()) host = pmi::info_value(app, "hosts");
    if (host.find(',') == std::string::npos) out.where = host;
    if (auto found = resolve_program(program, path_env != nullptr ? path_env : "/usr/bin:/bin", out.cwd); !found) {
      return refuse_spawn(c, w, found.error().message);
    }
    out.argv.push_back(std::move(program));
    for (std::string& arg : app.args) out.argv.push_back(std::move(arg));
    request.apps.push_back(std::move(out));
  }
  for (const auto& [key, value] : spawn.preput) request.kvs.push_back(key + "=" + value);
  request.request_id = kPmiRequestBit | next_request_++;
  request.parent_rank = c.rank;
  spawns_waiting_[request.request_id] = std::move(w);
  context_.send(0, request);
}

void PmiServer::refuse_spawn(Client& c, const Waiting& w, const std::string& why) {
  spdlog::error("{}: rank {}: MPI_Comm_spawn: {}", context_.node_name(), c.rank, why);
  // PMI-1's words end at a blank: its reason is a word.
  answer(c, w, {{"rc", "-1"}, {"errmsg", w.v2 ? why : "spawn_failed"}});
}

void PmiServer::spawn_answered(const MpiSpawnReply& reply) {
  auto it = spawns_waiting_.find(reply.request_id);
  if (it == spawns_waiting_.end()) return;
  const Waiting w = std::move(it->second);
  spawns_waiting_.erase(it);
  auto c = clients_.find(w.rank);
  if (c == clients_.end()) return;
  if (reply.status != 0) return refuse_spawn(*c->second, w, reply.reason);
  if (!w.v2) return answer(*c->second, w, {{"rc", "0"}});
  // Hydra's answer: the children's jobid, and no error codes (MPICH's
  // client takes every child as started).
  answer(*c->second, w, {{"rc", "0"}, {"jobid", reply.nspace}, {"nerrs", "0"}});
}

}  // namespace mosix
