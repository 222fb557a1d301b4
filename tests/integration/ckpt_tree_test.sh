#!/usr/bin/env bash
# Process trees checkpointed and restored whole (issue 12):
# tests/programs/ckpt_tree (a root, a child and a grandchild alive, three
# children ended and not waited for) checks inside itself, after the
# restore, its pids, its parent's, kill() to its children, the statuses
# wait/waitpid/waitid give and SIGCHLD.
# - A checkpoint of the root alone is refused, naming --tree, and harms
#   nothing (the tree then passes its own checks).
# - checkpoint --tree --kill, then restart: every process is gone after the
#   checkpoint; the image without one process's image is refused (exit 2); the restored tree is checkpointed and restarted again, and
#   passes.
# - a grandchild holds what a checkpoint refuses (a file in /proc): the
#   refusal names it, and the whole tree runs on and passes;
# - checkpoint --tree (left running, --json): the tree runs on and passes,
#   then its image is restarted and passes too.
# - tests/programs/ckpt_tree_stopped (a child stopped by SIGSTOP, its stop
#   not waited for yet): checkpointed with --kill and left running, the
#   parent's wait reports the child stopped after the restore (and after
#   the checkpoint), and the child continues.
# - tests/programs/ckpt_tree_files (a deleted file, a memfd and a named pipe
#   the root and its child hold, inherited and opened again): refused while
#   this script holds the deleted file too; else restored as one file each
#   (offsets, flags, writes seen across, unread bytes, the file's mode and
#   link count, the named pipe's path).
# Usage: BIN_DIR LIB_DIR
set -u

bin=$(cd "${1:?usage: ckpt_tree_test.sh BIN_DIR LIB_DIR}" && pwd) || exit 1
lib=$(cd "${2:?usage: ckpt_tree_test.sh BIN_DIR LIB_DIR}" && pwd) || exit 1
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"
prog=$bin/ckpt_tree
[[ -x $prog ]] || { echo "FAIL: $prog is missing"; exit 1; }

