#include "runtime/daemon/home_router.h"

#include <cerrno>
#include <csignal>
#include <algorithm>
#include <chrono>
#include <variant>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "runtime/ckpt/format/image_file.h"
#include "runtime/core/environment.h"
#include "runtime/core/overloaded.h"
#include "runtime/core/placement.h"
#include "runtime/daemon/checkpoint_scheduler.h"
#include "runtime/daemon/output_relay.h"
#include "runtime/sys/private_path.h"
#include "runtime/sys/write_all.h"

namespace mosix {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// Output written out at home is credited to its node in batches of this.
constexpr std::uint64_t kCreditBatch = 256u << 10;

}  // namespace

HomeRouter::HomeRouter(DaemonContext& context, GuestTable& guests, Hooks hooks)
    : context_(context),
      guests_(guests),
      hooks_(std::move(hooks)),
      hellos_(static_cast<size_t>(context.size())),
      liveness_timer_(context.io()) {}

Status HomeRouter::connect() {
  auto fd = connect_unix(context_.options().home_socket);
  if (!fd) return fd.error();
  mosixrun_sd_ = std::make_unique<asio::posix::stream_descriptor>(context_.io(), *fd);
  mosixrun_ = std::make_unique<FrameSender>(::dup(*fd));
  read_home();
  return {};
}

void HomeRouter::start() {
  last_heard_.assign(static_cast<size_t>(context_.size()), context_.now());
  check_liveness();
}

void HomeRouter::heard_from(int node) {
  if (node >= 0 && static_cast<size_t>(node) < last_heard_.size()) last_heard_[static_cast<size_t>(node)] = context_.now();
}

void HomeRouter::read_home() {
  // Read with recvmsg: OutputFds comes with descriptors.
  mosixrun_sd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    ssize_t got = 0;
    if (!ec) {
      got = recv_with_fds(mosixrun_sd_->native_handle(), mosixrun_buf_.data(), mosixrun_buf_.size(), mosixrun_fds_);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) return read_home();
      if (got <= 0) ec = got == 0 ? asio::error::eof : error_code(errno, boost::system::system_category());
    }
    const size_t n = got > 0 ? static_cast<size_t>(got) : 0;
    if (n > 0) {
      auto messages = mosixrun_reader_.feed(mosixrun_buf_.data(), n);
      if (!messages) {
        spdlog::error("home node: bad frame from mosixrun: {}", messages.error().message);
        hooks_.shutdown("mosixrun spoke garbage");
        return;
      }
      for (Message& m : *messages) from_home(std::move(m));
    }
    if (ec) {
      if (!context_.shutting_down()) {
        // mosixrun is gone: end the job on every node, not only here.
        spdlog::debug("mosixrun closed the job socket");
        for (int node = 0; node < context_.size(); ++node) context_.send(node, Shutdown{"mosixrun is gone"});
      }
      return;
    }
    read_home();
  });
}

void HomeRouter::from_home(Message message) {
  std::visit(Overloaded{
                 [&](SpawnGuest& spawn) {
                   if ((spawn.flags & kSpawnRestore) && placed_) {
                     restore_suspended(std::move(spawn));
                     return;
                   }
                   pending_spawns_.push_back(std::move(spawn));
                   place_if_ready();
                 },
                 [&](GuestStdin& in) {
                   auto it = rank_node_.find(in.rank);
                   if (it == rank_node_.end()) {
                     early_stdin_.push_back(std::move(in));
                   } else if (moving_.count(in.rank)) {
                     held_stdin_[in.rank].push_back(std::move(in));  // until the move is over
                   } else {
                     context_.send(it->second, in);
                   }
                 },
                 [&](const OutputCredit& credit) {
                   if (auto it = rank_node_.find(credit.rank); it != rank_node_.end()) context_.send(it->second, credit);
                 },
                 [&](const GuestSignal& sig) {
                   if (sig.rank == kAllRanks) {
                     for (int node = 0; node < context_.size(); ++node) context_.send(node, sig);
                   } else if (auto it = rank_node_.find(sig.rank); it != rank_node_.end()) {
                     context_.send(it->second, sig);
                   }
                 },
                 [&](const PtyResize& size) {
                   if (auto it = rank_node_.find(size.rank); it != rank_node_.end()) context_.send(it->second, size);
                 },
                 [&](const MigrateRequest& move) { order_move(move); },
                 [&](const Shutdown& bye) {
                   for (int node = 0; node < context_.size(); ++node) context_.send(node, bye);
                 },
                 [&](const OutputFds& fds) { take_output_fds(fds); },
                 [](const auto&) {},
             },
             message);
}

