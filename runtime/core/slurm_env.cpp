#include "runtime/core/slurm_env.h"

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace mosix {

namespace {

struct Variable {
  std::string name;
  std::string value;
};

// The first of `names` that is set, or nothing.
std::optional<Variable> first_set(const std::map<std::string, std::string>& env,
                                  std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (auto it = env.find(name); it != env.end()) return Variable{name, it->second};
  }
  return std::nullopt;
}

// The hostlist parser speaks of "SLURM_TASKS_PER_NODE" whatever it was given;
// name the variable the value really came from.
std::string renamed(std::string message, const std::string& name) {
  static constexpr std::string_view kParserName = "SLURM_TASKS_PER_NODE";
  if (name == kParserName) return message;
  for (size_t at = message.find(kParserName); at != std::string::npos;
       at = message.find(kParserName, at + name.size())) {
    message.replace(at, kParserName.size(), name);
  }
  return message;
}

}  // namespace

Expected<std::vector<HostSlots>> slurm_allocation(const std::map<std::string, std::string>& env) {
  auto job = first_set(env, {"SLURM_JOB_ID", "SLURM_JOBID"});
  if (!job) return std::vector<HostSlots>{};

  auto nodelist = first_set(env, {"SLURM_JOB_NODELIST", "SLURM_NODELIST"});
  if (!nodelist) {
    return make_error("inside Slurm job " + job->value +
                      " but neither SLURM_JOB_NODELIST nor SLURM_NODELIST is set: run inside "
                      "an allocation made by salloc/sbatch, or unset " + job->name);
  }
  auto names = expand_slurm_hostlist(nodelist->value);
  if (!names) return make_error(nodelist->name + ": " + names.error().message);

  std::vector<HostSlots> hosts;
  // Inside a job step (srun) SLURM_TASKS_PER_NODE describes the step while
  // the node list stays the job's: the job's CPUs per node match that list.
  const bool in_step = first_set(env, {"SLURM_STEP_ID", "SLURM_STEPID"}).has_value();
  auto counts_var = in_step ? first_set(env, {"SLURM_JOB_CPUS_PER_NODE", "SLURM_TASKS_PER_NODE"})
                            : first_set(env, {"SLURM_TASKS_PER_NODE", "SLURM_JOB_CPUS_PER_NODE"});
  if (!counts_var) {
    for (std::string& n : *names) hosts.push_back(HostSlots{std::move(n), 1, false});
    return merge_hosts(hosts);
  }
  auto counts = expand_slurm_tasks_per_node(counts_var->value);
  if (!counts) return make_error(renamed(counts.error().message, counts_var->name));
  if (counts->size() != names->size()) {
    return make_error(counts_var->name + " '" + counts_var->value + "' gives " +
                      std::to_string(counts->size()) + " count" + (counts->size() == 1 ? "" : "s") +
                      " but " + nodelist->name + " '" + nodelist->value + "' names " +
                      std::to_string(names->size()) + " node" + (names->size() == 1 ? "" : "s"));
  }
  for (size_t i = 0; i < names->size(); ++i) {
    if ((*counts)[i] < 1) {
      return make_error(counts_var->name + " '" + counts_var->value + "' gives node '" +
                        (*names)[i] + "' of " + nodelist->name + " no task");
    }
    hosts.push_back(HostSlots{std::move((*names)[i]), (*counts)[i], true});
  }
  return merge_hosts(hosts);
}

std::map<std::string, std::string> slurm_environment(const char* const* envp) {
  std::map<std::string, std::string> out;
  if (envp == nullptr) return out;
  for (; *envp != nullptr; ++envp) {
    std::string_view entry(*envp);
    if (entry.substr(0, 6) != "SLURM_") continue;
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return out;
}

}  // namespace mosix
