// Epoll instances a restore can make again: the kernel shows each watch's
// descriptor number, events (with EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE) and
// data word in /proc/self/fdinfo; a restore makes a new instance and adds
// every watch again, on the same numbers.
#pragma once

#include <cstddef>

namespace mosix::agent {

// The image data of the epoll descriptor `fd` (image_format.h, kind epoll),
// from its fdinfo text `info` and the process's descriptors `fds`: u32
// count, then per watch i32 fd, i32 the fd to add it through, u32 events,
// u64 data. Returns its length, or -1 with the reason in `error`: a watch
// on a file no descriptor holds (the kernel keys a watch by number and
// file, so it could not be added again), more than `cap` bytes.
long epoll_image_data(long fd, const char* info, const long* fds, int nfds, unsigned char* out, std::size_t cap,
                      char* error, std::size_t error_cap);

}  // namespace mosix::agent
