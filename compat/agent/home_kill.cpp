// A body's kill() of its home's pids (issue 15; docs/mosixrun.md "Children").
//
// A body (a program placed on another node at exec, place_at_exec.cpp) knows
// its parent, its siblings and its process group by the pids they have on
// its deputy's node: its parent's $! and its own getppid() are such pids.
// On another host the same numbers name other processes, or none. So the
// body's kill() of a pid that is not of its own family on this node (itself,
// its children and their children here) goes to its deputy, which makes it
// there, with the user's rights, and answers with the errno (HomeKill,
// runtime/core/protocol_guest_service.h): body -> its node daemon -> the home
// node -> the deputy's node -> the deputy, and back. A pid that is a guest
// elsewhere is its deputy's there, which forwards the signal as always.
// kill(0) reaches the deputy's process group (with the deputy: the body too)
// and the family's processes in the caller's group here (the body's
// children); kill(-1) every process the user may signal on that node but
// the deputy.
// A child the body forked asks through the same deputy; a program the
// body's child execs here does not (it has no deputy of its own).
// sigqueue(), rt_sigqueueinfo, tgkill() and rt_tgsigqueueinfo of such a pid
// take the same way (the thread's tid and the siginfo's code and value go
// with them); pidfd_open() of one is refused (pidfd_refused): a descriptor
// of a process on another host cannot be given here.
//
// Async-signal-safe, as kill(): no allocation, raw system calls, a fixed
// frame (core/home_kill_frame.h). The caller holds the agent's signals off,
// so no checkpoint falls inside the round trip.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "runtime/core/home_kill_frame.h"

namespace mosix::agent {

// In .data: a checkpoint carries them. -1: not a body's family.
int g_home_rank = -1;
// The real pid of the body this process descends from (0: this process is
// the body itself, whose real pid changes with a restore).
pid_t g_family_root_real = 0;

namespace {

pid_t family_root() { return g_family_root_real != 0 ? g_family_root_real : real_pid(); }

// Whether `pid` is a process of this node in the body's family.
bool of_family_here(pid_t pid) {
  const pid_t root = family_root();
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    if (pid == root) return true;
    pid = static_cast<pid_t>(parent_of(pid));
  }
  return false;
}

// The guest socket of the node daemon nearest above us (its node file,
// runtime/daemon/node_env_file.h): after a move, the environment still names
// the old node's.
bool guest_socket(char* out, std::size_t cap) {
  static const char kName[] = "MOSIX_GUEST_SOCKET=";
  char dir[256], text[4096];
  const long daemon = trusted_runtime_dir(dir, sizeof dir) ? node_daemon_above(sys(SYS_getppid), 0, dir) : 0;
  if (daemon > 0) {
    if (node_file_text(daemon, dir, text, sizeof text) < 0) return false;
    for (const char* line = text; *line != '\0';) {
      const char* end = line;
      while (*end != '\0' && *end != '\n') ++end;
      if (starts_with(line, kName)) {
        const std::size_t len = static_cast<std::size_t>(end - line) - (sizeof kName - 1);
        if (len == 0 || len >= cap) return false;
        __builtin_memcpy(out, line + sizeof kName - 1, len);
        out[len] = '\0';
        return true;
      }
      line = *end == '\0' ? end : end + 1;
    }
    return false;
  }
  const char* env = getenv("MOSIX_GUEST_SOCKET");
  if (env == nullptr || cstr_len(env) >= cap) return false;
  __builtin_memcpy(out, env, cstr_len(env) + 1);
  return true;
}

// The process group in /proc/PID/stat ("pid (comm) S ppid pgrp ..."), or -1.
long group_of(long pid) {
  char path[48], text[512];
  Line(path, sizeof path).s("/proc/").u(static_cast<std::uint64_t>(pid)).s("/stat");
  const long n = read_file(path, text, sizeof text - 1);
  if (n <= 0) return -1;
  text[n] = '\0';
  const char* p = nullptr;
  for (const char* q = text; *q != '\0'; ++q)
    if (*q == ')') p = q;
  if (p == nullptr || p[1] != ' ' || p[2] == '\0' || p[3] != ' ') return -1;
  p += 4;
  parse_dec(p);  // ppid
  if (*p != ' ') return -1;
  ++p;
  return static_cast<long>(parse_dec(p));
}

// kill(0) made at home reached the body through its deputy; the family's
// processes here in this process's group (the body's children, which at
// home would share its group) get it here. Not this process, nor the body:
// the deputy's forwarding brings it to the body, and so to this one if it is.
void signal_group_here(int sig) {
  const long group = sys(SYS_getpgid, 0);
  const long self = real_pid(), root = family_root();
  char dents[2048];
  for_each_numbered_entry("/proc", dents, sizeof dents, [&](std::uint64_t n, long) {
    const auto pid = static_cast<pid_t>(n);
    if (pid != self && pid != root && group_of(pid) == group && of_family_here(pid)) sys(SYS_kill, pid, sig);
    return true;
  });
}

}  // namespace

