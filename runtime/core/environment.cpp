#include "runtime/core/environment.h"

namespace mosix {

void set_env(std::vector<std::string>& env, std::string_view name, std::string_view value) {
  std::string setting = std::string(name) + "=" + std::string(value);
  for (std::string& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      e = std::move(setting);
      return;
    }
  }
  env.push_back(std::move(setting));
}

void unset_env(std::vector<std::string>& env, std::string_view name) {
  std::erase_if(env, [&](const std::string& e) {
    return e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=';
  });
}

std::optional<std::string> get_env(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      return e.substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

}  // namespace mosix
