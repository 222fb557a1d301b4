#include "runtime/sys/elf_needed.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace mosix::sys {
namespace {

// Reads exactly `size` bytes at `offset`.
bool read_at(int fd, void* out, std::size_t size, std::uint64_t offset) {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

}  // namespace

// Through the section headers: the SHT_DYNAMIC section and the string table
// its sh_link names. Every count and offset is bounded by the file's size.
std::vector<std::string> elf_needed(const std::string& path) {
  std::vector<std::string> needed;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return needed;
  const off_t file_size = ::lseek(fd, 0, SEEK_END);
  Elf64_Ehdr eh{};
  const bool elf = file_size > 0 && read_at(fd, &eh, sizeof eh, 0) && std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
                   eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_ident[EI_DATA] == ELFDATA2LSB &&
                   eh.e_shentsize == sizeof(Elf64_Shdr) && eh.e_shnum > 0 && eh.e_shnum < 4096;
  const auto size = static_cast<std::uint64_t>(file_size);
  for (unsigned i = 0; elf && i < eh.e_shnum; ++i) {
    Elf64_Shdr dyn{};
    if (!read_at(fd, &dyn, sizeof dyn, eh.e_shoff + i * sizeof(Elf64_Shdr)) || dyn.sh_type != SHT_DYNAMIC) continue;
    Elf64_Shdr str{};
    if (dyn.sh_link >= eh.e_shnum || !read_at(fd, &str, sizeof str, eh.e_shoff + dyn.sh_link * sizeof(Elf64_Shdr)) ||
        str.sh_offset > size || str.sh_size > size - str.sh_offset || dyn.sh_offset > size ||
        dyn.sh_size > size - dyn.sh_offset || str.sh_size > (16u << 20)) {
      break;
    }
    std::string strings(str.sh_size, '\0');
    if (!read_at(fd, strings.data(), strings.size(), str.sh_offset)) break;
    for (std::uint64_t at = 0; at + sizeof(Elf64_Dyn) <= dyn.sh_size; at += sizeof(Elf64_Dyn)) {
      Elf64_Dyn d{};
      if (!read_at(fd, &d, sizeof d, dyn.sh_offset + at) || d.d_tag == DT_NULL) break;
      if (d.d_tag == DT_NEEDED && d.d_un.d_val < strings.size()) needed.emplace_back(strings.c_str() + d.d_un.d_val);
    }
    break;
  }
  ::close(fd);
  return needed;
}

bool links_mpi(const std::string& path) {
  for (const std::string& lib : elf_needed(path)) {
    if (lib.rfind("libmpi", 0) == 0) return true;  // libmpi.so.40 (Open MPI), libmpich.so.12 (MPICH)
  }
  return false;
}

bool links_mpich(const std::string& path) {
  for (const std::string& lib : elf_needed(path)) {
    if (lib.rfind("libmpich", 0) == 0) return true;
  }
  return false;
}

}  // namespace mosix::sys
