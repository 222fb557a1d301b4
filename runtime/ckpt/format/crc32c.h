// CRC32C (Castagnoli), used for every chunk of an image: the project's one
// implementation, runtime/core/crc32c.h, under the format's namespace. Its
// source is compiled into this library as well as into mosix_core (see
// CMakeLists.txt), so the format does not link mosix_core.
#pragma once

#include "runtime/core/crc32c.h"

namespace mosix::ckpt {

// crc32c(crc, data, len) extends crc (0 to start); crc32c_portable is the
// table version alone, for tests.
using mosix::crc32c;
using mosix::crc32c_portable;

}  // namespace mosix::ckpt
