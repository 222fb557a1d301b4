// A checkpoint's process-wide state: pending signals and POSIX timers, the
// settings and children that make a process unrestorable, objects held by
// other processes, and the header, process, thread and scheduling records.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>


#include "compat/agent/agent.h"
#include "compat/agent/epoll.h"
#include "compat/agent/inotify.h"
#include "compat/agent/locks.h"
#include "compat/agent/forwarded.h"
#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/format/image_writer.h"
#include "runtime/core/little_endian.h"

#include "compat/agent/session.h"

namespace mosix::agent::checkpoint {

// The coordinator's own queue and the process's, taken last so that what
// arrived while the memory was written (timers keep firing, all blocked) is
// in the image too. The other threads took theirs when they stopped.
bool Session::take_process_signals() {
  auto self = static_cast<std::int32_t>(sys(SYS_gettid));
  take_pending(s_, "SigPnd:", self, s_->line, sizeof s_->line);
  take_pending(s_, "ShdPnd:", 0, s_->line, sizeof s_->line);
  if (s_->pending_overflow.load() == 0) return true;
  Line(s_->error, sizeof s_->error)
      .s("more than ")
      .u(kMaxPending)
      .s(" signals are pending; the process keeps running with them");
  return false;
}

// Puts the signals take_pending() took back into their queues, in their
// order. rt_sigqueueinfo accepts any siginfo (SI_TIMER, SI_USER, ...) when
// a process queues to itself, but the kernel checks "itself" against the
// calling thread's tid: only the thread-group leader may do it.
void put_back_pending(Scratch* s) {
  long pid = real_pid();
  int n = s->npending.load();
  for (int i = 0; i < n && i < kMaxPending; ++i) {
    const PendingSignal& p = s->pending[i];
    if (p.signo == 0) continue;
    if (p.tid == 0)
      sys(SYS_rt_sigqueueinfo, pid, p.signo, p.info);
    else
      sys(SYS_rt_tgsigqueueinfo, pid, p.tid, p.signo, p.info);
  }
}

bool Session::is_thread(std::uint64_t tid) const {
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i)
    if (s_->threads[i].tid == tid) return true;
  return false;
}

