#include "runtime/daemon/node_daemon.h"

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <charconv>
#include <dirent.h>
#include <cmath>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <malloc.h>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "runtime/ckpt/format/image_file.h"
#include "runtime/ckpt/request.h"
#include "runtime/core/balancer.h"
#include "runtime/core/environment.h"
#include "runtime/core/gossip.h"
#include "runtime/core/overloaded.h"
#include "runtime/core/placement.h"
#include "runtime/daemon/cpu_cap.h"
#include "runtime/daemon/frame_socket.h"
#include "runtime/daemon/guest_process.h"
#include "runtime/daemon/output_relay.h"
#include "runtime/daemon/proc_stat_file.h"
#include "runtime/sys/private_path.h"
#include "runtime/topology/node_load.h"
#include "runtime/topology/speed.h"
#include "runtime/topology/topology.h"

namespace mosix {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// Signals that concern everything a guest started go to its process group;
// the others (SIGUSR1, ...) to the guest alone, as mpirun delivers them.
bool to_whole_group(int signo) {
  return signo == SIGTERM || signo == SIGKILL || signo == SIGSTOP || signo == SIGCONT ||
         signo == SIGINT || signo == SIGHUP;
}

std::string self_dir() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return ".";
  self[n] = '\0';
  std::string dir(self);
  return dir.substr(0, dir.rfind('/'));
}

// Guests carry the checkpoint agent so that they can move: <bin>/../lib/
// libmosix.so goes first in LD_PRELOAD, before the program's own entries.
void add_agent(std::vector<std::string>& env) {
  std::string agent = self_dir() + "/../lib/libmosix.so";
  if (::access(agent.c_str(), R_OK) != 0) return;
  for (std::string& e : env) {
    if (e.rfind("LD_PRELOAD=", 0) != 0) continue;
    if (e.find("libmosix.so") != std::string::npos) return;
    std::string old = e.substr(11);
    e = "LD_PRELOAD=" + agent + (old.empty() ? "" : ":" + old);
    return;
  }
  env.push_back("LD_PRELOAD=" + agent);
}

// $MOSIX_RESTORER, else mosix-restore next to this mosixd.
std::string restorer_path() {
  if (const char* env = std::getenv("MOSIX_RESTORER"); env != nullptr && *env != '\0') return env;
  return self_dir() + "/mosix-restore";
}

std::string read_comm(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/comm", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[64] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string c(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

constexpr std::size_t kImageChunkBytes = 1u << 20;

// Earlier versions put a migrating guest's image in /dev/shm as
// mosix-migrate-PID-N.img (written as .mosix-migrate-PID-N.img.tmp.XXXXXX
// first), PID being the node daemon's. A daemon that died during a move left
// it there, a whole process's memory held in RAM. Ours of those whose daemon
// is gone (no process PID, or one that is not a mosixd) are removed.
void sweep_old_images(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  const std::string_view prefix = "mosix-migrate-";
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.empty() && name.front() == '.') name.remove_prefix(1);
    if (name.substr(0, prefix.size()) != prefix || name.find(".img") == std::string_view::npos) continue;
    name.remove_prefix(prefix.size());
    long pid = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || end == name.data() || *end != '-' || pid <= 0) continue;
    struct stat st {};
    const std::string path = dir + "/" + e->d_name;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid()) continue;
    const bool alive = ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
    if (alive && read_comm(static_cast<pid_t>(pid)) == "mosixd") continue;
    if (::unlink(path.c_str()) == 0) {
      spdlog::debug("removed {} ({} MiB), left by a node daemon that is gone", path, st.st_size >> 20);
    }
  }
  ::closedir(d);
}

class NodeDaemon {
 public:
  ~NodeDaemon() { join_threads(); }
  NodeDaemon(const NodeDaemon&) = delete;
  NodeDaemon& operator=(const NodeDaemon&) = delete;
  NodeDaemon(Transport& transport, NodeDaemonOptions options)
      : transport_(transport),
        options_(std::move(options)),
        transport_sd_(io_, ::dup(transport.event_fd())),
        child_signal_(io_, SIGCHLD),
        term_signals_(io_, SIGTERM, SIGINT, SIGHUP),
        load_timer_(io_),
        gossip_timer_(io_),
        balance_timer_(io_),
        rng_(0x6d6f736978ULL + static_cast<std::uint64_t>(transport.rank()) * 7919 +
             std::hash<std::string>{}(options_.job_id)),
        loads_(static_cast<NodeId>(transport.rank()), GossipParams{}),
        start_(std::chrono::steady_clock::now()) {}

  int run();

 private:
  // kIncoming: a restorer that has not yet become the guest (its output is
  // held back); kGone: moved away or a failed restore (nothing reported).
  enum class Phase { kIncoming, kLive, kGone };
  struct LocalGuest {
    int rank = 0;
    Phase phase = Phase::kLive;
    std::uint32_t flags = 0;
    bool migrating = false;
    double arrived_at = 0;   // daemon clock, for the balancer's minimum residency
    double ended_at = 0;     // daemon clock, when it was reaped
    double work_before = 0;  // reference-CPU seconds it ran on earlier nodes (its clock restarts at a move)
    std::string cant_move;   // why its last checkpoint was refused
    std::vector<GuestOutput> held;
    GuestProcess proc;
    bool running = true;
    int wait_status = 0;
    int open_streams = 2;
    bool exit_sent = false;
    bool runtime_signaled = false;  // SIGTERM/SIGKILL from the home reached it while it ran
    std::unique_ptr<asio::posix::stream_descriptor> out, err, in;
    std::unique_ptr<std::uint8_t[]> out_buf = std::make_unique_for_overwrite<std::uint8_t[]>(kOutputChunk),
                                    err_buf = std::make_unique_for_overwrite<std::uint8_t[]>(kOutputChunk);
    std::uint64_t unconfirmed = 0;  // output sent home, not yet written out there
    bool out_paused = false, err_paused = false;
    std::deque<Bytes> stdin_queue;
    std::size_t stdin_offset = 0;  // bytes of stdin_queue.front() already in the pipe
    int core = -1;                 // --bind-to core: the core it is bound to here
    bool stdin_eof = false;
    bool stdin_writing = false;    // waiting for room in the pipe
    bool stdin_held = false;       // moving: what is left of its stdin goes with it
  };

  struct Outgoing {
    MigrateRequest request;
    int memfd = -1;            // the image, in memory only: nothing is left should we die
    std::chrono::steady_clock::time_point started;
    std::uint64_t bytes = 0;
    bool streamed = false;     // the image is on its way (checkpointed() has run)
    bool target_lost = false;  // the target died while the guest was being checkpointed
    std::optional<GuestStdin> stdin_left;  // what the guest had not read, sent with its image
  };
  struct Incoming {
    MigrateRequest request;
    int source = 0;
    int memfd = -1;
    std::uint64_t received = 0;
    std::uint64_t total = 0;      // from ImageBegin
    std::uint64_t reported = 0;   // received, as last told home (progress)
    std::vector<GuestStdin> stdin_left;  // the guest's unread stdin, from the source
    LocalGuest* guest = nullptr;
    std::unique_ptr<asio::steady_timer> timer;
  };
  // Migration progress goes home every this many bytes (and at each phase).
  static constexpr std::uint64_t kProgressStep = 64u << 20;

  Status say_hello();
  void migrate_out(const MigrateRequest& request);
  void checkpointed(std::uint64_t id, Expected<ckpt::CheckpointResult> result);
  void migrate_in(int source, const MigrateRequest& request);
  void image_end(Incoming& in, const ImageEnd& end);
  void watch_restore(std::uint64_t id);
  void restore_failed(std::uint64_t id, const std::string& reason);
  void target_answered(const MigrateResult& result);
  void drain_output(LocalGuest& g);
  void retire(int rank);
  void route_result(MigrateResult result);
  void balance();
  // Reference-CPU seconds the guest has run, on this node and those before.
  double work_done(const LocalGuest& g) const {
    const double cpu = process_cpu_seconds(g.proc.pid);
    return g.work_before + (cpu > 0 ? cpu * machine_speed_ : 0.0);
  }
  void check_liveness();
  void node_lost(int node);
  std::vector<RankRestart> restart_lost_ranks(int node);
  void release_stdin(int rank);
  // Home: ranks on the move; their stdin from mosixrun waits in held_stdin_
  // and then goes to where the rank runs when the move is over.
  std::set<int> moving_;
  std::set<std::uint64_t> ended_moves_;
  std::map<int, std::vector<GuestStdin>> held_stdin_;
  void schedule_checkpoints();
  bool is_lost(int node) const {
    return node >= 0 && static_cast<size_t>(node) < lost_.size() && lost_[static_cast<size_t>(node)];
  }
  bool hold_for_migration(int source, const Message& message);
  bool forward_output(const Delivery& delivery);
  void write_output(std::span<const std::uint8_t> frame);
  void to_mosixrun(const Message& message);
  void wait_transport();
  void handle(int source, Message message);
  void from_node(int source, const Message& message);
  void image_begin(const ImageBegin& begin);
  void image_chunk(const ImageChunk& chunk);
  void spawn(SpawnGuest spawn);
  void read_output(LocalGuest& g, bool is_stderr);
  void output_credit(const OutputCredit& credit);
  // Output of one guest that may be on its way home, unconfirmed.
  static constexpr std::uint64_t kOutputWindow = 8u << 20;
  // Largest piece of output read at once: one GuestOutput frame of 256 KiB
  // (transports move frames up to that size with the fewest copies).
  static constexpr std::size_t kOutputChunk = (256u << 10) - kGuestOutputOverhead;
  void guest_stream_closed(LocalGuest& g);
  void maybe_report_exit(LocalGuest& g);
  void write_stdin(LocalGuest& g);
  GuestStdin take_stdin(LocalGuest& g);
  // --bind-to core: the core for a guest of `rank` arriving here (-1: none).
  int pick_core(int rank);
  void release_core(LocalGuest& g);
  std::vector<std::vector<int>> core_pus_;  // this node's cores (hwloc order): their PUs
  std::vector<int> core_users_;             // guests bound to each
  void give_back_stdin(LocalGuest& g, GuestStdin left);
  void deliver_stdin(const GuestStdin& in);
  void signal_guests(int rank, int signo);
  void wait_children();
  void wait_term();
  void shutdown(const std::string& why);
  void send(int dest, const Message& message);
  void report_load();

