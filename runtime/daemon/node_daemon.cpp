#include "runtime/daemon/node_daemon.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <cmath>
#include <cstdlib>
#include <malloc.h>
#include <memory>
#include <optional>
#include <set>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <vector>

#include "runtime/core/fence.h"
#include "runtime/core/overloaded.h"
#include "runtime/daemon/checkpoint_scheduler.h"
#include "runtime/daemon/cpu_cap.h"
#include "runtime/daemon/daemon_context.h"
#include "runtime/daemon/guest_service.h"
#include "runtime/daemon/guest_table.h"
#include "runtime/daemon/home_router.h"
#include "runtime/daemon/load_agent.h"
#include "runtime/daemon/node_env_file.h"
#include "runtime/daemon/node_seats_file.h"
#include "runtime/daemon/migration.h"
#include "runtime/daemon/pmi_server.h"
#include "runtime/daemon/pmix_link.h"
#include "runtime/daemon/run_queue_probe.h"
#include "runtime/sys/install_path.h"
#include "runtime/topology/speed.h"
#include "runtime/topology/topology.h"
#include "runtime/sys/host_name.h"
#include "runtime/sys/shared_memory_dir.h"

namespace mosix {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// The node daemon: a dispatcher of the transport's messages to its parts,
// which do the work (see each part's header). Every node has a guest table,
// migrations, a load agent and a checkpoint scheduler; rank 0, on the home
// node, also the home router.
class NodeDaemon {
 public:
  NodeDaemon(Transport& transport, NodeDaemonOptions options)
      : options_(std::move(options)),
        context_(io_, transport, options_),
        transport_sd_(io_, ::dup(transport.event_fd())),
        term_signals_(io_, SIGTERM, SIGINT, SIGHUP),
        guests_(context_),
        guest_service_(context_),
        migrations_(context_, guests_),
        load_(context_, guests_, migrations_),
        checkpoints_(context_, guests_) {
    guests_.set_ended_hook([this](int rank) { migrations_.guest_ended(rank); });
    migrations_.set_guest_links(&guest_service_);
    if (transport.rank() == 0) {
      router_.emplace(context_, guests_,
                      HomeRouter::Hooks{[this](int node) { node_lost(node); },
                                        [this](const std::string& why) { shutdown(why); },
                                        [this](const MpiJobMap& map) { mpi_job_map(map); },
                                        [this](const Message& m, std::int32_t rank) {
                                          guest_service_.deliver(m, rank);
                                        }});
    }
    guest_service_.set_socket_option_route(
        [this](SocketForward m, std::function<void(const SocketForward&)> reply) {
          migrations_.socket_option(std::move(m), std::move(reply));
        });
    guest_service_.set_deputy_route([this](const Message& m) {
      if (router_) {
        router_->from_deputy(context_.rank(), m);
      } else {
        context_.send(0, m);
      }
    });
  }
  NodeDaemon(const NodeDaemon&) = delete;
  NodeDaemon& operator=(const NodeDaemon&) = delete;

  int run();

 private:
  Status say_hello();
  void wait_transport();
  void handle(int source, Message message);
  void node_lost(int node);
  void mpi_job_map(const MpiJobMap& map);
  void mpi_namespace(const MpiNamespace& space);
  void wait_term();
  void shutdown(const std::string& why);

