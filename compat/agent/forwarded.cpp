// Forwarded sockets inside the guest (forwarded.h): the table of them, the
// checkpoint's choice, and the calls a byte-stream relay cannot carry.
//
// A relayed descriptor is a unix stream socket: read, write, send, recv,
// poll, epoll, select, O_NONBLOCK, shutdown and close work on it as they
// did on the TCP socket, and the relay carries them. What the agent answers
// from the table: accept/accept4 on a forwarded listener (the real
// client's address, from the daemon's header), getpeername, getsockname,
// getsockopt of the socket's family, type and protocol. setsockopt and
// getsockopt at the TCP and IP levels are not carried to the real socket
// (docs/forwarded_sockets.md): the common ones (kOptions) are remembered,
// as the real socket had them and as the program sets them, and set on the
// real socket when the process has it again; others: a set is accepted
// and not applied, a get reads 0. On any other
// descriptor each of them is libc's own (found with dlsym(RTLD_NEXT)).
//
// The table is guarded by a spin lock; a checkpoint runs while every other
// thread is stopped and refuses when one was stopped inside an accept of a
// forwarded listener (the daemon has not had its answer).
#include "compat/agent/forwarded.h"

#include <atomic>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>

#include "compat/agent/agent.h"
#include "compat/agent/raw.h"
#include "compat/agent/sockets.h"
#include "runtime/ckpt/request_protocol.h"

