#include "runtime/job/job_registry.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include <gtest/gtest.h>

#include "runtime/sys/runtime_dir.h"

namespace mosix {
namespace {

namespace fs = std::filesystem;

mode_t mode_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Every test gets its own XDG_RUNTIME_DIR and puts the old one back.
class JobRegistryTest : public testing::Test {
 protected:
  void SetUp() override {
    if (const char* old = std::getenv("XDG_RUNTIME_DIR")) old_ = old;
    std::string pattern = (fs::temp_directory_path() / "mosix_registry_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    ASSERT_EQ(setenv("XDG_RUNTIME_DIR", root_.c_str(), 1), 0);
  }
  void TearDown() override {
    if (old_) {
      setenv("XDG_RUNTIME_DIR", old_->c_str(), 1);
    } else {
      unsetenv("XDG_RUNTIME_DIR");
    }
    fs::remove_all(root_);
  }
  std::string jobs_dir() const { return root_ + "/mosix/jobs"; }

  static JobRecord job(const std::string& id, long start_time = 100) {
    JobRecord j;
    j.id = id;
    j.launcher_pid = getpid();
    j.home_node = "node1";
    j.command = "./a.out 1 2";
    j.cwd = "/home/ann";
    j.start_time = start_time;
    return j;
  }

  std::string root_;
  std::optional<std::string> old_;
};

// A pid that is certainly not running: a child that has exited and been reaped.
pid_t dead_pid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

TEST_F(JobRegistryTest, RuntimeDirIsPrivateUnderXdgRuntimeDir) {
  auto dir = sys::runtime_dir();
  ASSERT_TRUE(dir.ok()) << dir.error().message;
  EXPECT_EQ(dir.value(), root_ + "/mosix");
  EXPECT_EQ(mode_of(dir.value()), 0700u);
}

// A relative XDG_RUNTIME_DIR is not used: the rule's next places are
// /run/user/UID/mosix when /run/user/UID is a directory, else /tmp/mosix-UID
// (docs/runtime-directory.md).
TEST_F(JobRegistryTest, RuntimeDirFallsBackWhenXdgIsRelative) {
  ASSERT_EQ(setenv("XDG_RUNTIME_DIR", "relative/dir", 1), 0);
  const std::string run_user = "/run/user/" + std::to_string(getuid());
  const std::string expected = fs::is_directory(run_user) ? run_user + "/mosix"
                                                          : "/tmp/mosix-" + std::to_string(getuid());
  auto dir = sys::runtime_dir();
  ASSERT_TRUE(dir.ok()) << dir.error().message;
  EXPECT_EQ(dir.value(), expected);
  EXPECT_EQ(mode_of(dir.value()), 0700u);
}

TEST_F(JobRegistryTest, RuntimeDirTightensOurOwnOpenDirectory) {
  ASSERT_EQ(mkdir((root_ + "/mosix").c_str(), 0755), 0);
  ASSERT_EQ(chmod((root_ + "/mosix").c_str(), 0755), 0);
  ASSERT_TRUE(sys::runtime_dir().ok());
  EXPECT_EQ(mode_of(root_ + "/mosix"), 0700u);
}

TEST_F(JobRegistryTest, RuntimeDirRefusesASymlink) {
  ASSERT_EQ(mkdir((root_ + "/elsewhere").c_str(), 0700), 0);
  ASSERT_EQ(symlink((root_ + "/elsewhere").c_str(), (root_ + "/mosix").c_str()), 0);
  auto dir = sys::runtime_dir();
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find(root_ + "/mosix"), std::string::npos);
}

TEST_F(JobRegistryTest, RuntimeDirRefusesAnotherUsersDirectory) {
  if (getuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  ASSERT_EQ(mkdir((root_ + "/mosix").c_str(), 0700), 0);
  ASSERT_EQ(chown((root_ + "/mosix").c_str(), 65534, 65534), 0);
  auto dir = sys::runtime_dir();
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find("belongs to uid 65534"), std::string::npos) << dir.error().message;
}

TEST_F(JobRegistryTest, WrittenJobIsListedWithPrivateModes) {
  ASSERT_TRUE(write_job(job("4242")).ok());
  EXPECT_EQ(mode_of(jobs_dir()), 0700u);
  EXPECT_EQ(mode_of(jobs_dir() + "/4242.json"), 0600u);
  auto jobs = list_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, "4242");
  EXPECT_EQ(jobs[0].command, "./a.out 1 2");
  EXPECT_NE(jobs[0].launcher_start_ticks, 0u) << "write_job records the launcher's start time";
}

TEST_F(JobRegistryTest, WriteReplacesTheRecordAndLeavesNoTemporaryFile) {
  ASSERT_TRUE(write_job(job("7")).ok());
  JobRecord changed = job("7");
  changed.command = "./b.out";
  ASSERT_TRUE(write_job(changed).ok());
  auto jobs = list_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].command, "./b.out");
  EXPECT_EQ(std::distance(fs::directory_iterator(jobs_dir()), fs::directory_iterator()), 1);
}

TEST_F(JobRegistryTest, IdsThatAreNotOneFileNameAreRefused) {
  for (const char* id : {"", "../escape", "a/b", ".hidden"}) {
    EXPECT_FALSE(write_job(job(id)).ok()) << "id '" << id << "'";
  }
}

TEST_F(JobRegistryTest, RemoveJobIsIdempotent) {
  ASSERT_TRUE(write_job(job("11")).ok());
  remove_job("11");
  EXPECT_TRUE(list_jobs().empty());
  remove_job("11");
  remove_job("../11");
  EXPECT_FALSE(fs::exists(jobs_dir() + "/11.json"));
}

