// What a mosixrun command line asks for: mpirun's everyday options and
// ours, as parsed (launcher/cli) and planned (runtime/core/plan_job.h).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/hostlist.h"

namespace mosix {

// --bind-to. kAuto: as mpirun, an MPI job of at most 2 copies is bound to a
// core each where its node has a core for each of them; nothing else.
enum class BindTo { kAuto, kNone, kCore };
// --mpi: how MPI copies are wired up. kAuto: with PMIx when the program
// links an MPI library (its ELF DT_NEEDED), as it is otherwise.
enum class MpiMode { kAuto, kPmix, kPmi, kNone };

// Bounds on what a command line may ask for (docs/mosixrun.md, "Limits").
constexpr int kMaxCopies = 65536;                   // -np, and copies from the slots
constexpr double kMaxSeconds = 365.0 * 24 * 3600;   // --timeout, --ckpt-interval
constexpr std::size_t kMaxHostfileBytes = 1 << 20;  // --hostfile is read up to this size

struct EnvSetting {
  std::string name;
  std::optional<std::string> value;  // -x NAME (no value): copy from our environment
};

struct RunOptions {
  int np = 0;                   // 0: one copy per slot
  std::vector<HostSlots> hosts; // from --host
  std::string hostfile;         // from --hostfile (parsed by the caller: it is I/O)
  std::vector<EnvSetting> env;
  std::string wdir;
  bool tag_output = false;
  std::string output_filename;
  bool oversubscribe = false;
  BindTo bind_to = BindTo::kAuto;
  MpiMode mpi = MpiMode::kAuto;
  double timeout_seconds = 0;   // 0: none
  bool keep_going = false;
  int verbose = 0;
  int vcluster = 0;                  // --vcluster K: K virtual nodes on this machine
  std::vector<double> vcluster_cpu;  // CPU share of each virtual node
  std::string map_by;                // "", "node", "slot" (mpirun's), "load" (ours)
  double ckpt_interval = 0;          // seconds between periodic checkpoints; 0: none
  std::string ckpt_dir;              // where they go (default under $XDG_STATE_HOME/mosix)
  bool no_agent = false;             // --no-agent: copies start without libmosix.so (cannot be checkpointed)
  std::string spread = "load";       // --spread: load | always | off, placement of the copies' children at exec
  bool pty = false;                  // --pty: rank 0 gets a terminal of its own (job control)
  bool no_smp = false;               // --no-smp: copies see this node's CPUs and memory, not the cluster's
  std::string migrate = "on";        // --migrate=off: the node daemons never move guests on their own
  std::vector<int> pin;              // --pin RANKS: these copies never move (sorted, unique)
  std::vector<std::string> program;  // program and its own arguments, untouched
};

}  // namespace mosix
