// bench_balance --real: issue 6's benchmark on a real virtual cluster
// (mosixrun --vcluster, node daemons capped by the cgroup CPU controller)
// instead of the simulator. See real_cluster.cpp.
#pragma once

namespace mosix::bench_balance {

// Parses the arguments (--real among them) and runs the benchmark; returns
// the exit status: 0 when every run worked, 1 otherwise, 2 on a usage error.
int run_real(int argc, char** argv);

}  // namespace mosix::bench_balance
