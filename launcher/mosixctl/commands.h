// The subcommands of mosixctl. Each lives in its own <name>.cpp and registers
// itself on the app; adding one is a declaration here and a line in main.cpp.
// A command that fails at run time throws CommandError (exit status 1).
#pragma once

#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

namespace mosix::ckpt {
struct TreeCheckpointRequest;
}

namespace mosix::ctl {

struct CommandError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void register_tune(CLI::App& app);
void register_status(CLI::App& app);
void register_checkpoint(CLI::App& app);
void register_restart(CLI::App& app);
void register_ps(CLI::App& app);
void register_mon(CLI::App& app);
void register_migrate(CLI::App& app);

// checkpoint --tree (checkpoint_tree.cpp): runs the request and prints its result.
void run_tree_checkpoint(const ckpt::TreeCheckpointRequest& r, bool json);

}  // namespace mosix::ctl
