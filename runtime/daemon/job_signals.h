// What mosixrun does with the signals its user sends it, on one node as on
// many, as mpirun does:
// - SIGINT, SIGTERM, SIGHUP: the first ends the job (the job's own end:
//   SIGTERM, then SIGKILL after a grace period); a second one kills every
//   copy at once. Either way the job exits with the "interrupted" status.
// - SIGUSR1, SIGUSR2: passed on to every copy (the copy's process only).
// - SIGTSTP: every copy's process group is stopped, then mosixrun stops
//   itself, so the shell sees the whole job stopped; SIGCONT resumes them.
// - SIGCHLD: the job reaps what it started.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <functional>

namespace mosix {

class JobSignals {
 public:
  struct Actions {
    // Send `signo` to every running copy: its whole process group, or the
    // copy's process only (whole_group false).
    std::function<void(int signo, bool whole_group)> signal_copies;
    // The first termination request: end the job gracefully.
    std::function<void(int signo)> end_job;
    // SIGCHLD arrived.
    std::function<void()> child_exited;
  };

  JobSignals(boost::asio::io_context& io, Actions actions);
  JobSignals(const JobSignals&) = delete;
  JobSignals& operator=(const JobSignals&) = delete;

  // Starts acting on the signals. They are caught from construction on (none
  // takes its default action); those that come before start() wait for it.
  void start();
  // A termination signal has arrived.
  bool interrupted() const { return term_count_ > 0; }

 private:
  void wait_term();
  void wait_forward();
  void wait_stop();
  void wait_child();

  Actions actions_;
  boost::asio::signal_set term_, forward_, stop_, child_;
  int term_count_ = 0;
};

}  // namespace mosix
