// The exec family, interposed so that no checkpoint request can kill a guest
// while it changes program.
//
// execve() resets every caught signal to its default action, and the default
// action of a real-time signal is to terminate. Between the exec and the new
// program's agent constructor (the dynamic loader's whole run, milliseconds)
// a request signal would therefore kill the guest instead of checkpointing it.
// The signal mask and the pending signals, unlike the handlers, survive
// execve (signal(7)). So the agent's two signals are blocked just before the
// exec: a request sent meanwhile stays pending, and the new program's agent
// takes it once its handlers are in place (release_agent_signals). If the exec
// fails, the old mask comes back and a pending request is taken here.
//
// glibc's execv/execvp/execl* reach the kernel through its internal __execve,
// not through the execve symbol, so each entry point is interposed. Children
// started by posix_spawn, system and popen exec inside glibc where nothing can
// be interposed; mosixctl checks that a process can take its request (its
// handler is installed, or the signal is blocked) before sending it.
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "runtime/ckpt/request_protocol.h"

extern char** environ;

namespace mosix::agent {
namespace {

template <typename Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// Runs an exec call with the agent's signals blocked; it returns only when the
// exec failed, and then the old mask (and errno) come back.
template <typename Call>
int with_agent_signals_held(Call call) {
  std::uint64_t old = 0;
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &kAgentSignals, &old, 8);
  int r = call();
  int saved = errno;
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  errno = saved;
  return r;
}

// The number of execl-style arguments after `first` up to the NULL, counted
// on a copy of the list.
std::size_t count_args(const char* first, va_list ap) {
  if (first == nullptr) return 0;
  va_list copy;
  va_copy(copy, ap);
  std::size_t n = 1;
  while (va_arg(copy, char*) != nullptr) ++n;
  va_end(copy);
  return n;
}

using ExecveFn = int (*)(const char*, char* const[], char* const[]);
using ExecvFn = int (*)(const char*, char* const[]);
using FexecveFn = int (*)(int, char* const[], char* const[]);
using ExecveatFn = int (*)(int, const char*, char* const[], char* const[], int);

}  // namespace

void release_agent_signals() { sys(SYS_rt_sigprocmask, SIG_UNBLOCK, &kAgentSignals, nullptr, 8); }

}  // namespace mosix::agent

using mosix::agent::count_args;
using mosix::agent::next;
using mosix::agent::with_agent_signals_held;

extern "C" {

// execve, execv, and execvp/execvpe of a path with a slash (no PATH search)
// are placed here, before the exec (exec_placed): a program placed away is
// never loaded on this node. The others are placed by the new program's
// constructor, as the programs posix_spawn, system and popen start.
__attribute__((visibility("default"))) int execve(const char* path, char* const argv[], char* const envp[]) {
  static auto real = next<mosix::agent::ExecveFn>("execve");
  return with_agent_signals_held([&] { return mosix::agent::exec_placed(path, argv, envp, real); });
}

__attribute__((visibility("default"))) int execv(const char* path, char* const argv[]) {
  static auto real = next<mosix::agent::ExecveFn>("execve");
  return with_agent_signals_held([&] { return mosix::agent::exec_placed(path, argv, environ, real); });
}

__attribute__((visibility("default"))) int execvp(const char* file, char* const argv[]) {
  static auto real = next<mosix::agent::ExecvFn>("execvp");
  static auto real_execve = next<mosix::agent::ExecveFn>("execve");
  return with_agent_signals_held([&] {
    if (file != nullptr && std::strchr(file, '/') != nullptr) mosix::agent::exec_placed(file, argv, environ, real_execve);
    return real(file, argv);  // as asked: execvp's own answer to a failed exec (a script without #! runs in sh)
  });
}

__attribute__((visibility("default"))) int execvpe(const char* file, char* const argv[], char* const envp[]) {
  static auto real = next<mosix::agent::ExecveFn>("execvpe");
  static auto real_execve = next<mosix::agent::ExecveFn>("execve");
  return with_agent_signals_held([&] {
    if (file != nullptr && std::strchr(file, '/') != nullptr) mosix::agent::exec_placed(file, argv, envp, real_execve);
    return real(file, argv, envp);
  });
}

__attribute__((visibility("default"))) int fexecve(int fd, char* const argv[], char* const envp[]) {
  static auto real = next<mosix::agent::FexecveFn>("fexecve");
  return with_agent_signals_held([&] { return real(fd, argv, envp); });
}

__attribute__((visibility("default"))) int execveat(int dirfd, const char* path, char* const argv[],
                                                    char* const envp[], int flags) {
  static auto real = next<mosix::agent::ExecveatFn>("execveat");
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return with_agent_signals_held([&] { return real(dirfd, path, argv, envp, flags); });
}

// execl, execlp and execle gather their list into an argv of exactly its
// size on the caller's stack (no allocation: a vforked child may call them)
// and go through the wrappers above.
#define MOSIX_GATHER_ARGS(first, argv, ap)                                              \
  std::size_t n_##argv = count_args(first, ap);                                         \
  char** argv = static_cast<char**>(__builtin_alloca((n_##argv + 1) * sizeof(char*)));  \
  argv[0] = const_cast<char*>(first);                                                   \
  for (std::size_t i = 1; i < n_##argv; ++i) argv[i] = va_arg(ap, char*);               \
  argv[n_##argv] = nullptr;                                                             \
  if (n_##argv > 0) (void)va_arg(ap, char*) /* the NULL */

__attribute__((visibility("default"))) int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  MOSIX_GATHER_ARGS(arg, argv, ap);
  va_end(ap);
  return execv(path, argv);
}

__attribute__((visibility("default"))) int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  MOSIX_GATHER_ARGS(arg, argv, ap);
  va_end(ap);
  return execvp(file, argv);
}

__attribute__((visibility("default"))) int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  MOSIX_GATHER_ARGS(arg, argv, ap);
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return execve(path, argv, envp);
}

#undef MOSIX_GATHER_ARGS

}  // extern "C"
