#include "runtime/core/environment.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

TEST(Environment, SetReplacesOnlyTheExactName) {
  std::vector<std::string> env{"PATH=/bin", "PATHX=1", "A=b=c"};
  set_env(env, "PATH", "/usr/bin");
  set_env(env, "NEW", "");
  EXPECT_EQ(env, (std::vector<std::string>{"PATH=/usr/bin", "PATHX=1", "A=b=c", "NEW="}));
}

TEST(Environment, UnsetRemovesOnlyTheExactName) {
  std::vector<std::string> env{"A=1", "AB=2", "A=3", "B=A"};
  unset_env(env, "A");
  EXPECT_EQ(env, (std::vector<std::string>{"AB=2", "B=A"}));
}

TEST(Environment, Get) {
  std::vector<std::string> env{"PATHX=1", "PATH=/bin", "A=b=c"};
  EXPECT_EQ(get_env(env, "PATH"), "/bin");
  EXPECT_EQ(get_env(env, "A"), "b=c");
  EXPECT_EQ(get_env(env, "PAT"), std::nullopt);
}

}  // namespace
}  // namespace mosix