  // Home node (rank 0) only.
  Status connect_home();
  void read_home();
  void from_home(Message message);
  void order_move(const MigrateRequest& move);
  void take_output_fds(const OutputFds& fds);
  void place_if_ready();

  Transport& transport_;
  NodeDaemonOptions options_;
  asio::io_context io_;
  asio::posix::stream_descriptor transport_sd_;
  asio::signal_set child_signal_, term_signals_;
  asio::steady_timer load_timer_, gossip_timer_, balance_timer_;
  asio::steady_timer liveness_timer_{io_};
  asio::steady_timer ckpt_timer_{io_};
  std::thread ckpt_thread_;         // the running round of periodic checkpoints
  // Checkpoints of guests on their way out, by migration id: each thread ends
  // by posting checkpointed(), which joins it. Those left at the end (the
  // daemon shut down meanwhile: their guests are killed, so they end soon)
  // are joined before the daemon goes.
  std::map<std::uint64_t, std::thread> move_threads_;
  void join_move_thread(std::uint64_t id);
  // Joins every thread (the event loop has stopped) and lets go of the
  // images of moves that did not get out.
  void join_threads();
  void close_outgoing(Outgoing& out);
  std::atomic<bool> ckpt_busy_{false};
  std::vector<double> last_heard_;   // home: when each node was last heard from (daemon clock)
  double liveness_checked_at_ = 0;
  std::vector<char> lost_;           // nodes the home declared gone
  NodeLoad self_load_;
  std::uint64_t next_auto_migration_ = 0;
  Rng rng_;
  LoadVector loads_;            // what this node knows of the others' load (gossip)
  double local_estimate_ = 0, exported_estimate_ = 0;
  double last_sample_at_ = 0;
  std::chrono::steady_clock::time_point start_;
  double now() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  void gossip();
  void merge_load(int source, const LoadReport& report);
  double speed_ = 1.0;          // per core, as the balancer counts it (a vnode: its share)
  double machine_speed_ = 1.0;  // what one CPU second of a guest here is worth in reference-CPU seconds
  double guest_work_ = -1.0;    // expected remaining work of the guests, at the last balance()
  double move_bandwidth_ = BalancerParams{}.bandwidth;  // what this node's moves achieved
  int cores_ = 1;
  std::string node_name_;
  std::map<int, std::unique_ptr<LocalGuest>> guests_;
  std::vector<std::unique_ptr<LocalGuest>> retired_;  // kGone: kept until the job ends (async reads)
  std::map<std::uint64_t, Outgoing> outgoing_;
  std::map<std::uint64_t, std::unique_ptr<Incoming>> incoming_;
  std::map<int, std::vector<Message>> held_;  // home: messages from a rank's next node
  std::optional<CpuCap> cap_;  // a virtual node's CPU share
  bool shutting_down_ = false;
  // The home declared this node gone (it was too slow to answer): the others
  // close without it, so it must not wait for them.
  static constexpr std::string_view kDeclaredGone = "the home node declared this node gone";
  bool declared_gone_ = false;
  int exit_code_ = 0;

  std::unique_ptr<asio::posix::stream_descriptor> home_sd_;
  std::unique_ptr<FrameSender> home_;
  FrameReader home_reader_;
  std::array<char, 1 << 16> home_buf_{};
  std::vector<int> home_fds_;                  // received from mosixrun, not yet claimed
  int out_fd_ = -1, err_fd_ = -1;              // mosixrun's stdout and stderr (OutputFds)
  std::map<int, std::uint64_t> output_written_;  // per rank, not yet credited
  static constexpr std::uint64_t kCreditBatch = 256u << 10;
  std::vector<std::optional<Hello>> hellos_;
  std::vector<SpawnGuest> pending_spawns_;
  std::map<int, int> rank_node_;
  std::vector<GuestStdin> early_stdin_;
  bool placed_ = false;
};

void NodeDaemon::send(int dest, const Message& message) {
  if (Status s = transport_.send(dest, encode_frame(message)); !s) {
    spdlog::error("{}: cannot send to node {}: {}", node_name_, dest, s.error().message);
  }
}

Status NodeDaemon::say_hello() {
  Hello hello;
  hello.mosix_version = MOSIX_VERSION;
  hello.rank = static_cast<std::uint32_t>(transport_.rank());
  double node_speed = stored_speed_or(1.0);
  auto topology = probe_this_node();
  int cores = topology ? std::max(1, topology->cores) : 1;
  if (topology) {
    core_pus_ = topology->core_pus;
    core_users_.assign(core_pus_.size(), 0);
  }
  std::uint64_t memory = topology ? topology->memory_bytes : 0;
  if (!options_.vcluster_cpu.empty()) {
    // A virtual node: a CPU share of this machine. Its speed per core is the
    // share spread over the cores it may use.
    double share = options_.vcluster_cpu[static_cast<size_t>(transport_.rank()) % options_.vcluster_cpu.size()];
    node_name_ = "vnode" + std::to_string(transport_.rank());
    CgroupRoots roots = detect_cgroups();
    if (auto why = why_uncapped(roots)) {
      if (transport_.rank() == 0) spdlog::warn("virtual nodes run uncapped: {}", *why);
    } else {
      auto cap = CpuCap::create("job" + options_.job_id + "/" + node_name_, share, roots);
      if (cap) {
        cap_ = std::move(*cap);
        if (options_.on_cpu_cap) options_.on_cpu_cap(cap_->path(), cap_->top());
      } else if (transport_.rank() == 0) {
        spdlog::warn("virtual nodes run uncapped: {}", cap.error().message);
      }
    }
    hello.cores = static_cast<std::uint32_t>(std::max(1.0, std::ceil(share)));
    hello.speed = node_speed * share / hello.cores;
  } else {
    node_name_ = host_name();
    hello.cores = static_cast<std::uint32_t>(cores);
    hello.speed = node_speed;
  }
  hello.node_name = node_name_;
  hello.memory_bytes = memory;
  speed_ = hello.speed;
  machine_speed_ = node_speed;
  cores_ = static_cast<int>(hello.cores);
  send(0, hello);
  return {};
}

Status NodeDaemon::connect_home() {
  auto fd = connect_unix(options_.home_socket);
  if (!fd) return fd.error();
  home_sd_ = std::make_unique<asio::posix::stream_descriptor>(io_, *fd);
  home_ = std::make_unique<FrameSender>(::dup(*fd));
  hellos_.resize(static_cast<size_t>(transport_.size()));
  return {};
}

void NodeDaemon::read_home() {
  // Read with recvmsg: OutputFds comes with descriptors.
  home_sd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    ssize_t got = 0;
    if (!ec) {
      got = recv_with_fds(home_sd_->native_handle(), home_buf_.data(), home_buf_.size(), home_fds_);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) return read_home();
      if (got <= 0) ec = got == 0 ? asio::error::eof : error_code(errno, boost::system::system_category());
    }
    const size_t n = got > 0 ? static_cast<size_t>(got) : 0;
    if (n > 0) {
      auto messages = home_reader_.feed(home_buf_.data(), n);
      if (!messages) {
        spdlog::error("home node: bad frame from mosixrun: {}", messages.error().message);
        shutdown("mosixrun spoke garbage");
        return;
      }
      for (Message& m : *messages) from_home(std::move(m));
    }
    if (ec) {
      if (!shutting_down_) {
        // mosixrun is gone: end the job on every node, not only here.
        spdlog::debug("mosixrun closed the job socket");
        for (int node = 0; node < transport_.size(); ++node) send(node, Shutdown{"mosixrun is gone"});
      }
      return;
    }
    read_home();
  });
}

void NodeDaemon::from_home(Message message) {
  std::visit(Overloaded{
                 [&](SpawnGuest& spawn) {
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
                     send(it->second, in);
                   }
                 },
                 [&](const OutputCredit& credit) {
                   if (auto it = rank_node_.find(credit.rank); it != rank_node_.end()) send(it->second, credit);
                 },
                 [&](const GuestSignal& sig) {
                   if (sig.rank == kAllRanks) {
                     for (int node = 0; node < transport_.size(); ++node) send(node, sig);
                   } else if (auto it = rank_node_.find(sig.rank); it != rank_node_.end()) {
                     send(it->second, sig);
                   }
                 },
                 [&](const MigrateRequest& move) { order_move(move); },
                 [&](const Shutdown& bye) {
                   for (int node = 0; node < transport_.size(); ++node) send(node, bye);
                 },
                 [&](const OutputFds& fds) { take_output_fds(fds); },
                 [](const auto&) {},
             },
             message);
}

