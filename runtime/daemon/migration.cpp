#include "runtime/daemon/migration.h"

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <charconv>
#include <cstring>
#include <dirent.h>
#include <optional>
#include <span>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ckpt/format/image_file.h"
#include "runtime/daemon/precopy.h"
#include "runtime/daemon/continue_guest.h"
#include "runtime/daemon/migration_internal.h"

namespace mosix {
namespace {

namespace asio = boost::asio;

using boost::system::error_code;
using migration_internal::kProgressStep;
using migration_internal::memfd_path;
using migration_internal::read_comm;

constexpr std::size_t kImageChunkBytes = 1u << 20;
// A moving guest's unread link bytes go in pieces of at most this.
constexpr std::size_t kLinkPiece = 16u << 20;
// Pre-copied bytes a move's thread may have on their way through the loop.
constexpr std::uint64_t kMaxInFlight = 32u << 20;
// How long the next round (or the stop) waits for the target to take a round.
constexpr auto kTailWait = std::chrono::seconds(5);
// A memfd holding this much is closed aside (close_image).
constexpr long long kCloseAside = 16ll << 20;

}  // namespace

// Earlier versions put a migrating guest's image in /dev/shm as
// mosix-migrate-PID-N.img (written as .mosix-migrate-PID-N.img.tmp.XXXXXX
// first), PID being the node daemon's. A daemon that died during a move left
// it there, a whole process's memory held in RAM. Ours of those whose daemon
// is gone (no process PID, or one that is not a mosixd) are removed.
void sweep_old_images(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  const std::string_view prefix = "mosix-migrate-";
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.empty() && name.front() == '.') name.remove_prefix(1);
    if (name.substr(0, prefix.size()) != prefix || name.find(".img") == std::string_view::npos) continue;
    name.remove_prefix(prefix.size());
    long pid = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || end == name.data() || *end != '-' || pid <= 0) continue;
    struct stat st {};
    const std::string path = dir + "/" + e->d_name;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid()) continue;
    const bool alive = ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
    if (alive && read_comm(static_cast<pid_t>(pid)) == "mosixd") continue;
    if (::unlink(path.c_str()) == 0) {
      spdlog::debug("removed {} ({} MiB), left by a node daemon that is gone", path, st.st_size >> 20);
    }
  }
  ::closedir(d);
}

Migrations::Migrations(DaemonContext& context, GuestTable& guests)
    : context_(context), guests_(guests), sockets_(context) {
  const char* env = std::getenv("MOSIX_PRECOPY");
  precopy_ = env == nullptr || std::string_view(env) != "0";
  const char* early = std::getenv("MOSIX_EARLY_RESTORE");
  early_start_ = early == nullptr || std::string_view(early) != "0";
}

Migrations::~Migrations() { finish(); }

void Migrations::PrecopyLink::cancel() {
  {
    std::lock_guard lock(mutex);
    cancelled = true;
  }
  changed.notify_all();
}

void Migrations::finish() {
  for (auto& [id, out] : outgoing_) {
    if (out.link) out.link->cancel();  // a thread in its rounds stops
  }
  for (auto& [id, thread] : move_threads_) thread.join();
  move_threads_.clear();
  for (auto& [id, out] : outgoing_) close_image(out.memfd);
  for (auto& [id, in] : incoming_) {
    close_image(in->memfd);
    close_image(in->pages);
  }
}

// The last close of a memfd frees its pages there and then: 140-150 ms for
// the 512 MiB of a pre-copied guest's pages on this machine, during which
// the event loop would answer nobody (the source waited that long for the
// "restored" that ends the guest's stop). A large one is closed on a thread
// of its own.
void Migrations::close_image(int& memfd) {
  if (memfd < 0) return;
  struct stat st {};
  if (::fstat(memfd, &st) == 0 && st.st_blocks * 512 >= kCloseAside) {
    std::thread([fd = memfd] { ::close(fd); }).detach();
  } else {
    ::close(memfd);
  }
  memfd = -1;
}

void Migrations::close_incoming() {
  for (auto& [id, in] : incoming_) {
    close_image(in->memfd);
    close_image(in->pages);
    in->early.reset();
  }
}

MigrateResult Migrations::failure(const MigrateRequest& request) const {
  MigrateResult fail;
  fail.migration_id = request.migration_id;
  fail.rank = request.rank;
  fail.source_node = static_cast<std::uint32_t>(context_.rank());
  fail.target_node = request.target_node;
  return fail;
}