TEST_F(JobRegistryTest, OldestFirst) {
  ASSERT_TRUE(write_job(job("b", 300)).ok());
  ASSERT_TRUE(write_job(job("a", 100)).ok());
  ASSERT_TRUE(write_job(job("c", 200)).ok());
  auto jobs = list_jobs();
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].id, "a");
  EXPECT_EQ(jobs[1].id, "c");
  EXPECT_EQ(jobs[2].id, "b");
}

TEST_F(JobRegistryTest, RecordOfADeadLauncherIsRemoved) {
  JobRecord dead = job("dead");
  dead.launcher_pid = dead_pid();
  ASSERT_TRUE(write_job(dead).ok());
  ASSERT_TRUE(write_job(job("alive")).ok());
  auto jobs = list_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, "alive");
  EXPECT_FALSE(fs::exists(jobs_dir() + "/dead.json"));
}

TEST_F(JobRegistryTest, ReusedPidIsNotTakenForTheLauncher) {
  ASSERT_TRUE(write_job(job("mine")).ok());
  auto jobs = list_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  JobRecord stale = job("stale");
  stale.launcher_start_ticks = jobs[0].launcher_start_ticks + 1;
  ASSERT_TRUE(write_job(stale).ok());
  jobs = list_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, "mine");
  EXPECT_FALSE(fs::exists(jobs_dir() + "/stale.json"));
}

TEST_F(JobRegistryTest, ZombieLauncherCountsAsDead) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);
  JobRecord zombie = job("zombie");
  zombie.launcher_pid = pid;
  ASSERT_TRUE(write_job(zombie).ok());
  EXPECT_TRUE(list_jobs().empty());
  waitpid(pid, nullptr, 0);
}

TEST_F(JobRegistryTest, CorruptRecordIsSkippedButKept) {
  ASSERT_TRUE(write_job(job("good")).ok());
  std::ofstream(jobs_dir() + "/bad.json") << "{ truncated";
  auto jobs = list_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, "good");
  EXPECT_TRUE(fs::exists(jobs_dir() + "/bad.json"));
}

TEST_F(JobRegistryTest, AbandonedTemporaryFileIsCleanedUp) {
  ASSERT_TRUE(sys::runtime_dir().ok());
  ASSERT_TRUE(write_job(job("x")).ok());
  std::string tmp = jobs_dir() + "/.x.json.tmp." + std::to_string(dead_pid());
  std::ofstream(tmp) << "{}";
  list_jobs();
  EXPECT_FALSE(fs::exists(tmp));
}

// Records are written with sys::AtomicFile: a dead writer's temporary has its
// name (".<id>.json.tmp.<pid>.XXXXXX") and goes too; a live writer's stays.
TEST_F(JobRegistryTest, AbandonedAtomicFileTemporaryIsCleanedUp) {
  ASSERT_TRUE(write_job(job("x")).ok());
  std::string dead = jobs_dir() + "/.x.json.tmp." + std::to_string(dead_pid()) + ".AbC123";
  std::string alive = jobs_dir() + "/.y.json.tmp." + std::to_string(getpid()) + ".AbC123";
  std::ofstream(dead) << "{}";
  std::ofstream(alive) << "{}";
  list_jobs();
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
}

TEST(JobJson, RoundTripWithGuests) {
  JobRecord j;
  j.id = "1234";
  j.launcher_pid = 1234;
  j.home_node = "n01";
  j.command = "mpi_prog --size 10";
  j.cwd = "/scratch/ann";
  j.control_socket = "/run/user/1000/mosix/1234.sock";
  j.start_time = 1700000000;
  j.launcher_start_ticks = 987654;
  j.guests = {{0, 1240, "n01", "running", -1}, {1, 5512, "n02", "exited", 137}};
  auto back = job_from_json(job_to_json(j));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->id, j.id);
  EXPECT_EQ(back->launcher_pid, j.launcher_pid);
  EXPECT_EQ(back->home_node, j.home_node);
  EXPECT_EQ(back->command, j.command);
  EXPECT_EQ(back->cwd, j.cwd);
  EXPECT_EQ(back->control_socket, j.control_socket);
  EXPECT_EQ(back->start_time, j.start_time);
  EXPECT_EQ(back->launcher_start_ticks, j.launcher_start_ticks);
  ASSERT_EQ(back->guests.size(), 2u);
  EXPECT_EQ(back->guests[1].rank, 1);
  EXPECT_EQ(back->guests[1].pid, 5512);
  EXPECT_EQ(back->guests[1].node, "n02");
  EXPECT_EQ(back->guests[1].state, "exited");
  EXPECT_EQ(back->guests[1].exit_code, 137);
}

TEST(JobJson, RefusesWhatIsNotARecord) {
  EXPECT_FALSE(job_from_json("").ok());
  EXPECT_FALSE(job_from_json("[1,2]").ok());
  EXPECT_FALSE(job_from_json(R"({"version":1})").ok());
  EXPECT_FALSE(job_from_json(R"({"version":2,"id":"1","launcher_pid":1})").ok());
  EXPECT_FALSE(job_from_json(R"({"version":1,"id":"../1","launcher_pid":1})").ok());
  EXPECT_TRUE(job_from_json(R"({"version":1,"id":"1","launcher_pid":1})").ok());
}

}  // namespace
}  // namespace mosix
