// CpuCap and detect_cgroups over fake cgroup trees in a temporary directory:
// v1 and v2 layouts, files written and read back, and the sentence a user
// gets when no cgroup can be written.
#include "runtime/daemon/cpu_cap.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace mosix {
namespace {

namespace fs = std::filesystem;

class CpuCapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "cpu_cap_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    // Readable by the unprivileged user of the permission test.
    fs::permissions(root_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  }
  void TearDown() override {
    std::error_code ec;
    for (const auto& entry : fs::recursive_directory_iterator(root_, ec)) {
      if (entry.is_directory(ec)) fs::permissions(entry.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(root_, ec);
  }

  std::string path(const std::string& rel) const { return (root_ / rel).string(); }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << text;
  }
  std::string read(const std::string& rel) const {
    std::ifstream in(root_ / rel);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  bool exists(const std::string& rel) const { return fs::exists(root_ / rel); }

  // A v2 cgroup directory as the kernel shows it.
  void make_v2_group(const std::string& rel, const std::string& controllers,
                     const std::string& subtree = "") const {
    write(rel + "/cgroup.controllers", controllers);
    write(rel + "/cgroup.subtree_control", subtree);
    write(rel + "/cgroup.procs", "");
  }
  CgroupProbe probe(const std::string& mounts, const std::string& self, std::optional<bool> as_root) const {
    write("proc/mounts", mounts);
    write("proc/cgroup", self);
    return CgroupProbe{path("proc/mounts"), path("proc/cgroup"), as_root};
  }
  // A v2 tree whose root offers cpu, with this process in /user/session.
  CgroupProbe v2_probe(bool as_root) const {
    make_v2_group("unified", "cpuset cpu io memory pids");
    make_v2_group("unified/user", "cpu memory", "cpu memory");
    make_v2_group("unified/user/session", "cpu memory");
    return probe("cgroup2 " + path("unified") + " cgroup2 rw,nosuid,relatime 0 0\n", "0::/user/session\n",
                 as_root);
  }
  // A hybrid tree like this machine's: cgroup2 without cpu, cpu on v1.
  CgroupProbe v1_probe(bool as_root) const {
    make_v2_group("unified", "hugetlb");
    write("cpu,cpuacct/cgroup.procs", "");
    write("cpu,cpuacct/batch/cgroup.procs", "");
    write("memory/cgroup.procs", "");
    return probe("tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
                 "cgroup " + path("memory") + " cgroup rw,nosuid,memory 0 0\n"
                 "cgroup " + path("cpu,cpuacct") + " cgroup rw,nosuid,cpu,cpuacct 0 0\n"
                 "cgroup2 " + path("unified") + " cgroup2 rw 0 0\n",
                 "5:memory:/\n2:cpu,cpuacct:/batch\n0::/\n", as_root);
  }

  fs::path root_;
};

TEST_F(CpuCapTest, QuotaIsTheShareOfThePeriod) {
  EXPECT_EQ(cpu_cap_quota_us(0.25), 25000);
  EXPECT_EQ(cpu_cap_quota_us(0.5), 50000);
  EXPECT_EQ(cpu_cap_quota_us(2), 200000);
}

TEST_F(CpuCapTest, RootUsesTheTopOfAV2HierarchyThatOffersCpu) {
  CgroupRoots roots = detect_cgroups(v2_probe(true));
  EXPECT_EQ(roots.version, CgroupVersion::kV2);
  EXPECT_EQ(roots.parent, path("unified"));
  EXPECT_EQ(why_uncapped(roots), std::nullopt);
}

TEST_F(CpuCapTest, OthersUseTheirOwnDelegatedV2Cgroup) {
  CgroupRoots roots = detect_cgroups(v2_probe(false));
  EXPECT_EQ(roots.version, CgroupVersion::kV2);
  EXPECT_EQ(roots.parent, path("unified/user/session"));
}

TEST_F(CpuCapTest, V2CgroupWithoutTheCpuControllerIsExplained) {
  CgroupProbe p = v2_probe(false);
  write("unified/user/session/cgroup.controllers", "memory");
  CgroupRoots roots = detect_cgroups(p);
  EXPECT_EQ(roots.version, CgroupVersion::kNone);
  auto why = why_uncapped(roots);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("cpu controller is not available in cgroup " + path("unified/user/session")),
            std::string::npos)
      << *why;
}

TEST_F(CpuCapTest, HybridLayoutUsesTheV1CpuMount) {
  CgroupRoots roots = detect_cgroups(v1_probe(true));
  EXPECT_EQ(roots.version, CgroupVersion::kV1);
  EXPECT_EQ(roots.parent, path("cpu,cpuacct"));
  roots = detect_cgroups(v1_probe(false));
  EXPECT_EQ(roots.version, CgroupVersion::kV1);
  EXPECT_EQ(roots.parent, path("cpu,cpuacct/batch"));
}

TEST_F(CpuCapTest, EscapedMountPointsAreDecoded) {
  write("my cgroups/cgroup.procs", "");
  CgroupRoots roots = detect_cgroups(
      probe("cgroup " + path("my\\040cgroups") + " cgroup rw,cpu 0 0\n", "1:cpu:/\n", true));
  EXPECT_EQ(roots.version, CgroupVersion::kV1);
  EXPECT_EQ(roots.parent, path("my cgroups"));
}

TEST_F(CpuCapTest, NoCpuHierarchyIsExplained) {
  CgroupRoots roots = detect_cgroups(
      probe("cgroup " + path("memory") + " cgroup rw,memory 0 0\n", "1:memory:/\n", true));
  EXPECT_EQ(roots.version, CgroupVersion::kNone);
  auto why = why_uncapped(roots);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("no cgroup hierarchy with the cpu controller is mounted"), std::string::npos) << *why;
}