void Migrations::request(int source, const MigrateRequest& request) {
  if (guests_.find(request.rank) != nullptr || static_cast<int>(request.target_node) != context_.rank()) {
    migrate_out(request);
  } else {
    migrate_in(source, request);
  }
}

// Source side: stop the guest with its image written into memory (a memfd),
// then stream the image to the target. The checkpoint blocks, so it runs on a
// thread that hands its result back to the event loop.
void Migrations::migrate_out(const MigrateRequest& request) {
  MigrateResult fail = failure(request);
  const std::string& here = context_.node_name();
  LocalGuest* g = guests_.find(request.rank);
  if (g == nullptr || g->phase != GuestPhase::kLive || !g->running) {
    fail.reason = "rank " + std::to_string(request.rank) + " is not running on " + here;
  } else if (static_cast<int>(request.target_node) == context_.rank()) {
    fail.reason = "rank " + std::to_string(request.rank) + " already runs on " + here;
  } else if (static_cast<int>(request.target_node) >= context_.size()) {
    fail.reason = "no node " + std::to_string(request.target_node) + " in this job";
  } else if (context_.is_lost(static_cast<int>(request.target_node))) {
    fail.reason = "node " + std::to_string(request.target_node) + " is gone";
  } else if (g->flags & kSpawnMpi) {
    fail.reason = std::string("rank ") + std::to_string(request.rank) + " cannot move: " + kMpiCantMove;
    fail.cantmove = true;
  } else if (g->migrating) {
    fail.reason = "rank " + std::to_string(request.rank) + " is already moving";
  } else if (!g->held_signals.empty()) {
    fail.reason = "rank " + std::to_string(request.rank) + " is being ended with the job";
  }
  if (!fail.reason.empty()) {
    context_.send(0, fail);
    return;
  }
  // The image goes into a memfd, which the agent in the guest opens through
  // /proc (the guest is our child, of our user): no name in /dev/shm that
  // another user could take first, nothing left behind should we die.
  const int memfd = ::memfd_create("mosix-migrate-out", MFD_CLOEXEC);
  if (memfd < 0) {
    fail.reason = here + " cannot hold the image in memory (memfd_create: " + std::strerror(errno) + ")";
    context_.send(0, fail);
    return;
  }
  g->migrating = true;
  Outgoing out;
  out.request = request;
  out.request.flags = g->flags;
  out.request.work_done = guests_.work_done(*g);
  out.memfd = memfd;
  out.started = std::chrono::steady_clock::now();
  out.link = std::make_shared<PrecopyLink>();
  const int target = static_cast<int>(request.target_node);
  if (precopy_) {
    // The target takes pre-copied pages from now on.
    context_.send(target, out.request);
    out.announced = true;
  }
  outgoing_[request.migration_id] = out;
  ckpt::CheckpointRequest r;
  r.pid = g->proc.pid;
  r.mode = ckpt::AfterCheckpoint::kStop;
  r.for_move = true;
  const std::string image = memfd_path(memfd);
  std::uint64_t id = request.migration_id;
  context_.send(0, MigrateProgress{id, request.rank, MigratePhase::kCheckpoint, 0, 0});
  r.on_progress = [this, id, rank = request.rank](std::uint64_t written) {
    asio::post(context_.io(), [this, id, rank, written] {
      context_.send(0, MigrateProgress{id, rank, MigratePhase::kCheckpoint, written, 0});
    });
  };
  join_move_thread(id);
  std::shared_ptr<PrecopyLink> link = out.link;
  const bool precopy = precopy_;
  move_threads_[id] = std::thread([this, r, id, image, link, precopy, target, rank = request.rank] {
    MoveStats stats;
    ckpt::CheckpointRequest last = r;
    if (precopy) {
      std::uint64_t sent = 0;
      // Pages go through the event loop to the transport; this thread waits
      // while too many are on their way.
      PageSink sink = [&](std::uint64_t address, std::span<const std::uint8_t> bytes, std::uint64_t zero) {
        {
          std::unique_lock lock(link->mutex);
          link->changed.wait(lock, [&] { return link->cancelled || link->in_flight < kMaxInFlight; });
          if (link->cancelled) return false;
          link->in_flight += bytes.size();
        }
        PrecopyPages pages{id, address, Bytes(bytes.begin(), bytes.end()), zero};
        bool report = (sent + bytes.size()) / kProgressStep != sent / kProgressStep;
        sent += bytes.size();
        asio::post(context_.io(), [this, link, target, rank, id, report, sent, pages = std::move(pages)] {
          if (report) context_.send(0, MigrateProgress{id, rank, MigratePhase::kTransfer, sent, 0});
          context_.send(target, pages);
          {
            std::lock_guard lock(link->mutex);
            link->in_flight -= pages.bytes.size();
          }
          link->changed.notify_all();
        });
        return true;
      };
      // Each round's pages are on their way, and the target puts them in
      // place: the next round (and the stop) waits until the target has
      // taken every byte sent (PrecopyTaken), so that it sees what the guest
      // wrote meanwhile and the stop does not wait for the tail. A target
      // that does not say so in time only makes the stop longer.
      RoundTaken taken = [&] {
        std::unique_lock lock(link->mutex);
        link->changed.wait_for(lock, kTailWait, [&] { return link->cancelled || link->taken >= sent; });
      };
      // Posted like the pages, so they reach the target before the first.
      HugepageSink hugepage = [&](std::uint64_t address, std::uint64_t length) {
        asio::post(context_.io(), [this, target, hint = PrecopyPages{id, address, {}, 0, length}] {
          context_.send(target, hint);
        });
      };
      auto rounds = run_precopy(r.pid, PrecopyParams{}, sink, taken, hugepage, &stats.precopy_unsupported);
      if (rounds) {
        stats.precopy_bytes = rounds->bytes;
        stats.rounds = rounds->rounds;
        last.precopied = true;
      } else {
        stats.precopy_error = rounds.error().message;
      }
    }
    stats.stopped_at = std::chrono::steady_clock::now();
    // As request_checkpoint does, but into the memfd: the agent writes the
    // image, and every chunk of it is read back and checked as it is
    // written (ckpt::ImageFollower).
    Expected<ckpt::CheckpointResult> result = make_error("no image");
    bool given_up;
    {
      std::lock_guard lock(link->mutex);
      given_up = link->cancelled;
    }
    std::optional<ckpt::ImageFollower> follower;
    if (!given_up) follower.emplace(image);
    if (given_up) {
      result = make_error("the move was given up");
    } else if (auto bytes = ckpt::ask_agent(last, image); !bytes) {
      result = bytes.error();
    } else if (auto summary = follower->finish(*bytes); !summary) {
      result = make_error("checkpoint of " + std::to_string(r.pid) + ": the image does not verify: " +
                          summary.error().message);
    } else {
      result = ckpt::CheckpointResult{image, *bytes, *summary};
    }
    asio::post(context_.io(), [this, id, stats, result = std::move(result)]() mutable {
      checkpointed(id, std::move(result), stats);
    });
  });
}