void NodeDaemon::order_move(const MigrateRequest& move) {
  auto it = rank_node_.find(move.rank);
  if (it == rank_node_.end() || static_cast<int>(move.target_node) >= transport_.size()) {
    MigrateResult r;
    r.migration_id = move.migration_id;
    r.rank = move.rank;
    r.target_node = move.target_node;
    r.reason = it == rank_node_.end() ? "rank " + std::to_string(move.rank) + " is not placed"
                                      : "no node " + std::to_string(move.target_node);
    home_->send(r);
  } else {
    moving_.insert(move.rank);
    send(it->second, move);
  }
}

void NodeDaemon::take_output_fds(const OutputFds& fds) {
  if (fds.count == 2 && home_fds_.size() >= 2 && out_fd_ < 0) {
    out_fd_ = home_fds_[0];
    err_fd_ = home_fds_[1];
    // Output comes in frames of up to kOutputChunk: a pipe that holds
    // several means fewer wake-ups for us and for its reader.
    for (int fd : {out_fd_, err_fd_}) widen_pipe(fd, 4 * kOutputChunk);
    home_fds_.erase(home_fds_.begin(), home_fds_.begin() + 2);
  } else {
    spdlog::error("home node: mosixrun's OutputFds came without its descriptors");
  }
}

void NodeDaemon::place_if_ready() {
  if (placed_ || static_cast<int>(pending_spawns_.size()) < options_.copies) return;
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
  request.copies = options_.copies;
  request.oversubscribe = options_.oversubscribe;
  request.slots = options_.slots;
  request.map_by = options_.map_by == "node" ? MapBy::kNode : options_.map_by == "slot" ? MapBy::kSlot : MapBy::kLoad;
  auto where = place(nodes, request);
  if (!where) {
    spdlog::error("cannot place the job: {}", where.error().message);
    home_->send(Shutdown{"cannot place the job: " + where.error().message});
    return;
  }
  placed_ = true;
  std::map<size_t, int> per_node;
  for (size_t node : *where) per_node[node]++;
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
    rank_node_[s.rank] = static_cast<int>(node);
    spdlog::debug("rank {} -> node {} ({})", s.rank, node, hellos_[node]->node_name);
    if (static_cast<int>(node) == transport_.rank()) {
      here.push_back(std::move(s));
    } else {
      send(static_cast<int>(node), s);
    }
  }
  pending_spawns_.clear();
  for (SpawnGuest& s : here) spawn(std::move(s));
  for (GuestStdin& in : early_stdin_) send(rank_node_[in.rank], in);
  early_stdin_.clear();
}

// Every half second: this node's load (runnable guests per unit of speed)
// and free memory, to the home node, which shows it (mosixctl mon).
void NodeDaemon::report_load() {
  int runnable = 0;
  for (auto& [r, g] : guests_) {
    if (g->running && process_state(g->proc.pid) == 'R') ++runnable;
  }
  // MOSIX's two estimators: the local one rises slowly and drops at once,
  // the exported one rises at once and decays slowly, so that many nodes
  // do not all rush to the same idle node.
  double t = now();
  double dt = t - last_sample_at_;
  last_sample_at_ = t;
  double sample = runnable / (speed_ * cores_);
  EstimatorParams est;
  local_estimate_ = local_load_estimate(local_estimate_, sample, dt, est.local_rise);
  exported_estimate_ = exported_load_estimate(exported_estimate_, sample, dt, est.export_decay);
  LoadEntry e;
  e.node = static_cast<std::uint32_t>(transport_.rank());
  e.load = exported_estimate_;
  e.speed = speed_;
  if (auto mem = read_meminfo()) e.free_memory = mem->available_bytes;
  NodeLoad self;
  self.id = static_cast<NodeId>(transport_.rank());
  self.cores = cores_;
  self.speed = speed_;
  self.load = exported_estimate_;
  self.free_memory = e.free_memory;
  self.work = guest_work_;
  loads_.update_self(self, t);
  self_load_ = self;
  send(0, LoadReport{{e}});
  load_timer_.expires_after(std::chrono::milliseconds(500));
  load_timer_.async_wait([this](error_code ec) {
    if (!ec) report_load();
  });
}

// MOSIX's randomized gossip: at jittered intervals, the freshest window of
// our load vector (ourselves first) to one node picked at random.
void NodeDaemon::gossip() {
  if (auto peer = pick_peer(static_cast<NodeId>(transport_.rank()), static_cast<size_t>(transport_.size()), rng_)) {
    LoadReport report;
    for (const NodeLoad& n : loads_.window(now())) {
      LoadEntry e;
      e.node = static_cast<std::uint32_t>(n.id);
      e.load = n.load;
      e.speed = n.speed;
      e.free_memory = n.free_memory;
      e.age_ms = static_cast<std::uint32_t>(std::max(0.0, n.age) * 1000);
      e.cores = static_cast<std::uint32_t>(std::max(1, n.cores));
      e.work = n.work;
      report.entries.push_back(e);
    }
    send(static_cast<int>(*peer), report);
  }
  gossip_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(next_gossip_delay(GossipParams{}, rng_))));
  gossip_timer_.async_wait([this](error_code ec) {
    if (!ec) gossip();
  });
}

void NodeDaemon::merge_load(int source, const LoadReport& report) {
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
  loads_.merge(received, now());
  // A node's own report, straight from it, is what mosixctl mon shows.
  if (transport_.rank() == 0 && home_ && report.entries.size() == 1 &&
      static_cast<int>(report.entries[0].node) == source) {
    home_->send(report);
  }
}

void NodeDaemon::wait_transport() {
  transport_sd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    if (ec) return;
    auto deliveries = transport_.receive();
    if (!deliveries) {
      spdlog::error("{}: the cluster transport failed: {}", node_name_, deliveries.error().message);
      exit_code_ = 1;
      shutdown("transport failure");
      return;
    }
    for (Delivery& d : *deliveries) {
      if (is_lost(d.source)) continue;  // declared gone: it has no say any more
      if (static_cast<size_t>(d.source) < last_heard_.size()) last_heard_[static_cast<size_t>(d.source)] = now();
      if (forward_output(d)) continue;
      auto message = decode_delivery(d);
      if (!message) {
        spdlog::error("{}: {}", node_name_, message.error().message);
        continue;
      }
      handle(d.source, std::move(*message));
      if (shutting_down_) return;
    }
    wait_transport();
  });
}

void NodeDaemon::handle(int source, Message message) {
  std::visit(Overloaded{
                 [&](SpawnGuest& s) { spawn(std::move(s)); },
                 [&](const GuestStdin& in) { deliver_stdin(in); },
                 [&](const OutputCredit& credit) { output_credit(credit); },
                 [&](const GuestSignal& sig) { signal_guests(sig.rank, sig.signo); },
                 [&](const Shutdown& bye) {
                   if (source == 0 && bye.reason.rfind(kDeclaredGone, 0) == 0) declared_gone_ = true;
                   shutdown(bye.reason);
                 },
                 [&](const LoadReport& load) { merge_load(source, load); },
                 [&](const NodeLost& lost) { node_lost(static_cast<int>(lost.node)); },
                 [&](const MigrateRequest& move) {
                   if (guests_.count(move.rank) || static_cast<int>(move.target_node) != transport_.rank()) {
                     migrate_out(move);
                   } else {
                     migrate_in(source, move);
                   }
                 },
                 [&](const ImageBegin& begin) { image_begin(begin); },
                 [&](const ImageChunk& chunk) { image_chunk(chunk); },
                 [&](const ImageEnd& end) {
                   if (auto it = incoming_.find(end.migration_id); it != incoming_.end()) image_end(*it->second, end);
                 },
                 [&](const MigrateResult& result) {
                   auto out = outgoing_.find(result.migration_id);
                   if (out != outgoing_.end() && source == static_cast<int>(out->second.request.target_node)) {
                     target_answered(result);
                   } else if (transport_.rank() == 0) {
                     route_result(result);
                   }
                 },
                 // Hello, GuestStarted, GuestOutput, GuestExited, MigrateProgress,
                 // BalanceReport...: what the nodes report, for the home node.
                 [&](const auto&) {
                   if (transport_.rank() == 0) from_node(source, message);
                 },
             },
             message);
}

// The home node's router: what the nodes report goes to mosixrun, except a
// rank's output and end that come from the node it is moving to.
void NodeDaemon::from_node(int source, const Message& message) {
  // A move the home did not order (the balancer's): hold the rank's stdin.
  if (auto* step = std::get_if<MigrateProgress>(&message); step && !ended_moves_.count(step->migration_id)) {
    moving_.insert(step->rank);
  }
  if (hold_for_migration(source, message)) return;
  if (auto* hello = std::get_if<Hello>(&message)) {
    if (Status s = check_hello(*hello, MOSIX_VERSION); !s) {
      spdlog::error("node {} refused: {}", source, s.error().message);
      home_->send(Shutdown{"node " + std::to_string(source) + " refused: " + s.error().message});
      return;
    }
    hellos_[static_cast<size_t>(source)] = *hello;
    home_->send(*hello);
    place_if_ready();
  } else {
    home_->send(message);
  }
}

