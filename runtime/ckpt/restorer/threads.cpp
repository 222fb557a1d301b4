// The rest of the process, at the end of phase 2: its identity and
// settings, one signal frame per thread on the thread's own stack, the
// threads themselves (cloned through the trampoline), interval and POSIX
// timers, the pending signals, and the jump into the program.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt/restorer/reserved_range.h"
#include "runtime/ckpt/restorer/restorer.h"

// Linux 6.15's prctl for restorers; this libc's headers predate it.
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#endif

namespace mosix::ckpt::restorer {
namespace {

// The kernel's x86-64 struct rt_sigframe (arch/x86/include/asm/sigframe.h):
// the return address, then struct ucontext (whose uc_sigmask is the
// kernel's 8-byte set, not glibc's 128-byte one), then siginfo.
struct KernelUcontext {
  std::uint64_t flags;
  std::uint64_t link;
  std::uint64_t ss_sp;
  std::int32_t ss_flags;
  std::int32_t ss_pad;
  std::uint64_t ss_size;
  std::uint64_t gregs[23];
  std::uint64_t fpstate;
  std::uint64_t reserved[8];
  std::uint64_t sigmask;
};
static_assert(sizeof(KernelUcontext) == 304);
struct KernelSigframe {
  std::uint64_t pretcode;
  KernelUcontext uc;
  std::uint8_t siginfo[128];
};
constexpr std::uint64_t kUcFpXstate = 1, kUcSigcontextSs = 2, kUcStrictRestoreSs = 4;
constexpr std::uint32_t kFpXstateMagic2 = 0x46505845;

// Builds a signal frame below the thread's stack pointer (past the red zone),
// as the kernel would when delivering a signal, and returns the address of
// its ucontext. rt_sigreturn from there loads every register, the FPU/SSE/AVX
// state, the signal mask and the sigaltstack.
std::uint64_t build_frame(const Thread& t) {
  std::uint64_t sp = 0;
  std::memcpy(&sp, t.regs.data() + kRegRsp * 8, 8);
  sp -= 128;
  std::uint64_t fp = 0;
  if (t.rec.xstate_kind != XstateKind::none) {
    sp -= t.xstate.size() + 4;
    sp &= ~std::uint64_t{63};
    fp = sp;
    std::memcpy(reinterpret_cast<void*>(fp), t.xstate.data(), t.xstate.size());
    if (t.rec.xstate_kind == XstateKind::x86_64_xsave)
      std::memcpy(reinterpret_cast<void*>(fp + t.xstate.size()), &kFpXstateMagic2, 4);
  }
  sp -= sizeof(KernelSigframe);
  sp = (sp & ~std::uint64_t{15}) - 8;
  auto* frame = reinterpret_cast<KernelSigframe*>(sp);
  std::memset(frame, 0, sizeof *frame);
  KernelUcontext& uc = frame->uc;
  uc.flags = kUcSigcontextSs | kUcStrictRestoreSs |
             (t.rec.xstate_kind == XstateKind::x86_64_xsave ? kUcFpXstate : 0);
  uc.ss_sp = t.rec.altstack_sp;
  uc.ss_flags = t.rec.altstack_flags;
  uc.ss_size = t.rec.altstack_size;
  std::memcpy(uc.gregs, t.regs.data(), sizeof uc.gregs);
  uc.fpstate = fp;
  uc.sigmask = t.rec.sigmask;
  return reinterpret_cast<std::uint64_t>(&frame->uc);
}

void arm_itimers(const Image& img) {
  for (int which = 0; which < 3; ++which) {
    IntervalTimer t = img.process.itimers[which];
    // An image may say 0 left for a periodic timer whose signal was queued
    // (ITIMER_REAL is re-armed only when SIGALRM is taken): it is armed.
    if (t.value_ns == 0) t.value_ns = t.interval_ns;
    if (t.value_ns == 0) continue;
    struct itimerval v{};
    v.it_interval.tv_sec = static_cast<time_t>(t.interval_ns / 1'000'000'000ULL);
    v.it_interval.tv_usec = static_cast<suseconds_t>(t.interval_ns % 1'000'000'000ULL / 1000);
    v.it_value.tv_sec = static_cast<time_t>(t.value_ns / 1'000'000'000ULL);
    v.it_value.tv_usec = static_cast<suseconds_t>(t.value_ns % 1'000'000'000ULL / 1000);
    if (v.it_value.tv_sec == 0 && v.it_value.tv_usec == 0) v.it_value.tv_usec = 1;
    setitimer(which, &v, nullptr);
  }
}

// A thread comes back with a new tid, but robust mutexes it holds have the
// old one in their futex word, and the kernel marks a mutex owner-dead at
// thread exit only when the word holds the exiting tid. Rewrite the words
// on the thread's robust list (user memory, restored already).
void retag_robust_mutexes(const Thread& t, long new_tid) {
  struct ListHead {
    std::uint64_t next;
    std::int64_t futex_offset;
    std::uint64_t pending;
  };
  constexpr std::uint32_t kTidMask = 0x3fffffff;
  auto old_tid = static_cast<std::uint32_t>(t.rec.tid);
  if (t.rec.robust_list == 0 || static_cast<std::uint32_t>(new_tid) == old_tid) return;
  const auto* head = reinterpret_cast<const ListHead*>(t.rec.robust_list);
  auto retag = [&](std::uint64_t entry) {
    auto* word = reinterpret_cast<std::uint32_t*>(entry + static_cast<std::uint64_t>(head->futex_offset));
    if ((*word & kTidMask) == old_tid) *word = (*word & ~kTidMask) | static_cast<std::uint32_t>(new_tid);
  };
  std::uint64_t entry = head->next;
  for (int n = 0; entry != t.rec.robust_list && entry != 0 && n < 4096; ++n) {
    retag(entry);
    entry = reinterpret_cast<const ListHead*>(entry)->next;
  }
  if (head->pending != 0) retag(head->pending);
}

// The tid that thread `old` of the image has now (the leader's is the pid).
long new_tid(const Image& img, const std::vector<long>& new_tids, std::int64_t old) {
  for (std::size_t i = 0; i < img.threads.size(); ++i)
    if (img.threads[i].rec.tid == old) return new_tids[i];
  return getpid();
}

// Recreates the POSIX timers under their old ids: the program holds them in
// its memory (glibc's timer_t is the kernel's id, or points at a block that
// holds it for SIGEV_THREAD timers), while timer_create picks the id itself.
// The kernel offers exactly one way to choose it, for restorers: in
// PR_TIMER_CREATE_RESTORE_IDS mode, timer_create takes the wanted id from
// where it would store the new one. Timers are re-armed relative to now with
// what was left; overrun counts start again from 0 (the kernel has no way to
// set them). Thread-directed timers follow their thread to its new tid.
void create_timers(const Image& img, const std::vector<long>& new_tids) {
  if (img.timers.empty()) return;
  if (prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0) != 0)
    die("prctl(PR_TIMER_CREATE_RESTORE_IDS)", -errno);
  for (const PosixTimerRecord& t : img.timers) {
    struct sigevent sev{};
    sev.sigev_notify = t.notify;
    sev.sigev_signo = t.signo;
    sev.sigev_value.sival_ptr = reinterpret_cast<void*>(t.sigev_value);
    if (t.notify & SIGEV_THREAD_ID) sev._sigev_un._tid = static_cast<pid_t>(new_tid(img, new_tids, t.notify_tid));
    std::int32_t clock = t.clock_id;
    std::int64_t owner = cpu_clock_owner(clock);
    if (owner > 0) {
      std::int64_t now = owner == img.header.real_pid ? getpid() : new_tid(img, new_tids, owner);
      clock = static_cast<std::int32_t>((~now << 3) | (clock & 7));
    }
    int id = t.timer_id;
    if (syscall(SYS_timer_create, clock, &sev, &id) != 0) die("timer_create", -errno);
    if (id != t.timer_id) die("timer_create gave another id", -EBUSY);
    if (t.value_ns == 0) continue;
    struct itimerspec spec{};
    spec.it_interval.tv_sec = static_cast<time_t>(t.interval_ns / 1'000'000'000ULL);
    spec.it_interval.tv_nsec = static_cast<long>(t.interval_ns % 1'000'000'000ULL);
    spec.it_value.tv_sec = static_cast<time_t>(t.value_ns / 1'000'000'000ULL);
    spec.it_value.tv_nsec = static_cast<long>(t.value_ns % 1'000'000'000ULL);
    if (syscall(SYS_timer_settime, id, 0, &spec, nullptr) != 0) die("timer_settime", -errno);
  }
  prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0);
}

// Queues the signals that were pending, siginfo and all, in their order, on
// the process or on their thread's new tid. Every thread still blocks all
// signals here; each gets them once rt_sigreturn restores its mask. A
// process may queue any siginfo to itself (SI_TIMER, SI_USER with the old
// sender's pid, ...); only to others does the kernel refuse codes >= 0.
void queue_pending_signals(const Image& img, const std::vector<long>& new_tids) {
  for (const Pending& q : img.pending) {
    long r = q.rec.tid == 0
                 ? syscall(SYS_rt_sigqueueinfo, getpid(), q.rec.signo, q.info.data())
                 : syscall(SYS_rt_tgsigqueueinfo, getpid(), new_tid(img, new_tids, q.rec.tid), q.rec.signo,
                           q.info.data());
    if (r != 0) die("queueing a pending signal", -errno);
  }
}

}  // namespace

std::uint64_t frame_room(const Thread& t) {
  return 128 + t.xstate.size() + 4 + 64 + sizeof(KernelSigframe) + 16 + 8;
}

// A process that led its session, or its process group, leads one again
// under its new pid: left in the restarter's group, its kill(0, sig) would
// hit whoever restarted it. setsid() fails when the restorer already leads
// its group (a shell's job): that group, its own, is kept. A member of
// another group joins the restarter's, as a child of the restarter would.
void restore_session(const Image& img) {
  pid_t was = img.header.real_pid;
  if (img.process.sid == was && getsid(0) != getpid()) setsid();
  if (img.process.pgid == was && getpgrp() != getpid()) setpgid(0, 0);
}

void restore_process_state(const Image& img) {
  const ProcessRecord& p = img.process;
  if (is_removed_cwd(img))
    enter_removed_cwd();
  else if (chdir(img.cwd.c_str()) != 0)
    die("chdir", -errno);
  umask(static_cast<mode_t>(p.umask));
  for (std::uint32_t i = 0; i < p.rlimit_count && i < kMaxRlimits; ++i) {
    struct rlimit now{};
    if (getrlimit(static_cast<__rlimit_resource>(i), &now) != 0) continue;
    struct rlimit want{p.rlimits[i].cur, p.rlimits[i].max};
    // An unprivileged process cannot raise a hard limit: keep ours then.
    if (want.rlim_max > now.rlim_max) want.rlim_max = now.rlim_max;
    if (want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
    setrlimit(static_cast<__rlimit_resource>(i), &want);
  }
  prctl(PR_SET_NAME, img.comm.c_str(), 0, 0, 0);
  personality(p.personality);
  // Every thread had it (the agent checks): they are cloned from this one.
  if ((p.flags & kProcessNoNewPrivs) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    die("prctl(PR_SET_NO_NEW_PRIVS)", -errno);
  // Process-wide settings any process may make for itself: THP off (a flag
  // of the mm, which is ours until the end), child subreaper, and the
  // membarrier registrations (of the mm too).
  if ((p.flags & kProcessThpDisabled) && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
    die("prctl(PR_SET_THP_DISABLE)", -errno);
  if ((p.flags & kProcessChildSubreaper) && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    die("prctl(PR_SET_CHILD_SUBREAPER)", -errno);
  for (const MembarrierFlag& b : kMembarrierFlags) {
    if ((p.flags & b.flag) && syscall(SYS_membarrier, b.registration, 0, 0) != 0) die("membarrier(REGISTER)", -errno);
  }
  for (std::uint32_t sig = 1; sig <= p.signal_count && sig <= kMaxSignals; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    const KernelSigaction& k = p.sigactions[sig - 1];
    std::uint64_t raw[4] = {k.handler, k.flags, k.restorer, k.mask};
    syscall(SYS_rt_sigaction, sig, raw, nullptr, 8);
  }
}

// Builds each thread's frame and trampoline record, clones the threads
// through the trampoline, re-arms the timers, queues the pending signals
// and leaves through the trampoline into the program. Never returns.
// A thread's nice value and policy as the image has them (phase 1 checked
// that the restorer may set them). The restorer's own thread is the leader.
void set_sched(const Image& img, std::size_t thread, long tid) {
  for (const ThreadSchedRecord& s : img.sched) {
    if (s.thread != thread) continue;
    struct sched_param none{};
    long r = syscall(SYS_setpriority, PRIO_PROCESS, tid, s.nice);
    if (r != 0) die("setting a thread's nice value again", -errno);
    if (s.policy != SCHED_OTHER && syscall(SYS_sched_setscheduler, tid, s.policy, &none) != 0)
      die("setting a thread's scheduling policy again", -errno);
  }
}

void start_threads(Plan* p) {
  Image& img = *p->img;
  for (std::size_t i = 0; i < img.threads.size(); ++i) {
    const Thread& t = img.threads[i];
    TrampThread& tt = p->threads[i];
    tt = TrampThread{};
    tt.ucontext = build_frame(t);
    tt.fs_base = t.rec.fs_base;
    tt.tid_address = t.rec.clear_child_tid;
    tt.robust_list = t.rec.robust_list;
    tt.robust_len = t.rec.robust_list_len;
    tt.rseq = t.rec.rseq_addr;
    tt.rseq_len = t.rec.rseq_len;
    tt.rseq_sig = t.rec.rseq_sig;
  }
  p->shared->need = static_cast<std::uint32_t>(img.threads.size() - 1);
  p->shared->unmap_addr = kRestorerBase;
  p->shared->unmap_len = kReservedHigh - kRestorerBase;
  close(p->image_fd);

  using CloneFn = long (*)(unsigned long, void*, void*, void*, unsigned long, TrampThread*, TrampShared*);
  auto tramp = [](const char* sym) { return kTrampolineBase + static_cast<std::uint64_t>(sym - mosix_tramp_begin); };
  auto clone_fn = reinterpret_cast<CloneFn>(tramp(mosix_tramp_clone));
  std::vector<long> new_tids(img.threads.size(), getpid());
  for (std::size_t i = 1; i < img.threads.size(); ++i) {
    TrampThread& tt = p->threads[i];
    unsigned long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                          CLONE_SYSVSEM | CLONE_SETTLS;
    // CHILD_SETTID stores the new tid where glibc keeps the thread's tid
    // (pthread_kill, mutex owners); CHILD_CLEARTID lets pthread_join work.
    if (tt.tid_address != 0) flags |= CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
    long tid = clone_fn(flags, reinterpret_cast<void*>(tt.ucontext), nullptr,
                        reinterpret_cast<void*>(tt.tid_address), tt.fs_base, &tt, p->shared);
    if (tid < 0) die("clone", tid);
    new_tids[i] = tid;
    set_sched(img, i, tid);
    retag_robust_mutexes(img.threads[i], tid);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/comm", tid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t w = write(fd, img.threads[i].name.data(), img.threads[i].name.size());
      (void)w;
      close(fd);
    }
  }
  set_sched(img, 0, 0);
  retag_robust_mutexes(img.threads[0], getpid());
  arm_itimers(img);
  create_timers(img, new_tids);
  queue_pending_signals(img, new_tids);
  using MainFn = void (*)(TrampThread*, TrampShared*);
  reinterpret_cast<MainFn>(tramp(mosix_tramp_main))(&p->threads[0], p->shared);
  __builtin_unreachable();
}

}  // namespace mosix::ckpt::restorer
