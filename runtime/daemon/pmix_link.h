// A node daemon's side of its PMIx helper (mosix-pmix, pmix_wire.h): the
// PMIx server of the node's MPI copies runs there. The link starts it at the
// first copy, registers each copy with it (and gives the copy the
// environment that leads its MPI_Init there), asks it whether a copy that
// ended was still inside MPI, and carries the fences and modex requests
// between it and the other nodes. All on the daemon's loop.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/protocol.h"
#include "runtime/daemon/daemon_context.h"

namespace mosix {

struct PmixHelperJob {
  std::string nspace;
  MpiJobMap map;
  std::string parent_dir;   // the helper's server folder is made in it
  bool shared_host = false; // other nodes of the job on this host (PmixJob::shared_host)
};

// mosix-pmix: $MOSIX_PMIX_HELPER, else the one installed next to this program.
std::string pmix_helper_path();

class PmixLink {
 public:
  PmixLink(DaemonContext& context, PmixHelperJob job) : context_(context), job_(std::move(job)) {}
  // Closes the link: the helper ends its server and exits; it is waited for.
  ~PmixLink();
  PmixLink(const PmixLink&) = delete;
  PmixLink& operator=(const PmixLink&) = delete;

  // Registers copy `rank` (starting the helper the first time); `env`, the
  // copy's environment, gets what its PMIx client needs.
  Status add_client(int rank, std::vector<std::string>& env);
  // Copy `rank` called MPI_Init and not MPI_Finalize (false if unknown).
  bool in_mpi(int rank);
  // Registers a namespace of spawned copies (starting the helper if none
  // runs yet), before any of them starts here.
  Status add_namespace(const MpiNamespace& space);

  // From other nodes: the home node's word on a fence; a node asking for a
  // rank of this node's data; the answer to this node's question.
  void fence_released(const FenceRelease& release) { forward(0, release); }
  void modex_asked(int source, const ModexRequest& request);
  void modex_answered(const ModexReply& reply) { forward(0, reply); }
  void names_answered(const NameReply& reply) { forward(0, reply); }
  void spawn_answered(const MpiSpawnReply& reply) { forward(0, reply); }

 private:
  Status start();
  void forward(int node, const Message& message);
  void read_events();
  void take_events();

  DaemonContext& context_;
  PmixHelperJob job_;
  int pid_ = -1;
  int requests_ = -1;  // our end of the request socket
  std::unique_ptr<boost::asio::posix::stream_descriptor> events_;
  std::vector<std::uint8_t> inbox_;  // event bytes not yet a whole packet
  std::vector<std::uint8_t> buf_ = std::vector<std::uint8_t>(1 << 16);
  std::string failed_;  // why the helper cannot serve (once it failed)
};

}  // namespace mosix