void Migrations::join_move_thread(std::uint64_t id) {
  auto it = move_threads_.find(id);
  if (it == move_threads_.end()) return;
  it->second.join();
  move_threads_.erase(it);
}

void Migrations::checkpointed(std::uint64_t id, Expected<ckpt::CheckpointResult> result, const MoveStats& stats) {
  join_move_thread(id);  // it has posted this: it is ending
  auto it = outgoing_.find(id);
  if (it == outgoing_.end()) return;
  Outgoing& out = it->second;
  if (context_.shutting_down()) {
    close_image(out.memfd);
    outgoing_.erase(it);
    return;
  }
  out.stopped_at = stats.stopped_at;
  out.precopy_bytes = stats.precopy_bytes;
  out.rounds = stats.rounds;
  if (stats.precopy_unsupported) {
    precopy_ = false;
    spdlog::warn("{}: no pre-copy here, moves stop the guest for the whole copy: {}", context_.node_name(),
                 stats.precopy_error);
  } else if (!stats.precopy_error.empty() && !precopy_said_) {
    precopy_said_ = true;
    spdlog::info("{}: a pre-copy was given up, the move stops the guest for the whole copy: {}",
                 context_.node_name(), stats.precopy_error);
  }
  LocalGuest* g = guests_.find(out.request.rank);
  MigrateResult fail = failure(out.request);
  if (g == nullptr || !g->running) {
    fail.reason = "rank " + std::to_string(fail.rank) + " ended while it was being checkpointed";
  } else if (out.target_lost || context_.is_lost(static_cast<int>(out.request.target_node))) {
    fail.reason = "the target node died during the move";
    continue_after_move(context_.io(), g->proc.pid);
  } else if (!out.declined.empty()) {
    fail.reason = out.declined;
    continue_after_move(context_.io(), g->proc.pid);
  } else if (!result) {
    fail.reason = result.error().message;
    fail.cantmove = fail.reason.find(" refused: ") != std::string::npos;
    g->cant_move = fail.reason;  // the balancer does not try again
    continue_after_move(context_.io(), g->proc.pid);
  }
  if (fail.reason.empty() && links_ != nullptr) {
    if (auto left = links_->detach(g->rank, g->proc.pid); !left) {
      fail.reason = "rank " + std::to_string(g->rank) + " stays: " + left.error().message;
      continue_after_move(context_.io(), g->proc.pid);
    } else {
      out.link_left = std::move(*left);
    }
  }
  if (fail.reason.empty() && SocketForwarding::has_socket(g->proc.pid)) {
    fail.reason = leave_sockets(id, out, *g);
    if (!fail.reason.empty()) continue_after_move(context_.io(), g->proc.pid);
  }
  if (!fail.reason.empty()) {
    if (links_ != nullptr) links_->stay(fail.rank);
    abandon(out);
    close_image(out.memfd);
    if (g != nullptr) g->migrating = false;
    outgoing_.erase(it);
    spdlog::debug("{}: rank {} stays: {}", context_.node_name(), fail.rank, fail.reason);
    context_.send(0, fail);
    return;
  }
  stream_image(id, out, *g, result->bytes);
}