  NodeDaemonOptions options_;
  asio::io_context io_;
  DaemonContext context_;
  asio::posix::stream_descriptor transport_sd_;
  asio::signal_set term_signals_;
  std::optional<CpuCap> cap_;  // a virtual node's CPU share
  std::unique_ptr<PmixLink> pmix_;  // once the node runs MPI copies
  std::unique_ptr<PmiServer> pmi_;  // the same, for MPICH copies
  std::unique_ptr<NodeSeatsFile> seats_;  // children's quick "stay here" (placement at exec)
  std::unique_ptr<NodeEnvFile> node_env_;  // the node's values for guests restored here
  int cores_ = 1;                         // as told to the home
  GuestTable guests_;
  GuestService guest_service_;
  Migrations migrations_;
  LoadAgent load_;
  CheckpointScheduler checkpoints_;
  std::optional<HomeRouter> router_;  // rank 0 only
  bool declared_gone_ = false;
  int exit_code_ = 0;
};

Status NodeDaemon::say_hello() {
  Transport& transport = context_.transport();
  Hello hello;
  hello.mosix_version = MOSIX_VERSION;
  hello.rank = static_cast<std::uint32_t>(transport.rank());
  double node_speed = stored_speed_or(1.0);
  auto topology = options_.topology ? Expected<Topology>(*options_.topology) : probe_this_node();
  int cores = topology ? std::max(1, topology->cores) : 1;
  if (topology) guests_.set_cores(topology->core_pus);
  std::uint64_t memory = topology ? topology->memory_bytes : 0;
  if (!options_.vcluster_cpu.empty()) {
    // A virtual node: a CPU share of this machine. Its speed per core is the
    // share spread over the cores it may use.
    double share = options_.vcluster_cpu[static_cast<size_t>(transport.rank()) % options_.vcluster_cpu.size()];
    context_.set_node_name("vnode" + std::to_string(transport.rank()));
    CgroupRoots roots = detect_cgroups();
    if (auto why = why_uncapped(roots)) {
      if (router_) spdlog::warn("virtual nodes run uncapped: {}", *why);
    } else {
      auto cap = CpuCap::create("job" + options_.job_id + "/" + context_.node_name(), share, roots);
      if (cap) {
        cap_ = std::move(*cap);
        guests_.set_cap(&*cap_);
        if (options_.on_cpu_cap) options_.on_cpu_cap(cap_->path(), cap_->top());
      } else if (router_) {
        spdlog::warn("virtual nodes run uncapped: {}", cap.error().message);
      }
    }
    // Its load: the tasks of its cgroup; without one, the job's process
    // trees here (the machine's run queue is every node's).
    if (cap_) {
      load_.set_probe(RunQueueProbe::cgroup(cap_->path()));
    } else {
      load_.set_probe(RunQueueProbe::process_trees([this] {
        std::vector<pid_t> roots;
        for (const auto& [rank, g] : guests_.guests()) {
          if (g->running) roots.push_back(g->proc.pid);
        }
        return roots;
      }));
    }
    hello.cores = static_cast<std::uint32_t>(std::max(1.0, std::ceil(share)));
    hello.speed = node_speed * share / hello.cores;
  } else {
    context_.set_node_name(sys::host_name());
    hello.cores = static_cast<std::uint32_t>(cores);
    hello.speed = node_speed;
  }
  hello.node_name = context_.node_name();
  hello.memory_bytes = memory;
  load_.set_capacity(hello.speed, static_cast<int>(hello.cores));
  cores_ = static_cast<int>(hello.cores);
  guests_.set_machine_speed(node_speed);
  context_.send(0, hello);
  return {};
}

void NodeDaemon::wait_transport() {
  transport_sd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    if (ec) return;
    auto deliveries = context_.transport().receive();
    if (!deliveries) {
      spdlog::error("{}: the cluster transport failed: {}", context_.node_name(), deliveries.error().message);
      exit_code_ = 1;
      shutdown("transport failure");
      return;
    }
    for (Delivery& d : *deliveries) {
      if (context_.is_lost(d.source)) continue;  // declared gone: it has no say any more
      if (router_) {
        router_->heard_from(d.source);
        if (router_->forward_output(d)) continue;
      }
      auto message = decode_delivery(d);
      if (!message) {
        spdlog::error("{}: {}", context_.node_name(), message.error().message);
        continue;
      }
      handle(d.source, std::move(*message));
      if (context_.shutting_down()) return;
    }
    wait_transport();
  });
}

