// runtime/sys's small helpers, each the one place for its job: errno text,
// the host name, the install layout, write_all, atomic file writes and a
// unix socket's address. Real files in a temporary directory; nothing slow.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/sys/atomic_file.h"
#include "runtime/sys/errno_text.h"
#include "runtime/sys/host_name.h"
#include "runtime/sys/install_path.h"
#include "runtime/sys/unix_address.h"
#include "runtime/sys/write_all.h"

namespace mosix::sys {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sys_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_whole(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

mode_t mode_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(ErrnoText, IsStrerrorsText) {
  EXPECT_EQ(errno_text(ENOENT), "No such file or directory");
  EXPECT_EQ(errno_text(EACCES), "Permission denied");
  EXPECT_EQ(errno_text(99999), "Unknown error 99999");
}

TEST(HostName, IsGethostnames) {
  char name[256] = {};
  ASSERT_EQ(::gethostname(name, sizeof name - 1), 0);
  EXPECT_EQ(host_name(), name);
  EXPECT_FALSE(host_name().empty());
}

TEST(InstallPath, ProgramsSitBesideThisOneAndLibrariesInLibNextToIt) {
  auto exe = executable_path();
  ASSERT_TRUE(exe.ok()) << exe.error().message;
  EXPECT_EQ(exe->front(), '/');
  EXPECT_EQ(fs::path(*exe).filename().string(), "sys_test");
  auto dir = program_dir();
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir + "/sys_test", *exe);
  EXPECT_EQ(*installed_program("mosixd"), *dir + "/mosixd");
  EXPECT_EQ(*installed_library("libmosix.so"), *dir + "/../lib/libmosix.so");
}

TEST(WriteAll, WritesEverythingThroughAFullNonBlockingPipe) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
  std::string data(1 << 20, '\0');  // 16 pipe buffers: the writer must wait for the reader
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  std::string got;
  std::thread reader([&] {
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(p[0], chunk, sizeof chunk)) > 0) got.append(chunk, static_cast<std::size_t>(n));
  });
  EXPECT_EQ(write_all(p[1], data), 0);
  ::close(p[1]);
  reader.join();
  ::close(p[0]);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

TEST(WriteAll, ReturnsTheErrnoOfTheFailedWrite) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);
  struct sigaction ignore{}, old{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old);
  EXPECT_EQ(write_all(p[1], "x"), EPIPE);
  ::sigaction(SIGPIPE, &old, nullptr);
  ::close(p[1]);
  EXPECT_EQ(write_all(p[1], "x"), EBADF);
  EXPECT_EQ(write_all(p[1], ""), 0) << "nothing to write is not an error";
}

TEST(AtomicFile, ReplacesTheFileWholeAndLeavesNoTemporary) {
  TempDir tmp;
  const std::string path = tmp.path() + "/record.json";
  ASSERT_TRUE(write_file_atomically(path, "old\n", Durability::kVolatile).ok());
  EXPECT_EQ(read_whole(path), "old\n");
  const std::string longer(100000, 'n');
  Status s = write_file_atomically(path, longer, Durability::kDurable);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(read_whole(path), longer);
  ASSERT_TRUE(write_file_atomically(path, "short", Durability::kVolatile).ok());
  EXPECT_EQ(read_whole(path), "short") << "nothing of the longer content is left";
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(names_in(tmp.path()), std::vector<std::string>{"record.json"});
}

