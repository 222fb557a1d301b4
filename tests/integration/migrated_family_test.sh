#!/usr/bin/env bash
# A guest that moved keeps placing its family from where it is now (issue 15,
# docs/mosixrun.md "Children"): its memory, environment included, came from
# the node it left, so the node daemon's file (runtime/daemon/node_env_file.h)
# tells its new programs where they are (compat/agent/place_at_exec.cpp).
#   - a program it execs after the move stays in its place, as before the
#     move (no deputy: the same pid), and sees the new node's name;
#   - its children are placed away from its new node (--spread always),
#     not from the node it left.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"

cat > "$TMP/family.py" << 'PY'
import os, subprocess, sys, time
tmp = sys.argv[1]
open(tmp + "/ready", "w").close()
# The test moves us, then opens the gate.
while not os.path.exists(tmp + "/gate"):
    time.sleep(0.02)
nodes = [subprocess.run(["sh", "-c", "echo $MOSIX_NODE"], capture_output=True, text=True).stdout.strip()
         for _ in range(4)]
print("children on", " ".join(sorted(set(nodes))), flush=True)
os.execvp("sh", ["sh", "-c", 'echo "exec: pid $$ on $MOSIX_NODE"'])
PY

"$BIN/mosixrun" --vcluster 3 --spread always -np 1 python3 "$TMP/family.py" "$TMP" < /dev/null > "$TMP/out" 2> "$TMP/err" &
job=$!
if ! wait_for "[ -e $TMP/ready ]"; then
  fail "the program never started: $(cat "$TMP/err")"
  finish
fi
moved=$("$BIN/mosixctl" migrate 0 vnode1 --job "$job" --json 2>&1)
check_eq "the copy moved to vnode1" "true vnode1" "$(jq -r '"\(.ok) \(.to)"' <<< "$moved" 2>&1)"
pid=$(jq -r '.pid' <<< "$moved" 2>/dev/null)
touch "$TMP/gate"
wait "$job"
check_eq "the job ends well" 0 "$?"
children=$(grep '^children on' "$TMP/out")
if [[ $children =~ ^children\ on\ (vnode[02]\ ?)+$ ]]; then
  pass "its children were placed away from vnode1, where it is now ($children)"
else
  fail "its children ran on the wrong nodes: '$children' (vnode0 and vnode2 expected)"
fi
check_contains "a program it execs stays in its place and knows its node" "exec: pid $pid on vnode1" "$(cat "$TMP/out")"
if ((FAILURES > 0)); then cat "$TMP/err" >&2; fi
finish
