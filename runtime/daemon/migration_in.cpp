// The target's end of a move (migration.h): the image and the pre-copied
// pages come in, the restorer starts as a guest of this node, and the source
// hears how it went.
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/daemon/migration.h"
#include "runtime/daemon/migration_internal.h"

namespace mosix {
namespace {

namespace asio = boost::asio;

using boost::system::error_code;
using migration_internal::kProgressStep;
using migration_internal::memfd_path;
using migration_internal::read_comm;

}  // namespace

// Target side: the image goes into a memfd, then the restorer, started as
// a guest of this node (its pipes are the guest's stdio from now on), turns
// into the program. Until it has (its name is no longer the restorer's) its
// output is held back: a refusal is the migration's failure, not output.
void Migrations::migrate_in(int source, const MigrateRequest& request) {
  if (admission_ && is_balancer_move(request.migration_id)) {
    if (std::string why = admission_(source); !why.empty()) {
      MigrateResult r;
      r.migration_id = request.migration_id;
      r.rank = request.rank;
      r.reason = context_.node_name() + " declined it: " + why;
      r.target_node = static_cast<std::uint32_t>(context_.rank());
      spdlog::debug("{}: rank {} from node {} not taken: {}", context_.node_name(), request.rank, source, why);
      context_.send(source, r);
      return;
    }
  }
  auto in = std::make_unique<Incoming>();
  in->request = request;
  in->source = source;
  in->memfd = ::memfd_create("mosix-migrate", MFD_CLOEXEC);
  incoming_[request.migration_id] = std::move(in);
}

int Migrations::balancer_moves_arriving() const {
  int n = 0;
  for (const auto& [id, in] : incoming_) n += is_balancer_move(id) ? 1 : 0;
  return n;
}

void Migrations::stdin_for_arrival(const GuestStdin& in) {
  for (auto& [id, incoming] : incoming_) {
    if (incoming->request.rank == in.rank && !incoming->guest) incoming->stdin_left.push_back(in);
  }
}

void Migrations::image_begin(const ImageBegin& begin) {
  auto it = incoming_.find(begin.migration_id);
  if (it == incoming_.end()) return;
  it->second->total = begin.total_bytes;
  context_.send(0, MigrateProgress{begin.migration_id, it->second->request.rank, MigratePhase::kTransfer, 0,
                                   begin.total_bytes});
}

void Migrations::image_chunk(const ImageChunk& chunk) {
  auto it = incoming_.find(chunk.migration_id);
  if (it == incoming_.end() || it->second->memfd < 0) return;
  Incoming& in = *it->second;
  size_t done = 0;
  while (done < chunk.bytes.size()) {
    ssize_t w = ::pwrite(in.memfd, chunk.bytes.data() + done, chunk.bytes.size() - done,
                         static_cast<off_t>(chunk.offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      // As pages_lost: the move fails now, and the guest runs on at the source.
      restore_failed(chunk.migration_id, context_.node_name() + " cannot hold the image (pwrite: " +
                                             std::strerror(w < 0 ? errno : ENOSPC) + ")");
      return;
    }
    done += static_cast<size_t>(w);
  }
  in.received += done;
  if (in.received - in.reported >= kProgressStep) {
    in.reported = in.received;
    context_.send(0, MigrateProgress{chunk.migration_id, in.request.rank, MigratePhase::kTransfer, in.received,
                                     in.total});
  }
}

// Pre-copied pages: at their address in a sparse memfd, which the
// restorer reads the pre-copied regions from (mosix-restore --pages).
void Migrations::precopy_pages(const PrecopyPages& pages) {
  auto it = incoming_.find(pages.migration_id);
  if (it == incoming_.end() || it->second->going) return;
  Incoming& in = *it->second;
  if (pages.bytes.empty() && pages.hugepage > 0) {
    in.hugepage.push_back({pages.address, pages.hugepage});
    early_word(in, ckpt::EarlyOp::kHugepage, pages.address, pages.hugepage);
    return;
  }
  if (pages.bytes.empty()) {
    // No data: what an earlier round sent there is zero now.
    if (in.pages >= 0 && pages.zero > 0) {
      if (::fallocate(in.pages, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(pages.address),
                      static_cast<off_t>(pages.zero)) != 0) {
        pages_lost(in, "fallocate", errno);
      } else {
        early_word(in, ckpt::EarlyOp::kZero, pages.address, pages.zero);
      }
    }
    return;
  }
  if (in.pages < 0) in.pages = ::memfd_create("mosix-migrate-pages", MFD_CLOEXEC);
  if (in.pages < 0) {
    pages_lost(in, "memfd_create", errno);
    return;
  }
  size_t done = 0;
  while (done < pages.bytes.size()) {
    ssize_t w = ::pwrite(in.pages, pages.bytes.data() + done, pages.bytes.size() - done,
                         static_cast<off_t>(pages.address + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      pages_lost(in, "pwrite", w < 0 ? errno : ENOSPC);
      return;
    }
    done += static_cast<size_t>(w);
  }
  in.precopied += done;
  if (!in.early_tried) start_early(in);
  if (in.early) {
    early_word(in, ckpt::EarlyOp::kStage, pages.address, done);
  } else {
    context_.send(in.source, PrecopyTaken{pages.migration_id, in.precopied});
  }
}

// This node cannot keep the pre-copied pages (no memory for them, or a
// file size limit): the restore could not have them all, so the move fails
// now, while the guest still runs at the source. Waiting for the image would
// stop the guest for nothing, and the source would wait out each round for a
// PrecopyTaken that does not come.
void Migrations::pages_lost(Incoming& in, const char* call, int error) {
  const std::string why = context_.node_name() + " cannot keep the pre-copied pages (" + call + ": " +
                          std::strerror(error) + ")";
  spdlog::warn("{}: rank {}: {}", context_.node_name(), in.request.rank, why);
  restore_failed(in.request.migration_id, why);  // ends the early restorer too, and erases in
}

void Migrations::image_end(const ImageEnd& end) {
  auto it = incoming_.find(end.migration_id);
  if (it == incoming_.end()) return;
  if (end.abandoned) {
    if (it->second->going) return;
    drop_early(*it->second);
    close_image(it->second->memfd);
    close_image(it->second->pages);
    incoming_.erase(it);
    return;
  }
  restore(*it->second, end);
}

void Migrations::restore(Incoming& in, const ImageEnd& end) {
  const std::uint64_t id = in.request.migration_id;
  const std::string& here = context_.node_name();
  if (in.memfd < 0) {
    restore_failed(id, here + " cannot hold the image in memory (memfd_create failed)");
    return;
  }
  if (in.received != end.total_bytes) {
    restore_failed(id, here + " received " + std::to_string(in.received) + " of " +
                           std::to_string(end.total_bytes) + " image bytes");
    return;
  }
  if (LocalGuest* there = guests_.find(in.request.rank); there != nullptr && there != in.guest) {
    restore_failed(id, "rank " + std::to_string(in.request.rank) + " already runs on " + here);
    return;
  }
  // Its forwarded sockets first: one held here may still be on its way back.
  sockets_.arrive(id, in.request.rank, [this, id](Expected<int> sockets) { start_restorer(id, std::move(sockets)); });
}

void Migrations::start_restorer(std::uint64_t id, Expected<int> sockets) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) {
    if (sockets && *sockets >= 0) ::close(*sockets);
    return;
  }
  Incoming& in = *it->second;
  const std::string& here = context_.node_name();
  if (!sockets) {
    restore_failed(id, here + ": " + sockets.error().message);
    return;
  }
  in.going = true;
  if (early_go(in, *sockets)) return;  // restorer_started() follows the go
  launch_restorer(id, *sockets);
}

// The restorer starts after the stop (no early one).
void Migrations::launch_restorer(std::uint64_t id, int sockets) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) {
    if (sockets >= 0) ::close(sockets);
    return;
  }
  Incoming& in = *it->second;
  const std::string& here = context_.node_name();
  GuestStart start;
  start.launch.rank = in.request.rank;
  start.launch.path = restorer_path();
  start.launch.argv = {"mosix-restore", memfd_path(in.memfd)};
  if (in.pages >= 0) {
    start.launch.argv.push_back("--pages");
    start.launch.argv.push_back(memfd_path(in.pages));
  }
  if (sockets >= 0) {
    start.launch.argv.push_back("--sockets");
    start.launch.argv.push_back(std::to_string(sockets));
    start.launch.pass_fd = sockets;
  }
  start.launch.env = {"PATH=/usr/bin:/bin"};
  start.flags = in.request.flags;
  start.phase = GuestPhase::kIncoming;
  start.work_before = in.request.work_done;
  start.stdin_left = std::move(in.stdin_left);
  in.stdin_left.clear();
  auto started = guests_.start_local_guest(std::move(start));
  if (sockets >= 0) ::close(sockets);
  if (!started) {
    restore_failed(id, here + ": cannot start the restorer: " + started.error().message);
    return;
  }
  in.guest = *started;
  restorer_started(id);
}