void NodeDaemon::image_begin(const ImageBegin& begin) {
  auto it = incoming_.find(begin.migration_id);
  if (it == incoming_.end()) return;
  it->second->total = begin.total_bytes;
  send(0, MigrateProgress{begin.migration_id, it->second->request.rank, MigratePhase::kTransfer, 0,
                          begin.total_bytes});
}

void NodeDaemon::image_chunk(const ImageChunk& chunk) {
  auto it = incoming_.find(chunk.migration_id);
  if (it == incoming_.end() || it->second->memfd < 0) return;
  Incoming& in = *it->second;
  size_t done = 0;
  while (done < chunk.bytes.size()) {
    ssize_t w = ::pwrite(in.memfd, chunk.bytes.data() + done, chunk.bytes.size() - done,
                         static_cast<off_t>(chunk.offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  in.received += done;
  if (in.received - in.reported >= kProgressStep) {
    in.reported = in.received;
    send(0, MigrateProgress{chunk.migration_id, in.request.rank, MigratePhase::kTransfer, in.received, in.total});
  }
}

// Whatever the transport opened (MPI's sockets and pipes) must not leak into
// guests: a guest holding a socket could not be checkpointed, nor moved.
void keep_fds_from_guests() { ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); }

void NodeDaemon::spawn(SpawnGuest s) {
  set_env(s.env, "MOSIX_NODE", node_name_);
  if (!options_.no_agent) add_agent(s.env);
  GuestLaunch l;
  l.rank = s.rank;
  l.argv = s.argv;
  l.env = s.env;
  l.cwd = s.cwd;
  std::string path_env = get_env(s.env, "PATH").value_or("/usr/bin:/bin");
  Expected<std::string> path = std::string();
  if (s.flags & kSpawnRestore) {
    // The restorer turns into the program of the image (its own cwd, env).
    path = restorer_path();
    l.argv = {"mosix-restore", s.argv.empty() ? "" : s.argv[0]};
  } else {
    path = resolve_program(s.argv.empty() ? "" : s.argv[0], path_env, s.cwd);
  }
  std::optional<GuestProcess> proc;
  std::string error;
  int bound_core = -1;
  if (path) {
    l.path = *path;
    bound_core = (s.flags & kSpawnBindCore) ? pick_core(s.rank) : -1;
    if (bound_core >= 0) l.cpus = core_pus_[static_cast<size_t>(bound_core)];
    int null_fd = (s.flags & kSpawnStdin) ? -1 : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    l.stdin_fd = (s.flags & kSpawnStdin) ? options_.guest_stdin_fd : null_fd;
    if (cap_) l.cgroup_procs = cap_->path() + "/cgroup.procs";
    keep_fds_from_guests();
    for (int fd : options_.inherited_fds) ::fcntl(fd, F_SETFD, 0);
    auto started = start_guest(l);
    if (null_fd >= 0) ::close(null_fd);
    if (started) proc = *started; else error = started.error().message;
  } else {
    error = path.error().message;
  }
  if (!proc) {
    if (bound_core >= 0 && options_.vcluster_cpu.empty()) --core_users_[static_cast<size_t>(bound_core)];
    spdlog::error("{}: rank {}: {}", node_name_, s.rank, error);
    send(0, GuestExited{s.rank, 127, 0});
    return;
  }
  auto g = std::make_unique<LocalGuest>();
  g->rank = s.rank;
  g->flags = s.flags;
  g->proc = *proc;
  g->core = bound_core;
  for (int fd : {proc->stdout_fd, proc->stderr_fd}) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(kOutputChunk));
  g->out = std::make_unique<asio::posix::stream_descriptor>(io_, proc->stdout_fd);
  g->err = std::make_unique<asio::posix::stream_descriptor>(io_, proc->stderr_fd);
  if (proc->stdin_fd >= 0) {
    ::fcntl(proc->stdin_fd, F_SETFL, ::fcntl(proc->stdin_fd, F_GETFL) | O_NONBLOCK);
    g->in = std::make_unique<asio::posix::stream_descriptor>(io_, proc->stdin_fd);
  }
  if (options_.on_guest_started) options_.on_guest_started(proc->pid);
  if (cap_) (void)cap_->add(proc->pid);  // in case the child could not join by itself
  g->arrived_at = now();
  LocalGuest& ref = *g;
  guests_[s.rank] = std::move(g);
  send(0, GuestStarted{s.rank, proc->pid, static_cast<std::uint32_t>(transport_.rank())});
  read_output(ref, false);
  read_output(ref, true);
  write_stdin(ref);
}

void NodeDaemon::read_output(LocalGuest& g, bool is_stderr) {
  auto& sd = is_stderr ? *g.err : *g.out;
  auto& buf = is_stderr ? g.err_buf : g.out_buf;
  sd.async_read_some(asio::buffer(buf.get(), kOutputChunk), [this, &g, is_stderr, &buf](error_code ec, size_t n) {
    if (n > 0 && g.phase != Phase::kGone) {
      const OutputStream stream = is_stderr ? OutputStream::kStderr : OutputStream::kStdout;
      const std::span<const std::uint8_t> bytes(buf.get(), n);
      if (g.phase == Phase::kIncoming) {
        g.held.push_back(GuestOutput{g.rank, stream, Bytes(bytes.begin(), bytes.end())});
      } else if (Status s = transport_.send(0, encode_guest_output(g.rank, stream, bytes)); !s) {
        spdlog::error("{}: cannot send output home: {}", node_name_, s.error().message);
      }
    }
    if (ec) {
      guest_stream_closed(g);
      return;
    }
    if (n > 0) g.unconfirmed += n;
    if (g.unconfirmed > kOutputWindow && g.phase != Phase::kGone) {
      // Home has not written out our last kOutputWindow bytes yet: stop
      // reading, so the guest blocks on its full pipe until credit comes.
      (is_stderr ? g.err_paused : g.out_paused) = true;
      return;
    }
    read_output(g, is_stderr);
  });
}

void NodeDaemon::output_credit(const OutputCredit& credit) {
  auto it = guests_.find(credit.rank);
  if (it == guests_.end()) return;
  LocalGuest& g = *it->second;
  g.unconfirmed -= std::min<std::uint64_t>(g.unconfirmed, credit.bytes);
  if (g.unconfirmed > kOutputWindow) return;
  if (g.out_paused) {
    g.out_paused = false;
    read_output(g, false);
  }
  if (g.err_paused) {
    g.err_paused = false;
    read_output(g, true);
  }
}

void NodeDaemon::guest_stream_closed(LocalGuest& g) {
  g.open_streams--;
  maybe_report_exit(g);
}

// A guest's end is reported once it has been reaped and its output has
// reached the home node: GuestExited always follows the last GuestOutput.
void NodeDaemon::maybe_report_exit(LocalGuest& g) {
  if (g.phase != Phase::kLive || g.running || g.open_streams > 0 || g.exit_sent) return;
  g.exit_sent = true;
  GuestExited e;
  e.rank = g.rank;
  e.runtime_signaled = g.runtime_signaled;
  e.ran_ms = static_cast<std::uint32_t>(std::clamp((g.ended_at - g.arrived_at) * 1000, 0.0, 4e9));
  if (WIFSIGNALED(g.wait_status)) {
    e.term_signal = WTERMSIG(g.wait_status);
  } else {
    e.exit_code = WEXITSTATUS(g.wait_status);
  }
  send(0, e);
}

void NodeDaemon::deliver_stdin(const GuestStdin& in) {
  auto it = guests_.find(in.rank);
  if (it == guests_.end()) {
    // A guest on its way here: its stdin waits for it.
    for (auto& [id, incoming] : incoming_) {
      if (incoming->request.rank == in.rank && !incoming->guest) incoming->stdin_left.push_back(in);
    }
    return;
  }
  if (!it->second->in) return;
  LocalGuest& g = *it->second;
  if (!in.bytes.empty()) g.stdin_queue.push_back(in.bytes);
  if (in.eof) g.stdin_eof = true;
  write_stdin(g);
}

// Writes are non-blocking and counted (stdin_offset), so that what the guest
// has not read is known exactly when it moves (take_stdin).
void NodeDaemon::write_stdin(LocalGuest& g) {
  if (!g.in || g.stdin_writing || g.stdin_held) return;
  const int fd = g.in->native_handle();
  while (!g.stdin_queue.empty()) {
    const Bytes& b = g.stdin_queue.front();
    ssize_t n = ::write(fd, b.data() + g.stdin_offset, b.size() - g.stdin_offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      g.stdin_writing = true;
      g.in->async_wait(asio::posix::stream_descriptor::wait_write, [this, &g](error_code ec) {
        g.stdin_writing = false;
        if (!ec) write_stdin(g);
      });
      return;
    }
    if (n < 0) {
      // The guest closed its stdin or ended: drop what is left, as mpirun does.
      g.stdin_queue.clear();
      g.stdin_offset = 0;
      error_code ignored;
      g.in->close(ignored);
      g.in.reset();
      return;
    }
    g.stdin_offset += static_cast<std::size_t>(n);
    if (g.stdin_offset == b.size()) {
      g.stdin_queue.pop_front();
      g.stdin_offset = 0;
    }
  }
  if (g.stdin_eof) {
    error_code ignored;
    g.in->close(ignored);
    g.in.reset();
  }
}

// mpirun's --bind-to core on a node: the core with the fewest guests bound
// (local rank i gets core i when they start together). The nodes of a
// virtual cluster share this machine's cores: there, rank i gets core i.
int NodeDaemon::pick_core(int rank) {
  if (core_pus_.empty()) return -1;
  if (!options_.vcluster_cpu.empty()) return rank % static_cast<int>(core_pus_.size());
  auto least = std::min_element(core_users_.begin(), core_users_.end());
  int core = static_cast<int>(least - core_users_.begin());
  ++*least;
  return core;
}

void NodeDaemon::release_core(LocalGuest& g) {
  if (g.core >= 0 && options_.vcluster_cpu.empty() && static_cast<size_t>(g.core) < core_users_.size()) {
    --core_users_[static_cast<size_t>(g.core)];
  }
  g.core = -1;
}

// Source side of a move, the guest stopped: what it has not read of its
// stdin, i.e. what is still in its pipe (read through /proc/PID/fd/0, if that
// is still our pipe) and what was not yet written into it. It goes to the
// target with the image, or back into the pipe if the move fails.
GuestStdin NodeDaemon::take_stdin(LocalGuest& g) {
  GuestStdin left;
  left.rank = g.rank;
  left.eof = g.stdin_eof || !g.in;
  if (!g.in) return left;
  g.stdin_held = true;
  if (g.stdin_writing) g.in->cancel();
  std::string fd0 = "/proc/" + std::to_string(g.proc.pid) + "/fd/0";
  struct stat ours {}, theirs {};
  if (::fstat(g.in->native_handle(), &ours) == 0 && ::stat(fd0.c_str(), &theirs) == 0 && S_ISFIFO(theirs.st_mode) &&
      ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) {
    int fd = ::open(fd0.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      std::uint8_t buf[1 << 16];
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        left.bytes.insert(left.bytes.end(), buf, buf + n);
      }
      ::close(fd);
    }
  }
  for (const Bytes& b : g.stdin_queue) {
    std::size_t skip = &b == &g.stdin_queue.front() ? g.stdin_offset : 0;
    left.bytes.insert(left.bytes.end(), b.begin() + static_cast<std::ptrdiff_t>(skip), b.end());
  }
  g.stdin_queue.clear();
  g.stdin_offset = 0;
  return left;
}