void HomeRouter::order_move(const MigrateRequest& move) {
  auto it = rank_node_.find(move.rank);
  if (it == rank_node_.end() || static_cast<int>(move.target_node) >= context_.size()) {
    MigrateResult r;
    r.migration_id = move.migration_id;
    r.rank = move.rank;
    r.target_node = move.target_node;
    r.reason = it == rank_node_.end() ? "rank " + std::to_string(move.rank) + " is not placed"
                                      : "no node " + std::to_string(move.target_node);
    mosixrun_->send(r);
  } else {
    moving_.insert(move.rank);
    context_.send(it->second, move);
  }
}

// `mosixctl restart` of a suspended rank's image: restored on the node it
// was suspended on, whose guest service kept what came for it meanwhile.
void HomeRouter::restore_suspended(SpawnGuest spawn) {
  auto it = rank_node_.find(spawn.rank);
  if (it == rank_node_.end() || context_.is_lost(it->second)) {
    spdlog::warn("rank {} is not restored from {}: its node is gone", spawn.rank,
                 spawn.argv.empty() ? "" : spawn.argv[0]);
    rank_ended(spawn.rank);
    mosixrun_->send(GuestExited{spawn.rank, 0, SIGKILL, false, 0, {}});
    return;
  }
  if (it->second == context_.rank()) guests_.spawn(std::move(spawn));
  else context_.send(it->second, spawn);
}

void HomeRouter::take_output_fds(const OutputFds& fds) {
  if (fds.count == 2 && mosixrun_fds_.size() >= 2 && out_fd_ < 0) {
    out_fd_ = mosixrun_fds_[0];
    err_fd_ = mosixrun_fds_[1];
    // Output comes in frames of up to kOutputChunk: a pipe that holds
    // several means fewer wake-ups for us and for its reader.
    for (int fd : {out_fd_, err_fd_}) widen_pipe(fd, 4 * kOutputChunk);
    mosixrun_fds_.erase(mosixrun_fds_.begin(), mosixrun_fds_.begin() + 2);
  } else {
    spdlog::error("home node: mosixrun's OutputFds came without its descriptors");
  }
}