# The pids of PID and all its live descendants.
tree_pids() {
  local p c
  _ckpt_alive "$1" || return 0
  echo "$1"
  for p in /proc/"$1"/task/*/children; do
    for c in $(cat "$p" 2> /dev/null); do tree_pids "$c"; done
  done
}

# PID OUT WHAT: lets the tree at PID go (SIGUSR1), expects it to pass.
goes_on_and_passes() {
  local pid=$1 out=$2 what=$3 status
  kill -USR1 "$pid"
  wait "$pid"
  status=$?
  if (( status == 0 )) && grep -q '^PASS$' "$out"; then
    echo "ok: $what passes"
  else
    fail "$what ended with $status: $(tail -n 1 "$out") $(tail -n 2 "$out.err" 2> /dev/null)"
  fi
}

# IMG OUT [AGAIN]: restarts IMG into OUT, lets it go, expects PASS. With
# AGAIN, the restored tree is first checkpointed --tree --kill into AGAIN
# and that image restarted (its pids are then neither the first real ones
# nor the restarted ones).
restart_passes() {
  local img=$1 out=$2 again=${3:-} rpid
  (_ckpt_exec_clean "$bin/mosixctl" restart "$img") > "$out" 2> "$out.err" < /dev/null &
  rpid=$!
  if ! wait_restored "$rpid"; then
    wait "$rpid"
    fail "restart of $img ended with $?: $(tail -n 2 "$out.err")"
    return 1
  fi
  if [[ -n $again ]]; then
    if ! msg=$("$bin/mosixctl" checkpoint --tree "$rpid" -o "$again" --kill 2>&1); then
      fail "checkpoint --tree of the restored tree refused: $msg"
      kill_tree "$rpid"
      return 1
    fi
    { wait "$rpid"; } 2> /dev/null
    echo "ok: the restored tree checkpointed again: $(head -n 1 <<< "$msg")"
    (_ckpt_exec_clean "$bin/mosixctl" restart "$again") > "$out" 2> "$out.err" < /dev/null &
    rpid=$!
    img=$again
    if ! wait_restored "$rpid"; then
      wait "$rpid"
      fail "restart of $img ended with $?: $(tail -n 2 "$out.err")"
      return 1
    fi
  fi
  goes_on_and_passes "$rpid" "$out" "the tree restored from $(basename "$img")"
}

# 1. The root alone: refused, naming --tree, unharmed.
out=$CKPT_WORK/alone.out
start_guest "$out" "$prog"
pid=$CKPT_GUEST_PID
if wait_for_line "$out" '^ready' "$pid"; then
  msg=$("$bin/mosixctl" checkpoint "$pid" -o "$CKPT_WORK/alone.img" --kill 2>&1)
  if (( $? == 0 )); then
    fail "a checkpoint of the root alone was accepted: $msg"
  elif [[ $msg != *"--tree"* || $msg != *"live child"* ]]; then
    fail "the root alone was refused, but not naming --tree and its children: $msg"
  else
    echo "ok: the root alone is refused: ${msg##*refused: }"
  fi
  goes_on_and_passes "$pid" "$out" "the refused tree, run on,"
else
  fail "no ready line: $(tail -n 2 "$out") $(tail -n 2 "$out.err")"
fi

# 2. --tree --kill, then restart.
out=$CKPT_WORK/kill.out
start_guest "$out" "$prog"
pid=$CKPT_GUEST_PID
if wait_for_line "$out" '^ready' "$pid"; then
  mapfile -t before < <(tree_pids "$pid")
  if msg=$("$bin/mosixctl" checkpoint --tree "$pid" -o "$CKPT_WORK/kill.img" --kill 2>&1); then
    echo "ok: checkpoint --tree --kill: $(head -n 1 <<< "$msg")"
    { wait "$pid"; } 2> /dev/null
    left=0
    for p in "${before[@]}"; do _ckpt_alive "$p" && left=$((left + 1)); done
    (( left == 0 )) || fail "$left of the tree's ${#before[@]} processes outlived checkpoint --kill"
    (( ${#before[@]} == 3 )) || fail "the tree had ${#before[@]} live processes, not 3"
    [[ $(grep -c '^zombie ' "$CKPT_WORK/kill.img") == 3 ]] &&
      grep -q '^zombie_leads [0-9]* session$' "$CKPT_WORK/kill.img" ||
      fail "the manifest does not name the 3 ended children and the one that led its own session: $(cat "$CKPT_WORK/kill.img")"
    grep -q '^socketpair [0-9]* [0-9]*$' "$CKPT_WORK/kill.img" && grep -q '^file 0 ' "$CKPT_WORK/kill.img" ||
      fail "the manifest names no socketpair or open file between processes: $(cat "$CKPT_WORK/kill.img")"
    # A tree image with one process's image missing: refused, nothing made.
    mkdir -p "$CKPT_WORK/partial"
    cp "$CKPT_WORK"/kill.img* "$CKPT_WORK/partial/" && rm "$CKPT_WORK/partial/kill.img.2"
    (_ckpt_exec_clean "$bin/mosixctl" restart "$CKPT_WORK/partial/kill.img") > "$CKPT_WORK/partial.out" \
      2> "$CKPT_WORK/partial.err" < /dev/null
    status=$?
    if (( status == 2 )) && grep -q 'mosix-restore: .*kill.img.2' "$CKPT_WORK/partial.err"; then
      echo "ok: a tree image missing a process's image is refused: $(head -n 1 "$CKPT_WORK/partial.err")"
    else
      fail "a tree image missing a process's image ended with $status: $(cat "$CKPT_WORK/partial.err")"
    fi
    restart_passes "$CKPT_WORK/kill.img" "$CKPT_WORK/kill.restored" "$CKPT_WORK/again.img"
  else
    fail "checkpoint --tree --kill refused: $msg"
    kill_tree "$pid"
  fi
else
  fail "no ready line: $(tail -n 2 "$out") $(tail -n 2 "$out.err")"
fi

# 3. One member refused: the reason names it, the tree runs on.
out=$CKPT_WORK/refuse.out
start_guest "$out" "$prog" refuse
pid=$CKPT_GUEST_PID
if wait_for_line "$out" '^ready' "$pid"; then
  mapfile -t before < <(tree_pids "$pid")
  if msg=$("$bin/mosixctl" checkpoint --tree "$pid" -o "$CKPT_WORK/refuse.img" --kill 2>&1); then
    fail "checkpoint --tree of a tree with a file in /proc was accepted: $msg"
  elif [[ $msg != *"process ${before[2]} refused"*"file in /proc"* ]]; then
    fail "the refusal does not name the grandchild ${before[2]} and its file in /proc: $msg"
  else
    echo "ok: one member refused: ${msg#*: }"
  fi
  [[ -e $CKPT_WORK/refuse.img ]] && fail "a refused tree checkpoint left its image"
  goes_on_and_passes "$pid" "$out" "the refused tree, run on,"
else
  fail "no ready line: $(tail -n 2 "$out") $(tail -n 2 "$out.err")"
fi

# 4. --tree, left running, --json; then the image restarted.
out=$CKPT_WORK/leave.out
start_guest "$out" "$prog"
pid=$CKPT_GUEST_PID
if wait_for_line "$out" '^ready' "$pid"; then
  if msg=$("$bin/mosixctl" checkpoint --tree "$pid" -o "$CKPT_WORK/leave.img" --json 2>&1); then
    if [[ $msg == *'"members":['* && $msg == *'"zombies":3'* ]]; then
      echo "ok: checkpoint --tree --json: $msg"
    else
      fail "checkpoint --tree --json printed: $msg"
    fi
    goes_on_and_passes "$pid" "$out" "the tree left running"
    restart_passes "$CKPT_WORK/leave.img" "$CKPT_WORK/leave.restored"
  else
    fail "checkpoint --tree refused: $msg"
    kill_tree "$pid"
  fi
else
  fail "no ready line: $(tail -n 2 "$out") $(tail -n 2 "$out.err")"
fi

# 5. A stopped child (ckpt_tree_stopped): --tree --kill, then restart; and
# left running. Its parent's wait reports it stopped either way.
prog=$bin/ckpt_tree_stopped  # wait_restored looks for its name
for mode in kill leave; do
  out=$CKPT_WORK/stopped-$mode.out
  start_guest "$out" "$prog"
  pid=$CKPT_GUEST_PID
  if ! wait_for_line "$out" '^ready' "$pid"; then
    fail "ckpt_tree_stopped: no ready line: $(tail -n 2 "$out") $(tail -n 2 "$out.err")"
    continue
  fi
  args=(checkpoint --tree "$pid" -o "$CKPT_WORK/stopped-$mode.img")
  [[ $mode == kill ]] && args+=(--kill)
  if ! msg=$("$bin/mosixctl" "${args[@]}" 2>&1); then
    fail "checkpoint --tree of a tree with a stopped child refused: $msg"
    kill_tree "$pid"
    continue
  fi
  echo "ok: checkpoint --tree ($mode) of a tree with a stopped child: $(head -n 1 <<< "$msg")"
  grep -q '^stopped 1 19$' "$CKPT_WORK/stopped-$mode.img" ||
    fail "the manifest does not name the stopped child: $(cat "$CKPT_WORK/stopped-$mode.img")"
  if [[ $mode == kill ]]; then
    { wait "$pid"; } 2> /dev/null
  else
    goes_on_and_passes "$pid" "$out" "the tree with a stopped child, left running,"
  fi
  restart_passes "$CKPT_WORK/stopped-$mode.img" "$CKPT_WORK/stopped-$mode.restored"
done

# 6. A deleted file, a memfd and a named pipe two processes hold
# (ckpt_tree_files): while
# a process outside the tree (this script) holds the file too, refused by
# name and run on; then --tree --kill and restart: each is one file again.
prog=$bin/ckpt_tree_files
out=$CKPT_WORK/ghosts.out
start_guest "$out" "$prog"
pid=$CKPT_GUEST_PID
if wait_for_line "$out" '^ready' "$pid"; then
  ghost=
  for f in /proc/"$pid"/fd/*; do
    [[ $(readlink "$f") == *ckpt_tree_files.*' (deleted)' ]] && ghost=$f
  done
  if [[ -n $ghost ]] && exec {holder}< "$ghost"; then
    if msg=$("$bin/mosixctl" checkpoint --tree "$pid" -o "$CKPT_WORK/ghosts-held.img" --kill 2>&1); then
      fail "a tree whose deleted file a process outside it holds was checkpointed: $msg"
    elif [[ $msg != *"process $$ too, which is not in the tree"* ]]; then
      fail "the refusal of a deleted file held outside the tree does not name this shell ($$): $msg"
    else
      echo "ok: a deleted file held outside the tree is refused: ${msg#*: }"
    fi
    exec {holder}<&-
  else
    fail "no descriptor of ckpt_tree_files on its deleted file: $(ls -l /proc/"$pid"/fd)"
  fi
  if msg=$("$bin/mosixctl" checkpoint --tree "$pid" -o "$CKPT_WORK/ghosts.img" --kill 2>&1); then
    echo "ok: checkpoint --tree of shared deleted files, memfds and named pipes: $(head -n 1 <<< "$msg")"
    { wait "$pid"; } 2> /dev/null
    restart_passes "$CKPT_WORK/ghosts.img" "$CKPT_WORK/ghosts.restored"
  else
    fail "checkpoint --tree of a deleted file, a memfd and a named pipe two processes hold refused: $msg"
    kill_tree "$pid"
  fi
else
  fail "ckpt_tree_files: no ready line: $(tail -n 2 "$out") $(tail -n 2 "$out.err")"
fi

if (( failures > 0 )); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
