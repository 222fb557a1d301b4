#!/usr/bin/env bash
# File locks survive checkpoint --kill and restart: ckpt_locks holds a POSIX
# write lock, an OFD write lock and an exclusive flock on a shared file; after
# it is checkpointed with --kill and restarted, a second process (ckpt_locks
# probe) finds all three held again, the POSIX one by the restored process.
# If another process grabbed a lock in between, the restart is refused with
# exit 2 naming the file, the range and the holder, and the image is kept:
# once the other process lets go, the same image restores. The same with a
# real writer: ckpt_locks_sqlite_test.sh.
# Usage: BIN_DIR LIB_DIR.
set -u

bin=${1:?usage: ckpt_locks_test.sh BIN_DIR LIB_DIR}
lib=${2:?usage: ckpt_locks_test.sh BIN_DIR LIB_DIR}
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"

prog=$bin/ckpt_locks
ctl=$bin/mosixctl
work=$CKPT_WORK
file=$work/shared.db
: > "$file"

# until_line FILE PATTERN [PID]: waits until FILE has a line matching PATTERN
# (or PID ended); polls, as bash cannot wait on a file.
until_line() {
  local i
  for (( i = 0; i < 6000; i++ )); do
    grep -q -- "$2" "$1" 2> /dev/null && return 0
    [[ -n ${3:-} ]] && ! _ckpt_alive "$3" && { grep -q -- "$2" "$1" 2> /dev/null; return; }
    sleep 0.05
  done
  return 1
}

start_guest "$work/hold.out" "$prog" hold "$file" || exit 1
holder=$CKPT_GUEST_PID
until_line "$work/hold.out" '^locked' "$holder" || { fail "ckpt_locks hold did not lock: $(cat "$work/hold.out" "$work/hold.out.err")"; exit 1; }
"$prog" probe "$file" > "$work/probe0" && grep -q "posix held by $holder" "$work/probe0" ||
  fail "the locks are not held before the checkpoint: $(tr '\n' ' ' < "$work/probe0")"

img=$work/locks.img
if ! "$ctl" checkpoint "$holder" -o "$img" --kill > "$work/ckpt.log" 2>&1; then
  fail "checkpoint: $(cat "$work/ckpt.log")"
  kill -KILL "$holder" 2> /dev/null
  exit 1
fi
wait "$holder" 2> /dev/null
"$prog" probe "$file" > "$work/probe1"
grep -q "posix free" "$work/probe1" || fail "the killed process still holds its lock: $(tr '\n' ' ' < "$work/probe1")"

# Someone else takes each lock in turn: the restart is refused, image kept.
declare -A want=([posix]="posix write lock on bytes 0-99 of $file (fd 3)"
                 [ofd]="ofd write lock on bytes 200-299 of $file (fd 4)"
                 [flock]="flock write lock on the whole file of $file (fd 5)")
for kind in posix ofd flock; do
  (_ckpt_exec_clean "$prog" grab "$kind" "$file") > "$work/grab.$kind" 2>&1 &
  grabber=$!
  until_line "$work/grab.$kind" '^grabbed' "$grabber" || fail "grab $kind: $(cat "$work/grab.$kind")"
  (_ckpt_exec_clean "$ctl" restart "$img") > "$work/refused.$kind.out" 2> "$work/refused.$kind.err" < /dev/null &
  restart=$!
  # Either it ends (refused), or it becomes the program, restored without
  # its lock (which then waits for SIGUSR1 forever).
  for (( i = 0; i < 6000; i++ )); do
    _ckpt_alive "$restart" || break
    [[ $(cat "/proc/$restart/comm" 2> /dev/null) == ckpt_locks ]] && break
    sleep 0.05
  done
  restored_anyway=
  if _ckpt_alive "$restart"; then
    kill -KILL "$restart"
    restored_anyway=1
  fi
  wait "$restart" 2> /dev/null
  status=$?
  err=$(cat "$work/refused.$kind.err")
  if [[ -n $restored_anyway ]]; then
    fail "restart with the $kind lock taken by pid $grabber: the process was restored without its lock"
  elif (( status != 2 )); then
    fail "restart with the $kind lock taken: exit status $status, expected 2: $err"
  elif [[ $err != *"cannot take the ${want[$kind]} again"* ]]; then
    fail "restart with the $kind lock taken: the refusal does not name the lock: $err"
  elif [[ $kind != ofd && $err != *"process $grabber holds a conflicting lock"* ]]; then
    fail "restart with the $kind lock taken: the refusal does not name the holder $grabber: $err"
  elif (( $(wc -l < "$work/refused.$kind.err") != 1 )); then
    fail "restart with the $kind lock taken: more than one line: $err"
  else
    echo "ok: restart refused while another process holds the $kind lock: $err"
  fi
  [[ -s $img ]] || fail "the image is gone after the refusal"
  kill -TERM "$grabber"
  wait "$grabber" 2> /dev/null
done

(_ckpt_exec_clean "$ctl" restart "$img") > "$work/restored.out" 2> "$work/restored.err" < /dev/null &
launcher=$!
# Probe only once the restorer has become the program (it takes the locks
# before that): a probe's own flock could otherwise get in its way.
for (( i = 0; i < 6000; i++ )); do
  [[ $(cat "/proc/$launcher/comm" 2> /dev/null) == ckpt_locks ]] && break
  _ckpt_alive "$launcher" || break
  sleep 0.05
done
"$prog" probe "$file" > "$work/probe2"
restored=$(sed -n 's/^posix held by //p' "$work/probe2")
if [[ -z $restored || $restored != "$launcher" ]]; then
  fail "the restored process does not hold its POSIX lock: $(tr '\n' ' ' < "$work/probe2") $(cat "$work/restored.err")"
else
  cp "$work/probe2" "$work/probe3"
  comm=$(cat "/proc/$restored/comm" 2> /dev/null)
  if [[ $(tr '\n' ' ' < "$work/probe3") == "posix held by $restored ofd held flock held " && $comm == ckpt_locks ]]; then
    echo "ok: after restart, pid $restored ($comm) holds the POSIX, OFD and flock locks again"
  else
    fail "after restart: $(tr '\n' ' ' < "$work/probe3") (pid $restored is '$comm')"
  fi
fi
# The handshake: SIGUSR1 lets it end (whatever it holds).
kill -USR1 "$launcher" 2> /dev/null
wait "$launcher"
status=$?
if (( status == 0 )) && [[ $(cat "$work/restored.out") == done ]]; then
  echo "ok: the restored process ends normally"
else
  fail "the restored process: exit status $status, output '$(cat "$work/restored.out")' $(cat "$work/restored.err")"
fi

(( failures == 0 )) || { echo "$failures failure(s)" >&2; exit 1; }
echo "all checks passed"
