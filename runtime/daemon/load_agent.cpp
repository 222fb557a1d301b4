#include "runtime/daemon/load_agent.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

#include "runtime/core/balancer.h"
#include "runtime/core/run_queue.h"
#include "runtime/topology/node_load.h"

namespace mosix {
namespace {

using boost::system::error_code;

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

LoadAgent::LoadAgent(DaemonContext& context, const GuestTable& guests, Migrations& migrations)
    : context_(context),
      guests_(guests),
      migrations_(migrations),
      load_timer_(context.io()),
      gossip_timer_(context.io()),
      balance_timer_(context.io()),
      rng_(0x6d6f736978ULL + static_cast<std::uint64_t>(context.rank()) * 7919 +
           std::hash<std::string>{}(context.options().job_id)),
      loads_(static_cast<NodeId>(context.rank()), GossipParams{}) {
  migrations_.set_admission([this](int source) { return admit(source); });
}

void LoadAgent::set_capacity(double speed, int cores) {
  speed_ = speed;
  cores_ = cores;
}

void LoadAgent::set_probe(RunQueueProbe probe) {
  spdlog::debug("{}: load from {}", context_.node_name(), probe.describe());
  probe_ = std::move(probe);
}

void LoadAgent::start() {
  report_load();
  gossip();
  balance();
}

std::size_t LoadAgent::known_nodes() const { return loads_.others(context_.now()).size(); }

// Every half second: this node's load (its runnable tasks per unit of
// speed), CPU use and free memory, to the home node, which shows them
// (mosixctl ps, mon).
void LoadAgent::report_load() {
  const RunQueueReading reading = probe_.read();
  if (seats_ != nullptr) seats_->probed(reading.runnable);
  // MOSIX's two estimators: the local one rises slowly and drops at once,
  // the exported one rises at once and decays slowly, so that many nodes
  // do not all rush to the same idle node.
  double t = context_.now();
  double dt = t - last_sample_at_;
  last_sample_at_ = t;
  if (dt > 0) cpu_use_ = reading.cpu_seconds / dt;
  // The mean runnable count over the interval where the kernel measures it:
  // a single sample of a node running a renderer read 0 to 13 (its helper
  // threads wake and sleep), and balancers sent guests to a node that looked
  // idle and was not.
  const double runnable = reading.runnable_seconds >= 0 && dt > 0 ? reading.runnable_seconds / dt : reading.runnable;
  runnable_[1] = runnable_[0];
  runnable_[0] = runnable;
  arrivals_seen_ = migrations_.arrivals();
  double sample = load_sample(runnable, speed_, cores_);
  EstimatorParams est;
  local_estimate_ = local_load_estimate(local_estimate_, sample, dt, est.local_rise);
  exported_estimate_ = exported_load_estimate(exported_estimate_, sample, dt, est.export_decay);
  LoadEntry e;
  e.node = static_cast<std::uint32_t>(context_.rank());
  e.load = exported_estimate_;
  e.speed = speed_;
  e.cpu = cpu_use_;
  e.cores = static_cast<std::uint32_t>(std::max(1, cores_));
  if (auto mem = read_meminfo()) e.free_memory = mem->available_bytes;
  NodeLoad self;
  self.id = static_cast<NodeId>(context_.rank());
  self.cores = cores_;
  self.speed = speed_;
  self.load = exported_estimate_;
  self.free_memory = e.free_memory;
  self.work = guest_work_;
  loads_.update_self(self, t);
  self_load_ = self;
  context_.send(0, LoadReport{{e}});
  load_timer_.expires_after(std::chrono::milliseconds(500));
  load_timer_.async_wait([this](error_code ec) {
    if (!ec) report_load();
  });
}

// MOSIX's randomized gossip: at jittered intervals, the freshest window of
// our load vector (ourselves first) to one node picked at random.
void LoadAgent::gossip() {
  if (auto peer = pick_peer(static_cast<NodeId>(context_.rank()), static_cast<size_t>(context_.size()), rng_)) {
    LoadReport report;
    for (const NodeLoad& n : loads_.window(context_.now())) {
      LoadEntry e;
      e.node = static_cast<std::uint32_t>(n.id);
      e.load = n.load;
      e.speed = n.speed;
      e.free_memory = n.free_memory;
      e.age_ms = static_cast<std::uint32_t>(std::max(0.0, n.age) * 1000);
      e.cores = static_cast<std::uint32_t>(std::max(1, n.cores));
      e.work = n.work;
      if (n.id == static_cast<NodeId>(context_.rank())) e.cpu = cpu_use_;
      report.entries.push_back(e);
    }
    context_.send(static_cast<int>(*peer), report);
  }
  gossip_timer_.expires_after(seconds(next_gossip_delay(GossipParams{}, rng_)));
  gossip_timer_.async_wait([this](error_code ec) {
    if (!ec) gossip();
  });
}

void LoadAgent::merge(const LoadReport& report) {
  std::vector<NodeLoad> received;
  for (const LoadEntry& e : report.entries) {
    NodeLoad n;
    n.id = static_cast<NodeId>(e.node);
    n.speed = e.speed;
    n.load = e.load;
    n.free_memory = e.free_memory;
    n.age = e.age_ms / 1000.0;
    n.cores = static_cast<int>(std::max<std::uint32_t>(1, e.cores));
    n.work = e.work;
    received.push_back(n);
  }
  loads_.merge(received, context_.now());
}

// This node's load now, as a target judges a move: the more of the last two
// samples (a task that just slept still counts), the guests that arrived since
// and those on their way but by the balancer, whose moves decline_move counts.
std::string LoadAgent::admit(int source) const {
  NodeLoad here = self_load_;
  const int balancer = migrations_.balancer_moves_arriving();
  const auto arrived = static_cast<int>(migrations_.arrivals() - arrivals_seen_);
  const double runnable = std::max(runnable_[0], runnable_[1]) + arrived + migrations_.arriving() - balancer;
  here.load = load_sample(runnable, speed_, cores_);
  std::optional<NodeLoad> from;
  for (const NodeLoad& n : loads_.others(context_.now())) {
    if (static_cast<int>(n.id) == source && n.age <= BalancerParams{}.max_info_age) from = n;
  }
  return decline_move(here, balancer, from);
}

// About once a second: MOSIX's rebalancing decision (runtime/core/balancer.h)
// on this node's guests and its gossip view; at most one move at a time. The
// verdict on every guest goes home (BalanceReport) for `mosixctl ps
// --explain`, also when migration is off or the guest is pinned.
void LoadAgent::balance() {
  const NodeDaemonOptions& options = context_.options();
  if (migrations_.idle() && !context_.shutting_down()) {
    NodeState st;
    st.self = self_load_;
    // Its own load as MOSIX judges it: the local estimate (rises slowly, so a
    // brief burst does not send guests away; drops at once when guests
    // leave). Others see the exported one.
    st.self.load = local_estimate_;
    for (const auto& [rank, g] : guests_.guests()) {
      if (g->phase != GuestPhase::kLive || !g->running || g->migrating) continue;
      GuestState gs;
      gs.id = static_cast<GuestId>(rank);
      gs.rank = rank;
      gs.cpu_used = guests_.work_done(*g);
      std::uint64_t pages = 0;
      if (FILE* f = std::fopen(("/proc/" + std::to_string(g->proc.pid) + "/statm").c_str(), "r")) {
        unsigned long long size = 0, rss = 0;
        if (std::fscanf(f, "%llu %llu", &size, &rss) == 2) pages = rss;
        std::fclose(f);
      }
      gs.image_bytes = gs.memory_bytes = pages * 4096;
      gs.arrived_at = g->arrived_at;
      gs.runnable = runnable_threads(g->proc.pid) > 0;
      gs.pinned = (g->flags & (kSpawnPinned | kSpawnPty)) != 0;  // a terminal cannot follow it
      gs.cant_move = (g->flags & kSpawnMpi) ? std::string(kMpiCantMove) : g->cant_move;
      st.guests.push_back(gs);
    }
    guest_work_ = expected_work(st.guests, BalancerParams{}.remaining_floor);
    if (!st.guests.empty()) {
      BalancerParams params;
      params.migrate = options.rebalance;
      params.bandwidth = migrations_.bandwidth();
      const double now = context_.now();
      std::vector<NodeLoad> view = loads_.others(now);
      std::erase_if(view, [this](const NodeLoad& n) { return context_.is_lost(static_cast<int>(n.id)); });
      Decision d = decide(st, view, now, params);
      BalanceReport report;
      report.node = static_cast<std::uint32_t>(context_.rank());
      for (const Explanation& e : d.explanations) {
        report.guests.push_back(GuestDecision{static_cast<std::int32_t>(e.guest),
                                              std::string(verdict_phrase(e.verdict)), explain(e)});
      }
      context_.send(0, report);
      if (options.rebalance && d.move && static_cast<int>(d.move->target) < context_.size()) {
        MigrateRequest m;
        // Ids of the daemons' own moves cannot collide with mosixrun's.
        m.migration_id = balancer_move_id(context_.rank(), ++next_auto_migration_);
        m.rank = static_cast<std::int32_t>(d.move->guest);
        m.target_node = static_cast<std::uint32_t>(d.move->target);
        // Count the guest at the target at once, as the target will report it
        // soon: the next round here must not send it a second one meanwhile.
        for (const Explanation& e : d.explanations) {
          if (e.guest != d.move->guest) continue;
          spdlog::debug("{}: balancer moves rank {} to node {} (load {:.2f} here, {:.2f} there; gain {:.1f} s, cost "
                        "{:.2f} s)", context_.node_name(), m.rank, m.target_node, e.node_load, e.target_load,
                        d.move->expected_gain, d.move->cost);
          loads_.note_guest_sent(d.move->target, e.remaining);
        }
        migrations_.migrate_out(m);
      }
    }
  }
  // Jittered (0.75-1.25 s), as gossip is: nodes that decide in lockstep send
  // guests to the same idle node in the same round.
  balance_timer_.expires_after(seconds(0.75 + 0.5 * rng_.uniform()));
  balance_timer_.async_wait([this](error_code ec) {
    if (!ec) balance();
  });
}

}  // namespace mosix
