// HomeJob and mosixctl: what the job's control socket answers (ps, nodes:
// the job's JobView), the migrations it orders, and its suspended ranks
// (mosixctl checkpoint --kill, mosixctl restart).
#include <signal.h>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "runtime/daemon/proc_stat_file.h"
#include "runtime/job/home_job_impl.h"

namespace mosix {

JobView HomeJob::view() const {
  JobView v;
  v.job = spec_.record.id;
  auto show = [&](int rank, const Rank& r) {
    GuestView g;
    g.rank = rank;
    g.pid = r.pid;
    g.home = spec_.record.home_node;
    g.node = r.node >= 0 ? node_name(r.node) : "";
    // Guests of a virtual cluster run on this machine: read their CPU time here.
    g.cpu_seconds = r.pid > 0 && !r.ended ? process_cpu_seconds(r.pid) : -1;
    g.state = r.ended                       ? "exited"
              : r.suspended                 ? "suspended"
              : !r.started                  ? "starting"
              : r.migrating                 ? "migrating"
              : process_state(r.pid) == 'T' ? "stopped"
                                            : "running";
    g.exit_status = r.ended ? shell_status(r.end) : -1;
    g.cantmove = r.cantmove;
    g.last_migration = r.last_migration;
    g.migrations = r.moves;
    g.balancer_migrations = r.balancer_moves;
    g.migration_progress = r.migrating ? r.progress : "";
    g.verdict = r.decision.verdict;
    g.explanation = r.decision.explanation;
    g.parent = r.parent;
    g.command = r.command;
    v.guests.push_back(std::move(g));
  };
  for (const auto& [rank, r] : ranks_) show(rank, r);
  for (const auto& [rank, b] : bodies_) show(rank, b);
  for (const auto& [id, h] : hellos_) {
    NodeView n;
    n.node = id;
    n.name = h.node_name;
    n.speed = h.speed;
    n.cores = static_cast<int>(h.cores);
    n.memory = h.memory_bytes;
    if (auto load = loads_.find(id); load != loads_.end()) {
      n.load = load->second.load;
      n.cpu = load->second.cpu;
      n.free_memory = load->second.free_memory;
    }
    for (const auto& [rank, r] : ranks_) n.guests += r.node == id && !r.ended;
    for (const auto& [rank, b] : bodies_) n.guests += b.node == id;
    v.nodes.push_back(std::move(n));
  }
  return v;
}

nlohmann::json HomeJob::control(const nlohmann::json& request) {
  std::string cmd = request.value("cmd", "");
  if (cmd == "ps") return ps_reply(view());
  if (cmd == "nodes") return nodes_reply(view());
  if (cmd == "restart") return restart_suspended(request);
  return {{"ok", false}, {"error", "unknown request '" + cmd + "'"}};
}

void HomeJob::control_async(const nlohmann::json& request, ControlReply reply) {
  if (request.value("cmd", "") == "migrate") {
    migrate(request, std::move(reply));
  } else {
    reply(control(request));
  }
}

// {"cmd":"migrate","rank":R,"to":"vnode2"|"home"|"best"}: answered when the
// migration has ended, with what it moved and how long the guest was stopped.
void HomeJob::migrate(const nlohmann::json& request, ControlReply reply) {
  auto refuse = [&reply](const std::string& why) { reply({{"ok", false}, {"error", why}}); };
  if (!request.contains("rank") || !request["rank"].is_number_integer()) {
    refuse("migrate needs \"rank\": a number");
    return;
  }
  int rank = request["rank"].get<int>();
  std::string to = request.value("to", "best");
  Rank* found = find_guest(rank);
  if (found == nullptr) return refuse("this job has no rank " + std::to_string(rank));
  Rank& r = *found;
  if (r.ended) return refuse("rank " + std::to_string(rank) + " has exited");
  if (r.suspended) {
    return refuse("rank " + std::to_string(rank) + " is suspended in its image " + r.suspended_image +
                  " (mosixctl restart " + r.suspended_image + " brings it back)");
  }
  if (!r.started || !home_) return refuse("rank " + std::to_string(rank) + " has not started yet");
  if (r.migrating) return refuse("rank " + std::to_string(rank) + " is already moving");
  if (r.pinned && r.cantmove == kMpiCantMove) {
    return refuse("rank " + std::to_string(rank) + " cannot move: " + kMpiCantMove +
                  " (an MPI rank stays where it started; other copies of a job still move)");
  }
  if (r.pinned && r.cantmove == kPtyCantMove) return refuse("rank " + std::to_string(rank) + " cannot move: " + kPtyCantMove);
  if (r.pinned) return refuse("rank " + std::to_string(rank) + " is pinned (mosixrun --pin): it never moves");
  int target = -1;
  if (to == "home") {
    target = 0;
  } else if (to == "best") {
    // The least loaded other node, by what the nodes last reported.
    double best = 0;
    for (const auto& [id, h] : hellos_) {
      if (id == r.node) continue;
      auto load = loads_.find(id);
      double l = load == loads_.end() ? 0.0 : load->second.load;
      if (target < 0 || l < best) {
        target = id;
        best = l;
      }
    }
    if (target < 0) return refuse("this job has no other node to move rank " + std::to_string(rank) + " to");
  } else {
    for (const auto& [id, name] : node_names_) {
      if (name == to) target = id;
    }
    if (target < 0) {
      std::string names;
      for (const auto& [id, name] : node_names_) names += (names.empty() ? "" : ", ") + name;
      return refuse("no node '" + to + "' in this job (its nodes: " + names + "; or home, best)");
    }
  }
  if (target == r.node) {
    return refuse("rank " + std::to_string(rank) + " already runs on " + node_name(target));
  }
  std::uint64_t id = next_migration_++;
  r.migrating = true;
  migrations_[id] = PendingMigration{std::move(reply), r.node, std::chrono::steady_clock::now()};
  MigrateRequest m;
  m.migration_id = id;
  m.rank = rank;
  m.target_node = static_cast<std::uint32_t>(target);
  spdlog::debug("rank {}: moving from {} to {}", rank, node_name(r.node), node_name(target));
  home_->send(m);
}

void HomeJob::migration_ended(const MigrateResult& m) {
  Rank ended_body;  // a body that ended while it moved: its move is answered all the same
  ended_body.ended = true;
  Rank* body = body_ranks_.count(m.rank) ? find_guest(m.rank) : nullptr;
  Rank& r = body_ranks_.count(m.rank) ? (body ? *body : ended_body) : ranks_[m.rank];
  r.migrating = false;
  r.progress.clear();
  ended_migrations_.insert(m.migration_id);
  auto pending = migrations_.find(m.migration_id);
  int from = static_cast<int>(m.source_node);
  double total_ms = pending == migrations_.end()
                        ? 0.0
                        : std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                                    pending->second.started)
                              .count();
  nlohmann::json reply;
  if (m.ok) {
    r.cantmove.clear();
    if (!r.ended) {
      r.node = static_cast<int>(m.target_node);
      r.pid = m.pid;
    }
    for (GuestRecord& g : spec_.record.guests) {
      if (g.rank == m.rank && !r.ended) {
        g.pid = m.pid;
        g.node = node_name(r.node);
      }
    }
    record_dirty_ = true;
    ++r.moves;
    // A move nobody here asked for was the balancer's (runtime/core/balancer.h).
    if (pending == migrations_.end()) ++r.balancer_moves;
    r.last_migration = std::string(pending == migrations_.end() ? "balancer moved it" : "moved") + " from " +
                       node_name(from) + " to " + node_name(static_cast<int>(m.target_node));
    reply = {{"ok", true}, {"rank", m.rank}, {"from", node_name(from)},
             {"to", node_name(static_cast<int>(m.target_node))}, {"pid", m.pid}, {"bytes", m.bytes},
             {"stopped_ms", m.stopped_ms}, {"total_ms", total_ms}, {"precopy_bytes", m.precopy_bytes},
             {"rounds", m.rounds}, {"early_bytes", m.early_bytes}};
  } else {
    if (m.cantmove) r.cantmove = m.reason;
    r.last_migration = "stayed on " + node_name(from) + ": " + m.reason;
    reply = {{"ok", false}, {"rank", m.rank}, {"from", node_name(from)},
             {"to", node_name(static_cast<int>(m.target_node))}, {"cantmove", m.cantmove},
             {"error", "rank " + std::to_string(m.rank) + " stays on " + node_name(from) + ": " + m.reason}};
  }
  spdlog::debug("rank {}: {}", m.rank, r.last_migration);
  if (pending != migrations_.end()) {
    pending->second.reply(reply);
    migrations_.erase(pending);
  }
}

