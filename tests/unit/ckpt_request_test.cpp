// request_checkpoint() refuses what is not a guest before anything is asked
// or written. (Real guests are covered by tests/integration/ckpt_test.sh.)
#include "runtime/ckpt/request.h"

#include <gtest/gtest.h>
#include <unistd.h>

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

}  // namespace
}  // namespace mosix::ckpt
