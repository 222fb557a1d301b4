// mosixd: the node daemon of one node of a job. Every daemon starts the
// guests placed on its node, relays their stdio to the home node and carries
// out signals. The daemon of rank 0 runs on the home node and is also the
// job's router: it takes the job from mosixrun over a unix socket, places the
// copies on the nodes by their speed and load, and relays everything between
// mosixrun and the other daemons.
#pragma once

#include "runtime/core/expected.h"
#include "runtime/daemon/node_daemon_options.h"
#include "runtime/transport/transport.h"

namespace mosix {

// Runs until the home node says the job is over. Returns the exit code of
// the daemon itself (0, or 1 after an error it has reported).
int run_node_daemon(Transport& transport, const NodeDaemonOptions& options);

}  // namespace mosix
