// Host lists as users write them: mpirun's `--host a:2,b`, hostfiles
// (`host slots=N`), and Slurm's hostlist (`n[01-04,07],gpu[1-2]`) and
// tasks-per-node (`2(x3),1`) grammars. Pure parsing; no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/expected.h"

namespace mosix {

struct HostSlots {
  std::string name;
  int slots = 1;
  bool slots_given = false;  // false: "as many as the node has cores"
  bool operator==(const HostSlots&) const = default;
};

// `a:2,b,c:4` -> {a,2},{b,1},{c,4}. A host named twice adds its slots
// (mpirun does the same).
Expected<std::vector<HostSlots>> parse_host_list(std::string_view text);

// A hostfile's text: one host per line, `name [slots=N] [max_slots=N]`,
// `#` comments, blank lines. Errors name the line number.
Expected<std::vector<HostSlots>> parse_hostfile(std::string_view text,
                                                std::string_view file_name);

// Slurm hostlist expression -> host names in order.
Expected<std::vector<std::string>> expand_slurm_hostlist(std::string_view text);

// Slurm SLURM_TASKS_PER_NODE (`2(x3),1`) -> one count per node.
Expected<std::vector<int>> expand_slurm_tasks_per_node(std::string_view text);

// Merge entries naming the same host, keeping first-seen order.
std::vector<HostSlots> merge_hosts(const std::vector<HostSlots>& hosts);

}  // namespace mosix
