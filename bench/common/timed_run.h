// A command run by a benchmark with a deadline, so that a benchmark never
// hangs: the command starts in its own process group with stdin from
// /dev/null; past its deadline it gets SIGTERM, then SIGKILL after a grace
// period, and the benchmark reports it as timed out. Header-only; for bench/.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace mosix::bench {

using Clock = std::chrono::steady_clock;

// Seconds since t0.
inline double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The time `seconds` from now.
inline Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

class TimedChild {
 public:
  // Starts argv (searched in PATH) with stdout and stderr on the given
  // descriptors (-1: /dev/null) and stdin from /dev/null. Returns nothing if
  // it cannot be started. Descriptors the caller keeps should be close-on-exec.
  static std::optional<TimedChild> start(const std::vector<std::string>& argv, int stdout_fd,
                                         int stderr_fd) {
    pid_t pid = ::fork();
    if (pid < 0) return std::nullopt;
    if (pid == 0) {
      ::setpgid(0, 0);
      int null_fd = ::open("/dev/null", O_RDWR);
      ::dup2(null_fd, 0);
      ::dup2(stdout_fd >= 0 ? stdout_fd : null_fd, 1);
      ::dup2(stderr_fd >= 0 ? stderr_fd : null_fd, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here, so that the group exists before we may signal it
    TimedChild c;
    c.pid_ = pid;
    c.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    return c;
  }

  TimedChild(TimedChild&& o) noexcept : pid_(o.pid_), pidfd_(o.pidfd_) { o.pid_ = o.pidfd_ = -1; }
  TimedChild& operator=(TimedChild&&) = delete;
  ~TimedChild() {
    if (pid_ > 0) kill_group(std::chrono::seconds(2));
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  // The wait status once the child has exited, or nothing if the deadline
  // passed first (the child is then still running).
  std::optional<int> wait_until(Clock::time_point deadline) {
    while (pid_ > 0) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (r < 0 && errno != EINTR) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      if (pidfd_ >= 0) {
        pollfd p{pidfd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
      } else {
        ::usleep(1000);  // no pidfd (old kernel): poll the child
      }
    }
    return std::nullopt;
  }

  // SIGTERM to the child's process group, SIGKILL after the grace period
  // if the child has not ended; reaps it.
  void kill_group(std::chrono::seconds grace) {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    ::kill(pid_, SIGTERM);
    if (!wait_until(Clock::now() + grace)) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  pid_t pid() const { return pid_; }

 private:
  TimedChild() = default;
  pid_t pid_ = -1;
  int pidfd_ = -1;
};

// "exit N", "signal S" or "timed out" for a report.
inline std::string describe_status(const std::optional<int>& status) {
  if (!status) return "timed out";
  if (WIFSIGNALED(*status)) return "killed by signal " + std::to_string(WTERMSIG(*status));
  return "exit " + std::to_string(WEXITSTATUS(*status));
}

inline bool succeeded(const std::optional<int>& status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

}  // namespace mosix::bench