// The move failed: the guest gets its stdin back, in order, before anything
// newer.
void NodeDaemon::give_back_stdin(LocalGuest& g, GuestStdin left) {
  g.stdin_held = false;
  if (!left.bytes.empty()) {
    g.stdin_queue.push_front(std::move(left.bytes));
    g.stdin_offset = 0;
  }
  write_stdin(g);
}

// SIGTERM and SIGKILL come from the home only when the job is being ended: a
// guest that was still running when one reached it counts as ended by the
// runtime if that signal kills it. One that had already ended on its own
// (its status not yet reported) keeps its own end.
void NodeDaemon::signal_guests(int rank, int signo) {
  for (auto& [r, g] : guests_) {
    if (!g->running || g->phase != Phase::kLive || (rank != kAllRanks && rank != r)) continue;
    if ((signo == SIGTERM || signo == SIGKILL) && !guest_has_ended(g->proc.pid)) g->runtime_signaled = true;
    ::kill(to_whole_group(signo) ? -g->proc.pid : g->proc.pid, signo);
  }
}

void NodeDaemon::wait_children() {
  child_signal_.async_wait([this](error_code ec, int) {
    if (ec) return;
    for (auto& [r, g] : guests_) {
      if (!g->running) continue;
      int status = 0;
      if (::waitpid(g->proc.pid, &status, WNOHANG) == g->proc.pid) {
        g->running = false;
        g->ended_at = now();
        release_core(*g);
        g->wait_status = status;
        maybe_report_exit(*g);
      }
    }
    for (auto& g : retired_) {
      if (g->running && ::waitpid(g->proc.pid, nullptr, WNOHANG) == g->proc.pid) g->running = false;
      if (!g->running) release_core(*g);
    }
    wait_children();
  });
}

void NodeDaemon::wait_term() {
  term_signals_.async_wait([this](error_code ec, int sig) {
    if (ec) return;
    spdlog::debug("{}: signal {}: ending", node_name_, sig);
    exit_code_ = 1;
    for (auto& [r, g] : guests_) ::kill(-g->proc.pid, SIGKILL);
    std::_Exit(1);  // mpirun is ending us; the transport cannot close cleanly now
  });
}

void NodeDaemon::shutdown(const std::string& why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  spdlog::debug("{}: shutting down ({}); gossip told it of {} other nodes", node_name_, why,
                loads_.others(now()).size());
  for (auto& [r, g] : guests_) ::kill(-g->proc.pid, SIGKILL);
  for (auto& [r, g] : guests_) {
    if (g->running) ::waitpid(g->proc.pid, nullptr, 0);
  }
  for (auto& g : retired_) {
    if (g->running) {
      ::kill(-g->proc.pid, SIGKILL);
      ::waitpid(g->proc.pid, nullptr, 0);
    }
  }
  for (auto& [id, in] : incoming_) {
    if (in->memfd >= 0) ::close(in->memfd);
  }
  io_.stop();
}

// Source side: stop the guest with its image written into memory (a memfd),
// then stream the image to the target. The checkpoint blocks, so it runs on a
// thread that hands its result back to the event loop.
void NodeDaemon::migrate_out(const MigrateRequest& request) {
  MigrateResult fail;
  fail.migration_id = request.migration_id;
  fail.rank = request.rank;
  fail.source_node = static_cast<std::uint32_t>(transport_.rank());
  fail.target_node = request.target_node;
  auto it = guests_.find(request.rank);
  if (it == guests_.end() || it->second->phase != Phase::kLive || !it->second->running) {
    fail.reason = "rank " + std::to_string(request.rank) + " is not running on " + node_name_;
  } else if (static_cast<int>(request.target_node) == transport_.rank()) {
    fail.reason = "rank " + std::to_string(request.rank) + " already runs on " + node_name_;
  } else if (static_cast<int>(request.target_node) >= transport_.size()) {
    fail.reason = "no node " + std::to_string(request.target_node) + " in this job";
  } else if (is_lost(static_cast<int>(request.target_node))) {
    fail.reason = "node " + std::to_string(request.target_node) + " is gone";
  } else if (it->second->migrating) {
    fail.reason = "rank " + std::to_string(request.rank) + " is already moving";
  }
  if (!fail.reason.empty()) {
    send(0, fail);
    return;
  }
  // The image goes into a memfd, which the agent in the guest opens through
  // /proc (the guest is our child, of our user): no name in /dev/shm that
  // another user could take first, nothing left behind should we die.
  const int memfd = ::memfd_create("mosix-migrate-out", MFD_CLOEXEC);
  if (memfd < 0) {
    fail.reason = node_name_ + " cannot hold the image in memory (memfd_create: " + std::strerror(errno) + ")";
    send(0, fail);
    return;
  }
  LocalGuest& g = *it->second;
  g.migrating = true;
  Outgoing out;
  out.request = request;
  out.request.flags = g.flags;
  out.request.work_done = work_done(g);
  out.memfd = memfd;
  out.started = std::chrono::steady_clock::now();
  outgoing_[request.migration_id] = out;
  ckpt::CheckpointRequest r;
  r.pid = g.proc.pid;
  r.mode = ckpt::AfterCheckpoint::kStop;
  const std::string image = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(memfd);
  std::uint64_t id = request.migration_id;
  send(0, MigrateProgress{id, request.rank, MigratePhase::kCheckpoint, 0, 0});
  r.on_progress = [this, id, rank = request.rank](std::uint64_t written) {
    asio::post(io_, [this, id, rank, written] {
      send(0, MigrateProgress{id, rank, MigratePhase::kCheckpoint, written, 0});
    });
  };
  join_move_thread(id);
  move_threads_[id] = std::thread([this, r, id, image] {
    // As request_checkpoint does, but into the memfd: the agent writes the
    // image, then every chunk of it is read back and checked.
    Expected<ckpt::CheckpointResult> result = make_error("no image");
    if (auto bytes = ckpt::ask_agent(r, image); !bytes) {
      result = bytes.error();
    } else if (auto summary = ckpt::verify_image_file(image); !summary) {
      result = make_error("checkpoint of " + std::to_string(r.pid) + ": the image does not verify: " +
                          summary.error().message);
    } else {
      result = ckpt::CheckpointResult{image, *bytes, *summary};
    }
    asio::post(io_, [this, id, result = std::move(result)]() mutable {
      checkpointed(id, std::move(result));
    });
  });
}

void NodeDaemon::join_move_thread(std::uint64_t id) {
  auto it = move_threads_.find(id);
  if (it == move_threads_.end()) return;
  it->second.join();
  move_threads_.erase(it);
}

void NodeDaemon::join_threads() {
  for (auto& [id, thread] : move_threads_) thread.join();
  move_threads_.clear();
  if (ckpt_thread_.joinable()) ckpt_thread_.join();
  for (auto& [id, out] : outgoing_) close_outgoing(out);
}

void NodeDaemon::close_outgoing(Outgoing& out) {
  if (out.memfd >= 0) ::close(out.memfd);
  out.memfd = -1;
}

