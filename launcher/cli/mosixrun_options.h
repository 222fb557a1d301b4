// mosixrun's command line: mpirun's everyday options with mpirun's spelling
// (single-dash long options included), ending at the program name.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/expected.h"
#include "runtime/core/run_options.h"

namespace mosix {

// "0,2,5-7" -> {0, 2, 5, 6, 7}: sorted, without repeats.
Expected<std::vector<int>> parse_rank_list(std::string_view text);

// What parsing decided: run with `options`, or print `text` and exit.
struct ParsedCommand {
  RunOptions options;
  std::optional<std::string> print_and_exit;  // --help / --version text
};

// Parses argv[1..]. Errors are usage errors (exit code 2), worded for the user.
Expected<ParsedCommand> parse_mosixrun_args(const std::vector<std::string>& args);

// Rewrites mpirun's single-dash long options (`-np`, `-host`, ...) to their
// double-dash form and splits the arguments at the program name.
struct SplitArgs {
  std::vector<std::string> options;  // normalized option words
  std::vector<std::string> program;  // program and its arguments
};
Expected<SplitArgs> split_mosixrun_args(const std::vector<std::string>& args);

}  // namespace mosix
