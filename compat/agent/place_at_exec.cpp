// Placement at exec (fork and forget, docs/mosixrun.md "Children"): a
// guest's child that starts a program hands itself to mosix-deputy
// (compat/deputy) before the program runs, so that the home node can place
// the program on the best node while it has no state worth moving.
//
// It is decided in the exec wrappers (exec_placed, for execve, execv and
// execvp of a path), before the exec: a program placed away is then never
// loaded here, and one that stays is exec'd with MOSIX_PLACED. Children
// started by posix_spawn, system and popen exec inside glibc, where nothing
// can be interposed: every one of them runs the constructor, which decides
// the same (place_at_exec); the program was then loaded once here before the
// deputy decides, and a child the home keeps here runs it again.
//
// Who asks: a process of a job that runs with placement at exec (the node
// daemon set MOSIX_DEPUTY) and that its node daemon did not start itself (a
// copy, or a body placed already: its parent's pid is MOSIX_DAEMON_PID).
// A child the deputy would keep here for its descriptors stays without
// asking; then its node's seats page answers (runtime/core/node_seats.h);
// only a program that page does not seat execs the deputy.
//
// A guest restored on another node still holds the environment of the node
// it left (its memory came along). The node daemons therefore also write the
// node's values into `<runtime dir>/node-<daemon pid>.env`
// (runtime/daemon/node_env_file.h): a new program whose node daemon
// (MOSIX_DAEMON_PID) is not among its ancestors takes them from the file of
// the nearest ancestor that has one, before it decides anything.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "runtime/core/exec_stay_rule.h"
#include "runtime/core/node_seats.h"

extern char** environ;