// Everything the stopped guest wrote is sent before its image, so that the
// home node can put the target's output after it.
void NodeDaemon::drain_output(LocalGuest& g) {
  for (auto* sd : {g.out.get(), g.err.get()}) {
    int fd = sd->native_handle();
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      const OutputStream stream = sd == g.err.get() ? OutputStream::kStderr : OutputStream::kStdout;
      (void)transport_.send(0, encode_guest_output(g.rank, stream, {reinterpret_cast<std::uint8_t*>(buf), static_cast<size_t>(n)}));
    }
  }
}

void NodeDaemon::checkpointed(std::uint64_t id, Expected<ckpt::CheckpointResult> result) {
  join_move_thread(id);  // it has posted this: it is ending
  auto it = outgoing_.find(id);
  if (it == outgoing_.end()) return;
  Outgoing& out = it->second;
  if (shutting_down_) {
    close_outgoing(out);
    outgoing_.erase(it);
    return;
  }
  auto g = guests_.find(out.request.rank);
  MigrateResult fail;
  fail.migration_id = id;
  fail.rank = out.request.rank;
  fail.source_node = static_cast<std::uint32_t>(transport_.rank());
  fail.target_node = out.request.target_node;
  if (g == guests_.end() || !g->second->running) {
    fail.reason = "rank " + std::to_string(fail.rank) + " ended while it was being checkpointed";
  } else if (!result) {
    fail.reason = result.error().message;
    fail.cantmove = fail.reason.find(" refused: ") != std::string::npos;
    g->second->cant_move = fail.reason;  // the balancer does not try again
    ::kill(-g->second->proc.pid, SIGCONT);
  } else if (out.target_lost || is_lost(static_cast<int>(out.request.target_node))) {
    fail.reason = "the target node died during the move";
    ::kill(-g->second->proc.pid, SIGCONT);
  }
  if (!fail.reason.empty()) {
    close_outgoing(out);
    if (g != guests_.end()) g->second->migrating = false;
    outgoing_.erase(it);
    spdlog::debug("{}: rank {} stays: {}", node_name_, fail.rank, fail.reason);
    send(0, fail);
    return;
  }
  drain_output(*g->second);
  int target = static_cast<int>(out.request.target_node);
  out.bytes = result->bytes;
  out.streamed = true;
  send(target, out.request);
  send(target, ImageBegin{id, out.request.rank, result->bytes});
  const int fd = out.memfd;
  std::uint64_t offset = 0;
  if (fd >= 0) {
    for (;;) {
      ImageChunk chunk;
      chunk.migration_id = id;
      chunk.offset = offset;
      chunk.bytes.resize(kImageChunkBytes);
      ssize_t n = ::pread(fd, chunk.bytes.data(), chunk.bytes.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      chunk.bytes.resize(static_cast<size_t>(n));
      offset += static_cast<std::uint64_t>(n);
      send(target, chunk);
      // Streaming a large image keeps this loop busy for seconds: a word
      // home now and then says this node is alive (and how far it is).
      if (offset % kProgressStep == 0) {
        send(0, MigrateProgress{id, out.request.rank, MigratePhase::kTransfer, offset, result->bytes});
      }
    }
    close_outgoing(out);  // streamed: the image's memory goes back now
  }
  if (g->second->flags & kSpawnStdin) {
    out.stdin_left = take_stdin(*g->second);
    send(target, *out.stdin_left);
  }
  send(target, ImageEnd{id, offset});
}

// The target's answer: the guest lives there now (the stopped original is
// killed without a word to the home node), or it resumes here.
void NodeDaemon::target_answered(const MigrateResult& answer) {
  auto it = outgoing_.find(answer.migration_id);
  Outgoing out = it->second;
  outgoing_.erase(it);
  MigrateResult r = answer;
  r.source_node = static_cast<std::uint32_t>(transport_.rank());
  r.target_node = out.request.target_node;
  r.bytes = out.bytes;
  r.stopped_ms = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - out.started)
                                                .count());
  auto g = guests_.find(out.request.rank);
  if (g != guests_.end()) {
    g->second->migrating = false;
    if (r.ok) {
      ::kill(-g->second->proc.pid, SIGKILL);
      retire(out.request.rank);
      move_bandwidth_ = measured_bandwidth(move_bandwidth_, r.bytes, r.stopped_ms / 1000.0);
    } else {
      ::kill(-g->second->proc.pid, SIGCONT);
      if (out.stdin_left) give_back_stdin(*g->second, std::move(*out.stdin_left));
    }
  }
  spdlog::debug("{}: rank {} {} node {} ({} bytes, stopped {} ms){}", node_name_, r.rank,
                r.ok ? "moved to" : "did not move to", r.target_node, r.bytes, r.stopped_ms,
                r.ok ? "" : ": " + r.reason);
  send(0, r);
}

void NodeDaemon::retire(int rank) {
  auto it = guests_.find(rank);
  if (it == guests_.end()) return;
  it->second->phase = Phase::kGone;
  if (it->second->in) {
    error_code ignored;
    it->second->in->close(ignored);
    it->second->in.reset();
  }
  retired_.push_back(std::move(it->second));
  guests_.erase(it);
}

// Target side: the image goes into a memfd, then the restorer, started as
// a guest of this node (its pipes are the guest's stdio from now on), turns
// into the program. Until it has (its name is no longer the restorer's) its
// output is held back: a refusal is the migration's failure, not output.
void NodeDaemon::migrate_in(int source, const MigrateRequest& request) {
  auto in = std::make_unique<Incoming>();
  in->request = request;
  in->source = source;
  in->memfd = ::memfd_create("mosix-migrate", MFD_CLOEXEC);
  incoming_[request.migration_id] = std::move(in);
}

void NodeDaemon::image_end(Incoming& in, const ImageEnd& end) {
  std::uint64_t id = in.request.migration_id;
  if (in.memfd < 0) {
    restore_failed(id, node_name_ + " cannot hold the image in memory (memfd_create failed)");
    return;
  }
  if (in.received != end.total_bytes) {
    restore_failed(id, node_name_ + " received " + std::to_string(in.received) + " of " +
                           std::to_string(end.total_bytes) + " image bytes");
    return;
  }
  if (guests_.count(in.request.rank)) {
    restore_failed(id, "rank " + std::to_string(in.request.rank) + " already runs on " + node_name_);
    return;
  }
  GuestLaunch l;
  l.rank = in.request.rank;
  l.path = restorer_path();
  l.argv = {"mosix-restore", "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(in.memfd)};
  l.env = {"PATH=/usr/bin:/bin"};
  int null_fd = (in.request.flags & kSpawnStdin) ? -1 : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  l.stdin_fd = null_fd;
  const int bound_core = (in.request.flags & kSpawnBindCore) ? pick_core(l.rank) : -1;
  if (bound_core >= 0) l.cpus = core_pus_[static_cast<size_t>(bound_core)];
  if (cap_) l.cgroup_procs = cap_->path() + "/cgroup.procs";
  keep_fds_from_guests();
  auto started = start_guest(l);
  if (null_fd >= 0) ::close(null_fd);
  if (!started) {
    restore_failed(id, node_name_ + ": cannot start the restorer: " + started.error().message);
    return;
  }
  auto g = std::make_unique<LocalGuest>();
  g->rank = l.rank;
  g->phase = Phase::kIncoming;
  g->flags = in.request.flags;
  g->work_before = in.request.work_done;
  g->core = bound_core;
  g->proc = *started;
  for (int fd : {started->stdout_fd, started->stderr_fd}) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(kOutputChunk));
  g->out = std::make_unique<asio::posix::stream_descriptor>(io_, started->stdout_fd);
  g->err = std::make_unique<asio::posix::stream_descriptor>(io_, started->stderr_fd);
  if (started->stdin_fd >= 0) {
    ::fcntl(started->stdin_fd, F_SETFL, ::fcntl(started->stdin_fd, F_GETFL) | O_NONBLOCK);
    g->in = std::make_unique<asio::posix::stream_descriptor>(io_, started->stdin_fd);
  }
  for (GuestStdin& left : in.stdin_left) {
    if (!left.bytes.empty()) g->stdin_queue.push_back(std::move(left.bytes));
    if (left.eof) g->stdin_eof = true;
  }
  in.stdin_left.clear();
  if (options_.on_guest_started) options_.on_guest_started(started->pid);
  if (cap_) (void)cap_->add(started->pid);
  in.guest = g.get();
  LocalGuest& ref = *g;
  guests_[l.rank] = std::move(g);
  read_output(ref, false);
  read_output(ref, true);
  write_stdin(ref);
  in.timer = std::make_unique<asio::steady_timer>(io_);
  send(0, MigrateProgress{id, in.request.rank, MigratePhase::kRestore, 0, in.total});
  watch_restore(id);
}