void NodeDaemon::handle(int source, Message message) {
  std::visit(Overloaded{
                 [&](SpawnGuest& spawn) { guests_.spawn(std::move(spawn)); },
                 // At the home, from another node, a deputy's for its body goes on to
                 // it; any other (a moving guest's stdin, its source node's) is for here.
                 [&](const GuestStdin& in) {
                   if (router_ && source != context_.rank() && router_->from_deputy(source, in)) return;
                   if (!guests_.deliver_stdin(in)) migrations_.stdin_for_arrival(in);  // on its way here
                 },
                 [&](const OutputCredit& credit) {
                   if (router_ && source != context_.rank() && router_->from_deputy(source, credit)) return;
                   guests_.output_credit(credit);
                 },
                 [&](const GuestSignal& sig) {
                   if (router_ && source != context_.rank() && router_->from_deputy(source, sig)) return;
                   guests_.signal(sig.rank, sig.signo, sig.not_before_cpu_us);
                 },
                 [&](const PtyResize& size) { guests_.resize_pty(size); },
                 [&](const Shutdown& bye) {
                   if (source == 0 && bye.reason.rfind(kDeclaredGone, 0) == 0) declared_gone_ = true;
                   shutdown(bye.reason);
                 },
                 [&](const LoadReport& load) {
                   load_.merge(load);
                   if (router_) router_->node_load(source, load);
                 },
                 [&](const NodeLost& lost) { node_lost(static_cast<int>(lost.node)); },
                 [&](const MpiJobMap& map) { mpi_job_map(map); },
                 [&](FenceContribution& part) {
                   if (router_) router_->fence(source, std::move(part));
                 },
                 [&](const FenceRelease& release) {
                   if (release.fence_id & kPmiFenceBit) {
                     if (pmi_) pmi_->fence_released(release);
                   } else if (pmix_) {
                     pmix_->fence_released(release);
                   }
                 },
                 [&](const ModexRequest& request) {
                   if (pmix_) {
                     pmix_->modex_asked(source, request);
                   } else {  // no MPI copy was ever meant to run here
                     context_.send(source, ModexReply{request.request_id, kFenceFailed, {}});
                   }
                 },
                 [&](const ModexReply& reply) {
                   if (pmix_) pmix_->modex_answered(reply);
                 },
                 [&](const NamePublish& m) {
                   if (router_) router_->names(source, m);
                 },
                 [&](const NameLookup& m) {
                   if (router_) router_->names(source, m);
                 },
                 [&](const NameUnpublish& m) {
                   if (router_) router_->names(source, m);
                 },
                 [&](const NameReply& reply) {
                   if (reply.request_id & kPmiRequestBit) {
                     if (pmi_) pmi_->names_answered(reply);
                   } else if (pmix_) {
                     pmix_->names_answered(reply);
                   }
                 },
                 [&](const GuestSpawn& request) {
                   if (router_) router_->guest_spawn(source, request);
                 },
                 [&](const GuestSpawnReply& reply) { guest_service_.spawn_answered(reply); },
                 [&](const MpiSpawn& request) {
                   if (router_) router_->mpi_spawn(source, request);
                 },
                 [&](const MpiSpawnReply& reply) {
                   if (reply.request_id & kPmiRequestBit) {
                     if (pmi_) pmi_->spawn_answered(reply);
                   } else if (pmix_) {
                     pmix_->spawn_answered(reply);
                   }
                 },
                 [&](const MpiNamespace& space) { mpi_namespace(space); },
                 [&](GuestMessage& m) {
                   if (m.source_rank == kLinkBytes) {  // a moving guest's link, for this node
                     guest_service_.link_bytes(m.dest_rank, m.kind, std::move(m.bytes));
                   } else if (router_) {
                     router_->guest_message(std::move(m));
                   } else {
                     guest_service_.deliver(m, m.dest_rank);
                   }
                 },
                 [&](const GuestAttach&) {},
                 [&](const HomeKill& k) {
                   if (k.answered) {
                     guest_service_.kill_answered(k);
                   } else if (router_) {
                     guest_service_.home_kill(k, router_->deputy_node(k.rank));
                   } else {
                     guest_service_.kill_asked(k);
                   }
                 },
                 [&](const MigrateRequest& move) { migrations_.request(source, move); },
                 [&](const ImageBegin& begin) { migrations_.image_begin(begin); },
                 [&](const ImageChunk& chunk) { migrations_.image_chunk(chunk); },
                 [&](const PrecopyPages& pages) { migrations_.precopy_pages(pages); },
                 [&](const PrecopyTaken& taken) { migrations_.precopy_taken(source, taken); },
                 [&](const ImageEnd& end) { migrations_.image_end(end); },
                 [&](SocketForward& m) { migrations_.socket_message(source, std::move(m)); },
                 [&](const MigrateResult& result) {
                   if (!migrations_.answered(source, result) && router_) router_->route_result(result);
                 },
                 // Hello, GuestStarted, GuestOutput, GuestExited, MigrateProgress,
                 // BalanceReport, ...: what the nodes report, for mosixrun.
                 [&](const auto&) {
                   if (router_) {
                     router_->from_node(source, message);
                   } else if (auto* out = std::get_if<GuestOutput>(&message)) {
                     guest_service_.deliver(message, out->rank);  // a body's, for its deputy here
                   } else if (auto* exited = std::get_if<GuestExited>(&message)) {
                     guest_service_.deliver(message, exited->rank);
                   } else if (auto* credit = std::get_if<StdinCredit>(&message)) {
                     guest_service_.deliver(message, credit->rank);
                   }
                 },
             },
             message);
}

