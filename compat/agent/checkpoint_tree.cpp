// A checkpoint of one member of a process tree taken together
// (runtime/ckpt/tree_protocol.h): the member names its children instead of
// refusing them (the requester takes each live one as a member and the
// restorer makes each zombie again) and its shared anonymous memory, says
// it is ready, and waits with every thread stopped until the requester has
// all members stopped.
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "runtime/ckpt/tree_protocol.h"

#include "compat/agent/session.h"

namespace mosix::agent {
extern ckpt::TreePids g_tree_pids;
}

namespace mosix::agent::checkpoint {
char proc_state(std::uint64_t pid, char* buf, std::size_t cap, std::uint64_t* ppid) {
  char path[64];
  Line(path, sizeof path).s("/proc/").u(pid).s("/stat");
  long n = read_file(path, buf, cap - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* close = nullptr;
  for (const char* c = buf; *c != '\0'; ++c)
    if (*c == ')') close = c;
  if (close == nullptr || close[1] != ' ' || close[2] == '\0') return 0;
  if (ppid != nullptr) {
    const char* q = close + 4;
    *ppid = parse_dec(q);
  }
  return close[2];
}

// One line per child of any thread: "child <real> <virtual> live", or
// "... zombie <si_code> <si_status>" with the status a wait will report,
// read without reaping it.
bool Session::tree_children() {
  bool ok = true;
  int listed = for_each_child([&](std::uint64_t pid, char st) {
    char line[128];
    Line l(line, sizeof line);
    l.s("child ").u(pid).s(" ").i(to_virtual_pid(static_cast<pid_t>(pid)));
    if (st == 'Z' || st == 'X') {
      siginfo_t info{};
      long r = sys(SYS_waitid, P_PID, pid, &info, WEXITED | WNOWAIT | __WALL, 0);
      if (r != 0 || info.si_pid == 0) {
        Line(s_->error, sizeof s_->error).s("cannot read the exit status of ended child ").u(pid);
        return ok = false;
      }
      l.s(" zombie ").i(info.si_code).s(" ").i(info.si_status).s("\n");
    } else if (st == 'T') {
      // Stopped: the stop signal when the stop is still to be reported to
      // a wait (0 when it was waited for already).
      siginfo_t info{};
      long r = sys(SYS_waitid, P_PID, pid, &info, WSTOPPED | WNOWAIT | WNOHANG | __WALL, 0);
      bool pending = r == 0 && info.si_pid == static_cast<pid_t>(pid) && info.si_code == CLD_STOPPED;
      l.s(" live stopped ").i(pending ? info.si_status : 0).s("\n");
    } else {
      l.s(" live\n");
    }
    status(line);
    return true;
  });
  if (listed < 0)
    return fail("this kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN): a tree cannot be listed"),
           false;
  return ok;
}

// Reads the requester's next word; true when it is `expect`. Anything else,
// end of file or silence for kTreeHoldSeconds is an abort.
bool Session::tree_word(const char* expect) {
  char word[16];
  std::size_t len = 0;
  long deadline = now_ns(CLOCK_MONOTONIC) + kTreeHoldSeconds * 1'000'000'000L;
  for (;;) {
    long left = deadline - now_ns(CLOCK_MONOTONIC);
    if (left <= 0) break;
    pollfd p{static_cast<int>(tree_fd_), POLLIN, 0};
    timespec ts{left / 1'000'000'000L, left % 1'000'000'000L};
    long r = sys(SYS_ppoll, &p, 1, &ts, nullptr, 8);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    char c;
    long n = sys(SYS_read, tree_fd_, &c, 1);
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n <= 0) break;
    if (c == '\n') {
      word[len] = '\0';
      return cstr_eq(word, expect);
    }
    if (len + 1 < sizeof word) word[len++] = c;
  }
  return false;
}

// The ready line, then the wait for "go" with every thread stopped.
bool Session::tree_hold() {
  tree_fd_ = sys(SYS_openat, AT_FDCWD, tree_path_, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (tree_fd_ < 0) return fail("cannot open the tree checkpoint's control FIFO"), false;
  char line[160];
  // Shared anonymous memory: restored as one object for the whole tree
  // when only members map it (the requester checks).
  for (int i = 0; i < s_->nregions; ++i) {
    const Region& r = s_->regions[i];
    if (!r.shm) continue;
    Line(line, sizeof line).s("shm ").x(r.start).s(" ").x(r.end).s(" ").x(r.offset).s(" ").x(r.shm_dev).s(" ")
        .u(r.inode).s("\n");
    status(line);
  }
  // Socketpair ends whose other end another process holds: the requester
  // checks it is a process of the tree.
  for (int i = 0; i < s_->socket.nelsewhere; ++i) {
    Line(line, sizeof line).s("sockpair ").u(s_->socket.elsewhere[i][0]).s(" ").u(s_->socket.elsewhere[i][1]).s("\n");
    status(line);
  }
  int pdeathsig = 0;
  sys(SYS_prctl, PR_GET_PDEATHSIG, &pdeathsig, 0, 0, 0);
  Line(line, sizeof line)
      .s("ready ")
      .i(g_vpid)
      .s(" ")
      .i(g_vppid)
      .s(" ")
      .i(sys(SYS_getpgid, 0))
      .s(" ")
      .i(sys(SYS_getsid, 0))
      .s(" ")
      .x(reinterpret_cast<std::uint64_t>(&g_tree_pids))
      .s(" ")
      .i(pdeathsig)
      .s("\n");
  status(line);
  if (tree_word("go")) return true;
  fail("the tree's checkpoint was abandoned (another member was refused, or the requester went away)");
  return false;
}

}  // namespace mosix::agent::checkpoint
