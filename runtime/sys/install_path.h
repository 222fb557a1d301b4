// Where this installation is: the programs sit side by side in one directory
// (bin/), the guest agent in lib/ beside it (CMake's install layout, and the
// build tree's when run from it). Found from the running executable, so a
// copy works wherever it is unpacked; nothing is looked up in PATH.
#pragma once

#include <string>
#include <string_view>

#include "runtime/core/expected.h"

namespace mosix::sys {

// The absolute path of the running executable (/proc/self/exe). The error
// says it cannot be found and why.
Expected<std::string> executable_path();

// The directory of the running executable: the installation's bin/.
Expected<std::string> program_dir();

// `name` in the directory of the running executable: another program of the
// installation ("mosixd", "mosix-restore").
Expected<std::string> installed_program(std::string_view name);

// `name` in ../lib from the directory of the running executable: a library
// of the installation ("libmosix.so").
Expected<std::string> installed_library(std::string_view name);

}  // namespace mosix::sys