namespace mosix::agent {
namespace {

constexpr int kMaxForwarded = 1024;

// The TCP and IP level options a forwarded socket remembers: read from the
// real socket when it is forwarded, then what the program sets (not applied
// to the real socket while it is relayed; applied when it is its own again).
struct Option {
  int level, name;
};
constexpr Option kOptions[] = {
    {IPPROTO_TCP, TCP_NODELAY},       {IPPROTO_TCP, TCP_MAXSEG},        {IPPROTO_TCP, TCP_CORK},
    {IPPROTO_TCP, TCP_KEEPIDLE},      {IPPROTO_TCP, TCP_KEEPINTVL},     {IPPROTO_TCP, TCP_KEEPCNT},
    {IPPROTO_TCP, TCP_SYNCNT},        {IPPROTO_TCP, TCP_LINGER2},       {IPPROTO_TCP, TCP_DEFER_ACCEPT},
    {IPPROTO_TCP, TCP_WINDOW_CLAMP},  {IPPROTO_TCP, TCP_QUICKACK},      {IPPROTO_TCP, TCP_USER_TIMEOUT},
    {IPPROTO_TCP, TCP_NOTSENT_LOWAT}, {IPPROTO_TCP, TCP_FASTOPEN},      {IPPROTO_IP, IP_TOS},
    {IPPROTO_IP, IP_TTL},             {IPPROTO_IPV6, IPV6_V6ONLY},      {IPPROTO_IPV6, IPV6_TCLASS},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS},
};
constexpr int kNumOptions = sizeof kOptions / sizeof kOptions[0];
static_assert(kNumOptions <= 32, "Entry::option_set has a bit for each");

struct Entry {
  int fd;  // -1: free
  bool listening;
  std::uint32_t family;
  std::uint64_t id;
  std::uint32_t local_len, peer_len;
  std::uint8_t local[kMaxForwardAddress];
  std::uint8_t peer[kMaxForwardAddress];
  std::int32_t option[kNumOptions];  // kOptions' values
  std::int32_t option_error[kNumOptions];  // the real socket's errno for it (0: it has it)
  std::uint32_t option_set;  // bits of kOptions: set while relayed
};

struct Table {
  Entry entries[kMaxForwarded];
  int used;  // entries[0, used) have been handed out at least once
  std::uint64_t next_id;
  int lock;
  int accepting;  // accepts of a forwarded listener under way
};

Table g_table;

}  // namespace
extern "C" void mosix_accept_resume();  // below, in assembly
namespace {

class Guard {
 public:
  Guard() {
    while (__atomic_exchange_n(&g_table.lock, 1, __ATOMIC_ACQUIRE) != 0) sys(SYS_sched_yield);
  }
  ~Guard() { __atomic_store_n(&g_table.lock, 0, __ATOMIC_RELEASE); }
};

Entry* find(int fd) {
  for (int i = 0; i < g_table.used; ++i)
    if (g_table.entries[i].fd == fd) return &g_table.entries[i];
  return nullptr;
}

Entry* take(int fd) {
  if (Entry* e = find(fd)) return e;
  for (int i = 0; i < g_table.used; ++i)
    if (g_table.entries[i].fd < 0) return &g_table.entries[i];
  if (g_table.used == kMaxForwarded) return nullptr;
  return &g_table.entries[g_table.used++];
}

int domain_of(long fd) {
  int v = 0;
  socklen_t len = sizeof v;
  return sys(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == 0 ? v : -1;
}

int int_opt(long fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  return sys(SYS_getsockopt, fd, level, name, &v, &len) == 0 ? v : -1;
}

// A TCP socket in state CLOSE that had been connected: its handshake's
// SYN counts in bytes_acked (a socket never connected, or whose connect
// failed, has 0: the kernel clears its counters).
// linux/tcp.h's struct tcp_info (netinet/tcp.h's, included here, stops
// before tcpi_bytes_acked): tcpi_state is byte 0, tcpi_bytes_acked a u64 at 120.
bool ended_connection(long fd) {
  std::uint8_t info[232] = {};
  socklen_t len = sizeof info;
  constexpr unsigned kTcpClose = 7;  // tcp_states.h
  std::uint64_t acked = 0;
  if (sys(SYS_getsockopt, fd, IPPROTO_TCP, TCP_INFO, info, &len) != 0 || len < 128) return false;
  __builtin_memcpy(&acked, info + 120, sizeof acked);
  return info[0] == kTcpClose && acked != 0;
}

// Whether option `level`/`name` of a relayed socket is the real socket's,
// asked of its holder (`get`: a getsockopt): every one at the TCP, IP and
// IPv6 levels, and the socket level's that a TCP connection's behaviour
// depends on (SO_ERROR: the pending error, read only).
bool at_holder(int level, int name, bool get) {
  if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) return true;
  if (level != SOL_SOCKET) return false;
  switch (name) {
    case SO_KEEPALIVE: case SO_SNDBUF: case SO_RCVBUF: case SO_LINGER: case SO_PRIORITY: case SO_RCVLOWAT:
      return true;
    case SO_ERROR: return get;
    default: return false;
  }
}

int option_index(int level, int name) {
  for (int i = 0; i < kNumOptions; ++i)
    if (kOptions[i].level == level && kOptions[i].name == name) return i;
  return -1;
}

// The entry of `fd` when fd is a relayed unix socket now (not the real
// socket again, after a move that failed or came back: it gets the options
// set meanwhile), else null. Under the lock.
Entry* relayed(int fd) {
  if (g_table.used == 0) return nullptr;
  Entry* e = find(fd);
  if (e == nullptr) return nullptr;
  if (domain_of(fd) != AF_UNIX) {
    for (int i = 0; i < kNumOptions; ++i)
      if (e->option_set & (1u << i))
        sys(SYS_setsockopt, fd, kOptions[i].level, kOptions[i].name, &e->option[i], sizeof(std::int32_t));
    e->option_set = 0;
    e->fd = -1;  // the real socket is back
    return nullptr;
  }
  return e;
}

int fail(long r) {
  errno = static_cast<int>(-r);
  return -1;
}

// Copies an address out as getpeername does (truncated, true length).
void give_address(const std::uint8_t* addr, std::uint32_t len, void* out, socklen_t* out_len) {
  if (out_len == nullptr) return;
  std::uint32_t n = len < *out_len ? len : *out_len;
  if (out != nullptr) __builtin_memcpy(out, addr, n);
  *out_len = len;
}

// Reads the daemon's header on a connection just accepted from a forwarded
// listener, and answers it. False when the daemon went away.
bool read_header(long fd, std::uint8_t* header) {
  std::size_t got = 0;
  while (got < kForwardHeader) {
    long n = sys(SYS_read, fd, header + got, kForwardHeader - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n == -EAGAIN || n == -EINTR) {
      pollfd p{static_cast<int>(fd), POLLIN, 0};
      sys(SYS_poll, &p, 1, -1);
    } else {
      return false;
    }
  }
  std::uint8_t ack = kForwardAck;
  for (;;) {
    long n = sys(SYS_write, fd, &ack, 1);
    if (n == 1) return true;
    if (n != -EAGAIN && n != -EINTR) return false;
    pollfd p{static_cast<int>(fd), POLLOUT, 0};
    sys(SYS_poll, &p, 1, -1);
  }
}

// The agent's two signals, held off from the moment a client is taken
// from the listener until the agent's table has it: a checkpoint then never
// finds a client accepted and not yet known. A blocking listener is waited
// on with ppoll, the signals let through while it waits.

// -2: fd is no longer a relayed listener (the caller does libc's accept).
int forwarded_accept(int fd, sockaddr* addr, socklen_t* addr_len, int flags) {
  unsigned long old = 0;
  const bool blocking = (sys(SYS_fcntl, fd, F_GETFL) & O_NONBLOCK) == 0;
  long r;
  for (;;) {
    sys(SYS_rt_sigprocmask, SIG_BLOCK, &kAgentSignals, &old, 8);
    for (bool ready = !blocking; !ready;) {
      unsigned before = __atomic_load_n(&g_stops, __ATOMIC_RELAXED);
      pollfd p{fd, POLLIN, 0};
      long n = sys(SYS_ppoll, &p, 1, nullptr, &old, 8);
      ready = n > 0;
      if (ready || (n == -EINTR && __atomic_load_n(&g_stops, __ATOMIC_RELAXED) != before)) continue;  // the agent's stop
      sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
      return fail(n < 0 ? n : -EINTR);
    }
    // A restore may have come in between (a move home gives the real
    // listener back): checked again, with the signals held.
    bool still;
    {
      Guard guard;
      Entry* e = relayed(fd);
      still = e != nullptr && e->listening;
    }
    if (!still) {
      sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
      return -2;  // the caller does libc's accept
    }
    r = sys(SYS_accept4, fd, nullptr, nullptr, flags);
    // Another thread took the client: the daemon's receive timeout on the
    // listener (SO_RCVTIMEO) ended this wait, signals held, and it goes on
    // with them let through.
    if (!(blocking && r == -EAGAIN)) break;
    sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  }
  if (r < 0) {
    sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
    return fail(r);
  }
  __atomic_add_fetch(&g_table.accepting, 1, __ATOMIC_ACQ_REL);
  std::uint8_t header[kForwardHeader];
  bool ok = read_header(r, header);
  std::uint64_t id = 0;
  std::uint32_t len = 0;
  for (int i = 7; i >= 0; --i) id = id << 8 | header[i];
  for (int i = 15; i >= 12; --i) len = len << 8 | header[i];
  if (len > kMaxForwardAddress) ok = false;
  if (ok) {
    Guard guard;
    Entry* listener = find(fd);
    Entry* e = take(static_cast<int>(r));
    if (listener == nullptr || e == nullptr) {
      ok = false;
    } else {
      e->fd = static_cast<int>(r);
      e->listening = false;
      e->family = listener->family;
      e->id = id;
      e->local_len = listener->local_len;
      __builtin_memcpy(e->local, listener->local, listener->local_len);
      e->peer_len = len;
      __builtin_memcpy(e->peer, header + 16, len);
      // As the holder's accept made it: the listener's options, and TCP_NODELAY.
      __builtin_memcpy(e->option, listener->option, sizeof e->option);
      __builtin_memcpy(e->option_error, listener->option_error, sizeof e->option_error);
      e->option[option_index(IPPROTO_TCP, TCP_NODELAY)] = 1;
      e->option_set = 0;
    }
  }
  __atomic_sub_fetch(&g_table.accepting, 1, __ATOMIC_ACQ_REL);
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  if (!ok) {
    sys(SYS_close, r);
    return fail(-ECONNABORTED);  // as for a client gone before its accept
  }
  give_address(header + 16, len, addr, addr_len);
  return static_cast<int>(r);
}

// libc's own functions, which the interposed ones call for every descriptor
// that is not a relayed one (cancellation points and all, as before).
using Accept4Fn = int (*)(int, sockaddr*, socklen_t*, int);
using AcceptFn = int (*)(int, sockaddr*, socklen_t*);
using NameFn = int (*)(int, sockaddr*, socklen_t*);
using GetoptFn = int (*)(int, int, int, void*, socklen_t*);
using SetoptFn = int (*)(int, int, int, const void*, socklen_t);
using CloseFn = int (*)(int);
std::atomic<Accept4Fn> g_accept4{nullptr};
std::atomic<AcceptFn> g_accept{nullptr};
std::atomic<NameFn> g_getpeername{nullptr}, g_getsockname{nullptr};
std::atomic<GetoptFn> g_getsockopt{nullptr};
std::atomic<SetoptFn> g_setsockopt{nullptr};
std::atomic<CloseFn> g_close{nullptr};

}  // namespace

