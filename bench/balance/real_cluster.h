// bench_balance --real: issue 6's benchmark on a real virtual cluster
// (mosixrun --vcluster, node daemons capped by the cgroup CPU controller)
// instead of the simulator. See real_cluster.cpp.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

namespace mosix::bench_balance {

// --real's own options, filled by parsing.
struct RealOptions;

// Adds --real's options to `app`, each of which needs the flag `real`.
std::shared_ptr<RealOptions> add_real_options(CLI::App& app, CLI::Option* real);

// Runs the benchmark; returns the exit status: 0 when every run worked, 1
// otherwise.
int run_real(const RealOptions& options, bool trace);

}  // namespace mosix::bench_balance
