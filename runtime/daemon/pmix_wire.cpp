#include "runtime/daemon/pmix_wire.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/core/little_endian.h"
#include "runtime/sys/write_all.h"

namespace mosix::pmix_wire {

Status write_packet(int fd, const Packet& packet) {
  std::string out(kHeaderSize, '\0');
  auto* h = reinterpret_cast<std::uint8_t*>(out.data());
  store_le(h, 5 + packet.payload.size(), 4);
  h[4] = static_cast<std::uint8_t>(packet.kind);
  store_le(h + 5, static_cast<std::uint32_t>(packet.node), 4);
  out += packet.payload;
  if (int e = sys::write_all(fd, out); e != 0) return make_error(std::string("PMIx helper link: ") + std::strerror(e));
  return {};
}

std::string pack_env(const std::vector<std::string>& env) {
  std::string out;
  for (const std::string& e : env) {
    out += e;
    out += '\0';
  }
  return out;
}

std::vector<std::string> unpack_env(const std::string& payload) {
  std::vector<std::string> env;
  for (std::size_t at = 0; at < payload.size();) {
    std::size_t end = payload.find('\0', at);
    if (end == std::string::npos) end = payload.size();
    env.push_back(payload.substr(at, end - at));
    at = end + 1;
  }
  return env;
}

Packet parse_header(const std::uint8_t* header, std::uint32_t& length) {
  length = static_cast<std::uint32_t>(load_le(header, 4));
  Packet p;
  p.kind = static_cast<Kind>(header[4]);
  p.node = static_cast<std::int32_t>(static_cast<std::uint32_t>(load_le(header + 5, 4)));
  return p;
}

namespace {
// false at a clean end before the first byte; an error for a short read.
Expected<bool> read_exact(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  std::size_t got = 0;
  while (got < size) {
    ssize_t n = ::read(fd, p + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(std::string("PMIx helper link: ") + std::strerror(errno));
    if (n == 0) {
      if (got == 0) return false;
      return make_error("PMIx helper link: the stream ended inside a packet");
    }
    got += static_cast<std::size_t>(n);
  }
  return true;
}
}  // namespace

Expected<std::optional<Packet>> read_packet(int fd) {
  std::uint8_t header[kHeaderSize];
  auto some = read_exact(fd, header, sizeof header);
  if (!some) return some.error();
  if (!*some) return std::optional<Packet>();
  std::uint32_t length = 0;
  Packet p = parse_header(header, length);
  if (length < 5 || length > kMaxPacket) return make_error("PMIx helper link: a packet of " + std::to_string(length) + " bytes");
  p.payload.resize(length - 5);
  auto body = read_exact(fd, p.payload.data(), p.payload.size());
  if (!body) return body.error();
  if (!*body && !p.payload.empty()) return make_error("PMIx helper link: the stream ended inside a packet");
  return std::optional<Packet>(std::move(p));
}

}  // namespace mosix::pmix_wire
