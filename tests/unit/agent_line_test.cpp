// parse_agent_line: the lines a checkpoint agent writes on its status channel,
// and garbage, which must never throw (the reader runs in a node daemon's
// migration thread, where an exception would end the daemon).
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "runtime/ckpt/request.h"

namespace mosix::ckpt {
namespace {

TEST(AgentLine, TheAgentsOwnLines) {
  AgentLine p = parse_agent_line("progress 268435456");
  EXPECT_EQ(p.kind, AgentLine::kProgress);
  EXPECT_EQ(p.bytes, 268435456u);
  AgentLine ok = parse_agent_line("ok 18446744073709551615");
  EXPECT_EQ(ok.kind, AgentLine::kOk);
  EXPECT_EQ(ok.bytes, UINT64_MAX);
  AgentLine e = parse_agent_line("error fd 3 is a socket");
  EXPECT_EQ(e.kind, AgentLine::kError);
  EXPECT_EQ(e.reason, "fd 3 is a socket");
}

TEST(AgentLine, GarbageNumbersAreMalformedNotExceptions) {
  for (const char* line : {"ok ", "ok x", "ok -1", "ok 12abc", "ok 18446744073709551616", "ok 99999999999999999999999",
                           "progress ", "progress \xff\xfe", "progress 1 2", "ok  5", "ok +5", "ok 0x10"}) {
    AgentLine a{};
    EXPECT_NO_THROW(a = parse_agent_line(line)) << line;
    EXPECT_EQ(a.kind, AgentLine::kMalformed) << line;
  }
}

TEST(AgentLine, OtherLinesAreIgnored) {
  for (const char* line : {"", "hello", "okay 5", "progress", "ok", "\x01\x02"}) {
    EXPECT_EQ(parse_agent_line(line).kind, AgentLine::kOther) << line;
  }
}

}  // namespace
}  // namespace mosix::ckpt
