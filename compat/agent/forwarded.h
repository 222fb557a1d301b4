// Forwarded sockets (forwarded.cpp, docs/migration.md): a TCP socket of a
// guest that moves stays open on the node that holds it, and the guest gets,
// at the same number, a unix socket that node daemons relay to it: a
// connected socket's stream, or a listener fed one relayed connection per
// client the holder accepts. The agent keeps, in its own memory (which a
// checkpoint carries), each one's forwarding id and the addresses the real
// socket has, and answers the calls a relay cannot carry from them.
#pragma once

#include <atomic>
#include <cstddef>
#include <dlfcn.h>
#include <cstdint>

#include "compat/agent/agent.h"
#include "runtime/ckpt/format/image_format.h"
#include "runtime/ckpt/request_protocol.h"

namespace mosix::agent {

using mosix::ckpt::kForwardAck;
using mosix::ckpt::kForwardHeader;
using mosix::ckpt::kMaxForwardAddress;

// For a checkpoint that moves the process (`for_move`): whether socket `fd`
// is forwarded instead of made again. 1: yes, with its id in *id and
// *listening set (a TCP socket connected or listening, given an id now; or
// a relayed unix socket the agent knows); 0: not forwarded (the socket is
// judged as any other); -1: refused, the reason in `error` (a forwarded
// socket in a checkpoint that is not a move; an accept of a forwarded
// listener under way).
int forward_socket(long fd, bool for_move, std::uint64_t* id, bool* listening, char* error,
                   std::size_t error_cap);

// For a move's image of a thread's registers (the signal frame's gregs): a
// thread the checkpoint interrupted inside accept or accept4 on a socket
// forwarded as a listener (the kernel would restart it: SA_RESTART) would
// restart that system call straight on the relayed unix listener, past the
// agent (it reads no header). In the image it restarts in the agent
// instead, which accepts as the program's own accept would have.
void forwarded_accept_restart(long long* gregs);

// Whether `fd` is in the table of forwarded sockets (relayed now, or its
// real socket back and not looked at since). Lock-free: cheap enough for
// every write of the process (forwarded_writes.cpp).
bool is_forwarded(int fd);

// Sets (`set`: `value`, `len` bytes) or gets (into `out`, at most *out_len
// bytes; *out_len then the value's length) option `level`/`name` of the
// relayed socket `id` on its real socket, at its holder
// (forwarded_options.cpp). The holder's errno (0: done), or -1 when it
// could not be asked (no guest socket, the relay or the holder gone): the
// caller answers from its table.
int holder_option(std::uint64_t id, int level, int name, bool set, const void* value, std::size_t len, void* out,
                  std::size_t* out_len);

// libc's own `name` (dlsym RTLD_NEXT), looked up once into `cache`: what an
// interposed call does for a descriptor that is not forwarded.
template <typename F>
F libc_next(std::atomic<F>& cache, const char* name) {
  F f = cache.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
    cache.store(f, std::memory_order_release);
  }
  return f;
}

}  // namespace mosix::agent
