#include "runtime/daemon/checkpoint_scheduler.h"

#include <spdlog/spdlog.h>
#include <utility>
#include <vector>

#include "runtime/ckpt/request.h"

namespace mosix {

bool periodic_checkpoints_on(const NodeDaemonOptions& options) {
  return options.ckpt_interval > 0 && !options.ckpt_dir.empty();
}

std::string rank_image_path(const std::string& dir, int rank) {
  return dir + "/rank." + std::to_string(rank) + ".img";
}

bool checkpoint_this_round(const LocalGuest& guest) {
  return guest.phase == GuestPhase::kLive && guest.running && !guest.migrating;
}

RoundPlan plan_round(double interval_seconds, bool last_round_running) {
  RoundPlan plan;
  plan.start = !last_round_running;
  plan.next = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(interval_seconds));
  return plan;
}

Expected<std::uint64_t> checkpoint_guest(const CheckpointTarget& target) {
  ckpt::CheckpointRequest r;
  r.pid = target.pid;
  r.image_path = target.image;
  r.mode = ckpt::AfterCheckpoint::kLeaveRunning;
  r.compression = ckpt::Compression::fast;
  auto done = ckpt::request_checkpoint(r);
  if (!done) return done.error();
  return done->bytes;
}

CheckpointScheduler::CheckpointScheduler(DaemonContext& context, const GuestTable& guests, Checkpointer checkpoint)
    : context_(context), guests_(guests), checkpoint_(std::move(checkpoint)), timer_(context.io()) {}

CheckpointScheduler::~CheckpointScheduler() { join(); }

void CheckpointScheduler::start() {
  if (!periodic_checkpoints_on(context_.options())) return;
  arm(plan_round(context_.options().ckpt_interval, false).next);
}

void CheckpointScheduler::arm(std::chrono::steady_clock::duration after) {
  timer_.expires_after(after);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || context_.shutting_down()) return;
    const RoundPlan plan = plan_round(context_.options().ckpt_interval, busy_);
    if (plan.start) start_round();
    arm(plan.next);
  });
}

bool CheckpointScheduler::start_round() {
  if (busy_) return false;
  std::vector<CheckpointTarget> targets;
  for (const auto& [rank, g] : guests_.guests()) {
    if (checkpoint_this_round(*g)) targets.push_back({rank, g->proc.pid, rank_image_path(context_.options().ckpt_dir, rank)});
  }
  join();
  busy_ = true;
  round_ = std::thread([this, targets = std::move(targets), name = context_.node_name()] {
    for (const CheckpointTarget& target : targets) {
      auto done = checkpoint_(target);
      if (done) {
        spdlog::debug("{}: rank {}: checkpoint {} ({} bytes)", name, target.rank, target.image, *done);
      } else {
        spdlog::warn("{}: rank {}: periodic checkpoint failed: {}", name, target.rank, done.error().message);
      }
    }
    busy_ = false;
  });
  return true;
}

void CheckpointScheduler::join() {
  if (round_.joinable()) round_.join();
}

}  // namespace mosix