// The stopped guest's forwarded sockets: taken or detached here (their
// holders go to the target with the image). A reason when they cannot be.
std::string Migrations::leave_sockets(std::uint64_t id, Outgoing& out, const LocalGuest& g) {
  auto records = SocketForwarding::read_records(memfd_path(out.memfd));
  if (!records) return "rank " + std::to_string(g.rank) + " stays: " + records.error().message;
  if (records->empty()) return "";
  auto holders = sockets_.leave(g.rank, g.proc.pid, id, *records);
  if (!holders) return "rank " + std::to_string(g.rank) + " stays: its forwarded sockets: " + holders.error().message;
  out.holders = std::move(*holders);
  return "";
}

// A move given up after the target had its request: it lets the pre-copied
// pages go (a target that died needs no word).
void Migrations::abandon(const Outgoing& out) {
  const int target = static_cast<int>(out.request.target_node);
  if (!out.announced || out.streamed || context_.is_lost(target)) return;
  ImageEnd end;
  end.migration_id = out.request.migration_id;
  end.abandoned = true;
  context_.send(target, end);
}

// The stopped guest's output goes home, then its image to the target, then
// what it had not read of its stdin.
void Migrations::stream_image(std::uint64_t id, Outgoing& out, LocalGuest& g, std::uint64_t bytes) {
  guests_.drain_output(g);
  const int target = static_cast<int>(out.request.target_node);
  out.bytes = bytes;
  out.streamed = true;
  if (!out.announced) context_.send(target, out.request);
  context_.send(target, ImageBegin{id, out.request.rank, bytes});
  for (const SocketForward& h : out.holders) context_.send(target, h);
  const int fd = out.memfd;
  std::uint64_t offset = 0;
  if (fd >= 0) {
    for (;;) {
      ImageChunk chunk;
      chunk.migration_id = id;
      chunk.offset = offset;
      chunk.bytes.resize(kImageChunkBytes);
      ssize_t n = ::pread(fd, chunk.bytes.data(), chunk.bytes.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      chunk.bytes.resize(static_cast<size_t>(n));
      offset += static_cast<std::uint64_t>(n);
      context_.send(target, chunk);
      // Streaming a large image keeps this loop busy for seconds: a word
      // home now and then says this node is alive (and how far it is).
      if (offset % kProgressStep == 0) {
        context_.send(0, MigrateProgress{id, out.request.rank, MigratePhase::kTransfer, offset, bytes});
      }
    }
    close_image(out.memfd);  // streamed: the image's memory goes back now
  }
  if (g.flags & kSpawnStdin) {
    out.stdin_left = guests_.take_stdin(g);
    context_.send(target, *out.stdin_left);
  }
  if (out.link_left) {
    // What it had not read of its link goes first on its next one; in
    // pieces a frame can hold.
    const Bytes& left = *out.link_left;
    std::size_t at = 0;
    do {
      const std::size_t n = std::min(left.size() - at, kLinkPiece);
      context_.send(target, GuestMessage{kLinkBytes, out.request.rank, at == 0 ? kLinkFront : kLinkAfter, 0,
                                         Bytes(left.begin() + static_cast<std::ptrdiff_t>(at),
                                               left.begin() + static_cast<std::ptrdiff_t>(at + n))});
      at += n;
    } while (at < left.size());
  }
  context_.send(target, ImageEnd{id, offset});
}

void Migrations::precopy_taken(int source, const PrecopyTaken& taken) {
  auto out = outgoing_.find(taken.migration_id);
  if (out == outgoing_.end() || !out->second.link || source != static_cast<int>(out->second.request.target_node))
    return;
  PrecopyLink& link = *out->second.link;
  {
    std::lock_guard lock(link.mutex);
    link.taken = std::max(link.taken, taken.bytes);
  }
  link.changed.notify_all();
}

bool Migrations::answered(int source, const MigrateResult& result) {
  auto out = outgoing_.find(result.migration_id);
  if (out == outgoing_.end() || source != static_cast<int>(out->second.request.target_node)) return false;
  if (!out->second.streamed) {
    // Declined while pre-copying (or still being stopped): the rounds stop,
    // and checkpointed() lets the guest run on here.
    if (!result.ok && out->second.declined.empty()) out->second.declined = result.reason;
    if (out->second.link) out->second.link->cancel();
    return true;
  }
  target_answered(result);
  return true;
}

// The target's answer: the guest lives there now (the stopped original is
// killed without a word to the home node), or it resumes here.
void Migrations::target_answered(const MigrateResult& answer) {
  auto it = outgoing_.find(answer.migration_id);
  Outgoing out = it->second;
  outgoing_.erase(it);
  MigrateResult r = answer;
  r.source_node = static_cast<std::uint32_t>(context_.rank());
  r.target_node = out.request.target_node;
  r.bytes = out.bytes;
  const auto now = std::chrono::steady_clock::now();
  r.stopped_ms = static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now - out.stopped_at).count());
  r.precopy_bytes = out.precopy_bytes;
  r.rounds = out.rounds;
  const double seconds = std::chrono::duration<double>(now - out.started).count();
  if (LocalGuest* g = guests_.find(out.request.rank)) {
    g->migrating = false;
    if (r.ok) {
      if (links_ != nullptr && out.link_left) links_->moved(out.request.rank, static_cast<int>(out.request.target_node));
      ::kill(-g->proc.pid, SIGKILL);
      guests_.retire(out.request.rank);
      sockets_.left(out.request.rank);
      bandwidth_ = measured_bandwidth(bandwidth_, r.bytes + r.precopy_bytes, seconds);
    } else {
      sockets_.stayed(out.request.rank);
      if (links_ != nullptr) links_->stay(out.request.rank);
      continue_after_move(context_.io(), g->proc.pid);
      if (out.stdin_left) guests_.give_back_stdin(*g, std::move(*out.stdin_left));
    }
  }
  spdlog::debug("{}: rank {} {} node {} ({} bytes, {} pre-copied in {} rounds, stopped {} ms){}",
                context_.node_name(), r.rank, r.ok ? "moved to" : "did not move to", r.target_node, r.bytes,
                r.precopy_bytes, r.rounds, r.stopped_ms,
                r.ok ? "" : ": " + r.reason);
  context_.send(0, r);
}


