/* The body http_server answers for /body/SEED/SIZE, which http_load
 * checks byte for byte: a deterministic stream of printable bytes. */
#pragma once

#include <stddef.h>

#define HTTP_BODY_MAX (1u << 20)

static inline void http_body(unsigned long seed, char* out, size_t size) {
  unsigned long x = seed * 2654435761ul + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = (char)('a' + x % 26);
  }
}
