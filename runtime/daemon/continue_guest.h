// Continuing a guest after a move that failed (runtime/daemon/migration.cpp).
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>

namespace mosix {

// A guest that a failed move leaves where it was is continued. One
// checkpointed to move stops itself (SIGSTOP) just after it answers, so a
// failure known at once (its target had died) can reach us before that
// stop takes effect, and a SIGCONT sent first would leave it stopped for
// good. So it is continued now, and again whenever /proc shows it stopped
// in the next 2 s (a stop of the user's in that time is undone too).
void continue_after_move(boost::asio::io_context& io, pid_t pid);

}  // namespace mosix
