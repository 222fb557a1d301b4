#include "compat/pvm/task.h"

#include <algorithm>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "runtime/core/guest_groups.h"

namespace mosix::pvm {
namespace {

constexpr int kPvmdTid = static_cast<int>(0x80000000u);  // notifications come from "the pvmd"

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return (*end == '\0' || *end == ',') ? static_cast<int>(n) : fallback;
}

std::vector<std::string> split(const char* s) {
  std::vector<std::string> out;
  if (s == nullptr) return out;
  std::string cur;
  for (const char* p = s;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

// A connected unix stream socket to `path`, close-on-exec; -1 if none.
int connect_to(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return -1;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool write_all(int fd, const Frame& frame) {
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Tells the agent (libmosix.so, when it is loaded) which descriptor is the
// link, so that a checkpoint carries it (compat/agent/runtime_link.cpp).
void tell_agent(int fd) {
  using Fn = void (*)(int);
  static Fn fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "mosix_runtime_link"));
  if (fn != nullptr) fn(fd);
}

// The parent as the kernel knows it: the agent's getppid() (and
// syscall(SYS_getppid)) answer the first one, kept across moves.
long real_parent() {
  char stat[512];
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::read(fd, stat, sizeof stat - 1);
  ::close(fd);
  if (n <= 0) return -1;
  stat[n] = '\0';
  const char* after = std::strrchr(stat, ')');  // "pid (comm) state ppid ..."
  return after != nullptr && after[1] == ' ' && after[2] != '\0' && after[3] == ' ' ? std::atol(after + 4) : -1;
}

// The guest socket of the node daemon this process is a child of now: after
// a move it is another node's, whose daemon wrote it into DIR/node-PID.env
// (runtime/daemon/node_env_file.h) in the runtime directory DIR, the one
// `old` (the guest socket it attached to before) is in. `old` if there is no
// such file.
std::string node_socket(const std::string& old) {
  const std::size_t slash = old.rfind('/');
  if (slash == std::string::npos) return old;
  const std::string file = old.substr(0, slash) + "/node-" + std::to_string(real_parent()) + ".env";
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return old;
  struct stat st{};
  char text[4096];
  ssize_t n = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::getuid()
                  ? ::read(fd, text, sizeof text - 1)
                  : -1;
  ::close(fd);
  if (n <= 0) return old;
  text[n] = '\0';
  static constexpr char kName[] = "MOSIX_GUEST_SOCKET=";
  for (char* line = text; line != nullptr && *line != '\0';) {
    char* end = std::strchr(line, '\n');
    if (end != nullptr) *end = '\0';
    if (std::strncmp(line, kName, sizeof kName - 1) == 0 && line[sizeof kName - 1] != '\0') return line + sizeof kName - 1;
    line = end != nullptr ? end + 1 : nullptr;
  }
  return old;
}

long now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

}  // namespace

Task& task() {
  static Task t;
  return t;
}

int Task::enroll() {
  if (fd_ >= 0) return 0;
  const char* path = std::getenv("MOSIX_GUEST_SOCKET");
  rank_ = env_int("MOSIX_RANK", -1);
  if (path == nullptr || rank_ < 0) return -14;  // PvmSysErr: no job to belong to
  // The node it runs on now: a task moved before its first call has the
  // environment of the node it started on, whose daemon sent along what
  // waited there for it (GuestService::detach).
  socket_path_ = node_socket(path);
  fd_ = connect_to(socket_path_);
  if (fd_ < 0) return -14;
  tell_agent(fd_);
  if (!write_all(fd_, encode_frame(GuestAttach{rank_, fd_}))) {
    leave();
    return -14;
  }
  int parent = env_int("MOSIX_PARENT_RANK", -1);
  parent_tid_ = parent >= 0 ? tid_of_rank(parent) : -23;
  hosts_ = split(std::getenv("MOSIX_NODES"));
  // Siblings: the tasks spawned with this one, or the job's first copies.
  int first = 0, count = env_int("MOSIX_SIZE", 1);
  if (const char* s = std::getenv("MOSIX_SPAWN_RANKS")) {
    auto parts = split(s);
    if (parts.size() == 2) {
      first = std::atoi(parts[0].c_str());
      count = std::atoi(parts[1].c_str());
    }
  }
  for (int i = 0; i < count; ++i) siblings_.push_back(tid_of_rank(first + i));
  return 0;
}

void Task::exit() {
  std::vector<int> tcp;
  for (const auto& [rank, l] : out_links_) {
    if (l.tcp) tcp.push_back(rank);
  }
  for (int rank : tcp) close_out(rank);
  leave();
}

void Task::leave() {
  close_links();
  if (fd_ >= 0) {
    tell_agent(-1);
    ::close(fd_);
  }
  fd_ = -1;
}

// The link ended under us: restored from an image (the descriptor is a new,
// unconnected socket), moved to another node, or the node daemon is gone.
// Connects to the guest socket of the node this process runs on now, at the
// same descriptor number, and attaches again; the node daemon there first
// gives what this task had not read of its link before (it may complete the
// frame whose start is in in_). False when there is no daemon to attach to.
bool Task::reattach() {
  if (fd_ < 0 || ++reattaches_ > 3) return false;  // three in a row with nothing read: it is gone
  // What the old link held comes first: what the agent took out of it into
  // memory when an image to a file shut it (compat/agent/runtime_link.cpp),
  // then what it still holds (when a write found the link's end before a
  // read did).
  using TakeFn = std::size_t (*)(void*, std::size_t);
  static TakeFn take_held = reinterpret_cast<TakeFn>(::dlsym(RTLD_DEFAULT, "mosix_runtime_link_take"));
  while (take_held != nullptr) {
    std::uint8_t chunk[1 << 16];
    std::size_t n = take_held(chunk, sizeof chunk);
    if (n == 0) break;
    if (!take_bytes(chunk, n)) return false;
  }
  for (;;) {
    std::uint8_t chunk[1 << 16];
    ssize_t n = read_link(chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!take_bytes(chunk, static_cast<std::size_t>(n))) return false;
  }
  socket_path_ = node_socket(socket_path_);
  int fd = connect_to(socket_path_);
  if (fd < 0) return false;
  if (::dup3(fd, fd_, O_CLOEXEC) < 0) {
    ::close(fd);
    return false;
  }
  ::close(fd);
  tell_agent(fd_);
  return write_all(fd_, encode_frame(GuestAttach{rank_, fd_}));
}

int Task::host_of_node(const std::string& name) const {
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

int Task::new_buffer(Encoding enc) {
  int id = next_buffer_++;
  buffers_[id].enc = enc;
  return id;
}

Buffer* Task::buffer(int id) {
  auto it = buffers_.find(id);
  return it == buffers_.end() ? nullptr : &it->second;
}

bool Task::free_buffer(int id) {
  if (buffers_.erase(id) == 0) return false;
  if (sbuf == id) sbuf = 0;
  if (rbuf == id) rbuf = 0;
  return true;
}

// A frame cut short by the end of the link (the process moved while it
// wrote) is written again whole on the next one: the node daemon it was
// written to drops a frame it did not get whole.
bool Task::write_frame(const Frame& frame) {
  if (fd_ < 0) return false;
  while (!write_all(fd_, frame)) {
    if (!reattach()) return false;
  }
  reattaches_ = 0;
  return true;
}

// A message's bytes start with its number among the sender's messages to that
// rank (8 bytes, little-endian): the node daemon delivers a message to a task
// of its own node directly and any other through the home node, and the
// receiver puts them back in the order they were sent.
constexpr std::size_t kSeqBytes = 8;

bool Task::send(int dest_rank, int tag, const Buffer& b) {
  GuestMessage m{rank_, dest_rank, static_cast<std::uint32_t>(b.enc), tag, {}};
  std::uint64_t seq = sent_to_[dest_rank]++;
  m.bytes.resize(kSeqBytes + b.data.size());
  for (std::size_t i = 0; i < kSeqBytes; ++i) m.bytes[i] = static_cast<std::uint8_t>(seq >> (8 * i));
  std::copy(b.data.begin(), b.data.end(), m.bytes.begin() + kSeqBytes);
  Frame frame = encode_frame(m);
  if (send_direct(dest_rank, frame, seq)) return true;
  ask_direct(dest_rank);
  return write_frame(frame);
}

bool Task::ask_home(std::uint32_t kind, int tag, std::vector<std::uint8_t> bytes) {
  return write_frame(encode_frame(GuestMessage{rank_, kFromHome, kind, tag, std::move(bytes)}));
}

void Task::take(Message message) {
  if (auto* reply = std::get_if<GuestSpawnReply>(&message)) {
    spawn_replies_.push_back(std::move(*reply));
    return;
  }
  auto* m = std::get_if<GuestMessage>(&message);
  if (m == nullptr) return;
  if (m->source_rank == kFromHome) {
    if (m->kind == kGroupAnswer || m->kind == kTasksAnswer) {
      group_answers_.push_back(std::move(*m));
    } else if (m->kind == kGuestMessageExited) {
      auto it = exit_tags_.find(m->tag);
      if (it == exit_tags_.end()) return;
      for (int tag : it->second) {
        Arrived a{kPvmdTid, tag, Encoding::kDefault, {}, 0};
        int dead = tid_of_rank(m->tag);
        pack_items(a.bytes, Encoding::kDefault, &dead, 1, 1, sizeof dead);
        inbox.push_back(std::move(a));
      }
      exit_tags_.erase(it);
    } else if (m->kind == kGuestMessageNodeLost) {
      auto it = node_tags_.find(m->tag);
      if (it == node_tags_.end()) return;
      for (int tag : it->second) {
        Arrived a{kPvmdTid, tag, Encoding::kDefault, {}, 0};
        int host = host_tid(m->tag);
        pack_items(a.bytes, Encoding::kDefault, &host, 1, 1, sizeof host);
        inbox.push_back(std::move(a));
      }
      node_tags_.erase(it);
    }
    return;
  }
  if (m->kind == kDirectOut || m->kind == kDirectIn) {
    direct_offered(*m);
    return;
  }
  if (m->kind == kTcpOffer) {
    tcp_offered(*m);
    return;
  }
  if (m->bytes.size() < kSeqBytes || m->kind >= 3) return;  // not from a task of ours
  std::uint64_t seq = 0;
  for (std::size_t i = 0; i < kSeqBytes; ++i) seq |= static_cast<std::uint64_t>(m->bytes[i]) << (8 * i);
  Encoding enc = m->kind == 1 ? Encoding::kRaw : m->kind == 2 ? Encoding::kInPlace : Encoding::kDefault;
  Arrived a{tid_of_rank(m->source_rank), m->tag, enc,
            std::vector<std::uint8_t>(m->bytes.begin() + kSeqBytes, m->bytes.end()), 0};
  for (Arrived& ready : order_.arrive(m->source_rank, seq, std::move(a))) inbox.push_back(std::move(ready));
}

bool Task::pump(int timeout_ms, int out_fd) {
  if (fd_ < 0) return false;
  // The link, the direct links in, and the direct link out that waits for room.
  std::vector<pollfd> p{{fd_, POLLIN, 0}};
  for (const InLink& l : in_links_) p.push_back({l.fd, POLLIN, 0});
  if (out_fd >= 0) p.push_back({out_fd, POLLOUT, 0});
  // TCP links out: their receivers' acknowledgements, and their ends.
  const std::size_t first_tcp = p.size();
  std::vector<int> tcp_ranks;
  for (const auto& [rank, l] : out_links_) {
    if (!l.tcp) continue;
    p.push_back({l.fd, POLLIN, 0});
    tcp_ranks.push_back(rank);
  }
  int r = ::poll(p.data(), p.size(), timeout_ms);
  if (r < 0) return errno == EINTR;
  if (r == 0) return true;
  // The direct links first: what a task wrote there before it ended is
  // before the news of its end, which comes on the link.
  std::vector<short> revents;
  for (std::size_t i = 0; i < in_links_.size(); ++i) revents.push_back(p[1 + i].revents);
  read_in_links(revents);
  for (std::size_t i = 0; i < tcp_ranks.size(); ++i) {
    if (p[first_tcp + i].revents != 0) read_acks(tcp_ranks[i]);
  }
  if (p[0].revents == 0) return true;
  std::uint8_t chunk[1 << 16];
  ssize_t n = read_link(chunk, sizeof chunk, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {
    if (reattach()) return true;
    leave();
    return false;
  }
  reattaches_ = 0;
  return take_bytes(chunk, static_cast<std::size_t>(n));
}

bool Task::take_bytes(const std::uint8_t* bytes, std::size_t n) {
  in_.insert(in_.end(), bytes, bytes + n);
  if (take_frames(in_, -1)) return true;
  leave();
  return false;
}

bool Task::take_frames(std::vector<std::uint8_t>& in, int from, InLink* link) {
  size_t at = 0;
  while (in.size() - at >= kFrameHeaderSize) {
    std::span<const std::uint8_t> rest(in.data() + at, in.size() - at);
    auto header = parse_frame_header(rest);
    if (!header) return false;
    size_t whole = kFrameHeaderSize + header->payload_size;
    if (rest.size() < whole) break;
    auto message = decode_frame(rest.first(whole));
    at += whole;
    if (!message) continue;
    if (from >= 0) {
      // A direct link carries its sender's messages only.
      auto* m = std::get_if<GuestMessage>(&*message);
      if (m == nullptr || m->kind >= 3) continue;
      m->source_rank = from;
      if (link != nullptr && m->bytes.size() >= kSeqBytes) {
        std::uint64_t seq = 0;
        for (std::size_t i = 0; i < kSeqBytes; ++i) seq |= static_cast<std::uint64_t>(m->bytes[i]) << (8 * i);
        link->next = std::max(link->next, seq + 1);
        ++link->unacked;
        link->unacked_bytes += whole;
      }
    }
    take(std::move(*message));
  }
  in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(at));
  return true;
}

std::optional<std::size_t> Task::match(int tid, int tag, int timeout_ms) {
  const long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
  size_t checked = 0;
  for (;;) {
    for (; checked < inbox.size(); ++checked) {
      const Arrived& a = inbox[checked];
      if ((tid == -1 || a.src == tid) && (tag == -1 || a.tag == tag)) return checked;
    }
    int wait = timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : static_cast<int>(std::max(0L, deadline - now_ms()));
    size_t before = inbox.size();
    if (!pump(wait)) return std::nullopt;
    if (inbox.size() == before && wait == 0) {
      // Nothing more now: one last look at what a non-blocking read brought.
      if (timeout_ms == 0 || now_ms() >= deadline) return std::nullopt;
    }
  }
}

std::optional<GuestSpawnReply> Task::spawn(const GuestSpawn& request) {
  GuestSpawn r = request;
  r.request_id = next_request_++;
  if (!write_frame(encode_frame(r))) return std::nullopt;
  for (;;) {
    for (auto it = spawn_replies_.begin(); it != spawn_replies_.end(); ++it) {
      if (it->request_id == r.request_id) {
        GuestSpawnReply reply = std::move(*it);
        spawn_replies_.erase(it);
        return reply;
      }
    }
    if (!pump(-1)) return std::nullopt;
  }
}

std::optional<GuestMessage> Task::home_answer() {
  while (group_answers_.empty()) {
    if (!pump(-1)) return std::nullopt;
  }
  GuestMessage a = std::move(group_answers_.front());
  group_answers_.pop_front();
  return a;
}

std::optional<GuestMessage> Task::group_answer(std::uint32_t op, const std::string& name, int arg) {
  auto bytes = encode_group_request(GroupRequest{static_cast<GroupOp>(op), name, arg});
  if (!ask_home(kAskGroup, static_cast<int>(op), std::move(bytes))) return std::nullopt;
  return home_answer();
}

std::optional<std::vector<Task::Info>> Task::tasks() {
  if (!ask_home(kAskTasks, 0)) return std::nullopt;
  auto a = home_answer();
  if (!a) return std::nullopt;
  std::vector<Info> out;
  const std::vector<std::uint8_t>& b = a->bytes;
  auto get32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(b[at + static_cast<std::size_t>(i)]) << (8 * i);
    return static_cast<std::int32_t>(v);
  };
  for (std::size_t at = 0; at + 18 <= b.size();) {
    Info t{get32(at), get32(at + 4), get32(at + 8), get32(at + 12), {}};
    const std::size_t n = b[at + 16] | (static_cast<std::size_t>(b[at + 17]) << 8);
    at += 18;
    if (at + n > b.size()) break;
    t.name.assign(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
    out.push_back(std::move(t));
  }
  return out;
}

void Task::watch_exit(int rank, int tag) {
  exit_tags_[rank].push_back(tag);
  (void)ask_home(kAskWatchExit, rank);
}

void Task::watch_node(int node, int tag) {
  node_tags_[node].push_back(tag);
  (void)ask_home(kAskWatchNode, node);
}

}  // namespace mosix::pvm
