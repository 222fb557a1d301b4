// The one rule for a user's mosix runtime directory (job records, control
// sockets, checkpoint requests, the topology cache), in a form the guest
// agent can use too: header-only, plain C strings, no allocation, no libc.
// runtime_dir.h applies it for the runtime; docs/runtime-directory.md says it
// for users.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mosix::sys {

// The runtime directory of user `uid`:
//   $XDG_RUNTIME_DIR/mosix   when XDG_RUNTIME_DIR is an absolute path that
//                            is_dir() says is a directory;
//   /run/user/<uid>/mosix    else, when is_dir("/run/user/<uid>") says so;
//   /tmp/mosix-<uid>         else.
// Only existing directories count, so that two processes of the user on one
// node agree where they can: a guest that carries its home node's
// XDG_RUNTIME_DIR to a node without it, and that node's daemon, which has
// none, both end at the fallback. `xdg_runtime_dir` is the variable's value
// (null when unset). Writes the path with its terminating zero into `out`
// (`size` bytes) and returns true; false, with `out` empty, when it does not
// fit.
template <typename IsDir>
bool runtime_dir_path(char* out, std::size_t size, const char* xdg_runtime_dir, std::uint64_t uid,
                      IsDir&& is_dir) {
  std::size_t at = 0;
  bool fits = size > 0;
  auto put = [&](const char* s) {
    for (; fits && *s != '\0'; ++s) {
      if (at + 1 >= size) fits = false;
      else out[at++] = *s;
    }
  };
  auto put_uid = [&] {
    char digits[24];
    std::size_t n = 0;
    std::uint64_t v = uid;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    char text[24];
    for (std::size_t i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
    text[n] = '\0';
    put(text);
  };
  if (xdg_runtime_dir != nullptr && xdg_runtime_dir[0] == '/' && is_dir(xdg_runtime_dir)) {
    put(xdg_runtime_dir);
    put("/mosix");
  } else {
    put("/run/user/");
    put_uid();
    if (fits) {
      out[at] = '\0';
      if (is_dir(static_cast<const char*>(out))) {
        put("/mosix");
      } else {
        at = 0;
        put("/tmp/mosix-");
        put_uid();
      }
    }
  }
  if (size > 0) out[fits ? at : 0] = '\0';
  return fits;
}

}  // namespace mosix::sys