void Migrations::node_lost(int node) {
  sockets_.node_lost(node);
  for (auto it = outgoing_.begin(); it != outgoing_.end();) {
    Outgoing& out = it->second;
    if (static_cast<int>(out.request.target_node) != node) {
      ++it;
      continue;
    }
    if (!out.streamed) {  // still checkpointing: checkpointed() resumes it
      out.target_lost = true;
      if (out.link) out.link->cancel();
      ++it;
      continue;
    }
    MigrateResult fail = failure(out.request);
    fail.migration_id = it->first;
    fail.bytes = out.bytes;
    fail.reason = "the target node died during the move";
    if (LocalGuest* g = guests_.find(out.request.rank)) {
      g->migrating = false;
      sockets_.stayed(out.request.rank);
      if (links_ != nullptr) links_->stay(out.request.rank);
      continue_after_move(context_.io(), g->proc.pid);
      if (out.stdin_left) guests_.give_back_stdin(*g, std::move(*out.stdin_left));
    }
    spdlog::debug("{}: rank {} stays: {}", context_.node_name(), fail.rank, fail.reason);
    it = outgoing_.erase(it);
    context_.send(0, fail);
  }
  std::vector<std::uint64_t> from_lost;
  for (auto& [id, in] : incoming_) {
    if (in->source == node) from_lost.push_back(id);
  }
  for (std::uint64_t id : from_lost) restore_failed(id, "the source node died during the move");
}

}  // namespace mosix
