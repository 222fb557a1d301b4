// request_checkpoint() refuses what is not a guest before anything is asked
// or written. (Real guests are covered by tests/integration/ckpt_test.sh.)
#include "runtime/ckpt/request.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mosix::ckpt {
namespace {

TEST(CkptRequest, ThisTestIsNotAGuest) {
  Status s = check_guest(getpid());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("is not a guest"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("libmosix.so"), std::string::npos) << s.error().message;
}

TEST(CkptRequest, MissingProcessIsNamed) {
  Status s = check_guest(0x3ffffff0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("no process 1073741808"), std::string::npos) << s.error().message;
}

TEST(CkptRequest, RefusalLeavesNoImage) {
  char dir[] = "/tmp/ckpt_request_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  CheckpointRequest r;
  r.pid = getpid();
  r.image_path = std::string(dir) + "/x.img";
  auto result = request_checkpoint(r);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(access(r.image_path.c_str(), F_OK), 0);
  EXPECT_EQ(rmdir(dir), 0) << "a temporary was left in " << dir;
}


// A pid that was a process of ours and has ended (waited for).
pid_t ended_pid() {
  pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

TEST(CkptRequest, SweepRemovesOnlyTheFilesOfGoneRequestersAndGuests) {
  char dir[] = "/tmp/ckpt_request_sweep.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string d = dir, self = std::to_string(getpid()), dead = std::to_string(ended_pid());
  const std::string dead_requester = d + "/ckpt-" + self + ".status." + dead;  // mosixctl killed
  const std::string live_requester = d + "/ckpt-" + dead + ".status." + self;  // waits: stays
  const std::string dead_guest_req = d + "/ckpt-" + dead + ".req";
  const std::string live_guest_req = d + "/ckpt-" + self + ".req";  // maybe in flight: stays
  const std::string other = d + "/ckpt-" + dead + ".status.x";      // not ours to judge
  const std::string image = d + "/job-" + dead;                     // not a request at all
  for (const std::string& fifo : {dead_requester, live_requester, other}) ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& file : {dead_guest_req, live_guest_req, image}) {
    FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  EXPECT_EQ(sweep_stale_requests(d), 2);
  EXPECT_FALSE(exists(dead_requester));
  EXPECT_FALSE(exists(dead_guest_req));
  EXPECT_TRUE(exists(live_requester));
  EXPECT_TRUE(exists(live_guest_req));
  EXPECT_TRUE(exists(other));
  EXPECT_TRUE(exists(image));
  EXPECT_EQ(sweep_stale_requests(d), 0);
  EXPECT_EQ(sweep_stale_requests(d + "/missing"), 0);
  for (const std::string& path : {live_requester, live_guest_req, other, image}) unlink(path.c_str());
  EXPECT_EQ(rmdir(dir), 0);
}

}  // namespace
}  // namespace mosix::ckpt