// The accept a checkpoint interrupted on a listener that is forwarded now,
// resumed through the agent (forwarded_accept_restart): the system call's
// result, as the kernel would give it (negative errno); errno as it was.
extern "C" __attribute__((visibility("hidden"), used)) long mosix_accept_resumed(long nr, long fd, sockaddr* addr,
                                                                                 socklen_t* addr_len, long flags) {
  const int saved = errno;
  if (nr != SYS_accept4) flags = 0;
  bool forwarded;
  {
    Guard guard;
    Entry* e = relayed(static_cast<int>(fd));
    forwarded = e != nullptr && e->listening;
  }
  long r = forwarded ? forwarded_accept(static_cast<int>(fd), addr, addr_len, static_cast<int>(flags)) : -2;
  if (r == -2) {
    r = sys(SYS_accept4, fd, addr, addr_len, flags);  // the real listener again
  } else if (r < 0) {
    r = -errno;
  }
  errno = saved;
  return r;
}

// Entered in place of the syscall instruction, with the registers the
// kernel restarts it with (RAX: its number; RDI, RSI, RDX, R10: its
// arguments) and RCX: where it returns. Keeps every register a system call
// keeps (all but RAX, RCX, R11; the x87/SSE state too), the red zone
// untouched, and returns there with the result in RAX.
asm(R"(
  .text
  .globl mosix_accept_resume
  .hidden mosix_accept_resume
  .type mosix_accept_resume, @function
mosix_accept_resume:
  lea -128(%rsp), %rsp
  push %rcx
  push %rbp
  mov %rsp, %rbp
  push %rdi
  push %rsi
  push %rdx
  push %r8
  push %r9
  push %r10
  and $-64, %rsp
  sub $512, %rsp
  fxsave64 (%rsp)
  mov %r10, %r8
  mov %rdx, %rcx
  mov %rsi, %rdx
  mov %rdi, %rsi
  mov %rax, %rdi
  cld
  call mosix_accept_resumed
  fxrstor64 (%rsp)
  lea -48(%rbp), %rsp
  pop %r10
  pop %r9
  pop %r8
  pop %rdx
  pop %rsi
  pop %rdi
  pop %rbp
  pop %rcx
  lea 128(%rsp), %rsp
  jmp *%rcx
  .size mosix_accept_resume, . - mosix_accept_resume
)");

