#include "runtime/daemon/job_signals.h"

#include <signal.h>

#include <utility>

namespace mosix {

using boost::system::error_code;

JobSignals::JobSignals(boost::asio::io_context& io, Actions actions)
    : actions_(std::move(actions)),
      term_(io, SIGINT, SIGTERM, SIGHUP),
      forward_(io, SIGUSR1, SIGUSR2),
      stop_(io, SIGTSTP, SIGCONT),
      child_(io, SIGCHLD) {}

void JobSignals::start() {
  wait_term();
  wait_forward();
  wait_stop();
  wait_child();
}

void JobSignals::wait_term() {
  term_.async_wait([this](error_code ec, int sig) {
    if (ec) return;
    if (++term_count_ == 1) {
      actions_.end_job(sig);
    } else {
      actions_.signal_copies(SIGKILL, true);  // asked twice: no more grace
    }
    wait_term();
  });
}

void JobSignals::wait_forward() {
  forward_.async_wait([this](error_code ec, int sig) {
    if (ec) return;
    actions_.signal_copies(sig, false);
    wait_forward();
  });
}

void JobSignals::wait_stop() {
  stop_.async_wait([this](error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGTSTP) {
      // Every copy first, then ourselves, so that the shell sees the job stopped.
      actions_.signal_copies(SIGSTOP, true);
      ::raise(SIGSTOP);
    } else {
      actions_.signal_copies(SIGCONT, true);
    }
    wait_stop();
  });
}

void JobSignals::wait_child() {
  child_.async_wait([this](error_code ec, int) {
    if (ec) return;
    actions_.child_exited();
    wait_child();
  });
}

}  // namespace mosix
