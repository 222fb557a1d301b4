// MPI_Comm_spawn as MPICH's PMI clients ask for it, read into one shape
// for both wire protocols. PMI-1 sends one "mcmd=spawn" block per app
// (nprocs, execname, argcnt/argN from 1, info_num/info_key_N/info_val_N,
// and in the first block preput_num/preput_key_N/preput_val_N), each
// numbered spawnssofar of totspawns. PMI-2 sends one "cmd=spawn" frame:
// ncmds, preputcount/ppkeyN/ppvalN, then per app "subcmd" (the program),
// maxprocs, argc/argvN from 0, infokeycount/infokeyN/infovalN; the keys of
// each app repeat, so its items are read in order, each app starting at its
// subcmd (as Hydra's and Slurm's pmi2 servers read them). Pure: std only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/pmi_wire.h"

namespace mosix::pmi {

// A spawn asks for at most this many copies in one app (the home node has
// its own bound on the whole spawn).
inline constexpr int kSpawnMaxProcs = 4096;

struct SpawnApp {
  std::string program;
  int maxprocs = 0;                // at least 1
  std::vector<std::string> args;   // after the program
  KeyValues info;                  // its MPI_Info pairs ("host", "wdir", "path", ...)
  bool operator==(const SpawnApp&) const = default;
};

struct Spawn {
  std::vector<SpawnApp> apps;      // at least one
  KeyValues preput;                // the children's key-value space starts with these
  bool operator==(const Spawn&) const = default;
};

// PMI-2's cmd=spawn, from its items in order (thrid may be among them).
// An error names what is missing or wrong.
Expected<Spawn> parse_spawn_v2(const KeyValues& items);

// One PMI-1 "mcmd=spawn" block, from its fields.
struct SpawnBlock {
  SpawnApp app;
  KeyValues preput;                // the first block's
};
Expected<SpawnBlock> parse_spawn_v1(const std::map<std::string, std::string>& fields);
// Whether a block is its spawn's last: spawnssofar is totspawns, or either
// is missing or not a number (then no more can be told apart).
bool last_spawn_block(const std::map<std::string, std::string>& fields);

// The value of `key` among an app's info pairs ("" when absent).
std::string info_value(const SpawnApp& app, const std::string& key);

}  // namespace mosix::pmi
