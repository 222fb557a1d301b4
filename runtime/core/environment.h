// Environments as lists of "NAME=value" strings, as execve takes them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mosix {

// Sets NAME to `value`, replacing an earlier setting of NAME.
void set_env(std::vector<std::string>& env, std::string_view name, std::string_view value);
// Removes every setting of NAME.
void unset_env(std::vector<std::string>& env, std::string_view name);
// The value of NAME, if set.
std::optional<std::string> get_env(const std::vector<std::string>& env, std::string_view name);

}  // namespace mosix