void NodeDaemon::watch_restore(std::uint64_t id) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  Incoming& in = *it->second;
  LocalGuest& g = *in.guest;
  bool restored = false;
  if (g.running) {
    std::string comm = read_comm(g.proc.pid);
    restored = !comm.empty() && comm != "mosix-restore";
  } else {
    // Ended before we saw it change names: a refusal says so on stderr
    // ("mosix-restore: ..."); otherwise the program ran and ended.
    std::string said;
    for (const GuestOutput& o : g.held) {
      if (o.stream == OutputStream::kStderr) said.append(o.bytes.begin(), o.bytes.end());
    }
    if (said.find("mosix-restore: ") != std::string::npos ||
        (WIFEXITED(g.wait_status) && WEXITSTATUS(g.wait_status) == 127 && g.held.empty())) {
      while (!said.empty() && said.back() == '\n') said.pop_back();
      restore_failed(id, node_name_ + ": " + (said.empty() ? "the restorer failed" : said));
      return;
    }
    restored = true;
  }
  if (!restored) {
    in.timer->expires_after(std::chrono::milliseconds(2));
    in.timer->async_wait([this, id](error_code ec) {
      if (!ec) watch_restore(id);
    });
    return;
  }
  ::close(in.memfd);
  in.memfd = -1;
  g.phase = Phase::kLive;
  g.arrived_at = now();
  for (const GuestOutput& o : g.held) send(0, o);
  g.held.clear();
  send(0, GuestStarted{g.rank, g.proc.pid, static_cast<std::uint32_t>(transport_.rank())});
  MigrateResult ok;
  ok.migration_id = id;
  ok.rank = g.rank;
  ok.ok = true;
  ok.target_node = static_cast<std::uint32_t>(transport_.rank());
  ok.pid = g.proc.pid;
  send(in.source, ok);
  maybe_report_exit(g);
  incoming_.erase(it);
}

void NodeDaemon::restore_failed(std::uint64_t id, const std::string& reason) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  Incoming& in = *it->second;
  if (in.memfd >= 0) ::close(in.memfd);
  if (in.guest) {
    if (in.guest->running) ::kill(-in.guest->proc.pid, SIGKILL);
    retire(in.request.rank);
  }
  MigrateResult r;
  r.migration_id = id;
  r.rank = in.request.rank;
  r.reason = reason;
  r.target_node = static_cast<std::uint32_t>(transport_.rank());
  send(in.source, r);
  incoming_.erase(it);
}

// Home node: the final word on a migration. On success the rank's messages
// come from its new node from now on; those that arrived early are let out.
void NodeDaemon::route_result(MigrateResult result) {
  if (result.ok) rank_node_[result.rank] = static_cast<int>(result.target_node);
  ended_moves_.insert(result.migration_id);
  release_stdin(result.rank);
  auto held = held_.find(result.rank);
  if (held != held_.end()) {
    std::vector<Message> early = std::move(held->second);
    held_.erase(held);
    if (result.ok) {
      for (Message& m : early) to_mosixrun(m);
    }
  }
  home_->send(result);
}

// Home node: output and the end of a rank that come from a node other than
// the one it is known to run on are from a migration not yet confirmed.
bool NodeDaemon::hold_for_migration(int source, const Message& message) {
  int rank = -1;
  if (auto* out = std::get_if<GuestOutput>(&message)) rank = out->rank;
  else if (auto* exited = std::get_if<GuestExited>(&message)) rank = exited->rank;
  if (rank < 0) return false;
  auto it = rank_node_.find(rank);
  if (it == rank_node_.end() || it->second == source) return false;
  held_[rank].push_back(message);
  return true;
}

// Home node: a rank's output goes on to mosixrun as it came, undecoded
// (mosixrun checks it), unless it is held for a migration.
bool NodeDaemon::forward_output(const Delivery& delivery) {
  if (transport_.rank() != 0) return false;
  auto rank = guest_output_rank(delivery.frame);
  if (!rank) return false;
  auto it = rank_node_.find(*rank);
  if (it != rank_node_.end() && it->second != delivery.source) return false;
  if (out_fd_ >= 0) {
    write_output(delivery.frame);
  } else {
    home_->send_frame(delivery.frame);
  }
  return true;
}

// Home node with mosixrun's stdout and stderr (OutputFds): a rank's output
// is checked and written there, and its node credited for it. On a virtual
// cluster every frame came over a unix socket or shared memory of this
// machine: its CRC is not computed again (a tenth of the path's CPU).
void NodeDaemon::write_output(std::span<const std::uint8_t> frame) {
  auto out = view_guest_output(frame, options_.vcluster_cpu.empty() && !options_.in_process);
  if (!out) {
    spdlog::error("{}: guest output dropped: {}", node_name_, out.error().message);
    return;
  }
  write_all(out->stream == OutputStream::kStderr ? err_fd_ : out_fd_,
            reinterpret_cast<const char*>(out->bytes.data()), out->bytes.size());
  std::uint64_t& done = output_written_[out->rank];
  done += out->bytes.size();
  if (done >= kCreditBatch) {
    if (auto it = rank_node_.find(out->rank); it != rank_node_.end()) send(it->second, OutputCredit{out->rank, done});
    done = 0;
  }
}

void NodeDaemon::to_mosixrun(const Message& message) {
  if (out_fd_ >= 0 && std::holds_alternative<GuestOutput>(message)) {
    write_output(encode_frame(message));
  } else {
    home_->send(message);
  }
}

// About once a second: MOSIX's rebalancing decision (runtime/core/balancer.h)
// on this node's guests and its gossip view; at most one move at a time. The
// verdict on every guest goes home (BalanceReport) for `mosixctl ps
// --explain`, also when migration is off or the guest is pinned.
void NodeDaemon::balance() {
  if (outgoing_.empty() && incoming_.empty() && !shutting_down_) {
    NodeState st;
    st.self = self_load_;
    // Its own load as MOSIX judges it: the local estimate (rises slowly, so a
    // brief burst does not send guests away; drops at once when guests
    // leave). Others see the exported one.
    st.self.load = local_estimate_;
    for (auto& [rank, g] : guests_) {
      if (g->phase != Phase::kLive || !g->running || g->migrating) continue;
      GuestState gs;
      gs.id = static_cast<GuestId>(rank);
      gs.rank = rank;
      gs.cpu_used = work_done(*g);
      std::uint64_t pages = 0;
      if (FILE* f = std::fopen(("/proc/" + std::to_string(g->proc.pid) + "/statm").c_str(), "r")) {
        unsigned long long size = 0, rss = 0;
        if (std::fscanf(f, "%llu %llu", &size, &rss) == 2) pages = rss;
        std::fclose(f);
      }
      gs.image_bytes = gs.memory_bytes = pages * 4096;
      gs.arrived_at = g->arrived_at;
      gs.pinned = (g->flags & kSpawnPinned) != 0;
      gs.cant_move = g->cant_move;
      st.guests.push_back(gs);
    }
    guest_work_ = expected_work(st.guests, BalancerParams{}.remaining_floor);
    if (!st.guests.empty()) {
      BalancerParams params;
      params.migrate = options_.rebalance;
      params.bandwidth = move_bandwidth_;
      std::vector<NodeLoad> view = loads_.others(now());
      std::erase_if(view, [this](const NodeLoad& n) { return is_lost(static_cast<int>(n.id)); });
      Decision d = decide(st, view, now(), params);
      BalanceReport report;
      report.node = static_cast<std::uint32_t>(transport_.rank());
      for (const Explanation& e : d.explanations) {
        report.guests.push_back(GuestDecision{static_cast<std::int32_t>(e.guest),
                                              std::string(verdict_phrase(e.verdict)), explain(e)});
      }
      send(0, report);
      if (options_.rebalance && d.move && static_cast<int>(d.move->target) < transport_.size()) {
        MigrateRequest m;
        // Ids of the daemons' own moves cannot collide with mosixrun's.
        m.migration_id = (static_cast<std::uint64_t>(transport_.rank() + 1) << 40) + ++next_auto_migration_;
        m.rank = static_cast<std::int32_t>(d.move->guest);
        m.target_node = static_cast<std::uint32_t>(d.move->target);
        spdlog::debug("{}: balancer moves rank {} to node {} (gain {:.1f} s, cost {:.2f} s)", node_name_,
                      m.rank, m.target_node, d.move->expected_gain, d.move->cost);
        // Count the guest at the target at once, as the target will report it
        // soon: the next round here must not send it a second one meanwhile.
        for (const Explanation& e : d.explanations) {
          if (e.guest == d.move->guest) loads_.note_guest_sent(d.move->target, e.remaining);
        }
        migrate_out(m);
      }
    }
  }
  // Jittered (0.75-1.25 s), as gossip is: nodes that decide in lockstep send
  // guests to the same idle node in the same round.
  balance_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(0.75 + 0.5 * rng_.uniform())));
  balance_timer_.async_wait([this](error_code ec) {
    if (!ec) balance();
  });
}

// Home node, once a second: a node not heard from (any frame counts: load
// reports come every half second) for node_timeout seconds is gone.
void NodeDaemon::check_liveness() {
  double t = now();
  // A home that was itself held up has not read what came meanwhile: judge
  // nobody on this round.
  bool held_up = liveness_checked_at_ > 0 && t - liveness_checked_at_ > 2.0;
  liveness_checked_at_ = t;
  if (!held_up && !shutting_down_) {
    for (int n = 1; n < transport_.size(); ++n) {
      auto i = static_cast<size_t>(n);
      if (!lost_[i] && hellos_[i] && t - last_heard_[i] > options_.node_timeout) {
        spdlog::debug("{}: no word from node {} for {:.1f} s: it is gone", node_name_, n, t - last_heard_[i]);
        node_lost(n);
      } else if (!lost_[i] && hellos_[i] && transport_.peer_vanished(n)) {
        // Its connection ended without a goodbye: it died; no need to wait.
        spdlog::debug("{}: node {}'s connection ended without a goodbye: it is gone", node_name_, n);
        node_lost(n);
      }
    }
  }
  liveness_timer_.expires_after(std::chrono::seconds(1));
  liveness_timer_.async_wait([this](error_code ec) {
    if (!ec) check_liveness();
  });
}