namespace mosix::agent {

namespace {

// The descriptors' rule (runtime/core/exec_stay_rule.h), said here before
// the deputy's exec: it costs a few system calls instead (a shell on a
// terminal, --pty, starts every command so). The deputy relies on it for
// the descriptors above 2.
bool stays_for_its_descriptors() {
  struct stat in {};
  if (sys(SYS_fstat, 0, &in) != 0) return true;
  const StdinKind kind = S_ISCHR(in.st_mode) && in.st_rdev == makedev(1, 3)     ? StdinKind::kNull
                         : S_ISFIFO(in.st_mode) || S_ISSOCK(in.st_mode) ? StdinKind::kPipeOrSocket
                                                                        : StdinKind::kOther;
  if (stays_for_descriptors(kind, false)) return true;
  char dents[1024];
  bool other = false;
  // Called before the exec too (exec_placed): what the exec closes stays here.
  const int listed = for_each_numbered_entry("/proc/self/fd", dents, sizeof dents, [&](std::uint64_t fd, long dir) {
    other = fd > 2 && static_cast<long>(fd) != dir && (sys(SYS_fcntl, fd, F_GETFD) & FD_CLOEXEC) == 0;
    return !other;
  });
  return stays_for_descriptors(kind, other || listed < 0);
}

// The node's own answer (runtime/core/node_seats.h): a program that may stay
// where it starts needs neither the deputy's exec nor the home's round trip.
bool seated_here(const char* path) {
  if (path == nullptr || *path != '/') return false;
  const long fd = sys(SYS_openat, AT_FDCWD, path, O_RDWR | O_CLOEXEC);  // /proc/PID/fd/N: a link to follow
  if (fd < 0) return false;
  struct stat st {};
  long map = -1;
  if (sys(SYS_fstat, fd, &st) == 0 && st.st_size >= static_cast<off_t>(sizeof(NodeSeats))) {
    map = sys(SYS_mmap, nullptr, sizeof(NodeSeats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  sys(SYS_close, fd);
  if (map < 0) return false;
  auto alive = [](std::int32_t pid) {
    const long r = sys(SYS_kill, pid, 0);
    return r == 0 || r == -EPERM;
  };
  const auto pid = static_cast<std::int32_t>(sys(SYS_getpid));
  const auto parent = static_cast<std::int32_t>(sys(SYS_getppid));
  const SeatAnswer answer = take_seat(*reinterpret_cast<NodeSeats*>(map), pid, parent, alive);
  sys(SYS_munmap, map, sizeof(NodeSeats));
  return answer != SeatAnswer::kAsk;
}

}  // namespace

long parent_of(long pid) {
  char path[48], stat_line[512];
  Line q(path, sizeof path);
  q.s("/proc/").u(static_cast<std::uint64_t>(pid)).s("/stat");
  const long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const long n = sys(SYS_read, fd, stat_line, sizeof stat_line - 1);
  sys(SYS_close, fd);
  if (n <= 0) return -1;
  stat_line[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const char* after = strrchr(stat_line, ')');
  if (after == nullptr || after[1] != ' ' || after[2] == '\0' || after[3] != ' ') return -1;
  return atol(after + 4);
}

long node_daemon_above(long pid, long expected, const char* dir) {
  char path[320];
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    if (pid == expected) return pid;
    Line p(path, sizeof path);
    p.s(dir).s("/node-").u(static_cast<std::uint64_t>(pid)).s(".env");
    if (sys(SYS_faccessat, AT_FDCWD, path, R_OK) == 0) return pid;
    pid = parent_of(pid);
  }
  return 0;
}

long node_file_text(long pid, const char* dir, char* text, std::size_t cap) {
  char path[320];
  Line p(path, sizeof path);
  p.s(dir).s("/node-").u(static_cast<std::uint64_t>(pid)).s(".env");
  const long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  struct stat st {};
  const bool owned = sys(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<long>(st.st_uid) == sys(SYS_getuid);
  const long n = owned ? sys(SYS_read, fd, text, cap - 1) : -1;
  sys(SYS_close, fd);
  if (n <= 0) return -1;
  text[n] = '\0';
  return n;
}

namespace {

// Takes the node's values (MOSIX_NODE, MOSIX_DAEMON_PID, ...) from the node
// file of daemon `pid`: an empty value unsets the variable.
void take_node_env(long pid, const char* dir) {
  static const char* const kNames[] = {"MOSIX_NODE=", "MOSIX_DAEMON_PID=", "MOSIX_GUEST_SOCKET=", "MOSIX_DEPUTY=",
                                       "MOSIX_SEATS="};
  static char text[4096];
  if (node_file_text(pid, dir, text, sizeof text) < 0) return;
  for (char* line = text; *line != '\0';) {
    char* end = strchr(line, '\n');
    if (end != nullptr) *end = '\0';
    for (const char* name : kNames) {
      const size_t len = strlen(name);
      if (strncmp(line, name, len) != 0) continue;
      line[len - 1] = '\0';  // "NAME" and the value apart
      if (line[len] == '\0') unsetenv(line);
      else setenv(line, line + len, 1);
      break;
    }
    if (end == nullptr) break;
    line = end + 1;
  }
}

// Started by its node daemon (a copy, a body, a guest restored here): placed
// already. After a migration, the node's values are taken first.
bool started_by_node_daemon() {
  const char* daemon = getenv("MOSIX_DAEMON_PID");
  if (daemon == nullptr) return true;  // not under placement at exec
  const long expected = atol(daemon);
  const long parent = sys(SYS_getppid);
  if (expected == parent) return true;
  char dir[256];
  if (!trusted_runtime_dir(dir, sizeof dir)) return false;
  const long found = node_daemon_above(parent, expected, dir);
  if (found > 0 && found != expected) take_node_env(found, dir);
  return found == parent;
}

// Bounds of the arrays exec_deputy and exec_placed build on the stack
// (which may be a vforked child's, its parent's): a program with more
// arguments or variables runs where it starts.
constexpr std::size_t kMaxPlacedEnv = 8192;
constexpr std::size_t kMaxPlacedArgs = 16384;

// Execs the deputy for `program` (mosix-deputy PROGRAM ARGV...), with envp's
// LD_PRELOAD passed on as MOSIX_DEPUTY_PRELOAD: the deputy runs without the
// agent (it needs none of it, and loading it cost as much as the rest of
// the deputy's start) and puts LD_PRELOAD back before it runs the program,
// here or away. Returns if the exec failed. Allocates nothing.
void exec_deputy(const char* deputy, const char* program, char* const argv[], char* const envp[], RealExecve real) {
  std::size_t n_env = 0, argc = 0;
  while (envp[n_env] != nullptr && n_env <= kMaxPlacedEnv) ++n_env;
  while (argv[argc] != nullptr && argc <= kMaxPlacedArgs) ++argc;
  if (n_env > kMaxPlacedEnv || argc > kMaxPlacedArgs) return;
  static const char kPreload[] = "MOSIX_DEPUTY_PRELOAD=";
  char** env = static_cast<char**>(__builtin_alloca((n_env + 1) * sizeof(char*)));
  for (std::size_t i = 0; i < n_env; ++i) {
    env[i] = envp[i];
    if (strncmp(envp[i], "LD_PRELOAD=", 11) != 0) continue;
    const std::size_t len = strlen(envp[i] + 11);
    char* moved = static_cast<char*>(__builtin_alloca(sizeof kPreload + len));
    memcpy(moved, kPreload, sizeof kPreload - 1);
    memcpy(moved + sizeof kPreload - 1, envp[i] + 11, len + 1);
    env[i] = moved;
  }
  env[n_env] = nullptr;
  char** args = static_cast<char**>(__builtin_alloca((argc + 3) * sizeof(char*)));
  args[0] = const_cast<char*>("mosix-deputy");
  args[1] = const_cast<char*>(program);
  for (std::size_t i = 0; i <= argc; ++i) args[i + 2] = argv[i];
  real(deputy, args, env);
}

}  // namespace

void place_at_exec(int argc, char** argv) {
  const char* deputy = getenv("MOSIX_DEPUTY");
  if (deputy == nullptr || *deputy == '\0' || argc < 1 || argv == nullptr || argv[0] == nullptr) return;
  if (getenv("MOSIX_PLACED") != nullptr) {
    unsetenv("MOSIX_PLACED");  // the deputy chose this node; our children ask again
    return;
  }
  if (started_by_node_daemon()) return;
  static char exe[4096];
  long n = sys(SYS_readlink, "/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return;
  exe[n] = '\0';
  if (strcmp(exe, deputy) == 0) return;  // the deputy itself
  if (stays_for_its_descriptors() || seated_here(getenv("MOSIX_SEATS"))) return;
  exec_deputy(deputy, exe, argv, environ, [](const char* path, char* const args[], char* const env[]) {
    return static_cast<int>(sys(SYS_execve, path, args, env));
  });
  // No deputy to run (or more arguments than it is given): the program runs
  // here, as it would have.
}

namespace {

// NAME=value's value in envp, or nullptr. `name` ends with '='.
const char* env_value(char* const envp[], const char* name) {
  const std::size_t len = strlen(name);
  for (char* const* e = envp; *e != nullptr; ++e) {
    if (strncmp(*e, name, len) == 0) return *e + len;
  }
  return nullptr;
}

// Whether the kernel runs `path` as a program: a regular file we may
// execute, an ELF binary or a script (#!). Anything else is left to the exec
// as asked, so that its caller sees the error (or runs a script without #!
// itself, as shells do on ENOEXEC) exactly as without us.
bool runs_as_program(const char* path) {
  if (sys(SYS_faccessat, AT_FDCWD, path, X_OK) != 0) return false;
  const long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  char magic[4] = {};
  const bool regular = sys(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode);
  const long n = regular ? sys(SYS_read, fd, magic, sizeof magic) : -1;
  sys(SYS_close, fd);
  return (n == 4 && memcmp(magic, "\x7f" "ELF", 4) == 0) || (n >= 2 && magic[0] == '#' && magic[1] == '!');
}

}  // namespace

int exec_placed(const char* path, char* const argv[], char* const envp[], RealExecve real) {
  auto as_asked = [&] { return real(path, argv, envp); };
  // A path the kernel resolves against our cwd only (a bare name: execve
  // does not search PATH; the body's node daemon would).
  if (path == nullptr || strchr(path, '/') == nullptr || argv == nullptr || argv[0] == nullptr || envp == nullptr) {
    return as_asked();
  }
  const char* deputy = env_value(envp, "MOSIX_DEPUTY=");
  const char* daemon = env_value(envp, "MOSIX_DAEMON_PID=");
  if (deputy == nullptr || *deputy == '\0' || daemon == nullptr || env_value(envp, "MOSIX_PLACED=") != nullptr ||
      strcmp(path, deputy) == 0) {
    return as_asked();
  }
  // Started by the node daemon (a copy or a body exec'ing): placed already.
  // A family that moved takes its node's values from a node file first,
  // which the constructor does; so does a process with no daemon above.
  const long expected = atol(daemon);
  const long parent = sys(SYS_getppid);
  char dir[256];
  if (expected == parent || !trusted_runtime_dir(dir, sizeof dir) || node_daemon_above(parent, expected, dir) != expected) {
    return as_asked();
  }
  std::size_t n_env = 0;
  while (envp[n_env] != nullptr && n_env <= kMaxPlacedEnv) ++n_env;
  if (n_env > kMaxPlacedEnv || !runs_as_program(path)) return as_asked();
  if (stays_for_its_descriptors() || seated_here(env_value(envp, "MOSIX_SEATS="))) {
    // Here: the program runs as asked, told that it is placed.
    char** env = static_cast<char**>(__builtin_alloca((n_env + 2) * sizeof(char*)));
    for (std::size_t i = 0; i < n_env; ++i) env[i] = envp[i];
    env[n_env] = const_cast<char*>("MOSIX_PLACED=1");
    env[n_env + 1] = nullptr;
    return real(path, argv, env);
  }
  // The deputy asks the home node, with the program as it was given (a
  // relative path is the deputy's cwd's, which is ours, and the body's).
  exec_deputy(deputy, path, argv, envp, real);
  return as_asked();  // no deputy to run: the program runs here, as it would have
}

// A body (a program placed on another node) is known at home by its
// deputy's pid: getpid() says that pid and getppid() the deputy's parent,
// as if it had never left (its deputy forwards what is sent to that pid).
// The deputy passes them in MOSIX_HOME_PIDS=PID,PPID; its children learn
// them from us, not from the environment.
void adopt_home_identity() {
  const char* pids = getenv("MOSIX_HOME_PIDS");
  if (pids == nullptr) return;
  char* end = nullptr;
  const long pid = strtol(pids, &end, 10);
  const long ppid = end != nullptr && *end == ',' ? strtol(end + 1, nullptr, 10) : 0;
  const char* daemon = getenv("MOSIX_DAEMON_PID");
  // Only the process its node daemon started (not a child that inherited it).
  if (pid > 0 && ppid > 0 && daemon != nullptr && atol(daemon) == sys(SYS_getppid)) {
    g_vpid = static_cast<pid_t>(pid);
    g_vppid = static_cast<pid_t>(ppid);
    g_vpid_real = real_pid();
    g_ppid_real = static_cast<pid_t>(sys(SYS_getppid));
    if (const char* rank = getenv("MOSIX_RANK"); rank != nullptr && *rank >= '0' && *rank <= '9') {
      g_home_rank = atoi(rank);  // its deputy makes its kill() of home pids (home_kill.cpp)
    }
  }
  unsetenv("MOSIX_HOME_PIDS");
  // The signals the child had ignored and blocked when it exec'd (hex masks,
  // bit s-1 for signal s): exec keeps both, the node daemon's start did not.
  if (const char* sigs = getenv("MOSIX_HOME_SIGNALS"); sigs != nullptr && pid > 0) {
    end = nullptr;
    const unsigned long long ignored = strtoull(sigs, &end, 16);
    const unsigned long long blocked = end != nullptr && *end == ',' ? strtoull(end + 1, nullptr, 16) : 0;
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    for (int s = 1; s <= 64; ++s) {
      if ((ignored & (1ull << (s - 1))) && s != SIGKILL && s != SIGSTOP) real_sigaction()(s, &ign, nullptr);
    }
    sigset_t mask;
    sigemptyset(&mask);
    for (int s = 1; s <= 64; ++s) {
      if (blocked & (1ull << (s - 1))) sigaddset(&mask, s);
    }
    strip_agent_signals(&mask);
    sys(SYS_rt_sigprocmask, SIG_BLOCK, &mask, nullptr, 8);
  }
  unsetenv("MOSIX_HOME_SIGNALS");
}

}  // namespace mosix::agent
