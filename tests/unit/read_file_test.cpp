// read_file_limited on real files and devices: a size limit that holds for
// /dev/zero too, and errors that name the file printably.
#include "runtime/sys/read_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace mosix::sys {
namespace {

namespace fs = std::filesystem;

class ReadFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "read_file_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = root_ + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  std::string root_;
};

TEST_F(ReadFileTest, ReadsAFileUpToTheLimit) {
  auto small = read_file_limited(write("a", "host slots=2\n"), 100, "hostfile");
  ASSERT_TRUE(small.ok()) << small.error().message;
  EXPECT_EQ(*small, "host slots=2\n");
  auto exact = read_file_limited(write("b", std::string(100, 'x')), 100, "hostfile");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->size(), 100u);
  auto empty = read_file_limited(write("c", ""), 100, "hostfile");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
}

TEST_F(ReadFileTest, RefusesAFileOverTheLimit) {
  std::string p = write("big", std::string(101, 'x'));
  auto r = read_file_limited(p, 100, "hostfile");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "hostfile '" + p + "' is larger than 100 bytes: is it the right file?");
}

TEST_F(ReadFileTest, DevZeroEndsInAnErrorNotInAllOfMemory) {
  auto r = read_file_limited("/dev/zero", 1 << 20, "hostfile");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("larger than 1048576 bytes"), std::string::npos) << r.error().message;
}

TEST_F(ReadFileTest, MissingFilesAndDirectoriesSayWhy) {
  auto missing = read_file_limited(root_ + "/none", 100, "hostfile");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot read hostfile '" + root_ + "/none': No such file"),
            std::string::npos)
      << missing.error().message;
  auto dir = read_file_limited(root_, 100, "hostfile");
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find("it is a directory"), std::string::npos) << dir.error().message;
}

TEST_F(ReadFileTest, TheNameInTheMessageIsPrintable) {
  auto r = read_file_limited(root_ + "/x\x1b[2J", 100, "hostfile");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.find('\x1b'), std::string::npos);
  EXPECT_NE(r.error().message.find("x\\x1b[2J"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace mosix::sys
