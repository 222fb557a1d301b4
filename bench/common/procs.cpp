#include "procs.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/core/proc_stat.h"
#include "timed_run.h"

namespace mosix::bench {

volatile std::sig_atomic_t g_interrupted = 0;
volatile std::sig_atomic_t g_job_pid = 0;

namespace {

void on_interrupt(int) {
  g_interrupted = 1;
  if (g_job_pid > 0) ::kill(-static_cast<pid_t>(g_job_pid), SIGTERM);  // mosixrun ends its job
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::istringstream in(read_text(task.path().string() + "/children"));
    for (pid_t c; in >> c;) out.push_back(c);
  }
  return out;
}

bool still_running(const Proc& p) {
  auto now = proc_info(p.pid);
  return now && now->start == p.start && !now->zombie;
}

}  // namespace

void supervise_jobs() {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string tail(const std::string& path, int lines) {
  std::string text = read_text(path);
  std::size_t pos = text.size();
  while (pos > 0 && lines-- > 0) {
    std::size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
  }
  return text.substr(pos);
}

std::optional<Proc> proc_info(pid_t pid) {
  auto st = parse_proc_stat(read_text("/proc/" + std::to_string(pid) + "/stat"));
  if (!st) return std::nullopt;
  Proc p;
  p.pid = pid;
  p.start = st->starttime;
  p.comm = st->comm;
  p.zombie = st->zombie();
  return p;
}

void record_descendants(pid_t root, std::map<pid_t, Proc>& seen) {
  std::vector<pid_t> todo = children_of(root);
  while (!todo.empty()) {
    pid_t pid = todo.back();
    todo.pop_back();
    auto p = proc_info(pid);
    if (!p) continue;
    seen[pid] = *p;
    for (pid_t c : children_of(pid)) todo.push_back(c);
  }
}

std::string kill_leftovers(const std::map<pid_t, Proc>& seen) {
  std::vector<Proc> left;
  auto deadline = after(10);
  for (;;) {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    left.clear();
    for (const auto& [pid, p] : seen)
      if (still_running(p)) left.push_back(p);
    for (pid_t c : children_of(::getpid())) {
      auto p = proc_info(c);
      if (p && !p->zombie && !seen.count(c)) left.push_back(*p);
    }
    if (left.empty() || Clock::now() > deadline) break;
    ::usleep(50000);
  }
  std::string report;
  for (const Proc& p : left) {
    ::kill(p.pid, SIGKILL);
    report += (report.empty() ? "" : ", ") + p.comm + " (pid " + std::to_string(p.pid) + ")";
  }
  if (!left.empty()) {
    report = "still running 10 s after mosixrun ended, killed: " + report;
    ::usleep(100000);
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
  return report;
}

Command run_command(const std::vector<std::string>& argv, const std::string& stem, double timeout_s,
                    const volatile std::sig_atomic_t* interrupted) {
  Command c;
  std::string out_path = stem + ".out", err_path = stem + ".err";
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  auto t0 = Clock::now();
  auto child = TimedChild::start(argv, out, err);
  ::close(out);
  ::close(err);
  if (!child) {
    c.err = "cannot fork";
    return c;
  }
  auto deadline = after(timeout_s);
  while (!c.status && Clock::now() < deadline && !*interrupted)
    c.status = child->wait_until(std::min(deadline, after(0.2)));
  if (!c.status) child->kill_group(std::chrono::seconds(3));
  c.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  c.out = read_text(out_path);
  c.err = read_text(err_path);
  return c;
}

}  // namespace mosix::bench
