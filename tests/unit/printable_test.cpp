// printable() and quote(): what reaches a terminal inside an error message.
#include "runtime/core/printable.h"

#include <string>

#include <gtest/gtest.h>

namespace mosix {
namespace {

TEST(Printable, PlainTextPassesUnchanged) {
  EXPECT_EQ(printable("host-1 slots=2 'x' \\ ~"), "host-1 slots=2 'x' \\ ~");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, ValidUtf8PassesUnchanged) {
  EXPECT_EQ(printable("n\xc3\xb1o \xe2\x82\xac \xf0\x9f\x98\x80"), "n\xc3\xb1o \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(Printable, ControlCharactersAreEscaped) {
  EXPECT_EQ(printable("a\x1b[31mred"), "a\\x1b[31mred");
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable("a\nb\rc\td\x7f"), "a\\nb\\rc\\td\\x7f");
  EXPECT_EQ(printable("\xc2\x9b" "31m"), "\\xc2\\x9b31m") << "C1 CSI, valid UTF-8 but a control";
  EXPECT_EQ(printable("a\xe2\x80\xae" "b"), "a\\xe2\\x80\\xaeb") << "right-to-left override";
  EXPECT_EQ(printable("a\xe2\x80\x8b" "b"), "a\\xe2\\x80\\x8bb") << "zero-width space";
  EXPECT_EQ(printable("\xef\xbb\xbf"), "\\xef\\xbb\\xbf") << "byte order mark";
}

TEST(Printable, InvalidUtf8IsEscapedBytewise) {
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82") << "cut short";
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf") << "overlong";
  EXPECT_EQ(printable("\xe0\x80\xaf"), "\\xe0\\x80\\xaf") << "overlong";
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80") << "surrogate";
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80") << "above U+10FFFF";
  EXPECT_EQ(printable("\x80x"), "\\x80x") << "lone continuation byte";
}

TEST(Printable, EveryByteComesOutPrintableAndEscapingTwiceChangesNothing) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  std::string once = printable(all + all);
  for (char c : once) {
    auto u = static_cast<unsigned char>(c);
    EXPECT_TRUE(u >= 0x20 && u < 0x7f) << "byte " << static_cast<int>(u) << " came out raw";
  }
  EXPECT_EQ(printable(once), once);
  std::string utf8 = "caf\xc3\xa9\x01";
  EXPECT_EQ(printable(printable(utf8)), printable(utf8));
}

TEST(Quote, QuotesAndCutsLongInput) {
  EXPECT_EQ(quote("a\x01"), "'a\\x01'");
  std::string long_text(500, 'x');
  std::string q = quote(long_text, 10);
  EXPECT_EQ(q, "'xxxxxxxxxx'...");
  // The cut never splits a UTF-8 character.
  EXPECT_EQ(quote("abcdefghi\xc3\xa9xyz", 10), "'abcdefghi'...");
}

}  // namespace
}  // namespace mosix
