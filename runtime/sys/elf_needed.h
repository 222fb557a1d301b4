// The shared libraries an ELF program names (its DT_NEEDED entries), read
// from the file: how mosixrun tells an MPI program (--mpi auto).
#pragma once

#include <string>
#include <vector>

namespace mosix::sys {

// Empty when the file is not a 64-bit little-endian ELF file with a dynamic
// section (a script, a static program) or cannot be read.
std::vector<std::string> elf_needed(const std::string& path);

// Whether the program needs an MPI library (libmpi*, libmpich*).
bool links_mpi(const std::string& path);
// Whether it needs MPICH's (libmpich*), which speaks PMI rather than PMIx.
bool links_mpich(const std::string& path);

}  // namespace mosix::sys
