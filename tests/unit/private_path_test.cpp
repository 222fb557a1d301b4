// ensure_private_dir / check_trusted_file on real directories and files in a
// temporary directory: what is created, what passes and what is refused (and
// that the refusal says why).
#include "runtime/sys/private_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace mosix::sys {
namespace {

namespace fs = std::filesystem;

class PrivatePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "private_path_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string path(const std::string& name) const { return root_ + "/" + name; }
  std::string make_file(const std::string& name, mode_t mode) const {
    std::string p = path(name);
    std::ofstream(p) << "x";
    EXPECT_EQ(::chmod(p.c_str(), mode), 0);
    return p;
  }
  static mode_t mode_of(const std::string& p) {
    struct stat st{};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  std::string root_;
};

TEST_F(PrivatePathTest, CreatesAMissingDirectoryAndItsParents0700) {
  std::string dir = path("a/b/c");
  ASSERT_TRUE(ensure_private_dir(dir).ok());
  EXPECT_EQ(mode_of(path("a")), 0700u);
  EXPECT_EQ(mode_of(path("a/b")), 0700u);
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_TRUE(ensure_private_dir(dir).ok()) << "a second call accepts what the first made";
}

TEST_F(PrivatePathTest, CreatesItPrivateWhateverTheUmask) {
  mode_t old = ::umask(0);
  Status s = ensure_private_dir(path("d"));
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(mode_of(path("d")), 0700u);
}

TEST_F(PrivatePathTest, AcceptsOurDirectoryThatOthersMayOnlyRead) {
  std::string dir = path("d");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  EXPECT_TRUE(ensure_private_dir(dir).ok());
  EXPECT_EQ(mode_of(dir), 0755u) << "nothing is chmod-ed";
}

TEST_F(PrivatePathTest, RefusesADirectoryOthersMayWrite) {
  for (mode_t mode : {0770u, 0702u, 0777u, 01777u}) {
    std::string dir = path("w" + std::to_string(mode));
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    Status s = ensure_private_dir(dir);
    ASSERT_FALSE(s.ok()) << std::oct << mode;
    EXPECT_NE(s.error().message.find("chmod go-w " + dir), std::string::npos) << s.error().message;
    EXPECT_FALSE(check_private_dir(dir).ok());
    EXPECT_EQ(mode_of(dir), mode) << "the refusal changes nothing";
  }
}

TEST_F(PrivatePathTest, RefusesASymlinkEvenToOurOwnPrivateDirectory) {
  std::string real = path("real"), link = path("link");
  ASSERT_TRUE(ensure_private_dir(real).ok());
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  Status s = ensure_private_dir(link);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("symbolic link"), std::string::npos) << s.error().message;
}

TEST_F(PrivatePathTest, RefusesAFileWhereTheDirectoryShouldBe) {
  std::string f = make_file("f", 0600);
  Status s = ensure_private_dir(f);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not a directory"), std::string::npos) << s.error().message;
}

TEST_F(PrivatePathTest, CheckCreatesNothing) {
  EXPECT_FALSE(check_private_dir(path("missing")).ok());
  EXPECT_FALSE(fs::exists(path("missing")));
}

TEST_F(PrivatePathTest, RefusesAnotherUsersDirectoryAndFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a directory of another user";
  std::string dir = path("theirs");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);
  Status s = ensure_private_dir(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("belongs to uid 65534"), std::string::npos) << s.error().message;
  std::string file = make_file("their.img", 0600);
  ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
  EXPECT_FALSE(check_trusted_file(file).ok());
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(check_trusted_fd(fd, file).ok());
  ::close(fd);
}

TEST_F(PrivatePathTest, TrustsOurRegularFileOthersCannotWrite) {
  EXPECT_TRUE(check_trusted_file(make_file("a.img", 0600)).ok());
  EXPECT_TRUE(check_trusted_file(make_file("b.img", 0644)).ok());
  std::string c = make_file("c.img", 0400);
  EXPECT_TRUE(check_trusted_file(c).ok());
  int fd = ::open(c.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(check_trusted_fd(fd, c).ok());
  ::close(fd);
}

TEST_F(PrivatePathTest, DistrustsFilesOthersMayWrite) {
  for (mode_t mode : {0620u, 0602u, 0666u}) {
    std::string f = make_file("w" + std::to_string(mode) + ".img", mode);
    Status s = check_trusted_file(f);
    ASSERT_FALSE(s.ok()) << std::oct << mode;
    EXPECT_NE(s.error().message.find("others may write"), std::string::npos) << s.error().message;
    int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_FALSE(check_trusted_fd(fd, f).ok());
    ::close(fd);
  }
}

TEST_F(PrivatePathTest, DistrustsSymlinksDirectoriesAndDevices) {
  std::string f = make_file("real.img", 0600), link = path("link.img");
  ASSERT_EQ(::symlink(f.c_str(), link.c_str()), 0);
  Status s = check_trusted_file(link);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("symbolic link"), std::string::npos) << s.error().message;
  EXPECT_FALSE(check_trusted_file(root_).ok());
  EXPECT_FALSE(check_trusted_file("/dev/null").ok());
  EXPECT_FALSE(check_trusted_file(path("missing.img")).ok());
}

}  // namespace
}  // namespace mosix::sys
