#!/usr/bin/env bash
# A checkpoint restores exactly or refuses with the reason (issue 12), on
# tests/programs/ckpt_never_silent, one state per mode:
# - refused, and the process unharmed (it then finishes normally): a live
#   child, an ended child not waited for, shared memory a grandchild still
#   maps, a guard page, an O_PATH descriptor on a removed file, a removed
#   working directory whose name another directory took, a thread with a
#   descriptor table of its own (clone() without CLONE_FILES),
#   a file lease, a seccomp filter, SEM_UNDO, System V shared memory, a
#   memfd mapped shared, a signalfd another process holds, an inotify watch
#   added past libc or an inotify event not read yet, a fanotify, pidfd, io_uring or
#   pty descriptor, an AIO context, a file in
#   /proc, a private mapping of a deleted file open for writing, a deleted
#   file or a named pipe another process holds too;
# - restored exactly: shared anonymous memory only a dead child wrote, and a
#   session leader (it leads its session and group again, not the
#   restarter's), and MADV_WIPEONFORK (given again: a child forked after the
#   restore sees the page zero), and a read-only shared mapping of a file
#   opened for writing (mprotect may still make it writable), a deleted
#   file held open (contents, holes, size, mode, mtime, offsets), named
#   pipes, one removed (ckpt_fifo: each open's flags, a dup, capacity, unread
#   bytes, reached again by its path), a removed directory held open and a
#   removed working directory (empty, removed, their mode), MAP_DROPPABLE
#   memory and mlock()ed pages (ckpt_mappings: droppable, locked again), a sealed
#   memfd (name, contents, seals, mode, offset), O_PATH descriptors on a
#   file and on a symlink, a signalfd (mask, flags), an eventfd (count,
#   semaphore mode), timerfds (clock, time left, interval, expirations), the
#   auxiliary vector, descriptors sharing one open file (a file's offset and
#   status flags, an eventfd's count; FD_CLOEXEC each its own), two opens
#   of one pipe end (flags each their own) beside a dup of the other end,
#   inotify watches (by path, at their numbers, no event lost or made up), an OFD lock and /proc/<getpid()>/... naming the restored
#   process (its fdinfo, status, exe, fd), no_new_privs, signals queued with payloads to the
#   process and to a thread, and a poll and a nanosleep in progress (neither
#   ends with EINTR), and a hard limit of open files above the restarter's
#   (refused, or raised where the restorer may); the image of the first is given to mosixctl as a relative
#   path, which must land in mosixctl's directory, not the program's (/);
# - with the agent and no checkpoint: a clone() child sees its own pid.
# Usage: BIN_DIR LIB_DIR
set -u

bin=$(cd "${1:?usage: ckpt_never_silent_test.sh BIN_DIR LIB_DIR}" && pwd) || exit 1
lib=$(cd "${2:?usage: ckpt_never_silent_test.sh BIN_DIR LIB_DIR}" && pwd) || exit 1
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"
prog=$bin/ckpt_never_silent
[[ -x $prog ]] || { echo "FAIL: $prog is missing"; exit 1; }

# Waits for PID to end (it is not our child after a restart through setsid).
wait_end() {
  while _ckpt_alive "$1"; do sleep 0.01; done
}

refused() {  # MODE EXPECTED-TEXT
  local mode=$1 want=$2 out=$CKPT_WORK/$1.out msg pid
  start_guest "$out" "$prog" "$mode" || { fail "$mode: did not start"; return; }
  pid=$CKPT_GUEST_PID
  wait_for_line "$out" '^ready\|^SKIP' "$pid" || { fail "$mode: no ready line: $(tail -n 2 "$out")"; return; }
  if grep -q '^SKIP' "$out"; then
    echo "skip: $(grep '^SKIP' "$out")"
    wait "$pid"
    return
  fi
  msg=$("$bin/mosixctl" checkpoint "$pid" -o "$CKPT_WORK/$mode.img" --kill 2>&1)
  local status=$?
  if (( status == 0 )); then
    fail "$mode: the checkpoint was accepted: $msg"
    wait "$pid"
    return
  fi
  if [[ $msg != *"$want"* ]]; then
    fail "$mode: refused, but the reason does not say '$want': $msg"
  fi
  if ! _ckpt_alive "$pid"; then
    fail "$mode: the refused checkpoint harmed the process: $(tail -n 2 "$out")"
    return
  fi
  kill -USR1 "$pid"
  wait "$pid"
  status=$?
  if (( status == 0 )) && grep -q "^OK $mode\$" "$out"; then
    echo "ok: $mode refused (${msg##*refused: }) and unharmed"
  else
    fail "$mode: after the refusal the program ended with $status: $(tail -n 1 "$out")"
  fi
}

