// runtime/sys's small helpers, each the one place for its job: errno text,
// the host name, the install layout, write_all, atomic file writes, the
// runtime-directory rule and a unix socket's address. Real files in a
// temporary directory; nothing slow.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
#include "runtime/sys/runtime_dir.h"
#include "runtime/sys/runtime_dir_rule.h"
#include "runtime/sys/stale_sockets.h"
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

// Environment variable set for one test, put back after it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

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

struct RuleCase {
  const char* xdg;
  bool xdg_exists;
  bool run_user_exists;
  std::uint64_t uid;
  const char* expected;
};

TEST(RuntimeDirRule, XdgRuntimeDirThenRunUserThenTmp) {
  const RuleCase cases[] = {
      {"/run/user/1000", true, true, 1000, "/run/user/1000/mosix"},
      {"/tmp/x", true, true, 1000, "/tmp/x/mosix"},
      {"/tmp/x", true, false, 1000, "/tmp/x/mosix"},
      {"/tmp/x", false, true, 1000, "/run/user/1000/mosix"},
      {"/run/user/1000", false, false, 1000, "/tmp/mosix-1000"},
      {nullptr, false, true, 1000, "/run/user/1000/mosix"},
      {nullptr, false, false, 1000, "/tmp/mosix-1000"},
      {"", false, true, 42, "/run/user/42/mosix"},
      {"relative/dir", true, false, 42, "/tmp/mosix-42"},
      {nullptr, false, false, 0, "/tmp/mosix-0"},
      {nullptr, false, true, 18446744073709551615ull, "/run/user/18446744073709551615/mosix"},
  };
  for (const RuleCase& c : cases) {
    const std::string run_user = "/run/user/" + std::to_string(c.uid);
    std::vector<std::string> asked;
    auto is_dir = [&](const char* path) {
      asked.emplace_back(path);
      if (c.xdg != nullptr && asked.back() == c.xdg) return c.xdg_exists;
      EXPECT_EQ(asked.back(), run_user);
      return c.run_user_exists;
    };
    char out[128];
    ASSERT_TRUE(runtime_dir_path(out, sizeof out, c.xdg, c.uid, is_dir));
    const std::string name = std::string(c.xdg ? c.xdg : "(unset)") + (c.xdg_exists ? " (a directory)" : "") +
                             " uid " + std::to_string(c.uid);
    EXPECT_STREQ(out, c.expected) << name;
    const bool absolute = c.xdg != nullptr && c.xdg[0] == '/';
    std::vector<std::string> expected_asked;
    if (absolute) expected_asked.emplace_back(c.xdg);
    if (!absolute || !c.xdg_exists) expected_asked.push_back(run_user);
    EXPECT_EQ(asked, expected_asked) << name << ": asks only what matters";
  }
}

TEST(RuntimeDirRule, SaysWhenThePathDoesNotFit) {
  auto yes = [](const char*) { return true; };
  char out[16];
  EXPECT_FALSE(runtime_dir_path(out, sizeof out, "/a/very/long/runtime/dir", 1, yes));
  EXPECT_STREQ(out, "");
  char exact[sizeof "/run/user/7/mosix"];
  EXPECT_TRUE(runtime_dir_path(exact, sizeof exact, nullptr, 7, yes));
  EXPECT_STREQ(exact, "/run/user/7/mosix");
  char one_short[sizeof "/run/user/7/mosix" - 1];
  EXPECT_FALSE(runtime_dir_path(one_short, sizeof one_short, nullptr, 7, yes));
  EXPECT_FALSE(runtime_dir_path(out, 0, nullptr, 7, yes));
}