void HomeRouter::place_if_ready() {
  const NodeDaemonOptions& options = context_.options();
  if (placed_ || static_cast<int>(pending_spawns_.size()) < options.copies) return;
  for (const auto& h : hellos_) {
    if (!h) return;
  }
  std::vector<NodeLoad> nodes;
  for (size_t i = 0; i < hellos_.size(); ++i) {
    NodeLoad n;
    n.id = static_cast<NodeId>(i);
    n.cores = static_cast<int>(hellos_[i]->cores);
    n.speed = hellos_[i]->speed;
    n.total_memory = hellos_[i]->memory_bytes;
    n.free_memory = hellos_[i]->memory_bytes;
    nodes.push_back(n);
  }
  PlacementRequest request;
  request.copies = options.copies;
  request.oversubscribe = options.oversubscribe;
  request.slots = options.slots;
  request.map_by = options.map_by == "node" ? MapBy::kNode : options.map_by == "slot" ? MapBy::kSlot : MapBy::kLoad;
  auto where = place(nodes, request);
  if (!where) {
    spdlog::error("cannot place the job: {}", where.error().message);
    mosixrun_->send(Shutdown{"cannot place the job: " + where.error().message});
    return;
  }
  placed_ = true;
  std::map<size_t, int> per_node;
  for (size_t node : *where) per_node[node]++;
  // An MPI job: each node with copies learns where every rank runs before
  // its first copy starts (its PMIx server tells the copies).
  if (std::any_of(pending_spawns_.begin(), pending_spawns_.end(),
                  [](const SpawnGuest& s) { return (s.flags & kSpawnMpi) != 0; })) {
    MpiJobMap map;
    for (size_t node : *where) map.rank_nodes.push_back(static_cast<std::uint32_t>(node));
    for (const auto& h : hellos_) map.node_names.push_back(h->node_name);
    std::set<std::uint32_t> nodes(map.rank_nodes.begin(), map.rank_nodes.end());
    mpi_map_ = map;
    mpi_nodes_.insert(nodes.begin(), nodes.end());
    for (const SpawnGuest& s : pending_spawns_) {
      if (s.rank == 0) mpi_first_copy_ = s;
    }
    for (std::uint32_t node : nodes) {
      if (static_cast<int>(node) == context_.rank()) {
        if (hooks_.mpi_job_map) hooks_.mpi_job_map(map);
      } else {
        context_.send(static_cast<int>(node), map);
      }
    }
    mpi_rank_nodes_ = std::move(map.rank_nodes);
    mpi_job_size_ = mpi_rank_nodes_.size();
  }
  std::map<size_t, int> local_rank;
  // This node's own copies start here and now, after the others are sent
  // theirs, rather than after a trip through the transport behind whatever
  // else came meanwhile: rank 0 must not start long after the others (a
  // failure of theirs would end it before it ran).
  std::vector<SpawnGuest> here;
  for (SpawnGuest& s : pending_spawns_) {
    size_t node = (*where)[static_cast<size_t>(s.rank)];
    int lr = local_rank[node]++;
    for (const char* name : {"MOSIX_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"}) {
      set_env(s.env, name, std::to_string(lr));
    }
    set_env(s.env, "OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(per_node[node]));
    set_env(s.env, "OMPI_COMM_WORLD_NODE_RANK", std::to_string(lr));
    set_env(s.env, "MOSIX_NODES", node_names());
    if ((s.flags & kSpawnBindAuto) && per_node[node] <= static_cast<int>(hellos_[node]->cores)) {
      s.flags |= kSpawnBindCore;
    }
    // More copies than cores on the node: Open MPI is told so, as mpirun
    // tells it, and a rank that waits in MPI yields its core instead of
    // spinning on it while the peer it waits for needs that core.
    if ((s.flags & kSpawnPmix) && per_node[node] > static_cast<int>(hellos_[node]->cores) &&
        !get_env(s.env, "OMPI_MCA_mpi_oversubscribe")) {
      set_env(s.env, "OMPI_MCA_mpi_oversubscribe", "1");
    }
    rank_node_[s.rank] = static_cast<int>(node);
    if (!(s.flags & kSpawnMpi)) tasks_[s.rank];  // a copy: no program name, as a task that enrolled itself under a pvmd
    spdlog::debug("rank {} -> node {} ({})", s.rank, node, hellos_[node]->node_name);
    if (static_cast<int>(node) == context_.rank()) {
      here.push_back(std::move(s));
    } else {
      context_.send(static_cast<int>(node), s);
    }
  }
  pending_spawns_.clear();
  for (SpawnGuest& s : here) guests_.spawn(std::move(s));
  for (GuestStdin& in : early_stdin_) context_.send(rank_node_[in.rank], in);
  early_stdin_.clear();
}

void HomeRouter::from_node(int source, const Message& message) {
  // A move the home did not order (the balancer's): hold the rank's stdin.
  if (auto* step = std::get_if<MigrateProgress>(&message); step && !ended_moves_.count(step->migration_id)) {
    moving_.insert(step->rank);
    if (deputy_node_.count(step->rank)) return;  // a body's: mosixrun knows no such rank
  }
  if (hold_for_migration(source, message)) return;
  if (auto* hello = std::get_if<Hello>(&message)) {
    if (Status s = check_hello(*hello, MOSIX_VERSION); !s) {
      spdlog::error("node {} refused: {}", source, s.error().message);
      mosixrun_->send(Shutdown{"node " + std::to_string(source) + " refused: " + s.error().message});
      return;
    }
    hellos_[static_cast<size_t>(source)] = *hello;
    mosixrun_->send(*hello);
    place_if_ready();
  } else {
    if (auto* started = std::get_if<GuestStarted>(&message)) {
      started_.insert(started->rank);
      if (auto t = tasks_.find(started->rank); t != tasks_.end()) t->second.pid = started->pid;
    }
    if (auto* exited = std::get_if<GuestExited>(&message)) {
      started_.insert(exited->rank);
      // A suspended rank stays where it was: its messages wait there, its
      // groups and exit watchers keep it.
      if (exited->suspended_image.empty()) rank_ended(exited->rank);
      body_ended(exited->rank);
    }
    answer_task_asks();
    if (!to_deputy(message)) mosixrun_->send(message);
  }
}

void HomeRouter::node_load(int source, const LoadReport& report) {
  if (report.entries.size() == 1 && static_cast<int>(report.entries[0].node) == source) {
    exec_loads_[source] = report.entries[0];  // it counts the children placed there since the last one
    auto& placed = placed_since_report_[source];
    placed = {0, placed[0]};
    reports_seen_[source]++;
    if (mosixrun_) mosixrun_->send(report);
  }
}

// On success the rank's messages come from its new node from now on; those
// that arrived early are let out.
void HomeRouter::route_result(const MigrateResult& result) {
  if (result.ok) rank_node_[result.rank] = static_cast<int>(result.target_node);
  ended_moves_.insert(result.migration_id);
  release_stdin(result.rank);
  auto held = held_.find(result.rank);
  if (held != held_.end()) {
    std::vector<Message> early = std::move(held->second);
    held_.erase(held);
    if (result.ok) {
      for (Message& m : early) {
        if (auto* exited = std::get_if<GuestExited>(&m); exited && exited->suspended_image.empty()) {
          rank_ended(exited->rank);
        }
        to_mosixrun(m);
      }
    }
  }
  // A body's move (the balancer's) is its deputy's affair: mosixrun only
  // lists bodies, and never waits for them.
  mosixrun_->send(result);
}

// Output and the end of a rank that come from a node other than the one it
// is known to run on are from a migration not yet confirmed.
bool HomeRouter::hold_for_migration(int source, const Message& message) {
  int rank = -1;
  if (auto* out = std::get_if<GuestOutput>(&message)) rank = out->rank;
  else if (auto* exited = std::get_if<GuestExited>(&message)) rank = exited->rank;
  if (rank < 0) return false;
  auto it = rank_node_.find(rank);
  if (it == rank_node_.end() || it->second == source) return false;
  held_[rank].push_back(message);
  return true;
}

bool HomeRouter::forward_output(const Delivery& delivery) {
  auto rank = guest_output_rank(delivery.frame);
  if (!rank) return false;
  auto it = rank_node_.find(*rank);
  if (it != rank_node_.end() && it->second != delivery.source) return false;
  if (deputy_node_.count(*rank)) return false;  // a body's: to its deputy (from_node)
  if (out_fd_ >= 0 && !tagged_.count(*rank)) {
    write_output(delivery.frame);
  } else {
    mosixrun_->send_frame(delivery.frame);
  }
  return true;
}

// With mosixrun's stdout and stderr (OutputFds): a rank's output is checked
// and written there, and its node credited for it. On a virtual cluster
// every frame came over a unix socket or shared memory of this machine, and
// in-process none left it: its CRC is not computed again (a tenth of the
// path's CPU).
void HomeRouter::write_output(std::span<const std::uint8_t> frame) {
  auto out = view_guest_output(frame, context_.options().vcluster_cpu.empty() && !context_.options().in_process);
  if (!out) {
    spdlog::error("{}: guest output dropped: {}", context_.node_name(), out.error().message);
    return;
  }
  sys::write_all(out->stream == OutputStream::kStderr ? err_fd_ : out_fd_,
            reinterpret_cast<const char*>(out->bytes.data()), out->bytes.size());
  std::uint64_t& done = output_written_[out->rank];
  done += out->bytes.size();
  if (done >= kCreditBatch) {
    if (auto it = rank_node_.find(out->rank); it != rank_node_.end()) {
      context_.send(it->second, OutputCredit{out->rank, done});
    }
    done = 0;
  }
}

void HomeRouter::to_mosixrun(const Message& message) {
  if (to_deputy(message)) return;
  if (auto* out = std::get_if<GuestOutput>(&message); out && out_fd_ >= 0 && !tagged_.count(out->rank)) {
    write_output(encode_frame(message));
  } else {
    mosixrun_->send(message);
  }
}

// Once a second: a node not heard from (any frame counts: load reports come
// every half second) for node_timeout seconds is gone.
void HomeRouter::check_liveness() {
  double t = context_.now();
  // A home that was itself held up has not read what came meanwhile: judge
  // nobody on this round.
  bool held_up = liveness_checked_at_ > 0 && t - liveness_checked_at_ > 2.0;
  liveness_checked_at_ = t;
  if (!held_up && !context_.shutting_down()) {
    for (int n = 1; n < context_.size(); ++n) {
      auto i = static_cast<size_t>(n);
      if (context_.is_lost(n) || !hellos_[i]) continue;
      if (t - last_heard_[i] > context_.options().node_timeout) {
        spdlog::debug("{}: no word from node {} for {:.1f} s: it is gone", context_.node_name(), n, t - last_heard_[i]);
        hooks_.node_gone(n);
      } else if (context_.transport().peer_vanished(n)) {
        // Its connection ended without a goodbye: it died; no need to wait.
        spdlog::debug("{}: node {}'s connection ended without a goodbye: it is gone", context_.node_name(), n);
        hooks_.node_gone(n);
      }
    }
  }
  liveness_timer_.expires_after(std::chrono::seconds(1));
  liveness_timer_.async_wait([this](error_code ec) {
    if (!ec) check_liveness();
  });
}

void HomeRouter::node_lost(int node) {
  // A node only slow to answer must not live on with guests nobody waits
  // for: it is told to end (a dead one never reads this), and forgotten a
  // little later so that the word can leave. The job's end forgets it at
  // once (NodeDaemon::run()).
  context_.send(node, Shutdown{std::string(kDeclaredGone) + " (no word from it)"});
  auto timer = std::make_shared<asio::steady_timer>(context_.io(), std::chrono::seconds(2));
  timer->async_wait([this, node, timer](error_code) { context_.transport().forget(node); });
  NodeLost word{static_cast<std::uint32_t>(node), {}};
  for (int n = 1; n < context_.size(); ++n) {
    if (n != node && !context_.is_lost(n)) context_.send(n, word);
  }
  std::vector<int> stranded;  // moving away from the lost node: they will not arrive
  for (int rank : moving_) {
    if (rank_node_[rank] == node) stranded.push_back(rank);
  }
  word.restarting = restart_lost_ranks(node);
  // A copy sent there that never started (nor failed to) is lost with it:
  // mosixrun learns its end, or it would wait for it for ever.
  for (const auto& [rank, where] : rank_node_) {
    if (where == node && !started_.count(rank) && mosixrun_ && !deputy_node_.count(rank)) {  // a body: below
      spdlog::warn("rank {} was sent to node {} ({}) but never started there", rank, node,
                   hellos_[static_cast<size_t>(node)] ? hellos_[static_cast<size_t>(node)]->node_name : "?");
      started_.insert(rank);
      mosixrun_->send(GuestExited{rank, 0, SIGKILL, false, 0});
    }
  }
  deputies_lost_with(node, word.restarting);
  tell_node_lost(node, word.restarting);
  for (int rank : stranded) release_stdin(rank);  // to its restarted self, or dropped with it
  if (mosixrun_) mosixrun_->send(word);
  names_.node_lost(node);
  for (FenceCollector::Release& r : fences_.node_lost(node)) {
    for (int n : r.nodes) context_.send(n, r.message);
  }
}

void HomeRouter::names(int source, const Message& request) {
  std::vector<PublishedNames::Answer> answers;
  if (auto* p = std::get_if<NamePublish>(&request)) answers = names_.publish(source, *p);
  if (auto* l = std::get_if<NameLookup>(&request)) answers = names_.lookup(source, *l);
  if (auto* u = std::get_if<NameUnpublish>(&request)) answers.push_back(names_.unpublish(source, *u));
  for (const PublishedNames::Answer& a : answers) {
    if (!context_.is_lost(a.node)) context_.send(a.node, a.reply);
  }
}

void HomeRouter::fence(int source, FenceContribution part) {
  if (mpi_rank_nodes_.empty()) {
    spdlog::warn("node {} entered an MPI fence, but the job is not an MPI job", source);
    return;
  }
  // Over no ranks named: the first copies (spawned ranks are named).
  std::vector<std::uint32_t> first;
  if (part.ranks.empty() && mpi_job_size_ < mpi_rank_nodes_.size()) {
    first.assign(mpi_rank_nodes_.begin(), mpi_rank_nodes_.begin() + static_cast<std::ptrdiff_t>(mpi_job_size_));
  }
  if (auto release = fences_.contribute(source, std::move(part), first.empty() ? mpi_rank_nodes_ : first)) {
    for (int n : release->nodes) {
      if (!context_.is_lost(n)) context_.send(n, release->message);
    }
  }
}

// A move is over (or its source is gone): the stdin held for the rank goes
// to where it runs now.
void HomeRouter::release_stdin(int rank) {
  moving_.erase(rank);
  auto held = held_stdin_.find(rank);
  if (held == held_stdin_.end()) return;
  std::vector<GuestStdin> waiting = std::move(held->second);
  held_stdin_.erase(held);
  for (GuestStdin& in : waiting) context_.send(rank_node_[rank], in);
}

// With periodic checkpoints: each rank that was on the lost node and has an
// image (DIR/rank.N.img, on a file system every node sees) is restored on
// the node pick_restart_node() chooses.
std::vector<RankRestart> HomeRouter::restart_lost_ranks(int node) {
  const NodeDaemonOptions& options = context_.options();
  std::vector<RankRestart> restarts;
  if (!periodic_checkpoints_on(options)) return restarts;
  std::map<int, int> ranks_on;
  for (const auto& [rank, n] : rank_node_) ranks_on[n]++;
  for (auto& [rank, n] : rank_node_) {
    if (n != node) continue;
    std::string image = rank_image_path(options.ckpt_dir, rank);
    if (::access(image.c_str(), F_OK) != 0) continue;
    // Restoring an image runs what it holds as the user: only one in a
    // directory and a file nobody else could have written or swapped, and
    // only after the whole image verifies, as `mosixctl restart` does.
    Status trusted = sys::check_private_dir(options.ckpt_dir);
    if (trusted) trusted = sys::check_trusted_file(image);
    if (trusted) {
      if (auto verified = ckpt::verify_image_file(image); !verified) trusted = verified.error();
    }
    if (!trusted) {
      spdlog::warn("rank {} is not restarted from {}: {}", rank, image, trusted.error().message);
      continue;
    }
    std::vector<RestartCandidate> candidates(static_cast<size_t>(context_.size()));
    for (int c = 0; c < context_.size(); ++c) {
      auto i = static_cast<size_t>(c);
      candidates[i].ranks = ranks_on[c];
      if (context_.is_lost(c) || !hellos_[i]) continue;
      if (i < options.slots.size() && options.slots[i] == 0) continue;  // a home that only routes
      candidates[i].usable = true;
      candidates[i].speed = hellos_[i]->speed;
      candidates[i].cores = static_cast<int>(hellos_[i]->cores);
    }
    auto picked = pick_restart_node(candidates);
    if (!picked) break;
    const int best = static_cast<int>(*picked);
    SpawnGuest s;
    s.rank = rank;
    s.argv = {image};
    s.cwd = options.ckpt_dir;
    s.flags = kSpawnRestore | (rank == 0 ? kSpawnStdin : 0);
    n = best;
    ranks_on[best]++;
    spdlog::debug("rank {} restarts from {} on node {}", rank, image, best);
    context_.send(best, s);
    restarts.push_back(RankRestart{rank, static_cast<std::uint32_t>(best)});
  }
  return restarts;
}

}  // namespace mosix