int forward_socket(long fd, bool for_move, std::uint64_t* id, bool* listening, char* error,
                   std::size_t error_cap) {
  Line e(error, error_cap);
  if (is_direct_link(fd)) return 0;  // compat/pvm's: its image is an ended link (sockets.h)
  int family = domain_of(fd);
  Entry* known = nullptr;
  for (int i = 0; i < g_table.used; ++i)
    if (g_table.entries[i].fd == fd) known = &g_table.entries[i];
  if (family == AF_UNIX) {
    if (known == nullptr) return 0;
    if (!for_move) {
      e.s("is a socket forwarded to the node that holds its real one, which a checkpoint to a file cannot carry "
          "(move the process instead)");
      return -1;
    }
    if (__atomic_load_n(&g_table.accepting, __ATOMIC_ACQUIRE) != 0) {
      e.s("is a forwarded socket, and a thread was stopped inside an accept of a forwarded listener; try again");
      return -1;
    }
    *id = known->id;
    *listening = known->listening;
    return 1;
  }
  if (!for_move || (family != AF_INET && family != AF_INET6) || int_opt(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
      int_opt(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP)
    return 0;
  Entry tmp{};
  socklen_t local_len = sizeof tmp.local, peer_len = sizeof tmp.peer;
  bool connected = sys(SYS_getpeername, fd, tmp.peer, &peer_len) == 0;
  bool listen = int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1;
  // A connection that ended (reset, or closed both ways) and which the
  // program keeps open: forwarded all the same, with no peer. Its holder
  // reads from it what the program would have (the data, the reset,
  // the end of stream) and the relay gives the same.
  if (!connected && !listen && !ended_connection(fd)) return 0;  // unconnected: made again (sockets.cpp)
  if (sys(SYS_getsockname, fd, tmp.local, &local_len) != 0) local_len = 0;
  Entry* slot = take(static_cast<int>(fd));
  if (slot == nullptr) {
    e.s("is one forwarded socket too many (more than ").u(kMaxForwarded).s(")");
    return -1;
  }
  if (known == nullptr || known->family != static_cast<std::uint32_t>(family)) slot->id = ++g_table.next_id;
  slot->fd = static_cast<int>(fd);
  slot->listening = listen;
  slot->family = static_cast<std::uint32_t>(family);
  slot->local_len = local_len;
  __builtin_memcpy(slot->local, tmp.local, local_len);
  slot->peer_len = connected ? peer_len : 0;
  __builtin_memcpy(slot->peer, tmp.peer, slot->peer_len);
  for (int i = 0; i < kNumOptions; ++i) {
    std::int32_t v = 0;
    socklen_t len = sizeof v;
    long r = sys(SYS_getsockopt, fd, kOptions[i].level, kOptions[i].name, &v, &len);
    slot->option[i] = r == 0 ? v : 0;
    slot->option_error[i] = r == 0 ? 0 : static_cast<std::int32_t>(-r);
  }
  slot->option_set = 0;
  *id = slot->id;
  *listening = listen;
  return 1;
}

bool is_forwarded(int fd) {
  const int used = __atomic_load_n(&g_table.used, __ATOMIC_ACQUIRE);
  for (int i = 0; i < used; ++i)
    if (__atomic_load_n(&g_table.entries[i].fd, __ATOMIC_RELAXED) == fd) return true;
  return false;
}

void forwarded_accept_restart(long long* gregs) {
  if (gregs[REG_RAX] != SYS_accept && gregs[REG_RAX] != SYS_accept4) return;
  const auto* rip = reinterpret_cast<const std::uint8_t*>(gregs[REG_RIP]);
  if (rip == nullptr || rip[0] != 0x0f || rip[1] != 0x05) return;  // not at the syscall it restarts
  bool listener = false;
  for (int i = 0; i < g_table.used; ++i)
    listener = listener || (g_table.entries[i].fd == gregs[REG_RDI] && g_table.entries[i].listening);
  if (!listener) return;
  // The restart goes through the agent: mosix_accept_resume with the
  // system call's number and arguments where they are, and in RCX (which
  // the syscall instruction clobbers anyway) where it would have returned.
  gregs[REG_RCX] = gregs[REG_RIP] + 2;
  gregs[REG_RIP] = reinterpret_cast<long long>(&mosix_accept_resume);
}

}  // namespace mosix::agent

extern "C" {

using mosix::agent::Entry;
using mosix::agent::Guard;

__attribute__((visibility("default"))) int accept4(int fd, sockaddr* addr, socklen_t* addr_len, int flags) {
  bool forwarded;
  {
    Guard guard;
    Entry* e = mosix::agent::relayed(fd);
    forwarded = e != nullptr && e->listening;
  }
  if (forwarded) {
    int r = mosix::agent::forwarded_accept(fd, addr, addr_len, flags);
    if (r != -2) return r;
  }
  if (auto f = mosix::agent::libc_next(mosix::agent::g_accept4, "accept4")) return f(fd, addr, addr_len, flags);
  long r = mosix::agent::sys(SYS_accept4, fd, addr, addr_len, flags);
  return r < 0 ? mosix::agent::fail(r) : static_cast<int>(r);
}

__attribute__((visibility("default"))) int accept(int fd, sockaddr* addr, socklen_t* addr_len) {
  bool forwarded;
  {
    Guard guard;
    Entry* e = mosix::agent::relayed(fd);
    forwarded = e != nullptr && e->listening;
  }
  if (forwarded) {
    int r = mosix::agent::forwarded_accept(fd, addr, addr_len, 0);
    if (r != -2) return r;
  }
  if (auto f = mosix::agent::libc_next(mosix::agent::g_accept, "accept")) return f(fd, addr, addr_len);
  long r = mosix::agent::sys(SYS_accept4, fd, addr, addr_len, 0);
  return r < 0 ? mosix::agent::fail(r) : static_cast<int>(r);
}

__attribute__((visibility("default"))) int getpeername(int fd, sockaddr* addr, socklen_t* addr_len) {
  {
    Guard guard;
    if (Entry* e = mosix::agent::relayed(fd)) {
      if (e->peer_len == 0) return mosix::agent::fail(-ENOTCONN);
      mosix::agent::give_address(e->peer, e->peer_len, addr, addr_len);
      return 0;
    }
  }
  if (auto f = mosix::agent::libc_next(mosix::agent::g_getpeername, "getpeername")) return f(fd, addr, addr_len);
  long r = mosix::agent::sys(SYS_getpeername, fd, addr, addr_len);
  return r < 0 ? mosix::agent::fail(r) : 0;
}

__attribute__((visibility("default"))) int getsockname(int fd, sockaddr* addr, socklen_t* addr_len) {
  {
    Guard guard;
    if (Entry* e = mosix::agent::relayed(fd)) {
      mosix::agent::give_address(e->local, e->local_len, addr, addr_len);
      return 0;
    }
  }
  if (auto f = mosix::agent::libc_next(mosix::agent::g_getsockname, "getsockname")) return f(fd, addr, addr_len);
  long r = mosix::agent::sys(SYS_getsockname, fd, addr, addr_len);
  return r < 0 ? mosix::agent::fail(r) : 0;
}

__attribute__((visibility("default"))) int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  std::uint32_t family = 0;
  std::uint64_t id = 0;
  int v = -1, err = 0;
  {
    Guard guard;
    if (Entry* e = mosix::agent::relayed(fd)) {
      family = e->family;
      id = e->id;
      int i = mosix::agent::option_index(level, name);
      if (i >= 0) {
        v = e->option[i];
        err = e->option_error[i];
      } else if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
        v = 0;  // not remembered: reads 0
      }
    }
  }
  if (family != 0 && value != nullptr && len != nullptr && level == SOL_SOCKET && name == SO_ERROR &&
      *len >= sizeof(int)) {
    // The relayed end's pending error first (a reset sets it), taken; else the real socket's.
    int local = mosix::agent::int_opt(fd, SOL_SOCKET, SO_ERROR);
    if (local > 0) {
      __builtin_memcpy(value, &local, sizeof local);
      *len = sizeof local;
      return 0;
    }
  }
  if (family != 0 && value != nullptr && len != nullptr && mosix::agent::at_holder(level, name, true)) {
    // The real socket's, at its holder.
    std::size_t n = *len;
    int asked = mosix::agent::holder_option(id, level, name, false, nullptr, 0, value, &n);
    if (asked > 0) return mosix::agent::fail(-asked);
    if (asked == 0) {
      *len = static_cast<socklen_t>(n < *len ? n : *len);
      return 0;
    }
  }
  if (family != 0 && err != 0) return mosix::agent::fail(-err);
  if (family != 0 && value != nullptr && len != nullptr && *len >= sizeof(int)) {
    if (level == SOL_SOCKET && name == SO_DOMAIN) v = static_cast<int>(family);
    if (level == SOL_SOCKET && name == SO_PROTOCOL) v = IPPROTO_TCP;
    if (v >= 0) {
      __builtin_memcpy(value, &v, sizeof v);
      *len = sizeof v;
      return 0;
    }
  }
  if (auto f = mosix::agent::libc_next(mosix::agent::g_getsockopt, "getsockopt")) return f(fd, level, name, value, len);
  long r = mosix::agent::sys(SYS_getsockopt, fd, level, name, value, len);
  return r < 0 ? mosix::agent::fail(r) : 0;
}