# MODE [NOFILE]: checkpoint --kill to a relative path, restart, check. With
# NOFILE, the first restart runs under ulimit -n NOFILE (below the program's
# hard limit): it either refuses naming the limit, the image kept (a restorer
# that may not raise it), or gives the program its own limit back (root).
restored() {
  local mode=$1 nofile=${2:-} out=$CKPT_WORK/$1.out img=$CKPT_WORK/caller/$1.img pid rpid='' status
  start_guest "$out" "$prog" "$mode" || { fail "$mode: did not start"; return; }
  pid=$CKPT_GUEST_PID
  wait_for_line "$out" '^ready' "$pid" || { fail "$mode: no ready line: $(tail -n 2 "$out")"; return; }
  mkdir -p "$CKPT_WORK/caller"
  if ! (cd "$CKPT_WORK/caller" && "$bin/mosixctl" checkpoint "$pid" -o "$mode.img" --kill) > "$CKPT_WORK/$mode.log" 2>&1; then
    fail "$mode: checkpoint refused: $(cat "$CKPT_WORK/$mode.log")"
    kill -KILL "$pid" 2> /dev/null
    return
  fi
  { wait "$pid"; } 2> /dev/null
  if [[ ! -s $img ]]; then
    fail "$mode: the relative -o path did not land in mosixctl's directory"
    return
  fi
  echo "ok: $mode: a relative -o path lands where mosixctl runs"
  if [[ -n $nofile ]]; then
    (ulimit -n "$nofile" && _ckpt_exec_clean "$bin/mosixctl" restart "$img") >> "$out" 2>> "$out.err" < /dev/null &
    rpid=$!
    if ! wait_restored "$rpid"; then
      wait "$rpid"
      status=$?
      if (( status != 2 )) || ! grep -q "hard limit of nofile" "$out.err"; then
        fail "$mode: the restart under ulimit -n $nofile ended with $status: $(tail -n 2 "$out.err")"
        return
      fi
      echo "ok: $mode: a restart under a lower hard limit is refused: $(tail -n 1 "$out.err")"
      rpid=''
    fi
  fi
  if [[ -z $rpid ]]; then
    (_ckpt_exec_clean "$bin/mosixctl" restart "$img") >> "$out" 2>> "$out.err" < /dev/null &
    rpid=$!
    if ! wait_restored "$rpid"; then
      wait "$rpid"
      fail "$mode: the restart ended with $?: $(tail -n 2 "$out.err")"
      return
    fi
  fi
  kill -USR1 "$rpid"
  wait "$rpid"
  status=$?
  if (( status == 0 )) && grep -q "^OK $mode\$" "$out"; then
    echo "ok: $mode restored exactly"
  else
    fail "$mode: after the restore the program ended with $status: $(tail -n 1 "$out")"
  fi
}

# No checkpoint: the agent alone must not change what the program sees.
out=$CKPT_WORK/clone.out
start_guest "$out" "$prog" clone && wait "$CKPT_GUEST_PID"
if (( $? == 0 )) && grep -q '^OK clone$' "$out"; then
  echo "ok: a clone() child sees its own pid and its parent's with the agent preloaded"
else
  fail "clone: $(tail -n 1 "$out")"
fi

refused child "live child"
refused zombie "not yet waited for"
refused shm_other "is shared with process"
refused guard "guard page"
refused opath_gone "O_PATH descriptor on"
refused cwd_taken "exists again"
refused thread_files "descriptor table of its own"
refused lease "file lease"
refused seccomp "seccomp filter"
refused semundo "SEM_UNDO"
refused sysvshm "System V shared memory"
refused memfd_map "(a memfd)"
refused inotify_raw "its path is unknown"
refused inotify_unread "events not read yet"
refused fanotify "fanotify instance"
refused pidfd "is a pidfd"
refused signalfd_other "(a signalfd) is held by process"
refused io_uring "io_uring instance"
refused aio "AIO context"
refused pty "is the terminal"
refused procfd "file in /proc"
refused ghostmap "open for writing"
refused ghost_other "too, which the checkpoint does not take along"
refused tcp_conn "connected socket (a stream)"
refused udp_unread "data not read yet"
refused socketpair "descriptors in flight"
refused epoll_reused_pipe "another file has taken since"
refused ghost_wronly_locked "holds POSIX locks on"
prog=$bin/ckpt_fifo refused fifo_other "named pipe the process holds open"
restored shm
restored session
restored wipeonfork
restored maywrite
restored ghost
restored rmdir
restored cwdgone
restored memfd
restored opath
restored signalfd
restored eventfd
restored timerfd
restored auxv
restored procpid
restored nnp
prog=$bin/ckpt_process_flags restored prctls
prog=$bin/ckpt_process_flags restored membarrier
restored sigqueue
restored dup
restored pipe2
restored pipefull
restored tids
restored exe
restored lockpid
restored sockets
restored inotify
restored epoll_reused
restored ghost_wronly
prog=$bin/ckpt_fifo restored fifo
prog=$bin/ckpt_mappings restored droppable
prog=$bin/ckpt_mappings restored locked
restored waits
restored rlimit $(( $(ulimit -H -n) - 1 ))

if (( failures > 0 )); then
  echo "FAIL: $failures check(s) failed"
  exit 1
fi
echo "PASS"
