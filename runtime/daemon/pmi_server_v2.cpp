// PMI-2's commands (pmi_server.h): the same state as PMI-1's under other
// names, as Hydra's pmi2 server and Slurm's mpi/pmi2 plugin answer them; a
// request's thrid (a threaded client's) comes back in its answer.
#include <spdlog/spdlog.h>

#include "runtime/daemon/pmi_server.h"

namespace mosix {

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
    // A spawned copy is told so by its parent's jobid (MPICH's PMI-2
    // client reads no PMI_SPAWNED).
    std::vector<std::pair<std::string, std::string>> fields = {
        {"rc", "0"}, {"pmi-version", "2"}, {"pmi-subversion", "0"}, {"rank", std::to_string(c.wrank)},
        {"size", std::to_string(c.world->rank_nodes.size())}, {"appnum", std::to_string(appnum(c))},
        {"debugged", "FALSE"}, {"pmiverbose", "FALSE"}};
    if (c.world->spawned) fields.emplace_back("spawner-jobid", c.world->spawner);
    answer("fullinit-response", std::move(fields));
  } else if (cmd == "job-getid") {
    answer("job-getid-response", {{"rc", "0"}, {"jobid", c.world->kvsname}});
  } else if (cmd == "info-getjobattr") {
    if (m.get("key") == "universeSize" && !c.world->kvs.count("universeSize")) {
      // MPI_UNIVERSE_SIZE, as PMI-1's get_universe_size answers it.
      answer("info-getjobattr-response",
             {{"rc", "0"}, {"found", "TRUE"}, {"value", std::to_string(c.world->rank_nodes.size())}});
      return;
    }
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
  } else if (cmd == "name-publish") {
    ask_names(c, waiting(c, Waiting::kPublish, m), m.get("port"));
  } else if (cmd == "name-lookup") {
    ask_names(c, waiting(c, Waiting::kLookup, m), "");
  } else if (cmd == "name-unpublish") {
    ask_names(c, waiting(c, Waiting::kUnpublish, m), "");
  } else if (cmd == "spawn") {
    spawn_v2(c, m);
  } else if (cmd == "finalize") {
    in_mpi_.erase(c.rank);
    answer("finalize-response", {{"rc", "0"}});
  } else if (cmd == "abort") {
    in_mpi_.erase(c.rank);
    spdlog::debug("{}: rank {} aborts (PMI-2): {}", context_.node_name(), c.rank, m.get("msg"));
    if (on_abort_) on_abort_(c.rank, 1);
  } else {
    // job-connect, job-disconnect (which MPICH's own client calls not
    // functioning), ring, anything else.
    spdlog::warn("{}: rank {}: PMI-2 command {} is not served", context_.node_name(), c.rank, cmd);
    answer(cmd + "-response", {{"rc", "-1"}, {"errmsg", "not_supported_by_mosixrun"}});
  }
}

}  // namespace mosix