TEST(RuntimeDir, MakesTheDirectoryPrivateUnderXdgRuntimeDir) {
  TempDir tmp;
  ScopedEnv xdg("XDG_RUNTIME_DIR", tmp.path().c_str());
  EXPECT_EQ(runtime_dir_path(), tmp.path() + "/mosix");
  auto dir = runtime_dir();
  ASSERT_TRUE(dir.ok()) << dir.error().message;
  EXPECT_EQ(*dir, tmp.path() + "/mosix");
  EXPECT_EQ(mode_of(*dir), 0700u);
  ASSERT_EQ(::chmod(dir->c_str(), 0755), 0);
  ASSERT_TRUE(runtime_dir().ok());
  EXPECT_EQ(mode_of(*dir), 0700u) << "others may not even read it";
}

TEST(RuntimeDir, RefusesASymlinkAndSaysWhatToSet) {
  TempDir tmp;
  ScopedEnv xdg("XDG_RUNTIME_DIR", tmp.path().c_str());
  fs::create_directory(tmp.path() + "/elsewhere");
  fs::create_directory_symlink(tmp.path() + "/elsewhere", tmp.path() + "/mosix");
  auto dir = runtime_dir();
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find("symbolic link"), std::string::npos) << dir.error().message;
  EXPECT_NE(dir.error().message.find("XDG_RUNTIME_DIR"), std::string::npos) << dir.error().message;
}

TEST(RuntimeDir, WithoutAUsableXdgRuntimeDirFollowsTheRule) {
  const std::string run_user = "/run/user/" + std::to_string(::getuid());
  const std::string expected =
      fs::is_directory(run_user) ? run_user + "/mosix" : "/tmp/mosix-" + std::to_string(::getuid());
  {
    ScopedEnv xdg("XDG_RUNTIME_DIR", nullptr);
    EXPECT_EQ(runtime_dir_path(), expected);
  }
  {
    ScopedEnv xdg("XDG_RUNTIME_DIR", "/nonexistent/runtime/dir");
    EXPECT_EQ(runtime_dir_path(), expected) << "a directory that does not exist is not used";
  }
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

// A socket file at `path`: listening (the fd is returned), or left behind by
// a listener that is gone (-1), dated `age` seconds back.
int make_socket(const std::string& path, bool listening, int age) {
  auto addr = unix_address(path);
  EXPECT_TRUE(addr.ok());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr), 0) << path;
  EXPECT_EQ(::listen(fd, 4), 0);
  if (!listening) {
    ::close(fd);
    fd = -1;
  }
  timespec times[2] = {{::time(nullptr) - age, 0}, {::time(nullptr) - age, 0}};
  EXPECT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  return fd;
}

// A killed job's sockets go; a live job's, a fresh one (maybe between bind
// and listen) and a file that is not a socket stay.
TEST(StaleSockets, RemovesWhatNobodyListensOnAndNothingElse) {
  TempDir dir;
  make_socket(dir.path() + "/guests-111-0.sock", false, 3600);
  const int live = make_socket(dir.path() + "/guests-222-1.sock", true, 3600);
  make_socket(dir.path() + "/guests-333-2.sock", false, 0);
  std::ofstream(dir.path() + "/guests-444-0.sock") << "not a socket";
  fs::create_directory(dir.path() + "/job-555");
  make_socket(dir.path() + "/job-555/home.sock", false, 3600);
  make_socket(dir.path() + "/job-555/control.sock", false, 3600);
  fs::create_directory(dir.path() + "/job-666");
  make_socket(dir.path() + "/job-666/home.sock", false, 3600);
  const int control = make_socket(dir.path() + "/job-666/control.sock", true, 3600);
  make_socket(dir.path() + "/other-777.sock", false, 3600);

  EXPECT_EQ(remove_stale_sockets(dir.path()), 3);
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"guests-222-1.sock", "guests-333-2.sock",
                                                            "guests-444-0.sock", "job-666", "other-777.sock"}));
  EXPECT_EQ(names_in(dir.path() + "/job-666"), (std::vector<std::string>{"control.sock", "home.sock"}));
  ::close(live);
  ::close(control);
}

}  // namespace
}  // namespace mosix::sys