TEST_F(CpuCapTest, V2CapEnablesCpuOnTheWayDownAndWritesCpuMax) {
  CgroupRoots roots = detect_cgroups(v2_probe(true));
  auto cap = CpuCap::create("job1/vnode2", 0.5, roots);
  ASSERT_TRUE(cap) << cap.error().message;
  EXPECT_EQ(cap->path(), path("unified/mosix/job1/vnode2"));
  EXPECT_EQ(cap->cpus(), 0.5);
  EXPECT_EQ(read("unified/cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(read("unified/mosix/cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(read("unified/mosix/job1/cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(read("unified/mosix/job1/vnode2/cpu.max"), "50000 100000");
  EXPECT_FALSE(exists("unified/mosix/job1/vnode2/cpu.cfs_quota_us"));
  EXPECT_EQ(read("unified/mosix/job1/vnode2/cpu.weight"), "50");  // 100 per CPU
  ASSERT_TRUE(cap->add(1234));
  ASSERT_TRUE(cap->add(5678));
  EXPECT_EQ(read("unified/mosix/job1/vnode2/cgroup.procs"), "1234\n5678\n");
}

TEST_F(CpuCapTest, CpuAlreadyEnabledIsLeftAsItIs) {
  CgroupRoots roots = detect_cgroups(v2_probe(false));
  write("unified/user/session/cgroup.subtree_control", "cpu memory");
  auto cap = CpuCap::create("j/v", 1.5, roots);
  ASSERT_TRUE(cap) << cap.error().message;
  EXPECT_EQ(read("unified/user/session/cgroup.subtree_control"), "cpu memory");
  EXPECT_EQ(read("unified/user/session/mosix/j/v/cpu.max"), "150000 100000");
  EXPECT_EQ(read("unified/user/session/mosix/j/v/cpu.weight"), "150");
}

TEST_F(CpuCapTest, V1CapWritesPeriodAndQuota) {
  CgroupRoots roots = detect_cgroups(v1_probe(true));
  auto cap = CpuCap::create("job7/vnode0", 0.25, roots);
  ASSERT_TRUE(cap) << cap.error().message;
  EXPECT_EQ(read("cpu,cpuacct/mosix/job7/vnode0/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(read("cpu,cpuacct/mosix/job7/vnode0/cpu.cfs_quota_us"), "25000");
  EXPECT_EQ(read("cpu,cpuacct/mosix/job7/vnode0/cpu.shares"), "256");  // 1024 per CPU
  EXPECT_FALSE(exists("cpu,cpuacct/mosix/job7/vnode0/cpu.max"));
  EXPECT_FALSE(exists("cpu,cpuacct/cgroup.subtree_control"));
  ASSERT_TRUE(cap->add(42));
  EXPECT_EQ(read("cpu,cpuacct/mosix/job7/vnode0/cgroup.procs"), "42\n");
}

// parent/mosix stays: its weight is the jobs' priority (a benchmark raises
// it for its runs, and lost it when the first job's end removed it).
TEST_F(CpuCapTest, RemovalDeletesTheGroupAndTheJobOnceEmpty) {
  CgroupRoots roots = detect_cgroups(v1_probe(true));
  auto a = CpuCap::create("job1/vnode0", 1, roots);
  auto b = CpuCap::create("job1/vnode1", 2, roots);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->remove());
  EXPECT_FALSE(exists("cpu,cpuacct/mosix/job1/vnode0"));
  EXPECT_TRUE(exists("cpu,cpuacct/mosix/job1/vnode1/cpu.cfs_quota_us"));
  EXPECT_EQ(a->path(), "");
  EXPECT_TRUE(a->remove());  // idempotent
  EXPECT_FALSE(a->add(1));
  auto other_job = CpuCap::create("job2/vnode0", 1, roots);
  ASSERT_TRUE(other_job);
  ASSERT_TRUE(b->remove());
  EXPECT_FALSE(exists("cpu,cpuacct/mosix/job1"));
  EXPECT_TRUE(exists("cpu,cpuacct/mosix/job2/vnode0"));
  ASSERT_TRUE(other_job->remove());
  EXPECT_FALSE(exists("cpu,cpuacct/mosix/job2"));
  EXPECT_TRUE(exists("cpu,cpuacct/mosix"));
  EXPECT_TRUE(exists("cpu,cpuacct/cgroup.procs"));
}

// A job killed with its daemons leaves its groups behind. The next job's
// daemons remove them once that job's mosixrun (the job id is its pid) is
// no process any more; groups of a live job, and directories not named like
// a job's, stay.
TEST_F(CpuCapTest, GroupsOfAJobWhoseMosixrunIsGoneAreSweptAway) {
  CgroupRoots roots = detect_cgroups(v1_probe(true));
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);  // its pid is no process now
  const std::string gone = "cpu,cpuacct/mosix/job" + std::to_string(dead);
  const std::string alive = "cpu,cpuacct/mosix/job" + std::to_string(::getpid());
  write(gone + "/vnode0/cpu.cfs_quota_us", "25000");
  write(gone + "/vnode1/cpu.cfs_quota_us", "50000");
  write(alive + "/vnode0/cpu.cfs_quota_us", "25000");
  write("cpu,cpuacct/mosix/jobs-of-another-tool/vnode0/cpu.shares", "1024");
  auto cap = CpuCap::create("job1/vnode0", 1, roots);
  ASSERT_TRUE(cap) << cap.error().message;
  EXPECT_FALSE(exists(gone));
  EXPECT_TRUE(exists(alive + "/vnode0/cpu.cfs_quota_us"));
  EXPECT_TRUE(exists("cpu,cpuacct/mosix/jobs-of-another-tool/vnode0/cpu.shares"));
  EXPECT_TRUE(exists("cpu,cpuacct/mosix/job1/vnode0/cpu.cfs_quota_us"));
}

TEST_F(CpuCapTest, DestructorRemovesAndAMovedCapHasOneOwner) {
  CgroupRoots roots = detect_cgroups(v2_probe(true));
  {
    auto made = CpuCap::create("job2/vnode0", 0.5, roots);
    ASSERT_TRUE(made);
    CpuCap moved = std::move(made).value();
    EXPECT_TRUE(exists("unified/mosix/job2/vnode0/cpu.max"));
  }
  EXPECT_FALSE(exists("unified/mosix/job2"));
  EXPECT_TRUE(exists("unified/mosix"));
}

TEST_F(CpuCapTest, BadSharesAndNamesAreRefused) {
  CgroupRoots roots = detect_cgroups(v2_probe(true));
  for (double cpus : {0.0, -1.0, 0.001, std::nan("")}) {
    auto cap = CpuCap::create("job/v", cpus, roots);
    ASSERT_FALSE(cap) << cpus;
    EXPECT_NE(cap.error().message.find("give at least 0.01"), std::string::npos) << cap.error().message;
  }
  for (const char* name : {"", "/abs", "a//b", "a/", "../up", "a/./b", "cpu.max"}) {
    auto cap = CpuCap::create(name, 1, roots);
    ASSERT_FALSE(cap) << name;
    EXPECT_NE(cap.error().message.find("bad CPU cap group name"), std::string::npos) << cap.error().message;
  }
}

TEST_F(CpuCapTest, UncappedRootsRefuseToCreate) {
  CgroupRoots none;
  none.problem = "cannot cap CPU: because";
  auto cap = CpuCap::create("job/v", 1, none);
  ASSERT_FALSE(cap);
  EXPECT_EQ(cap.error().message, "cannot cap CPU: because");
  EXPECT_TRUE(why_uncapped(CgroupRoots{}));
}

// Runs `body` as an unprivileged user when we are root (root writes
// anything), and returns what it printed.
std::string run_unprivileged(const std::function<std::string()>& body) {
  if (::geteuid() != 0) return body();
  int p[2];
  if (::pipe(p) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    std::string out = "setuid failed";
    if (::setresgid(65534, 65534, 65534) == 0 && ::setresuid(65534, 65534, 65534) == 0) out = body();
    if (::write(p[1], out.data(), out.size()) < 0) ::_exit(2);
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

TEST_F(CpuCapTest, CgroupNotWritableByUsIsExplainedInOneSentence) {
  CgroupProbe p = v1_probe(false);
  fs::permissions(path("cpu,cpuacct/batch"), fs::perms::owner_all | fs::perms::group_read |
                                                  fs::perms::group_exec | fs::perms::others_read |
                                                  fs::perms::others_exec);
  if (::geteuid() != 0) fs::permissions(path("cpu,cpuacct/batch"), fs::perms::owner_write, fs::perm_options::remove);
  std::string why = run_unprivileged([&] {
    auto w = why_uncapped(detect_cgroups(p));
    return w ? *w : std::string("capped");
  });
  EXPECT_EQ(why, "cannot cap CPU: not root, and cgroup " + path("cpu,cpuacct/batch") +
                     " is not writable (Permission denied); run as root, or start mosixrun inside a cgroup "
                     "delegated to you (e.g. systemd-run --user --scope -p Delegate=yes mosixrun ...)");
}

TEST_F(CpuCapTest, PermissionDeniedWhileCreatingNamesTheDirectory) {
  CgroupRoots roots = detect_cgroups(v1_probe(true));
  if (::geteuid() != 0) fs::permissions(path("cpu,cpuacct"), fs::perms::owner_write, fs::perm_options::remove);
  std::string message = run_unprivileged([&] {
    auto cap = CpuCap::create("job/v", 1, roots);
    return cap ? std::string("created") : cap.error().message;
  });
  EXPECT_EQ(message, "cannot make cgroup " + path("cpu,cpuacct/mosix") + ": Permission denied");
}


// A child of this test that lives until the test ends it: a process of the
// job's own tree when the test is the job's root.
struct Child {
  Child() {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid = ::fork();
    if (pid == 0) {
      ::close(fds[1]);
      char c;
      (void)!::read(fds[0], &c, 1);
      ::_exit(0);
    }
    ::close(fds[0]);
    release = fds[1];
  }
  ~Child() {
    ::close(release);
    ::waitpid(pid, nullptr, 0);
  }
  pid_t pid = -1;
  int release = -1;
};

// Under cgroup v2 the cgroup mosixrun was started in may hold the user's
// shell, or a container's whole root group: those are never moved.
TEST_F(CpuCapTest, LeafTakesNoProcessThatIsNotTheJobs) {
  make_v2_group("unified/user/session", "cpu memory");
  Child child;
  const std::string self = std::to_string(::getpid()), kid = std::to_string(child.pid);
  const std::string other = std::to_string(::getppid());  // ctest or a shell: not ours
  const std::string procs = self + "\n" + kid + "\n" + other + "\n";
  write("unified/user/session/cgroup.procs", procs);
  Status s = move_job_into_leaf(path("unified/user/session"), ::getpid());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("holds process " + other + " ("), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("not this job's"), std::string::npos) << s.error().message;
  EXPECT_EQ(read("unified/user/session/mosix-leaf/cgroup.procs"), "") << "nothing moved, ours neither";
  EXPECT_EQ(read("unified/user/session/cgroup.procs"), procs);
  // pid 1 (init, or a container's) is not the job's either.
  write("unified/user/session/cgroup.procs", "1\n" + self + "\n");
  EXPECT_FALSE(move_job_into_leaf(path("unified/user/session"), ::getpid()).ok());
  EXPECT_EQ(read("unified/user/session/mosix-leaf/cgroup.procs"), "");
}

TEST_F(CpuCapTest, LeafTakesTheJobsRootAndDescendants) {
  make_v2_group("unified/user/session", "cpu memory");
  Child child;
  pid_t gone = ::fork();  // a process that exited meanwhile is skipped
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const std::string self = std::to_string(::getpid()), kid = std::to_string(child.pid);
  write("unified/user/session/cgroup.procs", self + "\n" + std::to_string(gone) + "\n" + kid + "\n");
  Status s = move_job_into_leaf(path("unified/user/session"), ::getpid());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(read("unified/user/session/mosix-leaf/cgroup.procs"), self + "\n" + kid + "\n");
  // The child alone, with this test as the job's root, is ours too; with the
  // child as the root, this test (its parent) is not.
  write("unified/user/session/cgroup.procs", self + "\n");
  EXPECT_FALSE(move_job_into_leaf(path("unified/user/session"), child.pid).ok());
}

}  // namespace
}  // namespace mosix
