#include "launcher/cli/mosixrun_options.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

Expected<ParsedCommand> parse(std::vector<std::string> args) { return parse_mosixrun_args(args); }

TEST(MosixrunOptions, SingleDashLongOptionsAsMpirunSpellsThem) {
  auto p = parse({"-np", "4", "-host", "a:2,b", "-wdir", "/tmp", "./app", "-np", "9"});
  ASSERT_TRUE(p.ok()) << p.error().message;
  const RunOptions& o = p->options;
  EXPECT_EQ(o.np, 4);
  ASSERT_EQ(o.hosts.size(), 2u);
  EXPECT_EQ(o.hosts[0].slots, 2);
  EXPECT_EQ(o.wdir, "/tmp");
  // The program's own arguments are never parsed.
  EXPECT_EQ(o.program, (std::vector<std::string>{"./app", "-np", "9"}));
}

TEST(MosixrunOptions, EverySpellingOfTheCopyCount) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"-np", "3", "x"}, {"-n", "3", "x"}, {"--np", "3", "x"}, {"--np=3", "x"}, {"-np=3", "x"}}) {
    auto p = parse(args);
    ASSERT_TRUE(p.ok()) << args[0] << ": " << p.error().message;
    EXPECT_EQ(p->options.np, 3) << args[0];
  }
}

TEST(MosixrunOptions, FlagsAndValues) {
  auto p = parse({"--tag-output", "--oversubscribe", "--bind-to", "core", "--timeout", "2.5",
                  "--output-filename", "out", "-x", "A", "-x", "B=1=2", "--keep-going", "-v",
                  "-v", "prog"});
  ASSERT_TRUE(p.ok()) << p.error().message;
  const RunOptions& o = p->options;
  EXPECT_TRUE(o.tag_output);
  EXPECT_TRUE(o.oversubscribe);
  EXPECT_EQ(o.bind_to, BindTo::kCore);
  EXPECT_DOUBLE_EQ(o.timeout_seconds, 2.5);
  EXPECT_EQ(o.output_filename, "out");
  ASSERT_EQ(o.env.size(), 2u);
  EXPECT_EQ(o.env[0].name, "A");
  EXPECT_FALSE(o.env[0].value.has_value());
  EXPECT_EQ(o.env[1].name, "B");
  EXPECT_EQ(o.env[1].value, "1=2");
  EXPECT_TRUE(o.keep_going);
  EXPECT_EQ(o.verbose, 2);
}

TEST(MosixrunOptions, DoubleDashEndsOptions) {
  auto p = parse({"-np", "2", "--", "--weird-program", "-np"});
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->options.program, (std::vector<std::string>{"--weird-program", "-np"}));
}

TEST(MosixrunOptions, HelpAndVersionPrint) {
  auto help = parse({"--help"});
  ASSERT_TRUE(help.ok());
  ASSERT_TRUE(help->print_and_exit.has_value());
  EXPECT_NE(help->print_and_exit->find("--oversubscribe"), std::string::npos);
  auto version = parse({"--version"});
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(version->print_and_exit->rfind("mosixrun ", 0), 0u);
}

TEST(MosixrunOptions, PinTakesRanksAndRanges) {
  auto p = parse({"-np", "8", "--pin", "5-7,0,2,6", "x"});
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->options.pin, (std::vector<int>{0, 2, 5, 6, 7}));
  auto single = parse({"-pin", "3", "x"});
  ASSERT_TRUE(single.ok()) << single.error().message;
  EXPECT_EQ(single->options.pin, (std::vector<int>{3}));
}

TEST(MosixrunOptions, UsageErrorsNameTheProblem) {
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {{"--frobnicate", "x"}, "unknown option '--frobnicate'"},
           {{"-np", "0", "x"}, "at least 1"},
           {{"-np", "-2", "x"}, "at least 1"},
           {{"-np"}, "needs a value"},
           {{"-np", "two", "x"}, "np"},
           {{"-np", "2"}, "no program given"},
           {{}, "no program given"},
           {{"--bind-to", "socket", "x"}, "use none or core"},
           {{"--host", "a:0", "x"}, "bad slot count"},
           {{"-x", "1A", "x"}, "write -x NAME"},
           {{"--timeout", "-1", "x"}, "--timeout"},
           {{"--tag-output=yes", "x"}, "takes no value"},
           {{"--host", "a", "--hostfile", "f", "x"}, "use one of them"},
           {{"--pin", "1,x", "x"}, "'x' is not a rank"},
           {{"--pin", "3-1", "x"}, "'3-1' is not a rank"},
           {{"--pin", "", "x"}, "is not a rank"},
           {{"-np", "4", "--pin", "2,4", "x"}, "rank 4 does not exist with -np 4"},
       }) {
    auto p = parse(c.args);
    ASSERT_FALSE(p.ok()) << c.says;
    EXPECT_NE(p.error().message.find(c.says), std::string::npos)
        << "expected '" << c.says << "' in: " << p.error().message;
  }
}

}  // namespace
}  // namespace mosix