TEST(AtomicFile, ShowsNothingUnderTheNameUntilCommitted) {
  TempDir tmp;
  const std::string path = tmp.path() + "/image";
  auto file = AtomicFile::create(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  ASSERT_EQ(write_all(file->fd(), "content"), 0);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(fs::path(file->temp_path()).parent_path().string(), tmp.path());
  EXPECT_EQ(atomic_temp_writer(fs::path(file->temp_path()).filename().string()), ::getpid());
  ASSERT_TRUE(file->commit(Durability::kDurable).ok());
  EXPECT_EQ(read_whole(path), "content");
  EXPECT_EQ(names_in(tmp.path()), std::vector<std::string>{"image"});
  EXPECT_FALSE(file->commit(Durability::kDurable).ok()) << "a second commit is an error";
}

TEST(AtomicFile, DroppedWithoutCommitRemovesTheTemporaryAndKeepsTheOldFile) {
  TempDir tmp;
  const std::string path = tmp.path() + "/record";
  ASSERT_TRUE(write_file_atomically(path, "old", Durability::kVolatile).ok());
  {
    auto file = AtomicFile::create(path);
    ASSERT_TRUE(file.ok());
    ASSERT_EQ(write_all(file->fd(), "half of the new"), 0);
    AtomicFile moved = std::move(file).value();
    EXPECT_EQ(names_in(tmp.path()).size(), 2u);
  }
  EXPECT_EQ(read_whole(path), "old");
  EXPECT_EQ(names_in(tmp.path()), std::vector<std::string>{"record"});
}

TEST(AtomicFile, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir tmp;
  const std::string path = tmp.path() + "/record";
  ASSERT_TRUE(write_file_atomically(path, "old", Durability::kVolatile).ok());
  // Files may grow to 10 bytes: the write of 100 fails with EFBIG.
  struct sigaction ignore{}, old_action{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGXFSZ, &ignore, &old_action);
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit small = old_limit;
  small.rlim_cur = 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  Status s = write_file_atomically(path, std::string(100, 'x'), Durability::kDurable);
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::sigaction(SIGXFSZ, &old_action, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find(errno_text(EFBIG)), std::string::npos) << s.error().message;
  EXPECT_EQ(read_whole(path), "old");
  EXPECT_EQ(names_in(tmp.path()), std::vector<std::string>{"record"});
}

TEST(AtomicFile, AFailedRenameLeavesNoTemporary) {
  TempDir tmp;
  const std::string path = tmp.path() + "/taken";
  ASSERT_TRUE(fs::create_directory(path));
  std::ofstream(path + "/inside") << "x";  // a non-empty directory cannot be replaced by a file
  Status s = write_file_atomically(path, "new", Durability::kVolatile);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("cannot rename"), std::string::npos) << s.error().message;
  EXPECT_EQ(names_in(tmp.path()), std::vector<std::string>{"taken"});
  EXPECT_TRUE(fs::exists(path + "/inside"));
}

TEST(AtomicFile, NamesTheDirectoryItCannotWriteIn) {
  TempDir tmp;
  const std::string path = tmp.path() + "/missing/record";
  Status s = write_file_atomically(path, "x", Durability::kVolatile);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find(tmp.path() + "/missing"), std::string::npos) << s.error().message;
  EXPECT_FALSE(AtomicFile::create(tmp.path() + "/").ok());
  EXPECT_FALSE(AtomicFile::create("").ok());
}

TEST(AtomicFile, TellsTheWriterOfATemporaryByItsName) {
  EXPECT_EQ(atomic_temp_writer(".x.json.tmp.123.AbC9zz"), 123);
  EXPECT_EQ(atomic_temp_writer(".x.json.tmp.123"), 123) << "as earlier releases named them";
  EXPECT_EQ(atomic_temp_writer(".a.tmp.b.tmp.77.abcdef"), 77);
  EXPECT_EQ(atomic_temp_writer("x.json"), std::nullopt);
  EXPECT_EQ(atomic_temp_writer("x.json.tmp.123"), std::nullopt) << "temporaries are hidden";
  EXPECT_EQ(atomic_temp_writer(".x.json"), std::nullopt);
  EXPECT_EQ(atomic_temp_writer(".x.tmp."), std::nullopt);
  EXPECT_EQ(atomic_temp_writer(".x.tmp.12a"), std::nullopt);
  EXPECT_EQ(atomic_temp_writer(".x.tmp.123.abc"), std::nullopt);
  EXPECT_EQ(atomic_temp_writer(".x.tmp.0"), std::nullopt);
  EXPECT_EQ(atomic_temp_writer(".x.tmp.99999999999"), std::nullopt);
}

TEST(UnixAddress, HoldsAPathThatFitsAndNamesOneThatDoesNot) {
  auto addr = unix_address("/tmp/x.sock");
  ASSERT_TRUE(addr.ok());
  EXPECT_EQ(addr->sun_family, AF_UNIX);
  EXPECT_STREQ(addr->sun_path, "/tmp/x.sock");
  const std::string long_path = "/" + std::string(sizeof addr->sun_path, 'd');
  auto too_long = unix_address(long_path);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message.find(long_path), std::string::npos);
}

}  // namespace
}  // namespace mosix::sys
