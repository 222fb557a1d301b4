#include <cpuid.h>
#include <gnu/libc-version.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>

#include "runtime/ckpt/format/image_format.h"

namespace mosix::ckpt {
namespace {

template <std::size_t N>
void copy_text(char (&dst)[N], const char* src) {
  std::memset(dst, 0, N);
  if (!src) return;
  std::size_t n = strnlen(src, N - 1);
  std::memcpy(dst, src, n);
}

struct Cpuid {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Cpuid cpuid(unsigned leaf, unsigned sub) {
  Cpuid r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

std::uint64_t xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (std::uint64_t{hi} << 32) | lo;
}

void set_if(std::uint64_t* features, unsigned reg, unsigned bit, std::uint64_t feature) {
  if (reg & (1u << bit)) *features |= feature;
}

void describe_cpu(MachineInfo* m) {
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf == 0) return;
  Cpuid v = cpuid(0, 0);
  std::memcpy(m->cpu_vendor, &v.b, 4);
  std::memcpy(m->cpu_vendor + 4, &v.d, 4);
  std::memcpy(m->cpu_vendor + 8, &v.c, 4);
  m->cpu_vendor[12] = '\0';

  std::uint64_t f = 0;
  Cpuid l1 = cpuid(1, 0);
  set_if(&f, l1.c, 0, kCpuSse3);
  set_if(&f, l1.c, 1, kCpuPclmul);
  set_if(&f, l1.c, 9, kCpuSsse3);
  set_if(&f, l1.c, 12, kCpuFma);
  set_if(&f, l1.c, 19, kCpuSse41);
  set_if(&f, l1.c, 20, kCpuSse42);
  set_if(&f, l1.c, 22, kCpuMovbe);
  set_if(&f, l1.c, 23, kCpuPopcnt);
  set_if(&f, l1.c, 25, kCpuAes);
  set_if(&f, l1.c, 26, kCpuXsave);
  set_if(&f, l1.c, 28, kCpuAvx);
  set_if(&f, l1.c, 29, kCpuF16c);
  set_if(&f, l1.c, 30, kCpuRdrand);
  if (max_leaf >= 7) {
    Cpuid l7 = cpuid(7, 0);
    set_if(&f, l7.b, 0, kCpuFsgsbase);
    set_if(&f, l7.b, 3, kCpuBmi1);
    set_if(&f, l7.b, 5, kCpuAvx2);
    set_if(&f, l7.b, 8, kCpuBmi2);
    set_if(&f, l7.b, 9, kCpuErms);
    set_if(&f, l7.b, 16, kCpuAvx512f);
    set_if(&f, l7.b, 17, kCpuAvx512dq);
    set_if(&f, l7.b, 18, kCpuRdseed);
    set_if(&f, l7.b, 19, kCpuAdx);
    set_if(&f, l7.b, 28, kCpuAvx512cd);
    set_if(&f, l7.b, 29, kCpuSha);
    set_if(&f, l7.b, 30, kCpuAvx512bw);
    set_if(&f, l7.b, 31, kCpuAvx512vl);
    set_if(&f, l7.c, 1, kCpuAvx512vbmi);
    set_if(&f, l7.c, 8, kCpuGfni);
    set_if(&f, l7.c, 9, kCpuVaes);
    set_if(&f, l7.c, 10, kCpuVpclmulqdq);
    set_if(&f, l7.c, 11, kCpuAvx512vnni);
    set_if(&f, l7.d, 4, kCpuFsrm);
    set_if(&f, l7.d, 23, kCpuAvx512fp16);
    set_if(&f, l7.d, 24, kCpuAmxTile);
    if (l7.a >= 1) set_if(&f, cpuid(7, 1).a, 5, kCpuAvx512bf16);
  }
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000001) set_if(&f, cpuid(0x80000001, 0).c, 5, kCpuLzcnt);

  // XGETBV faults unless the OS set CR4.OSXSAVE (CPUID.1:ECX bit 27).
  if ((l1.c & (1u << 27)) && max_leaf >= 0xd) {
    m->xcr0 = xgetbv0();
    m->xsave_size = cpuid(0xd, 0).b;
    Cpuid d1 = cpuid(0xd, 1);
    set_if(&f, d1.a, 0, kCpuXsaveopt);
    set_if(&f, d1.a, 1, kCpuXsavec);
    set_if(&f, d1.a, 3, kCpuXsaves);
    for (unsigned i = 2; i < kMaxXstateComponents; ++i) {
      if (!(m->xcr0 & (1ull << i))) continue;
      Cpuid c = cpuid(0xd, i);
      m->xsave_component_size[i] = c.a;
      m->xsave_offset[i] = c.b;
    }
  }
  m->cpu_features = f;
}

}  // namespace

void describe_this_machine(MachineInfo* out) {
  *out = MachineInfo{};
  struct utsname u;
  if (uname(&u) == 0) {
    copy_text(out->arch, u.machine);
    copy_text(out->kernel_release, u.release);
  }
  copy_text(out->libc_version, gnu_get_libc_version());
  long page = sysconf(_SC_PAGESIZE);
  out->page_size = page > 0 ? static_cast<std::uint32_t>(page) : 4096;
  describe_cpu(out);
}

}  // namespace mosix::ckpt
