// The home router's part of the spawn service and of the messages between
// guests (see guest_service.h for the guests' side).
#include <algorithm>
#include <csignal>
#include <spdlog/spdlog.h>

#include "runtime/core/environment.h"
#include "runtime/core/node_state.h"
#include "runtime/core/placement.h"
#include "runtime/daemon/home_router.h"

namespace mosix {

namespace {
constexpr std::uint32_t kMaxSpawnCount = 4096;
}  // namespace

void HomeRouter::to_guest(int rank, const Message& message) {
  auto it = rank_node_.find(rank);
  if (it == rank_node_.end()) return;  // no such rank: dropped, as PVM drops mail to a dead task
  if (it->second == context_.rank()) {
    if (hooks_.to_local_guest) hooks_.to_local_guest(message, rank);
  } else {
    context_.send(it->second, message);
  }
}

std::string HomeRouter::node_names() const {
  std::string names;
  for (const auto& h : hellos_) {
    if (h) names += (names.empty() ? "" : ",") + h->node_name;
  }
  return names;
}

std::vector<NodeLoad> HomeRouter::live_nodes(const std::string& where, std::vector<int>& node_of) const {
  std::vector<NodeLoad> nodes;
  node_of.clear();
  for (size_t i = 0; i < hellos_.size(); ++i) {
    if (!hellos_[i] || context_.is_lost(static_cast<int>(i))) continue;
    if (!where.empty() && hellos_[i]->node_name != where) continue;
    NodeLoad n;
    n.id = static_cast<NodeId>(i);
    n.cores = static_cast<int>(std::max(1u, hellos_[i]->cores));
    n.speed = hellos_[i]->speed;
    nodes.push_back(n);
    node_of.push_back(static_cast<int>(i));
  }
  return nodes;
}

std::map<int, int> HomeRouter::running_guests() const {
  std::map<int, int> running;
  for (const auto& [rank, node] : rank_node_) {
    if (!ended_.count(rank)) running[node]++;
  }
  return running;
}

Expected<std::vector<int>> HomeRouter::nodes_for_spawn(const std::string& where, int count,
                                                       std::map<int, int>& running) const {
  std::vector<int> node_of;
  std::vector<NodeLoad> nodes = live_nodes(where, node_of);
  if (nodes.empty()) return Error{where.empty() ? "no node is left to run it" : "no node named '" + where + "' in the job"};
  for (size_t k = 0; k < nodes.size(); ++k) nodes[k].load = load_with(nodes[k], running[node_of[k]]);
  PlacementRequest placement;
  placement.copies = count;
  placement.oversubscribe = true;
  auto chosen = place(nodes, placement);
  if (!chosen) return chosen.error();
  std::vector<int> out;
  for (size_t index : *chosen) {
    out.push_back(node_of[index]);
    running[node_of[index]]++;
  }
  return out;
}

int HomeRouter::take_ranks(int count) {
  if (next_rank_ < 0) {
    next_rank_ = context_.options().copies;
    for (const auto& [rank, node] : rank_node_) next_rank_ = std::max(next_rank_, rank + 1);
  }
  const int first = next_rank_;
  next_rank_ += count;
  return first;
}

void HomeRouter::guest_spawn(int source, const GuestSpawn& request) {
  GuestSpawnReply reply;
  reply.request_id = request.request_id;
  reply.parent_rank = request.parent_rank;
  auto refuse = [&](std::string why) {
    reply.status = -1;
    reply.reason = std::move(why);
    context_.send(source, reply);
  };
  if (!placed_) return refuse("the job's first copies are not placed yet");
  if (request.flags & kGuestSpawnDeputy) return deputy_spawn(source, request);
  if (request.count == 0 || request.count > kMaxSpawnCount) {
    return refuse("a spawn asks for 1 to " + std::to_string(kMaxSpawnCount) + " guests, not " +
                  std::to_string(request.count));
  }
  if (request.argv.empty() || request.argv[0].empty()) return refuse("a spawn names no program");

  std::map<int, int> running = running_guests();
  auto where = nodes_for_spawn(request.where, static_cast<int>(request.count), running);
  if (!where) return refuse(where.error().message);

  const int first = take_ranks(static_cast<int>(where->size()));
  int next = first;
  for (int node : *where) {
    SpawnGuest s;
    s.rank = next++;
    s.argv = request.argv;
    s.env = request.env;
    s.cwd = request.cwd;
    set_env(s.env, "MOSIX_RANK", std::to_string(s.rank));
    set_env(s.env, "MOSIX_PARENT_RANK", std::to_string(request.parent_rank));
    set_env(s.env, "MOSIX_SPAWN_RANKS", std::to_string(first) + "," + std::to_string(request.count));
    set_env(s.env, "MOSIX_NODES", node_names());
    if (get_env(request.env, "MOSIX_PVM_OUTPUT")) {
      // A PVM task (compat/pvm): one output stream, whose lines mosixrun
      // tags with the task id, as pvm does (docs/pvm.md).
      s.flags |= kSpawnOneOutput;
      tagged_.insert(s.rank);
    }
    rank_node_[s.rank] = node;
    tasks_[s.rank] = TaskInfo{request.parent_rank, std::filesystem::path(request.argv[0]).filename(), 0};
    spdlog::debug("rank {} spawns rank {} -> node {} ({})", request.parent_rank, s.rank, node,
                  hellos_[static_cast<size_t>(node)]->node_name);
    mosixrun_->send(s);  // before anything of the new rank, or the asker's end, can reach mosixrun
    context_.send(node, s);
    reply.ranks.push_back(s.rank);
    reply.nodes.push_back(static_cast<std::uint32_t>(node));
  }
  context_.send(source, reply);
}

// Placement at exec: a guest's child starting a program asks, through its
// deputy, where to run. Here (kSpawnRunHere: it execs the program itself),
// or on another node as a new rank whose start, output and end go to the
// deputy, never to mosixrun: it is the deputy's parent that waits for it.
void HomeRouter::deputy_spawn(int source, const GuestSpawn& request) {
  GuestSpawnReply reply;
  reply.request_id = request.request_id;
  reply.parent_rank = request.parent_rank;
  // Every live node with its last report and what was placed there since,
  // but one given no slots (a home that only routes): it runs no guest, and no child.
  std::vector<int> live_of, node_of;
  std::vector<NodeLoad> live = live_nodes("", live_of), nodes;
  const auto& slots = context_.options().slots;
  std::size_t here = 0;
  for (size_t k = 0; k < live.size(); ++k) {
    const int node = live_of[k];
    if (node != source && static_cast<size_t>(node) < slots.size() && slots[static_cast<size_t>(node)] == 0) continue;
    NodeLoad n = live[k];
    if (auto it = exec_loads_.find(node); it != exec_loads_.end()) n.load = it->second.load;
    const auto& placed = placed_since_report_[node];
    n.load = load_with(n, placed[0] + placed[1]);
    if (node == source) here = nodes.size();
    nodes.push_back(n);
    node_of.push_back(node);
  }
  const std::size_t choice = nodes.empty() || request.argv.empty() ? here : place_at_exec(nodes, here, context_.options().spread == "always");
  if (nodes.empty() || node_of[choice] == source) {
    if (!nodes.empty()) placed_since_report_[source][0]++;
    reply.status = kSpawnRunHere;
    context_.send(source, reply);
    return;
  }
  const int node = node_of[choice];
  SpawnGuest s;
  s.rank = take_ranks(1);
  s.argv = request.argv;
  s.env = request.env;
  s.cwd = request.cwd;
  s.program = request.program;
  s.flags = kSpawnBody | ((request.flags & kGuestSpawnStdin) ? kSpawnStdin : 0);
  set_env(s.env, "MOSIX_RANK", std::to_string(s.rank));
  set_env(s.env, "MOSIX_PARENT_RANK", std::to_string(request.parent_rank));
  rank_node_[s.rank] = node;
  deputy_node_[s.rank] = source;
  placed_since_report_[node][0]++;
  body_placed_[s.rank] = {node, reports_seen_[node]};
  spdlog::debug("a child of rank {} on node {} runs on node {} (load {:.2f} there, {:.2f} here) as rank {}: {}",
                request.parent_rank, source, node, nodes[choice].load, nodes[here].load, s.rank, request.argv[0]);
  if (mosixrun_) {  // for mosixctl ps: a body, its parent and its command
    SpawnGuest shown;
    shown.rank = s.rank;
    shown.flags = s.flags;
    shown.argv = s.argv;
    shown.program = s.program;
    set_env(shown.env, "MOSIX_PARENT_RANK", std::to_string(request.parent_rank));
    mosixrun_->send(shown);
  }
  context_.send(node, s);
  reply.ranks.push_back(s.rank);
  reply.nodes.push_back(static_cast<std::uint32_t>(node));
  context_.send(source, reply);
}

// The body's end (or suspension): counted no more among the placements
// since its node's last two reports, if it still was. One that ended after
// them is counted by no report but the one that saw it run, if any.
void HomeRouter::body_ended(int rank) {
  auto it = body_placed_.find(rank);
  if (it == body_placed_.end()) return;
  const auto [node, seen] = it->second;
  body_placed_.erase(it);
  const std::uint64_t age = reports_seen_[node] - seen;
  auto& placed = placed_since_report_[node];
  if (age < placed.size() && placed[age] > 0) placed[age]--;
}

// A node is gone. A body that was there and does not restart from an image
// died with it: its deputy ends as killed (SIGKILL), so that its parent
// learns it. A body whose deputy was there has nobody to report to: killed.
void HomeRouter::deputies_lost_with(int node, const std::vector<RankRestart>& restarting) {
  std::set<int> restarts;
  for (const RankRestart& r : restarting) restarts.insert(r.rank);
  for (auto it = deputy_node_.begin(); it != deputy_node_.end();) {
    const auto [rank, deputy] = *it;
    auto where = rank_node_.find(rank);
    const bool ended = ended_.count(rank) > 0;
    if (deputy == node) {
      if (!ended && where != rank_node_.end() && where->second != node) {
        context_.send(where->second, GuestSignal{rank, SIGKILL, 0});
      }
      it->second = kNoDeputy;  // its end is nobody's now, and never mosixrun's
      ++it;
      continue;
    }
    if (!ended && where != rank_node_.end() && where->second == node && !restarts.count(rank)) {
      rank_ended(rank);
      to_deputy(GuestExited{rank, 0, SIGKILL, false, 0});
    }
    ++it;
  }
}

bool HomeRouter::to_deputy(const Message& message) {
  int rank = -1;
  if (auto* out = std::get_if<GuestOutput>(&message)) rank = out->rank;
  else if (auto* exited = std::get_if<GuestExited>(&message)) rank = exited->rank;
  else if (auto* started = std::get_if<GuestStarted>(&message)) rank = started->rank;
  else if (auto* credit = std::get_if<StdinCredit>(&message)) rank = credit->rank;
  auto it = rank < 0 ? deputy_node_.end() : deputy_node_.find(rank);
  if (it == deputy_node_.end()) return false;
  // mosixrun lists bodies (mosixctl ps) but never counts them as copies.
  if (mosixrun_ && (std::holds_alternative<GuestStarted>(message) || std::holds_alternative<GuestExited>(message))) {
    mosixrun_->send(message);
  }
  if (std::holds_alternative<GuestStarted>(message)) return true;  // the deputy needs no word of it
  if (it->second == kNoDeputy) return true;                           // its deputy's node died
  if (it->second == context_.rank()) {
    if (hooks_.to_local_guest) hooks_.to_local_guest(message, rank);
  } else {
    context_.send(it->second, message);
  }
  return true;
}

bool HomeRouter::from_deputy(int source, const Message& message) {
  int rank = -1;
  if (auto* in = std::get_if<GuestStdin>(&message)) rank = in->rank;
  else if (auto* sig = std::get_if<GuestSignal>(&message)) rank = sig->rank;
  else if (auto* credit = std::get_if<OutputCredit>(&message)) rank = credit->rank;
  auto it = deputy_node_.find(rank);
  if (it == deputy_node_.end() || it->second != source) return false;  // a deputy speaks for its own body only
  from_home(message);  // routed as mosixrun's stdin, signals and credit are
  return true;
}

int HomeRouter::deputy_node(int rank) const {
  auto it = deputy_node_.find(rank);
  return it == deputy_node_.end() || ended_.count(rank) ? -1 : it->second;
}

void HomeRouter::guest_message(GuestMessage message) {
  if (message.dest_rank != kFromHome) {
    to_guest(message.dest_rank, message);
    return;
  }
  if (message.kind == kAskSignal) {
    // pvm_kill, pvm_sendsig: a signal for a rank, from a guest of its job.
    int signo = message.bytes.empty() ? SIGTERM : message.bytes[0];
    if (auto it = rank_node_.find(message.tag); it != rank_node_.end() && !ended_.count(message.tag) && signo > 0 &&
                                                 signo < NSIG) {
      context_.send(it->second, GuestSignal{message.tag, signo, 0});
    }
    return;
  }
  if (message.kind == kAskGroup) {
    auto request = decode_group_request(message.bytes);
    if (!request) {
      to_guest(message.source_rank, GuestMessage{kFromHome, message.source_rank, kGroupAnswer, kGroupBadParam, {}});
      return;
    }
    answer_groups(groups_.request(message.source_rank, *request));
    return;
  }
  if (message.kind == kAskTasks) {
    task_asks_.push_back(message.source_rank);
    answer_task_asks();
    return;
  }
  if (message.kind == kAskWatchNode) {
    // Tell message.source_rank when node `tag` is lost (PVM's PvmHostDelete).
    const int node = message.tag;
    if (node < 0 || node >= context_.size()) return;
    if (context_.is_lost(node)) {
      to_guest(message.source_rank, GuestMessage{kFromHome, message.source_rank, kGuestMessageNodeLost, node, {}});
    } else {
      node_watchers_[node].insert(message.source_rank);
    }
    return;
  }
  if (message.kind != kAskWatchExit) return;
  // Tell message.source_rank when rank `tag` ends.
  const int watched = message.tag;
  if (ended_.count(watched) || !rank_node_.count(watched)) {
    to_guest(message.source_rank, GuestMessage{kFromHome, message.source_rank, kGuestMessageExited, watched, {}});
  } else {
    exit_watchers_[watched].insert(message.source_rank);
  }
}

void HomeRouter::answer_task_asks() {
  if (task_asks_.empty()) return;
  for (const auto& [rank, task] : tasks_) {
    if (!ended_.count(rank) && !started_.count(rank)) return;  // asked again at its start
  }
  const Bytes answer = tasks_answer();
  for (int asker : task_asks_) to_guest(asker, GuestMessage{kFromHome, asker, kTasksAnswer, 0, answer});
  task_asks_.clear();
}

Bytes HomeRouter::tasks_answer() const {
  Bytes out;
  auto put32 = [&](std::int32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(static_cast<std::uint32_t>(v) >> (8 * i)));
  };
  for (const auto& [rank, task] : tasks_) {
    auto node = rank_node_.find(rank);
    if (ended_.count(rank) || node == rank_node_.end()) continue;  // listed from its spawn on, as by a pvmd
    put32(rank);
    put32(task.parent);
    put32(node->second);
    put32(task.pid);
    const std::size_t n = std::min<std::size_t>(task.name.size(), 255);
    out.push_back(static_cast<std::uint8_t>(n));
    out.push_back(0);
    out.insert(out.end(), task.name.begin(), task.name.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return out;
}

void HomeRouter::answer_groups(const std::vector<GroupAnswer>& answers) {
  for (const GroupAnswer& a : answers) {
    GuestMessage m{kFromHome, a.to_rank, kGroupAnswer, a.result, {}};
    for (std::int32_t r : a.ranks) {
      for (int i = 0; i < 4; ++i) m.bytes.push_back(static_cast<std::uint8_t>(static_cast<std::uint32_t>(r) >> (8 * i)));
    }
    to_guest(a.to_rank, m);
  }
}

// A node is lost: who watched it learns it, and who watched a guest that
// was there (and does not restart from an image) learns that it ended.
void HomeRouter::tell_node_lost(int node, const std::vector<RankRestart>& restarting) {
  std::set<int> restarts;
  for (const RankRestart& r : restarting) restarts.insert(r.rank);
  std::vector<int> lost;
  for (const auto& [rank, where] : rank_node_) {
    if (where == node && !ended_.count(rank) && !restarts.count(rank)) lost.push_back(rank);
  }
  for (int rank : lost) rank_ended(rank);
  answer_task_asks();
  auto it = node_watchers_.find(node);
  if (it == node_watchers_.end()) return;
  std::set<int> watchers = std::move(it->second);
  node_watchers_.erase(it);
  for (int w : watchers) {
    if (!ended_.count(w)) to_guest(w, GuestMessage{kFromHome, w, kGuestMessageNodeLost, node, {}});
  }
}

void HomeRouter::rank_ended(int rank) {
  ended_.insert(rank);
  answer_groups(groups_.rank_ended(rank));
  auto it = exit_watchers_.find(rank);
  if (it == exit_watchers_.end()) return;
  std::set<int> watchers = std::move(it->second);
  exit_watchers_.erase(it);
  for (int w : watchers) {
    if (!ended_.count(w)) to_guest(w, GuestMessage{kFromHome, w, kGuestMessageExited, rank, {}});
  }
}

}  // namespace mosix
