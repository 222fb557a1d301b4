// This user's mosix runtime directory, by the rule of runtime_dir_rule.h.
#pragma once

#include <string>

#include "runtime/core/expected.h"

namespace mosix::sys {

// The rule's path for this process (XDG_RUNTIME_DIR from the environment,
// the real uid); nothing is created or checked.
std::string runtime_dir_path();

// The same directory, made ready: created 0700 if missing (ensure_private_dir:
// ours, not a symlink, writable by nobody else, else an error that also says
// to set XDG_RUNTIME_DIR to a private directory), and made 0700 if others
// may read or enter it (it holds job records and request files).
Expected<std::string> runtime_dir();

}  // namespace mosix::sys