// A rank killed by `mosixctl checkpoint --kill` stays a member of the job:
// the job waits for it, its node keeps its messages, and `mosixctl restart`
// of its image brings it back (restart_suspended).
void HomeJob::suspend(int rank, const GuestExited& e) {
  Rank& r = ranks_[rank];
  r.suspended = true;
  r.suspended_image = e.suspended_image;
  spdlog::info("rank {} (pid {}) on {} is suspended in its image {}; mosixctl restart {} brings it back", rank, r.pid,
               node_name(r.node), e.suspended_image, e.suspended_image);
  r.pid = 0;
  for (GuestRecord& g : spec_.record.guests) {
    if (g.rank == rank) {
      g.pid = 0;
      g.state = "suspended";
    }
  }
  record_dirty_ = true;
  maybe_finish();
}

// Nothing runs any more, and some ranks wait in their images: nothing would
// ever restart them from inside the job, so they end as the kill that
// suspended them (mpirun's rule: 137), and their images restart outside it.
bool HomeJob::end_suspended() {
  std::vector<int> suspended;
  for (auto& [rank, r] : ranks_) {
    if (r.suspended && !r.ended) {
      r.suspended = false;
      suspended.push_back(rank);
    }
  }
  if (suspended.empty()) return false;
  for (int rank : suspended) {
    spdlog::info("rank {} ends suspended: no other rank of the job runs", rank);
    rank_ended(rank, GuestExited{rank, 0, SIGKILL, false, 0, {}});
  }
  return true;
}

