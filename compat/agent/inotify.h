// The program's inotify watches, as it added them (inotify.cpp). The kernel
// shows each watch's number, inode and mask (/proc/self/fdinfo), but not the
// path it was added by; a restore adds every watch again by its path, so the
// agent notes the paths as the program adds them.
#pragma once

#include <cstddef>

namespace mosix::agent {

// The image data of the inotify descriptor `fd` (image_format.h, kind
// inotify), from its fdinfo text `info` and the watches the agent saw added.
// Returns its length, or -1 with the reason in `error`: a watch added where
// the agent could not see it (its path unknown), a watched file no longer at
// its path, events queued and not read yet, more than `cap` bytes.
long inotify_image_data(long fd, const char* info, unsigned char* out, std::size_t cap, char* error,
                        std::size_t error_cap);

}  // namespace mosix::agent
