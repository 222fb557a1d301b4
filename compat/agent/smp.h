// The SMP view (docs/mosixrun.md, "The SMP view"): inside a job over several
// nodes the program sees the cluster's CPUs and memory. The launcher passes
// the totals in MOSIX_SMP_CPUS and MOSIX_SMP_MEMORY_KIB; the agent reads them
// once, at its start, into its own memory, so a restored process keeps the
// view it had. Without them (one node, --no-smp, an MPI copy) nothing changes.
#pragma once

#include <cstddef>

namespace mosix::agent {

// What smp_open returns for a path it does not serve: the caller opens it.
constexpr int kNotServed = -2;

// For /proc/cpuinfo, /proc/meminfo and /sys/devices/system/cpu/{online,
// possible,present} opened for reading while the view is on: a descriptor of
// the generated contents (a memfd, read-only, FD_CLOEXEC as O_CLOEXEC says),
// or -1 with errno. kNotServed for any other path or open. Only raw system
// calls: safe in a signal handler.
int smp_open(const char* path, int flags);

// A read-only descriptor of data[0, len) (a memfd opened again read-only),
// or a negative errno. Raw system calls only.
long read_only_memfd(const char* name, const char* data, std::size_t len, bool cloexec);

// pid_views.cpp: in a restored process, its own /proc/<pid>/fdinfo/N and
// /proc/locks with the kernel's new pid in lock lines shown as the virtual
// one; kNotServed for anything else. smp_open asks it first.
int pid_view_open(const char* path, int flags);

// The same for fopen's mode string ("r", "re", ...).
int smp_fopen(const char* path, const char* mode);

}  // namespace mosix::agent