bool kill_goes_home(pid_t pid) {
  if (g_home_rank < 0) return false;
  if (pid == INT_MIN) return false;  // no such group: the kernel says so
  const pid_t self = current_vpid();
  if (pid == self || -pid == self) return false;  // this process, or the group it leads here
  if (pid == 0 || pid == -1) return true;
  return !of_family_here(pid > 0 ? pid : -pid);
}

// kill(pid, sig) made by the deputy: 0 or -errno; `local` when no node
// daemon can be reached (the job is ending): the caller signals here then.
// tid != 0: tgkill(pid, tid, sig); info: queued with its code and value.
long home_kill(pid_t pid, int sig, bool* local, pid_t tid, const siginfo_t* info) {
  *local = false;
  char path[sizeof(sockaddr_un::sun_path)];
  if (!guest_socket(path, sizeof path)) {
    *local = true;
    return 0;
  }
  const long s = sys(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *local = true;
    return 0;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  __builtin_memcpy(addr.sun_path, path, cstr_len(path) + 1);
  long r;
  do r = sys(SYS_connect, s, &addr, sizeof addr);
  while (r == -EINTR);
  if (r != 0) {
    sys(SYS_close, s);
    *local = true;
    return 0;
  }
  home_kill_frame::Fields ask;
  ask.rank = g_home_rank;
  ask.pid = pid;
  ask.signo = sig;
  ask.tid = tid;
  if (info != nullptr) {
    ask.queued = true;
    ask.code = info->si_code;
    static_assert(sizeof info->si_value == sizeof ask.value);
    __builtin_memcpy(&ask.value, &info->si_value, sizeof ask.value);
  }
  std::uint8_t frame[home_kill_frame::kSize];
  home_kill_frame::encode(ask, frame);
  std::size_t done = 0;
  while (done < sizeof frame) {
    r = sys(SYS_sendto, s, frame + done, sizeof frame - done, MSG_NOSIGNAL, nullptr, 0);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    done += static_cast<std::size_t>(r);
  }
  std::size_t got = 0;
  while (done == sizeof frame && got < sizeof frame) {
    r = sys(SYS_recvfrom, s, frame + got, sizeof frame - got, 0, nullptr, nullptr);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  sys(SYS_close, s);
  home_kill_frame::Fields answer;
  if (got != sizeof frame || !home_kill_frame::decode(frame, answer) || !answer.answered) return -ESRCH;
  if (answer.error != 0) return -answer.error;
  if (pid == 0 && tid == 0 && info == nullptr) signal_group_here(sig);
  return 0;
}

// pidfd_open() of a home pid: the process is on another host, no
// descriptor here can stand for it. ENOSYS, as a kernel without pidfds
// answers, so a program falls back to kill() and waitpid(), which reach it
// (above, and through the deputy); said once on stderr, which goes home.
bool pidfd_refused(pid_t pid) {
  if (pid <= 0 || !kill_goes_home(pid)) return false;
  static bool said = false;
  if (!said) {
    said = true;
    char line[200];
    Line(line, sizeof line)
        .s("mosix: pidfd_open(")
        .i(pid)
        .s("): that process is on this program's home node, not here; no pidfd can stand for it "
           "(ENOSYS; kill() and wait() reach it)\n");
    write_all(2, line, cstr_len(line));
  }
  return true;
}

void home_kill_after_fork(pid_t parent_real) {
  if (g_home_rank >= 0 && g_family_root_real == 0) g_family_root_real = parent_real;
}

}  // namespace mosix::agent
