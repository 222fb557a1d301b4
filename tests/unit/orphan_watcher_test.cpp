// The orphan watcher, run for real: an "owner" process (forked) starts a
// watcher, tells it what to clean up, and ends without releasing it (as if
// killed) or after releasing it. This test is the owner's parent and a child
// subreaper, so the watcher becomes its child when the owner is gone and its
// end can be waited for: no sleeping.
#include "runtime/daemon/orphan_watcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace mosix {
namespace {

namespace fs = std::filesystem;

// A child that waits for a signal, in its own process group if asked.
pid_t start_sleeper(bool own_group) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (own_group) ::setpgid(0, 0);
    for (;;) ::pause();
  }
  if (own_group) ::setpgid(pid, pid);  // before the watcher reads its start time
  return pid;
}

void make_socket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path << ": " << std::strerror(errno);
  ::close(fd);
}

// How a child ended: the signal that killed it, or -1.
int killed_by(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFSIGNALED(status) ? WTERMSIG(status) : -1;
}

class OrphanWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char tmpl[] = "/tmp/orphan_watcher_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Sockets of a job, and a file that is not a socket beside them.
    fs::create_directories(dir_ + "/job-1");
    make_socket(dir_ + "/job-1/home.sock");
    make_socket(dir_ + "/job-1/control.sock");
    fs::create_directories(dir_ + "/job-2");
    make_socket(dir_ + "/job-2/control.sock");
    std::ofstream(dir_ + "/job-2/notes") << "not a socket\n";
    // Cgroups as directories: two nodes of job 9, one node of job 8.
    fs::create_directories(dir_ + "/top/job9/vnode1");
    fs::create_directories(dir_ + "/top/job9/vnode2");
    fs::create_directories(dir_ + "/top/job8/vnode0");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Forks an owner that starts a watcher, has it watch `group`, remove the
  // sockets of job-1 and job-2 and the groups job9/vnode1, job8/vnode0 and
  // job7/vnode0 (whose cgroup.procs names `member`), then ends, releasing the
  // watcher first if `release`. Returns once the watcher has ended.
  void run_owner(pid_t group, pid_t member, bool release) {
    fs::create_directories(dir_ + "/top/job7/vnode0");
    std::ofstream(dir_ + "/top/job7/vnode0/cgroup.procs") << member << "\n";
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    pid_t owner = ::fork();
    if (owner == 0) {
      ::close(p[0]);
      auto watcher = OrphanWatcher::start();
      if (!watcher) ::_exit(1);
      pid_t w = watcher->pid();
      watcher->watch(group);
      watcher->remove_sockets_at_death(dir_ + "/job-1");
      watcher->remove_sockets_at_death(dir_ + "/job-2");
      watcher->remove_cgroup_at_death(dir_ + "/top/job9/vnode1", dir_ + "/top");
      watcher->remove_cgroup_at_death(dir_ + "/top/job8/vnode0", dir_ + "/top");
      watcher->remove_cgroup_at_death(dir_ + "/top/job7/vnode0", dir_ + "/top");
      if (release) watcher->release();
      [[maybe_unused]] ssize_t n = ::write(p[1], &w, sizeof w);
      ::_exit(0);  // no destructor: as if killed
    }
    ::close(p[1]);
    pid_t watcher = -1;
    ASSERT_EQ(::read(p[0], &watcher, sizeof watcher), static_cast<ssize_t>(sizeof watcher));
    ::close(p[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(owner, &status, 0), owner);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    // Ours now (subreaper): its end is the end of its work.
    ASSERT_EQ(::waitpid(watcher, &status, 0), watcher);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  bool exists(const std::string& rel) const { return fs::exists(dir_ + "/" + rel); }
  std::string dir_;
};

TEST_F(OrphanWatcherTest, OwnerKilledGroupsKilledAndItsFilesRemoved) {
  pid_t group = start_sleeper(true);
  pid_t member = start_sleeper(false);
  run_owner(group, member, false);
  EXPECT_EQ(killed_by(group), SIGKILL);
  EXPECT_EQ(killed_by(member), SIGKILL) << "a process left in the job's cgroup is killed";
  EXPECT_FALSE(exists("job-1")) << "its sockets and then the directory go";
  EXPECT_FALSE(exists("job-2/control.sock"));
  EXPECT_TRUE(exists("job-2/notes")) << "only sockets are removed";
  EXPECT_TRUE(exists("job-2"));
  EXPECT_FALSE(exists("top/job9/vnode1"));
  EXPECT_TRUE(exists("top/job9/vnode2")) << "another node's group stays";
  EXPECT_TRUE(exists("top/job9"));
  EXPECT_FALSE(exists("top/job8")) << "the job's directory goes with its last group";
  EXPECT_TRUE(exists("top")) << "the top stays";
}

TEST_F(OrphanWatcherTest, ReleasedWatcherLeavesEverything) {
  pid_t group = start_sleeper(true);
  pid_t member = start_sleeper(false);
  run_owner(group, member, true);
  EXPECT_EQ(::kill(group, 0), 0) << "a released watcher kills nothing";
  EXPECT_EQ(::kill(member, 0), 0);
  ::kill(group, SIGKILL);
  ::kill(member, SIGKILL);
  EXPECT_EQ(killed_by(group), SIGKILL);
  EXPECT_EQ(killed_by(member), SIGKILL);
  EXPECT_TRUE(exists("job-1/home.sock"));
  EXPECT_TRUE(exists("top/job9/vnode1"));
  EXPECT_TRUE(exists("top/job8/vnode0"));
}

}  // namespace
}  // namespace mosix