void Migrations::restorer_started(std::uint64_t id) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  Incoming& in = *it->second;
  in.timer = std::make_unique<asio::steady_timer>(context_.io());
  context_.send(0, MigrateProgress{id, in.request.rank, MigratePhase::kRestore, 0, in.total});
  watch_restore(id);
}

void Migrations::watch_restore(std::uint64_t id) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  Incoming& in = *it->second;
  LocalGuest& g = *in.guest;
  bool restored = false;
  if (g.running) {
    std::string comm = read_comm(g.proc.pid);
    restored = !comm.empty() && comm != "mosix-restore";
  } else {
    // Ended before we saw it change names: a refusal says so on stderr
    // ("mosix-restore: ..."); otherwise the program ran and ended.
    std::string said;
    for (const GuestOutput& o : g.held) {
      if (o.stream == OutputStream::kStderr) said.append(o.bytes.begin(), o.bytes.end());
    }
    if (said.find("mosix-restore: ") != std::string::npos ||
        (WIFEXITED(g.wait_status) && WEXITSTATUS(g.wait_status) == 127 && g.held.empty())) {
      while (!said.empty() && said.back() == '\n') said.pop_back();
      restore_failed(id, context_.node_name() + ": " + (said.empty() ? "the restorer failed" : said));
      return;
    }
    restored = true;
  }
  if (!restored) {
    in.timer->expires_after(std::chrono::milliseconds(2));
    in.timer->async_wait([this, id](error_code ec) {
      if (!ec) watch_restore(id);
    });
    return;
  }
  g.phase = GuestPhase::kLive;
  g.arrived_at = context_.now();
  for (const GuestOutput& o : g.held) context_.send(0, o);
  g.held.clear();
  context_.send(0, GuestStarted{g.rank, g.proc.pid, static_cast<std::uint32_t>(context_.rank())});
  sockets_.arrived(id, g.rank, g.proc.pid);
  MigrateResult ok;
  ok.migration_id = id;
  ok.rank = g.rank;
  ok.ok = true;
  ok.target_node = static_cast<std::uint32_t>(context_.rank());
  ok.pid = g.proc.pid;
  ok.early_bytes = in.early_bytes;
  context_.send(in.source, ok);  // the guest's stop ends with this answer: first
  close_image(in.memfd);
  close_image(in.pages);
  guests_.maybe_report_exit(g);
  ++arrivals_;
  incoming_.erase(it);
}

void Migrations::restore_failed(std::uint64_t id, const std::string& reason) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  Incoming& in = *it->second;
  close_image(in.memfd);
  close_image(in.pages);
  sockets_.not_arrived(id, in.request.rank);
  if (links_ != nullptr) links_->not_arrived(in.request.rank);
  if (in.guest) {
    if (in.guest->running) ::kill(-in.guest->proc.pid, SIGKILL);
    guests_.retire(in.request.rank);
  }
  MigrateResult r;
  r.migration_id = id;
  r.rank = in.request.rank;
  r.reason = reason;
  r.target_node = static_cast<std::uint32_t>(context_.rank());
  context_.send(in.source, r);
  incoming_.erase(it);
}

}  // namespace mosix
