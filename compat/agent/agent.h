// State of the agent inside one guest process, shared by its parts. It lives
// in the library's .data/.bss, so a checkpoint carries it and a restored
// process finds it again (that is how its virtual pid survives).
#pragma once

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include <cstdint>

#include "runtime/ckpt/request_protocol.h"

namespace mosix::agent {

// The agent's two signals (a checkpoint request and a stop), as a kernel
// signal mask: held off where a checkpoint must not find something half done
// (an exec, a fork's handlers, a forwarded accept, a link's queue taken).
inline constexpr std::uint64_t kAgentSignals =
    (1ULL << (mosix::ckpt::kRequestSignal - 1)) | (1ULL << (mosix::ckpt::kStopSignal - 1));

// The pid and parent pid the program sees: the real ones of the first
// incarnation, kept across restarts.
extern pid_t g_vpid;
extern pid_t g_vppid;

pid_t real_pid();

// The real pid g_vpid belongs to, and, while a checkpoint writes the image,
// the real pid of the process being written (0 otherwise). A process that
// finds its real pid changed is either a restored image (g_image_real says
// so: the image was written with it set) or a child that clone() made
// without fork()'s handlers, which has a pid of its own.
extern pid_t g_vpid_real;
extern pid_t g_image_real;
// The kernel's pid of the parent g_vppid stands for: getppid() gives
// g_vppid while the real parent is still that one, and the new parent's
// (virtual) pid once the process was reparented; -1 in a process restored
// alone (or a tree's root), whose getppid() stays g_vppid.
extern pid_t g_ppid_real;

// The virtual pid of the calling process, sorting out the two cases above.
// adopt: a child of clone() takes its own identity for good (only when the
// memory is known not to be shared with the parent, as at a checkpoint).
pid_t current_vpid(bool adopt = false);

// The pids of a restored process tree (tree.cpp): a member's (or a
// zombie's) real pid now for the virtual pid the program knows it by, and
// back; a pid outside the tree, and every pid outside a restored tree, is
// its own. to_real_target takes kill()'s forms (-1, 0, -pgid) too.
// tree_note_restored drops a table that is not this incarnation's.
pid_t to_real_pid(pid_t vpid);
pid_t to_virtual_pid(pid_t real);
pid_t to_real_target(pid_t pid);
void tree_note_restored();
// How many pids the table holds (0 outside a restored tree).
unsigned tree_pid_count();

// The calling thread's virtual tid: the kernel's tid of its first
// incarnation, kept across restarts (tids.cpp); and the kernel's tid now of
// a thread the program names by its virtual tid (or of the process, by its
// virtual pid). note_thread_id enters the calling thread in the table (each
// thread a checkpoint stops does); forget_thread_ids empties it (a forked
// child, whose other threads are its parent's).
pid_t virtual_tid();
pid_t tid_to_real(pid_t id);
void note_thread_id();
void forget_thread_ids();

// Bumped by every thread a checkpoint stops, as it stops (before the image
// is written): a wait that ends with EINTR and sees it changed was
// interrupted by the agent, not by the program's signal, and is resumed
// (waits.cpp), in the process that was checkpointed and in a restored one.
extern unsigned g_stops;
// CLOCK_MONOTONIC when the last checkpoint stopped the process: in a
// restored process, how much of a timeout was left is measured up to it.
extern long g_stop_mono_ns;

// Set once an semop/semtimedop with SEM_UNDO succeeded (sysv.cpp): the
// kernel keeps an undo entry for the process that a restore cannot recreate.
extern int g_sem_undo;

// libc's own sigaction, which the agent's interposed one forwards to.
using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
SigactionFn real_sigaction();

// Installs the checkpoint request and thread-stop handlers.
void install_checkpoint_handlers();
// Notes XDG_RUNTIME_DIR as the program starts with it: the runtime directory
// is found by it later, also from a signal handler. First thing at load.
void note_runtime_dir();
// The runtime directory (docs/runtime-directory.md) into `out`, if it is a
// directory of this user that neither group nor others may write: the only
// place the agent takes word from (checkpoint requests, the node's file).
bool trusted_runtime_dir(char* out, size_t size);
// Unblocks the agent's two signals, which the exec that started this program
// (or the spawner) blocked so that no request could kill it before its
// handlers were in place (exec.cpp). A request sent meanwhile arrives now.
void release_agent_signals();

// The constructor's first step: a guest's child that starts a program hands
// itself to mosix-deputy, which places it (place_at_exec.cpp). Returns when
// the program runs here.
void place_at_exec(int argc, char** argv);
// The same decision made earlier, in the exec wrappers (exec.cpp), by the
// process about to exec `path` with `envp`: a program placed away is never
// loaded here (the deputy is exec'd instead), and one that stays is exec'd
// with MOSIX_PLACED, so that its constructor does not decide again. Returns
// only when `real` failed; the exec goes as asked when nothing can be decided
// here (the constructor decides then). Safe between vfork and exec: nothing
// is allocated, nothing of this process's memory is written.
using RealExecve = int (*)(const char*, char* const[], char* const[]);
int exec_placed(const char* path, char* const argv[], char* const envp[], RealExecve real);
// A body placed away takes its deputy's pid and parent pid (place_at_exec.cpp).
void adopt_home_identity();
// Node files (place_at_exec.cpp, runtime/daemon/node_env_file.h): the parent
// pid of `pid` from /proc (-1: unknown); the node daemon among pid's
// ancestors (pid included): `expected` (MOSIX_DAEMON_PID) if it is one, else
// the nearest one with a node file in `dir`, 0 if none; and daemon pid's node
// file read into text (NUL-terminated; -1 unless it is a regular file of
// ours).
long parent_of(long pid);
long node_daemon_above(long pid, long expected, const char* dir);
long node_file_text(long pid, const char* dir, char* text, size_t cap);
// A body's family (home_kill.cpp): the body's rank (-1: none), whose deputy
// makes its kill() of pids of the deputy's node; whether kill(pid) is one of
// those; the kill itself (0 or -errno; *local when no node daemon answers:
// signal here then; tid and info: tgkill's thread, sigqueue's siginfo);
// whether pidfd_open(pid) is refused, a home pid's; and a forked child's note
// of the body it descends from.
extern int g_home_rank;
bool kill_goes_home(pid_t pid);
// kill() (tid 0, no info), tgkill() (tid), sigqueue() and rt_sigqueueinfo
// (info; with tid rt_tgsigqueueinfo) of this process: a body's of a home pid
// made at home (home_kill), any other here, with the real pid and tid of
// the one named. 0 or -errno; the agent's signals held off meanwhile.
long send_signal(pid_t pid, pid_t tid, int sig, siginfo_t* info);
long home_kill(pid_t pid, int sig, bool* local, pid_t tid = 0, const siginfo_t* info = nullptr);
bool pidfd_refused(pid_t pid);
void home_kill_after_fork(pid_t parent_real);
// Removes the agent's own signals from a mask the program is about to block,
// so that a program blocking "all" signals can still be checkpointed.
void strip_agent_signals(sigset_t* set);
// Removes only the agent's two signals from a set.
void strip_agent_only(sigset_t* set);

}  // namespace mosix::agent
