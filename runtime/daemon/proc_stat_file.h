// Reads /proc/PID/stat of a process on this node (parsed by core's
// parse_proc_stat).
#pragma once

#include <sys/types.h>

#include <optional>

#include "runtime/core/exit_rule.h"
#include "runtime/core/proc_stat.h"

namespace mosix {

// The stat fields of process `pid` (of its thread `tid`, if given); nothing
// if there is no such process (or no /proc). One read(2) into a stack
// buffer: safe in a forked child of a single-threaded process.
std::optional<ProcStat> read_proc_stat(pid_t pid, pid_t tid = 0);

// CPU time (user + system) of a process on this node, in seconds; -1 if gone.
double process_cpu_seconds(pid_t pid);
// The state letter of a process on this node (R, S, T, ...), or '?' if gone.
char process_state(pid_t pid);

// How far the guest led by `leader` (its process group) has got: its CPU
// time (its own, to the µs, and that of the children it reaped), and
// whether one of its threads is runnable. When the leader itself waits (a
// shell waiting for its command), the other processes of its group count:
// their CPU time and their threads. Nothing if the leader is gone.
std::optional<CopyProgress> read_copy_progress(pid_t leader);

}  // namespace mosix

