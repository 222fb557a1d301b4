// Socket options of a relayed socket, set and read on its real socket at
// its holder (forwarded.h, docs/forwarded_sockets.md): the agent asks its
// node daemon on a connection of the call's own to the guest socket (a
// SocketForward kOption frame; the daemon's relay passes it to the holder,
// which performs it and answers kOptionReply with the errno and the
// value). The connection lives for the call only (a checkpoint never finds
// it: the agent's signals are held meanwhile). The guest socket is the one
// of the node daemon whose child this process is now (after a move another
// node's: its daemon wrote it into DIR/node-PID.env, as compat/pvm reads
// it).
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "compat/agent/forwarded.h"
#include "compat/agent/raw.h"
#include "runtime/core/crc32c.h"
#include "runtime/core/protocol_sockets.h"

namespace mosix::agent {
namespace {

constexpr std::size_t kMaxValue = 1024;  // an option's value, either way

void put(std::uint8_t*& at, std::uint64_t v, int width) {
  for (int i = 0; i < width; ++i) *at++ = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get(const std::uint8_t*& at, int width) {
  std::uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = v << 8 | at[i];
  at += width;
  return v;
}

// The guest socket of this process's node daemon now, into `path`.
bool guest_socket(char* path, std::size_t cap) {
  const char* first = getenv("MOSIX_GUEST_SOCKET");
  if (first == nullptr || *first == '\0') return false;
  std::size_t n = cstr_len(first), slash = n;
  while (slash > 0 && first[slash - 1] != '/') --slash;
  if (n >= cap) return false;
  __builtin_memcpy(path, first, n + 1);
  char file[sizeof(sockaddr_un::sun_path) + 64];
  Line f(file, sizeof file);
  f.sv(first, slash).s("node-").i(sys(SYS_getppid)).s(".env");
  char text[4096];
  long len = f.ok() ? read_file(file, text, sizeof text) : -1;
  if (len <= 0) return true;  // not moved: the first one
  text[len] = '\0';
  static constexpr char kName[] = "MOSIX_GUEST_SOCKET=";
  for (char* line = text; *line != '\0';) {
    char* end = line;
    while (*end != '\0' && *end != '\n') ++end;
    const bool last = *end == '\0';
    *end = '\0';
    if (starts_with(line, kName) && cstr_len(line) - (sizeof kName - 1) < cap) {
      __builtin_memcpy(path, line + sizeof kName - 1, cstr_len(line) - (sizeof kName - 1) + 1);
      return true;
    }
    if (last) break;
    line = end + 1;
  }
  return true;
}

bool send_all(long fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    long w = sys(SYS_sendto, fd, p, n, MSG_NOSIGNAL, nullptr, 0);
    if (w == -EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool recv_all(long fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    long r = sys(SYS_recvfrom, fd, p, n, 0, nullptr, nullptr);
    if (r == -EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// One request and its answer on connection `fd`. The answer's errno, or -1.
int round_trip(long fd, std::uint64_t id, int level, int name, bool set, const void* value, std::size_t len,
               void* out, std::size_t* out_len) {
  const char* rank_text = getenv("MOSIX_RANK");
  if (rank_text == nullptr) return -1;
  std::uint8_t frame[kFrameHeaderSize + 64 + kMaxValue];
  std::uint8_t* at = frame + kFrameHeaderSize;
  put(at, static_cast<std::uint32_t>(SocketOp::kOption), 4);
  put(at, static_cast<std::uint32_t>(atoi(rank_text)), 4);
  put(at, id, 8);
  put(at, static_cast<std::uint64_t>(static_cast<std::uint32_t>(level)) << 32 | static_cast<std::uint32_t>(name), 8);
  put(at, set ? 1 : 0, 4);  // fd: 1 set, 0 get
  put(at, 0, 1);            // listening
  put(at, 1, 1);            // to_holder
  put(at, 0, 8);            // migration_id: the daemon's
  if (set) {
    put(at, len, 4);
    __builtin_memcpy(at, value, len);
    at += len;
  } else {
    put(at, 4, 4);
    put(at, *out_len, 4);  // the most a get wants
  }
  put(at, 0, 4);  // more
  const std::size_t payload = static_cast<std::size_t>(at - frame) - kFrameHeaderSize;
  at = frame;
  for (char c : {'M', 'O', 'S', 'X'}) put(at, static_cast<std::uint8_t>(c), 1);
  put(at, kProtocolVersion, 2);
  put(at, static_cast<std::uint16_t>(MessageType::kSocketForward), 2);
  put(at, payload, 4);
  std::uint32_t crc = crc32c(crc32c(0, frame, 12), frame + kFrameHeaderSize, payload);
  put(at, crc, 4);
  if (!send_all(fd, frame, kFrameHeaderSize + payload)) return -1;

  std::uint8_t header[kFrameHeaderSize];
  if (!recv_all(fd, header, sizeof header)) return -1;
  const std::uint8_t* h = header + 6;
  if (get(h, 2) != static_cast<std::uint16_t>(MessageType::kSocketForward)) return -1;
  const std::size_t size = get(h, 4);
  if (size > sizeof frame || size < 46 || !recv_all(fd, frame, size)) return -1;
  const std::uint8_t* p = frame;
  if (get(p, 4) != static_cast<std::uint32_t>(SocketOp::kOptionReply)) return -1;
  p += 4 + 8;                                // rank, id
  const int err = static_cast<int>(get(p, 8));  // arg
  p += 4 + 1 + 1 + 8;                        // fd, listening, to_holder, migration_id
  const std::size_t n = get(p, 4);
  if (n > size - 46) return -1;
  if (err == ESRCH) return -1;  // not relayed there: the agent's own answer
  if (err == 0 && !set) {
    std::size_t give = n < *out_len ? n : *out_len;
    __builtin_memcpy(out, p, give);
    *out_len = n;
  }
  return err;
}

}  // namespace

int holder_option(std::uint64_t id, int level, int name, bool set, const void* value, std::size_t len, void* out,
                  std::size_t* out_len) {
  if (set ? len > kMaxValue : *out_len > kMaxValue) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!guest_socket(addr.sun_path, sizeof addr.sun_path)) return -1;
  unsigned long old = 0;
  sys(SYS_rt_sigprocmask, SIG_BLOCK, &kAgentSignals, &old, 8);
  int err = -1;
  long fd = sys(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && sys(SYS_connect, fd, &addr, sizeof addr) == 0)
    err = round_trip(fd, id, level, name, set, value, len, out, out_len);
  if (fd >= 0) sys(SYS_close, fd);
  sys(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  return err;
}

}  // namespace mosix::agent
