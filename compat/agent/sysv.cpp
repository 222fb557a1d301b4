// System V semaphore operations, interposed to note SEM_UNDO. An operation
// with SEM_UNDO gives the process an undo entry in the kernel, which the
// kernel applies when the process exits (a checkpoint --kill undoes the
// operation) and which no system call can give a restored process again: a
// checkpoint of a process that used SEM_UNDO is refused (checkpoint.cpp).
// Only operations that succeeded count. Not seen: calls that bypass libc's
// semop and semtimedop (syscall(2) directly), and undo entries an earlier
// program of the process made before an exec (the kernel keeps them). A wait that a checkpoint
// cut short (EINTR, g_stops moved) is made again, as in waits.cpp
// (semtimedop then waits its whole timeout again).
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/sem.h>
#include <time.h>

#include "compat/agent/agent.h"

namespace mosix::agent {

int g_sem_undo = 0;

namespace {

// Runs call() again while a checkpoint cuts it short, then notes SEM_UNDO.
template <typename Call>
int sem_call(const struct sembuf* ops, size_t n, Call call) {
  int r;
  for (;;) {
    unsigned before = __atomic_load_n(&g_stops, __ATOMIC_RELAXED);
    r = call();
    if (r == 0 || errno != EINTR || __atomic_load_n(&g_stops, __ATOMIC_RELAXED) == before) break;
  }
  for (size_t i = 0; r == 0 && i < n; ++i)
    if (ops[i].sem_flg & SEM_UNDO) __atomic_store_n(&g_sem_undo, 1, __ATOMIC_RELAXED);
  return r;
}

}  // namespace
}  // namespace mosix::agent

extern "C" {

__attribute__((visibility("default"))) int semop(int id, struct sembuf* ops, size_t n) {
  using Fn = int (*)(int, struct sembuf*, size_t);
  static auto real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "semop"));
  return mosix::agent::sem_call(ops, n, [&] { return real(id, ops, n); });
}

__attribute__((visibility("default"))) int semtimedop(int id, struct sembuf* ops, size_t n,
                                                      const struct timespec* timeout) {
  using Fn = int (*)(int, struct sembuf*, size_t, const struct timespec*);
  static auto real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "semtimedop"));
  return mosix::agent::sem_call(ops, n, [&] { return real(id, ops, n, timeout); });
}

}  // extern "C"
