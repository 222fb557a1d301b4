// Text from outside (a user's argument, a hostfile line, a peer's message)
// made safe to print inside an error message: bytes a terminal would act on
// or that are not text never reach it raw.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mosix {

// `text` with every control character (C0, DEL and the C1 range), every
// invisible format character (bidi overrides, zero-width marks, line and
// paragraph separators) and every byte that is not part of valid UTF-8
// written as \xNN, byte by byte (\n, \r and \t as such). Printable ASCII and valid, printable UTF-8 pass unchanged, so does
// the backslash: printable(printable(s)) == printable(s).
std::string printable(std::string_view text);

// printable(text) in single quotes, for quoting input inside a message; text
// longer than `max_bytes` is cut there and marked with "..." after the quote.
std::string quote(std::string_view text, std::size_t max_bytes = 120);

}  // namespace mosix