__attribute__((visibility("default"))) int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  if (mosix::agent::at_holder(level, name, false)) {
    bool forwarded, same = false;
    std::uint64_t id = 0;
    {
      Guard guard;
      Entry* e = mosix::agent::relayed(fd);
      forwarded = e != nullptr;
      if (forwarded) id = e->id;
      // TCP_NODELAY as the real socket has it already (the table follows
      // every set, and a client starts with it on): no round trip (a server
      // sets it on every client it accepts).
      const int i = mosix::agent::option_index(IPPROTO_TCP, TCP_NODELAY);
      std::int32_t v = 0;
      if (forwarded && level == IPPROTO_TCP && name == TCP_NODELAY && value != nullptr && len >= sizeof v) {
        __builtin_memcpy(&v, value, sizeof v);
        same = e->option_error[i] == 0 && (v != 0) == (e->option[i] != 0);
      }
    }
    if (same) return 0;
    if (forwarded && value != nullptr) {
      // Set on the real socket at once, its errno given back.
      std::size_t none = 0;
      int asked = mosix::agent::holder_option(id, level, name, true, value, len, nullptr, &none);
      if (asked > 0) return mosix::agent::fail(-asked);
      if (asked == 0) {
        Guard guard;
        Entry* e = mosix::agent::find(fd);
        int i = mosix::agent::option_index(level, name);
        if (e != nullptr && i >= 0 && len >= sizeof(std::int32_t)) {
          __builtin_memcpy(&e->option[i], value, sizeof(std::int32_t));
          e->option_error[i] = 0;
        }
        return 0;
      }
    }
  }
  if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
    Guard guard;
    if (Entry* e = mosix::agent::relayed(fd)) {
      // The holder could not be asked: remembered (kOptions), set on the
      // real socket when the process has it again, or accepted and not
      // applied (see above).
      int i = mosix::agent::option_index(level, name);
      if (i < 0) return 0;
      if (e->option_error[i] != 0) return mosix::agent::fail(-e->option_error[i]);
      if (value == nullptr || len < sizeof(std::int32_t)) return mosix::agent::fail(-EINVAL);
      __builtin_memcpy(&e->option[i], value, sizeof(std::int32_t));
      e->option_set |= 1u << i;
      return 0;
    }
  }
  if (auto f = mosix::agent::libc_next(mosix::agent::g_setsockopt, "setsockopt")) return f(fd, level, name, value, len);
  long r = mosix::agent::sys(SYS_setsockopt, fd, level, name, value, len);
  return r < 0 ? mosix::agent::fail(r) : 0;
}

__attribute__((visibility("default"))) int close(int fd) {
  if (__atomic_load_n(&mosix::agent::g_table.used, __ATOMIC_RELAXED) != 0) {
    Guard guard;
    if (Entry* e = mosix::agent::find(fd)) e->fd = -1;
  }
  if (auto f = mosix::agent::libc_next(mosix::agent::g_close, "close")) return f(fd);
  long r = mosix::agent::sys(SYS_close, fd);
  return r < 0 ? mosix::agent::fail(r) : 0;
}

}  // extern "C"
