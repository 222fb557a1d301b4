#include "runtime/topology/speed.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace mosix {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "mosix_speed_test.XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

mode_t mode_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

SpeedRecord sample() {
  SpeedRecord r;
  r.speed = 1.25;
  r.score = 10375.5;
  r.cores = 16;
  r.date = "2025-01-31T12:00:00Z";
  return r;
}

TEST(SpeedFilePath, XdgStateHomeWins) {
  auto p = speed_file_path("/state", "/home/ann");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value(), "/state/mosix/speed.json");
}

TEST(SpeedFilePath, FallsBackToHomeWhenXdgIsUnsetEmptyOrRelative) {
  for (const char* xdg : {static_cast<const char*>(nullptr), "", "relative/state"}) {
    auto p = speed_file_path(xdg, "/home/ann");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p.value(), "/home/ann/.local/state/mosix/speed.json") << (xdg ? xdg : "null");
  }
}

TEST(SpeedFilePath, ErrorWhenNothingIsUsable) {
  auto p = speed_file_path(nullptr, "");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("HOME"), std::string::npos);
}

TEST(SpeedFilePath, ReadsTheEnvironment) {
  ASSERT_EQ(setenv("XDG_STATE_HOME", "/from/env", 1), 0);
  auto p = speed_file_path();
  unsetenv("XDG_STATE_HOME");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value(), "/from/env/mosix/speed.json");
}

TEST(SpeedJson, RoundTrip) {
  auto back = speed_from_json(speed_to_json(sample()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back.value(), sample());
}

TEST(SpeedJson, RefusesMissingFieldsAndNonPositiveSpeed) {
  EXPECT_FALSE(speed_from_json(nlohmann::json::object()).ok());
  nlohmann::json j = speed_to_json(sample());
  j["speed"] = 0.0;
  EXPECT_FALSE(speed_from_json(j).ok());
  j = speed_to_json(sample());
  j.erase("date");
  EXPECT_FALSE(speed_from_json(j).ok());
}

TEST(SpeedStore, StoreThenLoadCreatesPrivateDirectories) {
  TempDir tmp;
  std::string dir = tmp.path() + "/state/mosix";
  std::string path = dir + "/speed.json";
  ASSERT_TRUE(store_speed(sample(), path).ok());
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_EQ(mode_of(path), 0600u);
  auto loaded = load_speed(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(loaded->value(), sample());
  // Nothing but the record is left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(SpeedStore, StoreReplacesTheOldRecord) {
  TempDir tmp;
  std::string path = tmp.path() + "/speed.json";
  ASSERT_TRUE(store_speed(sample(), path).ok());
  SpeedRecord newer = sample();
  newer.speed = 2.0;
  ASSERT_TRUE(store_speed(newer, path).ok());
  auto loaded = load_speed(path);
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_EQ(loaded->value().speed, 2.0);
}

TEST(SpeedStore, MissingFileIsNotCalibrated) {
  TempDir tmp;
  auto loaded = load_speed(tmp.path() + "/nothing.json");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_FALSE(loaded->has_value());
}

TEST(SpeedStore, CorruptFileIsAnErrorThatSaysWhatToDo) {
  TempDir tmp;
  std::string path = tmp.path() + "/speed.json";
  std::ofstream(path) << "{ not json";
  auto loaded = load_speed(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("mosixctl tune"), std::string::npos);
}

TEST(SpeedStore, OtherKernelVersionIsRefused) {
  TempDir tmp;
  std::string path = tmp.path() + "/speed.json";
  SpeedRecord old = sample();
  old.kernel_version = kSpeedKernelVersion + 1;
  ASSERT_TRUE(store_speed(old, path).ok());
  auto loaded = load_speed(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("mosixctl tune"), std::string::npos);
}

TEST(SpeedStore, StoredSpeedOrFallbackReadsTheEnvironment) {
  TempDir tmp;
  ASSERT_EQ(setenv("XDG_STATE_HOME", tmp.path().c_str(), 1), 0);
  EXPECT_EQ(stored_speed_or(0.75), 0.75);
  ASSERT_TRUE(store_speed(sample(), tmp.path() + "/mosix/speed.json").ok());
  EXPECT_EQ(stored_speed_or(0.75), 1.25);
  unsetenv("XDG_STATE_HOME");
}

TEST(SpeedKernel, DeterministicAndSeedDependent) {
  EXPECT_EQ(run_speed_kernel(2, 7), run_speed_kernel(2, 7));
  EXPECT_NE(run_speed_kernel(2, 7), run_speed_kernel(2, 8));
  EXPECT_NE(run_speed_kernel(1, 7), run_speed_kernel(2, 7));
}

TEST(Calibrate, ReportsEachRunAndABestScore) {
  std::vector<CalibrationProgress> seen;
  SpeedRecord r = calibrate(std::chrono::milliseconds(500),
                            [&](const CalibrationProgress& p) { seen.push_back(p); });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].runs_done, 1);
  EXPECT_EQ(seen[1].runs_done, 2);
  EXPECT_EQ(seen[1].runs_total, 2);
  EXPECT_LE(seen[0].best_speed, seen[1].best_speed);
  EXPECT_DOUBLE_EQ(r.speed, seen[1].best_speed);
  EXPECT_GT(r.score, 0.0);
  EXPECT_DOUBLE_EQ(r.speed, r.score / kReferenceScore);
  EXPECT_GE(r.cores, 1);
  EXPECT_EQ(r.date.size(), 20u);
  EXPECT_EQ(r.kernel_version, kSpeedKernelVersion);
}

}  // namespace
}  // namespace mosix