// {"cmd":"restart","image":PATH}: the image of a suspended rank of this job
// is restored as that rank, on the node it was suspended on. "mine": false
// when no rank of this job waits in that image (mosixctl asks the next job).
nlohmann::json HomeJob::restart_suspended(const nlohmann::json& request) {
  std::string image = request.value("image", "");
  std::error_code ec;
  auto same = [&](const std::string& path) {
    return !path.empty() && std::filesystem::equivalent(path, image, ec);
  };
  for (auto& [rank, r] : ranks_) {
    if (!r.suspended || r.ended || !same(r.suspended_image)) continue;
    if (!home_) return {{"ok", false}, {"mine", true}, {"error", "the job is ending"}};
    SpawnGuest s;
    s.rank = rank;
    s.argv = {r.suspended_image};
    s.cwd = std::filesystem::path(r.suspended_image).parent_path().string();
    s.flags = kSpawnRestore | (r.flags & (kSpawnStdin | kSpawnOneOutput | kSpawnBindCore));
    r.suspended = false;
    r.started = false;
    for (GuestRecord& g : spec_.record.guests) {
      if (g.rank == rank) g.state = "starting";
    }
    record_dirty_ = true;
    spdlog::info("rank {} restarts from {} on {}", rank, r.suspended_image, node_name(r.node));
    home_->send(s);
    return {{"ok", true}, {"rank", rank}, {"node", node_name(r.node)}, {"job", spec_.record.id}};
  }
  return {{"ok", false}, {"mine", false}, {"error", "no rank of job " + spec_.record.id + " is suspended in " + image}};
}

}  // namespace mosix
