// The PMIx server of a node daemon, for MPI programs: Open MPI's MPI_Init
// connects to it (as under `srun --mpi=pmix`) and learns its rank, the job's
// size and its peers, and exchanges its wire-up data (fence). Built on the
// PMIx library that Debian's Open MPI uses (libpmix 4.2).
//
// Started at the first MPI copy a node starts: its start costs tens of ms
// (the library loads its plugins and a topology), which a job that is not
// MPI never pays. One per process: the library holds one server.
//
// Today a job's copies are all on one node (HomeJob refuses an MPI job
// across nodes): the fence is complete with this node's data.
#pragma once

#include <string>
#include <vector>

#include "runtime/core/expected.h"

namespace mosix {

struct PmixJob {
  std::string nspace;            // the job's PMIx namespace
  int size = 0;                  // copies in the job
  std::vector<int> local_ranks;  // those on this node
  std::string hostname;          // this node
  std::string parent_dir;        // private: the library's rendezvous files go into a folder made here
};

class PmixServer {
 public:
  explicit PmixServer(PmixJob job) : job_(std::move(job)) {}
  ~PmixServer();
  PmixServer(const PmixServer&) = delete;
  PmixServer& operator=(const PmixServer&) = delete;

  // Registers copy `rank` and adds to `env` what its PMIx client needs to
  // reach the server (and Open MPI's choice of PMIx over a singleton start).
  // Starts the server and registers the job first, the first time.
  Status add_client(int rank, std::vector<std::string>& env);

 private:
  Status start();

  PmixJob job_;
  std::string tmpdir_;  // made by start(), removed with the server
  bool started_ = false;
};

}  // namespace mosix
