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
                  "-v", "--pty", "prog"});
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
  EXPECT_TRUE(o.pty);
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
           {{"--bind-to", "socket", "x"}, "use auto, none or core"},
           {{"--host", "a:0", "x"}, "bad slot count"},
           {{"-x", "1A", "x"}, "write -x NAME"},
           {{"--timeout", "-1", "x"}, "--timeout"},
           {{"--tag-output=yes", "x"}, "takes no value"},
           {{"--host", "a", "--hostfile", "f", "x"}, "use one of them"},
           {{"--pin", "1,x", "x"}, "'x' is not a rank"},
           {{"--pin", "3-1", "x"}, "'3-1' is not a rank"},
           {{"--pin", "", "x"}, "is not a rank"},
           {{"-np", "4", "--pin", "2,4", "x"}, "rank 4 does not exist with -np 4"},
           {{"-np", "65537", "x"}, "-np 65537: at most 65536 copies in one job"},
           {{"-np", "2000000000", "x"}, "at most 65536 copies"},
           {{"-np", "99999999999", "x"}, "np"},
           {{"--spread", "sometimes", "x"}, "spread"},
           {{"--pin", "65536", "x"}, "rank 65536 does not exist: a job has at most 65536 copies"},
           {{"--pin", "0-999999", "x"}, "at most 65536 copies"},
           {{"--timeout", "1e10", "x"}, "--timeout 1e+10: give a number of seconds from 0 (none) to 3.1536e+07"},
           {{"--timeout", "31536001", "x"}, "--timeout"},
           {{"--timeout", "inf", "x"}, "--timeout"},
           {{"--timeout", "nan", "x"}, "--timeout"},
           {{"--ckpt-interval", "1e10", "x"}, "--ckpt-interval 1e+10: give a number of seconds > 0, at most"},
           {{"--no-agent", "--ckpt-interval", "5", "x"}, "--no-agent with --ckpt-interval"},
           {{"--ckpt-interval", "inf", "x"}, "--ckpt-interval"},
       }) {
    auto p = parse(c.args);
    ASSERT_FALSE(p.ok()) << c.says;
    EXPECT_NE(p.error().message.find(c.says), std::string::npos)
        << "expected '" << c.says << "' in: " << p.error().message;
  }
}

TEST(MosixrunOptions, BoundsAreInclusive) {
  auto p = parse({"-np", "65536", "--timeout", "31536000", "--ckpt-interval", "31536000", "--pin", "65535", "x"});
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->options.np, kMaxCopies);
  EXPECT_DOUBLE_EQ(p->options.timeout_seconds, kMaxSeconds);
  EXPECT_DOUBLE_EQ(p->options.ckpt_interval, kMaxSeconds);
}

// Messages quote what the user typed; nothing a terminal would act on may
// come out raw.
bool all_printable(const std::string& s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || u >= 0x80) return false;
  }
  return true;
}

TEST(MosixrunOptions, ErrorsEscapeWhatIsNotPrintable) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--\x1b[2Jbogus", "x"},
           {"--bog\x1b[2Jus", "x"},
           {"-x", "A\x1b]0;title\x07", "x"},
           {"--bind-to", "\xff\xfe", "x"},
           {"--map-by", "\x9b" "31m", "x"},
           {"--pin", "1,\x01", "x"},
           {"--vcluster-cpu", "1,\x1b", "x"},
           {"--tag-output=\x1b", "x"},
           {"-np", "\x1b[31m", "x"},
       }) {
    auto p = parse(args);
    ASSERT_FALSE(p.ok()) << args[0];
    EXPECT_TRUE(all_printable(p.error().message)) << p.error().message;
    EXPECT_NE(p.error().message.find("\\x"), std::string::npos) << p.error().message;
  }
}

TEST(Hostfile, ErrorsOnRandomBytesArePrintable) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk += static_cast<char>((i * 131 + 7) % 256);
  auto hosts = parse_hostfile(junk, "hf\x1b");
  ASSERT_FALSE(hosts.ok());
  EXPECT_TRUE(all_printable(hosts.error().message)) << hosts.error().message;
  auto name = parse_hostfile(std::string("n\x1b[2J slots=2\n"), "hf");
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.error().message, "hf:1: bad host name 'n\\x1b[2J'");
}

}  // namespace
}  // namespace mosix
