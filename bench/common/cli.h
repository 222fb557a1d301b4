// The benches parse their command lines with CLI11, as the commands do:
// --help prints the usage and exits 0; an unknown or malformed option prints
// one line naming it and exits 2. Header-only; for bench/.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace mosix::bench {

// A number above zero (CLI::PositiveNumber names the whole double range in
// its message).
inline CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !(v > 0)) return "must be a number above 0, not '" + text + "'";
        return {};
      },
      "POSITIVE");
}

// Parses argv into `app`'s options. Returns the exit status when the program
// must stop here (help shown, or a usage error reported), nothing otherwise.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see %s --help)\n", app.get_name().c_str(), e.what(),
                 app.get_name().c_str());
    return 2;
  }
  return std::nullopt;
}

}  // namespace mosix::bench