// Reads the process's POSIX timers (timer_create) from /proc/self/timers:
//   ID: <id>
//   signal: <signo>/<sigev_value, hex>
//   notify: signal|none|thread/pid|tid.<n>
//   ClockID: <clock>
// and their settings from timer_gettime. A timer on the CPU clock of
// another process cannot be recreated: refused.
bool Session::collect_timers() {
  s_->ntimers = 0;
  long n = read_file("/proc/self/timers", s_->maps, kMapsCap);
  if (n == -ENOENT) return true;  // a kernel without CONFIG_CHECKPOINT_RESTORE has no timers file
  if (n < 0) return fail("cannot read /proc/self/timers"), false;
  s_->maps[n] = '\0';
  PosixTimerRecord* t = nullptr;
  for (const char* p = s_->maps; *p != '\0';) {
    if (starts_with(p, "ID: ")) {
      if (s_->ntimers == kMaxTimers) return fail("more than 4096 POSIX timers"), false;
      t = &s_->timers[s_->ntimers++];
      *t = PosixTimerRecord{};
      p += 4;
      t->timer_id = static_cast<std::int32_t>(parse_dec(p));
    } else if (t != nullptr && starts_with(p, "signal: ")) {
      p += 8;
      t->signo = static_cast<std::int32_t>(parse_dec(p));
      if (*p == '/') ++p;
      if (starts_with(p, "0x")) p += 2;
      t->sigev_value = parse_hex(p);
    } else if (t != nullptr && starts_with(p, "notify: ")) {
      p += 8;
      t->notify = starts_with(p, "none") ? SIGEV_NONE : starts_with(p, "thread") ? SIGEV_THREAD : SIGEV_SIGNAL;
      while (*p != '/' && *p != '\n' && *p != '\0') ++p;
      if (starts_with(p, "/tid.")) {
        t->notify |= SIGEV_THREAD_ID;
        p += 5;
        t->notify_tid = static_cast<std::int32_t>(parse_dec(p));
      }
    } else if (t != nullptr && starts_with(p, "ClockID: ")) {
      p += 9;
      bool negative = *p == '-';
      if (negative) ++p;
      auto v = static_cast<std::int64_t>(parse_dec(p));
      t->clock_id = static_cast<std::int32_t>(negative ? -v : v);
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  for (int i = 0; i < s_->ntimers; ++i) {
    PosixTimerRecord& r = s_->timers[i];
    // A CPU-time clock id encodes a pid or tid (~id >> 3; 0 is "self").
    if (r.clock_id < 0) {
      auto owner = static_cast<std::uint64_t>(~(r.clock_id >> 3));
      if (owner != 0 && owner != static_cast<std::uint64_t>(real_pid()) && !is_thread(owner)) {
        Line(s_->error, sizeof s_->error)
            .s("POSIX timer ")
            .i(r.timer_id)
            .s(" runs on the CPU clock of process ")
            .u(owner)
            .s(", which a restore cannot bring along");
        return false;
      }
    }
    long spec[4] = {};
    if (sys(SYS_timer_gettime, r.timer_id, spec) != 0) return fail("timer_gettime failed"), false;
    r.interval_ns = static_cast<std::uint64_t>(spec[0] * 1'000'000'000L + spec[1]);
    r.value_ns = static_cast<std::uint64_t>(spec[2] * 1'000'000'000L + spec[3]);
    long overrun = sys(SYS_timer_getoverrun, r.timer_id);
    r.overrun = overrun > 0 ? static_cast<std::int32_t>(overrun) : 0;
  }
  return true;
}

bool Session::write_signals_and_timers() {
  for (int i = 0; i < s_->ntimers; ++i)
    if (!check(writer_->posix_timer(s_->timers[i]))) return false;
  int n = s_->npending.load();
  for (int i = 0; i < n && i < kMaxPending; ++i) {
    const PendingSignal& p = s_->pending[i];
    if (p.signo == 0) continue;
    PendingSignalRecord r;
    r.tid = p.tid;
    r.signo = p.signo;
    r.siginfo = Blob(p.info, kSiginfoSize);
    if (!check(writer_->pending_signal(r))) return false;
  }
  return true;
}

// Shared anonymous memory is restored as a new object that only the
// restored process maps, a ghost file as a new file only it holds, and a named
// pipe as its alone (its unread bytes taken along). So
// each is refused when another live process maps the same object or holds
// the same file (a parent or child it was inherited from or by: their writes
// would no longer be seen), and shared anonymous memory when this process
// maps one part of the object twice (after the restore the two views would
// be separate).
bool Session::check_held_elsewhere() {
  bool any = s_->nghosts > 0 || s_->nanon > 0 || s_->nfifos > 0;
  for (int i = 0; i < s_->nregions; ++i) {
    const Region& a = s_->regions[i];
    if (!a.shm) continue;
    any = true;
    for (int k = i + 1; k < s_->nregions; ++k) {
      const Region& b = s_->regions[k];
      if (!b.shm || b.inode != a.inode || b.shm_dev != a.shm_dev) continue;
      std::uint64_t a_end = a.offset + (a.end - a.start), b_end = b.offset + (b.end - b.start);
      if (a.offset < b_end && b.offset < a_end) {
        Line(s_->error, sizeof s_->error)
            .s("the shared anonymous mappings at 0x")
            .x(a.start)
            .s(" and 0x")
            .x(b.start)
            .s(" show the same memory, which a restore would make two");
        return false;
      }
    }
  }
  if (!any) return true;
  auto self = static_cast<std::uint64_t>(real_pid());
  int listed = for_each_proc_pid(s_->line, sizeof s_->line, self, [&](std::uint64_t pid) {
    char path[64];
    Line(path, sizeof path).s("/proc/").u(pid).s("/maps");
    // Another user's process (EACCES) cannot have inherited it from us.
    long len = read_file(path, s_->smaps, sizeof s_->smaps - 1);
    if (len == -ENOSPC) {
      Line(s_->error, sizeof s_->error).s("cannot tell whether process ").u(pid)
          .s(" shares memory with this one (its maps are larger than 8 MiB)");
      return false;
    }
    if (len <= 0) return true;
    s_->smaps[len] = '\0';
    for (const char* p = s_->smaps; *p != '\0';) {
      // start-end perms offset major:minor inode path
      const char* f = p;
      for (int field = 0; field < 3 && *f != '\n' && *f != '\0'; ++field) {
        while (*f != ' ' && *f != '\n' && *f != '\0') ++f;
        while (*f == ' ') ++f;
      }
      std::uint64_t major = parse_hex(f);
      if (*f == ':') ++f;
      std::uint64_t minor = parse_hex(f);
      while (*f == ' ') ++f;
      std::uint64_t inode = parse_dec(f);
      for (int i = 0; i < s_->nregions && inode != 0; ++i) {
        const Region& r = s_->regions[i];
        // A tree's member names its shared memory instead (tree_hold): the
        // requester checks who else maps it.
        if (!r.shm || tree_path_ != nullptr || r.inode != inode || r.shm_dev != (major << 32 | minor)) continue;
        Line(s_->error, sizeof s_->error)
            .s("the shared anonymous mapping at 0x")
            .x(r.start)
            .s(" is shared with process ")
            .u(pid)
            .s(", which the checkpoint does not take along");
        return false;
      }
      for (int i = 0; i < s_->nghosts && inode != 0; ++i) {
        if (s_->ghost_ino[i] != inode) continue;
        Line(s_->error, sizeof s_->error).s("a deleted file the process holds open (inode ").u(inode)
            .s(") is mapped by process ").u(pid).s(", which the checkpoint does not take along");
        return false;
      }
      while (*p != '\n' && *p != '\0') ++p;
      if (*p == '\n') ++p;
    }
    if (s_->nghosts == 0 && s_->nanon == 0 && s_->nfifos == 0) return true;
    char fd_dir[64], dents[1024];
    Line(fd_dir, sizeof fd_dir).s("/proc/").u(pid).s("/fd");
    return for_each_numbered_entry(fd_dir, dents, sizeof dents, [&](std::uint64_t fd, long) {
             char link[96];
             Line(link, sizeof link).s(fd_dir).s("/").u(fd);
             // A signalfd, eventfd or timerfd of another process is ours
             // when kcmp says it is one open file with one of ours.
             for (int i = 0; i < s_->nanon; ++i) {
               long same = sys(SYS_kcmp, self, pid, 0 /* KCMP_FILE */, s_->anon_fd[i], fd);
               if (same != 0) continue;
               Line(s_->error, sizeof s_->error).s("fd ").u(static_cast<std::uint64_t>(s_->anon_fd[i]))
                   .s(" (").s(anon_kind_of(s_->anon_fd[i])).s(") is held by process ").u(pid)
                   .s(" too, which the checkpoint does not take along");
               return false;
             }
             struct stat st{};
             if (sys(SYS_stat, link, &st) != 0) return true;
             // A tree's member leaves its named pipes to the requester too.
             if (fifo_index(st) >= 0 && tree_path_ == nullptr) {
               Line(s_->error, sizeof s_->error).s("a named pipe the process holds open (inode ")
                   .u(static_cast<std::uint64_t>(st.st_ino)).s(") is open in process ").u(pid)
                   .s(" too, which the checkpoint does not take along");
               return false;
             }
             // A tree's member leaves its deleted files and memfds to the
             // requester, which makes one held by two members once and
             // refuses one a process outside the tree holds.
             if (ghost_index(st) < 0 || tree_path_ != nullptr) return true;
             Line(s_->error, sizeof s_->error).s("a deleted file the process holds open (inode ")
                 .u(static_cast<std::uint64_t>(st.st_ino)).s(") is open in process ").u(pid)
                 .s(" too, which the checkpoint does not take along");
             return false;
           }) != 0;
  });
  if (listed < 0) return fail("cannot list /proc"), false;
  return listed == 1;
}

// Settings of the process that the restore does not set again: refused
// when they differ from what a restored process would have.
bool Session::check_settings() {
  if (__atomic_load_n(&g_sem_undo, __ATOMIC_RELAXED) != 0)
    return fail("the process used SEM_UNDO on a System V semaphore (semop): the kernel keeps an undo entry for "
                "it that a restore cannot recreate, and applies it when this process ends"),
           false;
  long len = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/cwd", s_->cwd, sizeof s_->cwd - 1);
  s_->cwd[len < 0 ? 0 : len] = '\0';
  if (starts_with(s_->cwd, "/proc/")) {
    Line(s_->error, sizeof s_->error).s("the working directory ").s(s_->cwd)
        .s(ends_with_deleted(s_->cwd) ? " was removed" : " is in /proc, named by a pid")
        .s(", and a restore could not enter it; change directory before the checkpoint");
    return false;
  }
  // A removed one is made again under its name, entered and removed again
  // (restorer/removed_dirs.cpp): its name must be free, its parent there.
  char name[4096];
  Line e(s_->error, sizeof s_->error);
  e.s("the working directory ").s(s_->cwd).s(" was removed");
  if (ends_with_deleted(s_->cwd) && !deleted_name_free(s_->cwd, name, sizeof name, e)) return false;
  // Seccomp filters and no_new_privs belong to each thread. A filter cannot
  // be read back without privileges, so it cannot be installed again: a
  // thread with more filters than its parent process (whose filters a
  // restarter started the same way inherits too: a container's) is refused.
  // no_new_privs is given back (write_process) when every thread has it.
  char parent_status[64];
  Line(parent_status, sizeof parent_status).s("/proc/").u(static_cast<std::uint64_t>(sys(SYS_getppid))).s("/status");
  long parent_filters = 0;
  if (long n = read_file(parent_status, s_->maps, kMapsCap - 1); n > 0) {
    s_->maps[n] = '\0';
    parent_filters = status_number(s_->maps, "Seccomp_filters:");
  }
  long nnp_threads = 0;
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/task/").u(s_->threads[i].tid).s("/status");
    long n = read_file(path, s_->maps, kMapsCap - 1);
    if (n <= 0) continue;
    s_->maps[n] = '\0';
    long mode = status_number(s_->maps, "Seccomp:");
    long filters = status_number(s_->maps, "Seccomp_filters:");
    if (mode == 1 || (mode == 2 && (filters < 0 || filters > parent_filters))) {
      Line(s_->error, sizeof s_->error).s("thread ").u(s_->threads[i].tid)
          .s(mode == 2 ? " installed a seccomp filter" : " runs in seccomp strict mode")
          .s(", which a restore cannot install again (the kernel does not show a filter without privileges)");
      return false;
    }
    if (status_number(s_->maps, "NoNewPrivs:") == 1) ++nnp_threads;
  }
  if (nnp_threads != 0 && nnp_threads != s_->slots.load())
    return fail("some threads set no_new_privs (PR_SET_NO_NEW_PRIVS) and others not, which a restore does not "
                "give back"),
           false;
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    if (!s_->threads[i].rseq_foreign) continue;
    Line(s_->error, sizeof s_->error)
        .s("thread ")
        .u(s_->threads[i].tid)
        .s(" registered an rseq area of its own (not glibc's), which a restore does not register again");
    return false;
  }
  // oom_score_adj and loginuid are inherited: a restored process gets its
  // restarter's, which, for one started the same way, is its parent's. Only
  // a value the process (or one for it) changed is refused; neither can be
  // set back without privileges.
  for (const char* name : {"oom_score_adj", "loginuid"}) {
    char path[64];
    Line(path, sizeof path).s("/proc/self/").s(name);
    long own = read_file(path, s_->line, 64);
    Line(path, sizeof path).s("/proc/").u(static_cast<std::uint64_t>(sys(SYS_getppid))).s("/").s(name);
    long parent = read_file(path, s_->link, 64);
    if (own > 0 && parent > 0 &&
        (own != parent || __builtin_memcmp(s_->line, s_->link, static_cast<std::size_t>(own)) != 0)) {
      s_->line[s_->line[own - 1] == '\n' ? own - 1 : own] = '\0';
      Line(s_->error, sizeof s_->error)
          .s("the process's ")
          .s(name)
          .s(" is ")
          .s(s_->line)
          .s(", not its parent's, and a restore cannot set it again");
      return false;
    }
  }
  return true;
}

// A checkpoint takes one process. Its children, live or not yet waited for,
// would not be in the image: after a restore wait() would say "no child
// processes" and signals to them would go nowhere. Refused until whole
// trees are supported. The children of each thread are in
// /proc/self/task/TID/children (CONFIG_PROC_CHILDREN); without that file,
// /proc is scanned for processes whose parent is this one.
bool Session::check_children() {
  std::uint64_t live = 0, zombies = 0;
  char pids[160];
  Line list(pids, sizeof pids);
  auto count = [&](std::uint64_t pid, char state) {
    if (state == 'Z' || state == 'X') {
      ++zombies;
    } else {
      ++live;
      if (live <= 8) list.s(live == 1 ? "" : " ").u(pid);
    }
  };
  int listed = for_each_child([&](std::uint64_t pid, char state) {
    count(pid, state);
    return true;
  });
  if (listed < 0) {
    auto self = static_cast<std::uint64_t>(real_pid());
    listed = for_each_proc_pid(s_->line, sizeof s_->line, self, [&](std::uint64_t pid) {
      std::uint64_t ppid = 0;
      char st = proc_state(pid, s_->link, sizeof s_->link, &ppid);
      if (st != 0 && ppid == self) count(pid, st);
      return true;
    });
    if (listed < 0) return fail("cannot list /proc"), false;
  }
  if (live == 0 && zombies == 0) return true;
  Line e(s_->error, sizeof s_->error);
  e.s("has ");
  if (live > 0) e.u(live).s(live == 1 ? " live child (pid " : " live children (pids ").s(pids).s(live > 8 ? " ...)" : ")");
  if (live > 0 && zombies > 0) e.s(" and ");
  if (zombies > 0) e.u(zombies).s(zombies == 1 ? " ended child" : " ended children").s(" not yet waited for");
  e.s(": a checkpoint takes one process and would lose them (checkpoint the whole tree with --tree)");
  return false;
}

bool Session::write_header() {
  HeaderRecord h;
  describe_this_machine(&h.machine);
  Line(h.mosix_version, sizeof h.mosix_version).s(MOSIX_VERSION_STRING);
  struct utsname u{};
  sys(SYS_uname, &u);
  Line(h.hostname, sizeof h.hostname).s(u.nodename);
  h.pid = g_vpid;
  h.real_pid = real_pid();
  h.created_ns = now_ns(CLOCK_REALTIME);
  return check(writer_->header(h));
}

namespace {

// Fields of /proc/self/stat after the command name, numbered as in proc(5).
// Fields 3-52 of a /proc stat file (a negative one as its two's complement).
bool read_stat_fields(const char* path, char* buf, std::size_t cap, std::uint64_t out[53]) {
  long n = read_file(path, buf, cap);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* close = nullptr;
  for (const char* q = buf; *q != '\0'; ++q)
    if (*q == ')') close = q;
  if (close == nullptr) return false;
  const char* p = close + 2;
  for (int field = 3; field <= 52 && *p != '\0'; ++field) {
    bool negative = *p == '-';
    if (negative) ++p;
    std::uint64_t v = parse_dec(p);
    out[field] = negative ? ~v + 1 : v;
    while (*p != ' ' && *p != '\0') ++p;
    if (*p == ' ') ++p;
  }
  return true;
}

}  // namespace

// Each thread's nice value and policy (/proc/self/task/TID/stat fields 19
// and 41), given back by the restore; a real-time policy is refused (an
// unprivileged restore could not set it again).
bool Session::write_thread_sched() {
  for (int i = 0; i < s_->slots.load() && i < kMaxThreads; ++i) {
    char path[64];
    std::uint64_t f[53] = {};
    Line(path, sizeof path).s("/proc/self/task/").u(s_->threads[i].tid).s("/stat");
    if (!read_stat_fields(path, s_->line, sizeof s_->line - 1, f)) continue;  // the thread is gone
    auto nice = static_cast<std::int32_t>(f[19]);
    auto policy = static_cast<std::uint32_t>(f[41]);
    if (policy != SCHED_OTHER && policy != SCHED_BATCH && policy != SCHED_IDLE) {
      Line(s_->error, sizeof s_->error).s("thread ").u(s_->threads[i].tid)
          .s(" runs under a real-time scheduling policy (").u(policy)
          .s("), which a restore without privileges cannot set again");
      return false;
    }
    ThreadSchedRecord r;
    r.thread = static_cast<std::uint32_t>(i);
    r.nice = nice;
    r.policy = policy;
    if (!check(writer_->thread_sched(r))) return false;
  }
  return true;
}

bool Session::write_process() {
  ProcessRecord r;
  r.pid = g_vpid;
  r.ppid = g_vppid;
  r.pgid = static_cast<std::int32_t>(sys(SYS_getpgid, 0));
  r.sid = static_cast<std::int32_t>(sys(SYS_getsid, 0));
  long old = sys(SYS_umask, 0);
  sys(SYS_umask, old);
  r.umask = static_cast<std::uint32_t>(old);
  r.personality = static_cast<std::uint32_t>(sys(SYS_personality, 0xffffffffUL));
  static_assert(sizeof(ThreadState::name) == 16);
  r.comm = s_->threads[0].name;
  long len = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/cwd", s_->cwd, sizeof s_->cwd - 1);
  if (len < 0) return fail("cannot read the working directory"), false;
  s_->cwd[len] = '\0';
  r.cwd = s_->cwd;
  if (sys(SYS_prctl, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) r.flags |= kProcessNoNewPrivs;
  // Settings of the process the restorer gives back (threads.cpp).
  int subreaper = 0;
  if (sys(SYS_prctl, PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0 && subreaper != 0) r.flags |= kProcessChildSubreaper;
  if (sys(SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0) > 0) r.flags |= kProcessThpDisabled;
  // membarrier() registrations of the process. MEMBARRIER_CMD_GET_REGISTRATIONS
  // (Linux 6.3) lists them all; on an older kernel, an expedited command
  // answers EPERM until the process registered for it (probing costs one
  // barrier each), and a registration for GLOBAL_EXPEDITED cannot be seen.
  long registered = sys(SYS_membarrier, 512, 0, 0);  // MEMBARRIER_CMD_GET_REGISTRATIONS
  long known = 0;
  for (const MembarrierFlag& b : kMembarrierFlags) {
    known |= b.registration;
    if (registered >= 0 ? (registered & b.registration) != 0 : b.probe != 0 && sys(SYS_membarrier, b.probe, 0, 0) == 0)
      r.flags |= b.flag;
  }
  if (registered > 0 && (registered & ~known) != 0) {
    Line(s_->error, sizeof s_->error)
        .s("the process registered with membarrier() for commands a restore does not register again (mask 0x")
        .x(static_cast<std::uint64_t>(registered & ~known))
        .s(")");
    return false;
  }
  // The auxiliary vector as /proc/self/auxv shows it; the restore gives it
  // back (PR_SET_MM_MAP), since the restorer's own differs.
  long auxv = read_file("/proc/self/auxv", reinterpret_cast<char*>(s_->auxv), sizeof s_->auxv);
  if (auxv < 0 || auxv == static_cast<long>(sizeof s_->auxv))
    return fail("cannot read /proc/self/auxv (or it is larger than 1 KiB)"), false;
  r.auxv = Blob(s_->auxv, static_cast<std::size_t>(auxv));
  len = sys(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", s_->exe, sizeof s_->exe - 1);
  s_->exe[len < 0 ? 0 : len] = '\0';
  r.exe = s_->exe;
  std::uint64_t f[53] = {};
  if (!read_stat_fields("/proc/self/stat", s_->line, sizeof s_->line - 1, f))
    return fail("cannot read /proc/self/stat"), false;
  r.start_brk = f[47];
  r.brk = static_cast<std::uint64_t>(sys(SYS_brk, 0));
  r.start_stack = f[28];
  r.arg_start = f[48];
  r.arg_end = f[49];
  r.env_start = f[50];
  r.env_end = f[51];
  r.rlimit_count = kMaxRlimits;
  for (std::uint32_t i = 0; i < kMaxRlimits; ++i) {
    std::uint64_t lim[2] = {};
    sys(SYS_prlimit64, 0, i, nullptr, lim);
    r.rlimits[i] = Rlimit{lim[0], lim[1]};
  }
  r.signal_count = kMaxSignals;
  for (std::uint32_t sig = 1; sig <= kMaxSignals; ++sig) {
    std::uint64_t raw[4] = {};
    if (sys(SYS_rt_sigaction, sig, nullptr, raw, 8) == 0)
      r.sigactions[sig - 1] = KernelSigaction{raw[0], raw[1], raw[2], raw[3]};
  }
  for (int which = 0; which < 3; ++which) {
    long it[4] = {};
    sys(SYS_getitimer, which, it);
    r.itimers[which].interval_ns = static_cast<std::uint64_t>(it[0] * 1'000'000'000L + it[1] * 1000);
    r.itimers[which].value_ns = static_cast<std::uint64_t>(it[2] * 1'000'000'000L + it[3] * 1000);
    // A periodic ITIMER_REAL whose SIGALRM is still queued reads 0: the
    // kernel re-arms it only when the signal is taken. It is armed all the
    // same; it fires again one interval on.
    if (r.itimers[which].value_ns == 0) r.itimers[which].value_ns = r.itimers[which].interval_ns;
  }
  return check(writer_->process(r));
}

namespace {

// The kernel's x86-64 layout of the FXSAVE area's software bytes, which say
// whether an XSAVE area follows and how large it is.
constexpr std::size_t kSwBytesOffset = 464;
constexpr std::uint32_t kFpXstateMagic1 = 0x46505853;

}  // namespace

bool Session::write_thread(const ThreadState& t, bool leader) {
  ThreadRecord r;
  r.tid = static_cast<std::int32_t>(t.tid);
  r.flags = leader ? kThreadLeader : 0;
  r.name = t.name;
  // The registers as the kernel saved them in the signal frame: after an
  // interrupted system call they already say "restart" (SA_RESTART) or hold
  // -EINTR, exactly what the kernel would resume with.
  r.regs_kind = RegsKind::x86_64_ucontext;
  long long gregs[NGREG];
  __builtin_memcpy(gregs, t.uc->uc_mcontext.gregs, sizeof gregs);
  if (for_move_) forwarded_accept_restart(gregs);  // forwarded.h
  r.regs = Blob(reinterpret_cast<const std::uint8_t*>(gregs), sizeof gregs);
  // The FPU/SSE/AVX state in the frame: an XSAVE area in the standard format
  // when the kernel's software bytes say so, else the legacy FXSAVE area.
  const auto* fp = reinterpret_cast<const std::uint8_t*>(t.uc->uc_mcontext.fpregs);
  if (fp != nullptr) {
    std::uint32_t magic1, xstate_size;
    __builtin_memcpy(&magic1, fp + kSwBytesOffset, 4);
    __builtin_memcpy(&xstate_size, fp + kSwBytesOffset + 16, 4);
    if (magic1 == kFpXstateMagic1) {
      r.xstate_kind = XstateKind::x86_64_xsave;
      r.xstate = Blob(fp, xstate_size);
    } else {
      r.xstate_kind = XstateKind::x86_64_fxsave;
      r.xstate = Blob(fp, 512);
    }
  }
  r.fs_base = t.fs_base;
  r.gs_base = t.gs_base;
  __builtin_memcpy(&r.sigmask, &t.uc->uc_sigmask, 8);
  r.altstack_sp = reinterpret_cast<std::uint64_t>(t.uc->uc_stack.ss_sp);
  r.altstack_size = t.uc->uc_stack.ss_size;
  r.altstack_flags = t.uc->uc_stack.ss_flags;
  r.robust_list = t.robust_list;
  r.robust_list_len = t.robust_len;
  r.clear_child_tid = t.tid_address;
  if (t.rseq != 0) {
    r.rseq_addr = t.rseq;
    r.rseq_len = kRseqLen;
    r.rseq_sig = kRseqSig;
  }
  return check(writer_->thread(r));
}

}  // namespace mosix::agent::checkpoint