// Node `node` is gone (the home decided; every node hears it from the home).
// Frames to and from it stop; a guest that was moving there resumes here; a
// guest that was arriving from there is dropped (it died with its node).
// mosixrun decides what becomes of the ranks that were on it.
void NodeDaemon::node_lost(int node) {
  if (node <= 0 || node >= context_.size() || context_.is_lost(node) || node == context_.rank()) return;
  context_.mark_lost(node);
  if (router_) {
    router_->node_lost(node);
  } else {
    context_.transport().forget(node);
  }
  migrations_.node_lost(node);
}

// The home node says where an MPI job's ranks run, before this node's
// first MPI copy: the link to its PMIx server (a helper process, started at
// the first copy) is made; the servers meet through the home node.
void NodeDaemon::mpi_job_map(const MpiJobMap& map) {
  if (pmix_) return;
  // The PMIx server's data stores are files its clients mmap (8 MiB and
  // more a node): on a disk (/tmp) their pages went to it, and on a busy
  // machine the helpers stalled in the disk's queue for tens of seconds
  // before their first copy started.
  auto dir = sys::shared_memory_dir();
  if (!dir) {
    spdlog::error("{}: no PMIx server for MPI copies: {}", context_.node_name(), dir.error().message);
    return;
  }
  PmixHelperJob job;
  job.nspace = "mosix." + (options_.job_id.empty() ? std::to_string(::getpid()) : options_.job_id);
  job.map = map;
  job.parent_dir = *dir;
  // Several nodes on this host: a virtual cluster, or nodes of one name
  // (Slurm's nodes of one machine, all named by its host name).
  std::set<std::uint32_t> same_name;
  for (std::uint32_t node : map.rank_nodes) {
    if (node < map.node_names.size() && map.node_names[node] == context_.node_name()) same_name.insert(node);
  }
  job.shared_host = !options_.vcluster_cpu.empty() || same_name.size() > 1;
  // MPICH copies: served here (pmi_server.h); neither costs anything until
  // a copy of its kind starts (the helper starts at the first Open MPI copy).
  pmi_ = std::make_unique<PmiServer>(context_, map, job.nspace,
                                     [this](int rank, int code) { guests_.abort_guest(rank, code); });
  guests_.set_pmi(pmi_.get());
  pmix_ = std::make_unique<PmixLink>(context_, std::move(job));
  guests_.set_pmix(pmix_.get());
}

// MPI_Comm_spawn made a namespace of new copies: this node's PMIx server
// learns it before any of them starts here (the home node sent this first),
// and so do the servers of their parents (to connect to them).
void NodeDaemon::mpi_namespace(const MpiNamespace& space) {
  if ((space.flags & kSpawnPmi) && pmi_) {
    pmi_->add_world(space);
    return;
  }
  if (!pmix_) {
    spdlog::error("{}: PMIx namespace {} of spawned copies, but this node has no PMIx server", context_.node_name(),
                  space.nspace);
    return;
  }
  if (Status s = pmix_->add_namespace(space); !s) {
    spdlog::error("{}: MPI_Comm_spawn: {}", context_.node_name(), s.error().message);
  }
}

