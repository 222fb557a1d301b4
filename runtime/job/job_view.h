// What `mosixctl ps`, `mon` and `migrate` see of a running job: its guests
// and its nodes, as the job (mosixrun) knows them. One typed structure,
// turned into the control socket's JSON here and nowhere else, and read
// back here (docs/mosixctl.md lists the fields).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/expected.h"

namespace mosix {

struct GuestView {
  int rank = 0;
  pid_t pid = 0;                  // real pid on its node; 0 while starting
  std::string home;               // the job's home node
  std::string node;               // where it runs now ("" while unplaced)
  std::string state;              // starting, running, stopped, migrating, exited
  double cpu_seconds = -1;        // -1: not known (ended, or on another machine)
  int exit_status = -1;           // once exited: 0..255 (128+S if killed)
  std::string cantmove;           // why it cannot move, if it cannot
  std::string last_migration;     // one line on its last migration
  int migrations = 0;             // moves that moved it
  int balancer_migrations = 0;    // of which the node daemons decided on their own
  std::string migration_progress; // while it moves: how far
  std::string verdict;            // its node's last rebalancing verdict
  std::string explanation;        // ... and why
  int parent = -1;                // a child placed on another node (fork and forget): its parent's rank
  std::string command;            // ... and what it runs
};

struct NodeView {
  int node = 0;                   // node daemon rank; 0 is the home node
  std::string name;
  double speed = 1.0;
  int cores = 1;
  double load = 0;                // runnable tasks per unit of speed, all of the node's (smoothed)
  double cpu = 0;                 // CPUs its tasks kept busy over the last half second
  std::uint64_t free_memory = 0;  // bytes
  std::uint64_t memory = 0;       // bytes
  int guests = 0;                 // guests running there now
};

struct JobView {
  std::string job;  // the job's id
  std::vector<GuestView> guests;
  std::vector<NodeView> nodes;
};

// The control socket's replies: {"ok":true,"job":ID,"guests":[...]} for "ps",
// {"ok":true,"job":ID,"nodes":[...]} for "nodes".
nlohmann::json ps_reply(const JobView& view);
nlohmann::json nodes_reply(const JobView& view);

nlohmann::json to_json(const GuestView& guest);
nlohmann::json to_json(const NodeView& node);
// Read back what to_json wrote; a missing field keeps its default, a field
// of the wrong type is an error naming it.
Expected<GuestView> guest_view_from_json(const nlohmann::json& j);
Expected<NodeView> node_view_from_json(const nlohmann::json& j);

}  // namespace mosix