// Node `node` is gone (the home decided; every node hears it from the home).
// Frames to and from it stop; a guest that was moving there resumes here; a
// guest that was arriving from there is dropped (it died with its node).
// mosixrun decides what becomes of the ranks that were on it.
void NodeDaemon::node_lost(int node) {
  if (node <= 0 || node >= transport_.size() || is_lost(node) || node == transport_.rank()) return;
  lost_[static_cast<size_t>(node)] = 1;
  if (transport_.rank() == 0) {
    // A node only slow to answer must not live on with guests nobody waits
    // for: it is told to end (a dead one never reads this), and forgotten a
    // little later so that the word can leave. The job's end forgets it at
    // once (run()).
    send(node, Shutdown{std::string(kDeclaredGone) + " (no word from it)"});
    auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(2));
    timer->async_wait([this, node, timer](error_code) { transport_.forget(node); });
  } else {
    transport_.forget(node);
  }
  if (transport_.rank() == 0) {
    NodeLost word{static_cast<std::uint32_t>(node), {}};
    for (int n = 1; n < transport_.size(); ++n) {
      if (n != node && !is_lost(n)) send(n, word);
    }
    std::vector<int> stranded;  // moving away from the lost node: they will not arrive
    for (int rank : moving_) {
      if (rank_node_[rank] == node) stranded.push_back(rank);
    }
    word.restarting = restart_lost_ranks(node);
    for (int rank : stranded) release_stdin(rank);  // to its restarted self, or dropped with it
    if (home_) home_->send(word);
  }
  for (auto it = outgoing_.begin(); it != outgoing_.end();) {
    Outgoing& out = it->second;
    if (static_cast<int>(out.request.target_node) != node) {
      ++it;
      continue;
    }
    if (!out.streamed) {  // still checkpointing: checkpointed() resumes it
      out.target_lost = true;
      ++it;
      continue;
    }
    MigrateResult fail;
    fail.migration_id = it->first;
    fail.rank = out.request.rank;
    fail.source_node = static_cast<std::uint32_t>(transport_.rank());
    fail.target_node = out.request.target_node;
    fail.bytes = out.bytes;
    fail.reason = "the target node died during the move";
    if (auto g = guests_.find(out.request.rank); g != guests_.end()) {
      g->second->migrating = false;
      ::kill(-g->second->proc.pid, SIGCONT);
      if (out.stdin_left) give_back_stdin(*g->second, std::move(*out.stdin_left));
    }
    spdlog::debug("{}: rank {} stays: {}", node_name_, fail.rank, fail.reason);
    it = outgoing_.erase(it);
    send(0, fail);
  }
  std::vector<std::uint64_t> from_lost;
  for (auto& [id, in] : incoming_) {
    if (in->source == node) from_lost.push_back(id);
  }
  for (std::uint64_t id : from_lost) restore_failed(id, "the source node died during the move");
}

// Home node: a move is over (or its source is gone): the stdin held for the
// rank goes to where it runs now.
void NodeDaemon::release_stdin(int rank) {
  moving_.erase(rank);
  auto held = held_stdin_.find(rank);
  if (held == held_stdin_.end()) return;
  std::vector<GuestStdin> waiting = std::move(held->second);
  held_stdin_.erase(held);
  for (GuestStdin& in : waiting) send(rank_node_[rank], in);
}

// Home node, with periodic checkpoints: each rank that was on the lost node
// and has an image (DIR/rank.N.img, on a file system every node sees) is
// restored on the live node holding the fewest ranks per unit of speed.
std::vector<RankRestart> NodeDaemon::restart_lost_ranks(int node) {
  std::vector<RankRestart> restarts;
  if (options_.ckpt_interval <= 0 || options_.ckpt_dir.empty()) return restarts;
  std::map<int, int> ranks_on;
  for (const auto& [rank, n] : rank_node_) ranks_on[n]++;
  for (auto& [rank, n] : rank_node_) {
    if (n != node) continue;
    std::string image = options_.ckpt_dir + "/rank." + std::to_string(rank) + ".img";
    if (::access(image.c_str(), F_OK) != 0) continue;
    // Restoring an image runs what it holds as the user: only one in a
    // directory and a file nobody else could have written or swapped, and
    // only after the whole image verifies, as `mosixctl restart` does.
    Status trusted = sys::check_private_dir(options_.ckpt_dir);
    if (trusted) trusted = sys::check_trusted_file(image);
    if (trusted) {
      if (auto verified = ckpt::verify_image_file(image); !verified) trusted = verified.error();
    }
    if (!trusted) {
      spdlog::warn("rank {} is not restarted from {}: {}", rank, image, trusted.error().message);
      continue;
    }
    std::vector<RestartCandidate> candidates(static_cast<size_t>(transport_.size()));
    for (int c = 0; c < transport_.size(); ++c) {
      auto i = static_cast<size_t>(c);
      candidates[i].ranks = ranks_on[c];
      if (is_lost(c) || !hellos_[i]) continue;
      if (i < options_.slots.size() && options_.slots[i] == 0) continue;  // a routing-only home
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
    s.cwd = options_.ckpt_dir;
    s.flags = kSpawnRestore | (rank == 0 ? kSpawnStdin : 0);
    n = best;
    ranks_on[best]++;
    spdlog::debug("rank {} restarts from {} on node {}", rank, image, best);
    send(best, s);
    restarts.push_back(RankRestart{rank, static_cast<std::uint32_t>(best)});
  }
  return restarts;
}

// Periodic checkpoints (--ckpt-interval): every interval, each guest running
// here writes its image to DIR/rank.N.img, atomically (the newest complete
// image is always there). The requests block until the image is verified, so
// a round runs on a thread of its own; a round still running when the next
// is due is not doubled. A guest on the move is skipped this round.
void NodeDaemon::schedule_checkpoints() {
  ckpt_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options_.ckpt_interval)));
  ckpt_timer_.async_wait([this](error_code ec) {
    if (ec || shutting_down_) return;
    if (!ckpt_busy_) {
      std::vector<std::pair<int, pid_t>> targets;
      for (auto& [rank, g] : guests_) {
        if (g->phase == Phase::kLive && g->running && !g->migrating) targets.emplace_back(rank, g->proc.pid);
      }
      if (ckpt_thread_.joinable()) ckpt_thread_.join();
      ckpt_busy_ = true;
      ckpt_thread_ = std::thread([this, targets, dir = options_.ckpt_dir, name = node_name_] {
        for (auto [rank, pid] : targets) {
          ckpt::CheckpointRequest r;
          r.pid = pid;
          r.image_path = dir + "/rank." + std::to_string(rank) + ".img";
          r.mode = ckpt::AfterCheckpoint::kLeaveRunning;
          r.compression = ckpt::Compression::fast;
          auto done = ckpt::request_checkpoint(r);
          if (done) {
            spdlog::debug("{}: rank {}: checkpoint {} ({} bytes)", name, rank, done->image_path, done->bytes);
          } else {
            spdlog::warn("{}: rank {}: periodic checkpoint failed: {}", name, rank, done.error().message);
          }
        }
        ckpt_busy_ = false;
      });
    }
    schedule_checkpoints();
  });
}

int NodeDaemon::run() {
  ::signal(SIGPIPE, SIG_IGN);
  sweep_old_images("/dev/shm");
  if (transport_.rank() == 0) {
    if (Status s = connect_home(); !s) {
      spdlog::error("home node daemon: {}", s.error().message);
      return 1;
    }
    read_home();
  }
  if (Status s = say_hello(); !s) {
    spdlog::error("{}", s.error().message);
    return 1;
  }
  lost_.assign(static_cast<size_t>(transport_.size()), 0);
  last_heard_.assign(static_cast<size_t>(transport_.size()), now());
  wait_transport();
  wait_children();
  if (!options_.in_process) wait_term();
  if (transport_.rank() == 0) check_liveness();
  if (options_.ckpt_interval > 0 && !options_.ckpt_dir.empty()) schedule_checkpoints();
  report_load();
  gossip();
  balance();
  io_.run();
  join_threads();
  for (int n = 0; n < transport_.size(); ++n) {
    if (is_lost(n)) transport_.forget(n);  // every survivor closes without the same nodes
  }
  if (cap_) (void)cap_->remove();
  if (declared_gone_) {
    // Its guests are gone (shutdown()); closing the transport would wait for
    // nodes that no longer count it in. Exit 0: a launcher must not take
    // this for a failure of the job.
    spdlog::warn("{}: the home node declared this node gone; its guests were ended", node_name_);
    std::_Exit(0);
  }
  if (Status s = transport_.close(); !s) spdlog::debug("{}: closing the transport: {}", node_name_, s.error().message);
  return exit_code_;
}

}  // namespace

int run_node_daemon(Transport& transport, const NodeDaemonOptions& options) {
  // Frames of guest output (and image chunks) are allocated and freed at a
  // high rate: reuse heap memory rather than fault in fresh pages each time.
  ::mallopt(M_MMAP_THRESHOLD, 8 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 64 << 20);
  NodeDaemon daemon(transport, options);
  return daemon.run();
}

}  // namespace mosix