void NodeDaemon::wait_term() {
  term_signals_.async_wait([this](error_code ec, int sig) {
    if (ec) return;
    spdlog::debug("{}: signal {}: ending", context_.node_name(), sig);
    exit_code_ = 1;
    guests_.kill_all();
    std::_Exit(1);  // mpirun is ending us; the transport cannot close cleanly now
  });
}

void NodeDaemon::shutdown(const std::string& why) {
  if (context_.shutting_down()) return;
  context_.begin_shutdown();
  spdlog::debug("{}: shutting down ({}); gossip told it of {} other nodes", context_.node_name(), why,
                load_.known_nodes());
  guests_.end_all();
  migrations_.close_incoming();
  io_.stop();
}

int NodeDaemon::run() {
  ::signal(SIGPIPE, SIG_IGN);
  // A file size limit (RLIMIT_FSIZE) on this daemon makes a write into an
  // image's memfd fail with EFBIG, which fails that move with the reason,
  // instead of killing the daemon and every guest with it. Guests start with
  // every signal at its default again (guest_process.cpp).
  ::signal(SIGXFSZ, SIG_IGN);
  sweep_old_images("/dev/shm");
  if (router_) {
    if (Status s = router_->connect(); !s) {
      spdlog::error("home node daemon: {}", s.error().message);
      return 1;
    }
  }
  if (Status s = say_hello(); !s) {
    spdlog::error("{}", s.error().message);
    return 1;
  }
  if (Status s = guest_service_.start(); s) {
    guests_.set_guest_socket(guest_service_.path());
    if (!options_.spread.empty() && context_.size() > 1) {
      if (auto deputy = sys::installed_program("mosix-deputy")) {
        guests_.set_deputy(*deputy);
        // The agent's own answer for children that stay (node_seats.h);
        // without it, every child asks the home.
        if (auto seats = NodeSeatsFile::create(options_.spread == "always" ? 0 : cores_)) {
          seats_ = std::move(*seats);
          guests_.set_seats(seats_.get());
          load_.set_seats(seats_.get());
        } else {
          spdlog::warn("{}: every child asks the home where to run: {}", context_.node_name(), seats.error().message);
        }
        if (auto file = NodeEnvFile::create(guests_.node_env())) {
          node_env_ = std::move(*file);
        } else {
          spdlog::warn("{}: children of guests that arrive here are placed as on the node they left: {}",
                       context_.node_name(), file.error().message);
        }
      } else {
        spdlog::warn("{}: children stay on their parent's node: {}", context_.node_name(), deputy.error().message);
      }
    }
    // A PVM task restored here finds this node's guest socket in it (compat/pvm).
    if (!node_env_ && context_.size() > 1) {
      if (auto file = NodeEnvFile::create(guests_.node_env())) {
        node_env_ = std::move(*file);
      } else {
        spdlog::warn("{}: PVM tasks that arrive here cannot attach again: {}", context_.node_name(),
                     file.error().message);
      }
    }
  } else {
    spdlog::warn("{}: no guest socket (no spawn service, no PVM): {}", context_.node_name(), s.error().message);
  }
  if (router_) router_->start();
  wait_transport();
  guests_.start();
  if (!options_.in_process) wait_term();
  checkpoints_.start();
  load_.start();
  io_.run();
  migrations_.finish();
  checkpoints_.join();
  Transport& transport = context_.transport();
  for (int n = 0; n < transport.size(); ++n) {
    if (context_.is_lost(n)) transport.forget(n);  // every survivor closes without the same nodes
  }
  if (cap_) (void)cap_->remove();
  if (declared_gone_) {
    // Its guests are gone (shutdown()); closing the transport would wait for
    // nodes that no longer count it in. Exit 0: a launcher must not take
    // this for a failure of the job.
    spdlog::warn("{}: the home node declared this node gone; its guests were ended", context_.node_name());
    std::_Exit(0);
  }
  if (Status s = transport.close(); !s) {
    spdlog::debug("{}: closing the transport: {}", context_.node_name(), s.error().message);
  }
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
