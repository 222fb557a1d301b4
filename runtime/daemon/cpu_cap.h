// CPU caps for the nodes of a virtual cluster: a CpuCap is one cgroup whose
// processes together get at most `cpus` CPUs (0.5 = half of one CPU), made
// with the cgroup CPU controller, v2 (cpu.max) or v1 (cpu.cfs_quota_us and
// cpu.cfs_period_us). Groups live under "<parent>/mosix/<name>", where parent
// is a cgroup this process may write: the hierarchy's root for root, the
// process's own (delegated) cgroup otherwise. detect_cgroups() finds it; when
// none can be written, why_uncapped() says why in one sentence, so the daemon
// can say so once and run uncapped.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "runtime/core/expected.h"

namespace mosix {

enum class CgroupVersion { kNone, kV1, kV2 };

// Where CPU caps can be made. Tests build one by hand over a temporary tree.
struct CgroupRoots {
  CgroupVersion version = CgroupVersion::kNone;
  // An existing cgroup directory this process may write; groups go under
  // parent/mosix/.
  std::string parent;
  // Set when version is kNone: one sentence saying why and what to do.
  std::string problem;
};

// Where detect_cgroups() looks. The defaults are this process's; tests point
// them at files in a temporary directory.
struct CgroupProbe {
  std::string mounts = "/proc/self/mounts";  // fstab format: dev dir type options ...
  std::string self_cgroup = "/proc/self/cgroup";  // "ID:controllers:/path" lines
  std::optional<bool> as_root;  // default: geteuid() == 0
};

// Prefers v2 when its root offers the cpu controller, else a v1 hierarchy
// mounted with "cpu". Root uses the top of the hierarchy; anyone else the
// cgroup /proc/self/cgroup names, if it is delegated to them (writable).
CgroupRoots detect_cgroups(const CgroupProbe& probe = {});

// Why no CPU cap can be made with `roots`, or nothing when caps can be made.
std::optional<std::string> why_uncapped(const CgroupRoots& roots);

// One capped cgroup. Removing it (remove() or the destructor) deletes the
// directory; its processes must be gone by then (a cgroup holding processes
// cannot be removed, which is logged, not fatal).
class CpuCap {
 public:
  // Makes (or reuses) parent/mosix/<name>, e.g. name "job1234/vnode2", and
  // caps it to `cpus` CPUs, at least 0.01, with a CPU weight in proportion
  // (cpu.weight 100 or cpu.shares 1024 per CPU), so that groups keep their
  // ratios when the machine cannot give them their caps. On v2 it enables the cpu
  // controller on the way down; a parent that holds processes has them moved
  // into parent/mosix-leaf first, as cgroup v2 requires, but only if all of
  // them are the job's own (move_job_into_leaf); otherwise no cap is made.
  static Expected<CpuCap> create(std::string name, double cpus, const CgroupRoots& roots);

  CpuCap(CpuCap&& other) noexcept;
  CpuCap& operator=(CpuCap&& other) noexcept;
  CpuCap(const CpuCap&) = delete;
  CpuCap& operator=(const CpuCap&) = delete;
  ~CpuCap();

  // Moves process `pid` (all its threads) into the group. Its children
  // forked afterwards start there too.
  Status add(pid_t pid);
  double cpus() const { return cpus_; }
  // The group's directory ("" once removed).
  const std::string& path() const { return dir_; }
  // parent/mosix: where every job's groups live. It stays when the last
  // goes: its weight (cpu.shares, cpu.weight) is the jobs' priority on the
  // machine, which an administrator or a benchmark may have set.
  const std::string& top() const { return top_; }
  // Removes the group and the directories above it, below parent/mosix,
  // that are left empty. Idempotent.
  Status remove();

 private:
  CpuCap(std::string dir, std::string top, double cpus) : dir_(std::move(dir)), top_(std::move(top)), cpus_(cpus) {}
  std::string dir_;  // parent/mosix/<name>
  std::string top_;  // parent/mosix: removal stops below it
  double cpus_ = 0;
  bool kernel_ = true;  // on a cgroup file system, not a test tree
};

// Removes the directories above group `dir` (already removed) that are
// left empty, below `top` (parent/mosix, which stays). A directory that still holds a live
// group of another node stays (its owner removes it last). cgroup v1 takes a
// removed group offline some time after rmdir returns; until then its
// parent's rmdir says EBUSY with no subdirectory left, which is waited out
// (up to 30 s), not taken for "in use". `kernel`: a cgroup file system, not
// a test tree. Used by CpuCap::remove and by the orphan watcher.
void remove_empty_parents(const std::string& dir, const std::string& top, bool kernel = true);

// Under cgroup v2 a cgroup other than the root cannot pass a controller to
// its children while it holds processes itself. This moves the processes of
// `cgroup` into cgroup/mosix-leaf, for good, if every one of them is the
// job's own: `job_root` (the job's mosixrun; CpuCap::create takes it from the
// name "job<PID>/...") or one of its descendants. If any is not (the user's
// shell, a container's init), it moves none and the error names that process.
// Used by CpuCap::create; public for tests.
Status move_job_into_leaf(const std::string& cgroup, pid_t job_root);

// The period used for caps, in microseconds, and the quota for `cpus`.
inline constexpr long kCpuCapPeriodUs = 100000;
long cpu_cap_quota_us(double cpus);

}  // namespace mosix
