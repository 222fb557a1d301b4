#!/usr/bin/env bash
# Fork and forget (issue 15, docs/mosixrun.md "Children"): a copy's children
# are placed at exec, and one placed on another node leaves a deputy that
# keeps its pid, its pipes, its signals and its exit status at home.
#   - bash snippets (pipelines, $(...), exit statuses, signals both ways,
#     wait -n, trap, SIGPIPE) print and end exactly as under plain bash,
#     with every child sent away (--spread always) and by load;
#   - the children really ran on the other nodes, also those started by
#     system(), popen() and posix_spawn();
#   - SIGKILL of a deputy takes its body with it;
#   - mosixctl ps lists a child placed away, with its parent and command;
#   - mosixctl migrate moves such a child, its output and status intact;
#   - the render farm (examples/render-farm): frames pixel-identical to a
#     local render, rendered on every node;
#   - the compile farm (examples/compile-farm): make -j$(nproc) of 60 units,
#     objects and program identical to a local build's, compilers on more
#     than one node, and nproc the cluster's;
#   - --spread off keeps every child home.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
SRC=${MOSIX_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

cat > "$TMP/snippets.sh" <<'SNIP'
echo "pipeline: $(printf 'b\na\nc\n' | sort | tr a-z A-Z | paste -sd,)"
sh -c 'exit 7'; echo "exit status $?"
sh -c 'kill -TERM $$' 2>/dev/null; echo "killed itself: $?"
(sh -c 'kill -SEGV $$') 2>/dev/null; echo "segv: $?"
x=$(seq 1 5 | awk '{s+=$1} END {print s}'); echo "sum $x"
sleep 1000 & p=$!; kill $p; wait $p; echo "killed by its parent: $?"
(sh -c 'exit 4'); echo "subshell $?"
sh -c 'exit 2' & sh -c 'exit 5' & wait -n; a=$?; wait -n; b=$?; echo "wait -n: $((a + b))"
seq 1 100000 | head -3; echo "pipestatus ${PIPESTATUS[*]}"
yes | head -c 100000 | wc -c
printf 'abc' | od -c | head -1
trap 'echo trapped USR1' USR1; sh -c 'kill -USR1 $PPID'; echo "after trap"
sh -c 'echo "ppid is the shell: $([ $PPID = '$$' ] && echo yes)"'
sh -c 'trap "echo child got HUP; exit 9" HUP; kill -HUP $$; exit 1'; echo "trapped in the child: $?"
sleep 1000 & s=$!; kill -STOP $s; kill -CONT $s; kill $s; wait $s; echo "stopped, continued, killed: $?"
sh -c 'kill -INT $$; echo "INT ignored in the background"; kill -TERM $$; echo not reached' & wait $!; echo "TERM not: $?"
echo 'hello world' | sh -c 'read a b; echo "$b $a"'
cat /dev/null | wc -l
echo done
SNIP
# bash names a child killed by a signal with its pid, which differs run to run.
no_pids() { sed -E 's/line ([0-9]+): +[0-9]+ /line \1: PID /' "$1"; }
# stdout and stderr apart: a copy's two streams reach mosixrun through two
# pipes, and how their lines interleave is not kept (nor by mpirun).
bash "$TMP/snippets.sh" < /dev/null > "$TMP/plain.out" 2> "$TMP/plain.err"
status=$?
plain="$(cat "$TMP/plain.out")
end $status
$(no_pids "$TMP/plain.err")"
for spread in always load; do
  "$BIN/mosixrun" --vcluster 3 --spread "$spread" -np 1 bash "$TMP/snippets.sh" < /dev/null > "$TMP/got.out" 2> "$TMP/got.err"
  status=$?
  got="$(cat "$TMP/got.out")
end $status
$(no_pids "$TMP/got.err")"
  check_eq "bash snippets, --spread $spread: output, errors and status as plain bash's" "$plain" "$got"
done

nodes=$("$BIN/mosixrun" --vcluster 3 --spread always -np 1 \
  sh -c 'for i in 1 2 3 4; do sh -c "echo \$MOSIX_NODE" & done; wait' < /dev/null | sort | uniq -c | awk '{print $2}' | tr '\n' ' ')
check_eq "--spread always: the children ran on the other nodes" "vnode1 vnode2 " "$nodes"
nodes=$("$BIN/mosixrun" --vcluster 3 --spread off -np 1 \
  sh -c 'for i in 1 2 3 4; do sh -c "echo \${MOSIX_NODE:-home}" & done; wait' < /dev/null | sort -u | tr '\n' ' ')
check_eq "--spread off: every child stayed on its parent's node" "vnode0 " "$nodes"

# Children started by libc's system(), popen() and posix_spawn() (glibc
# starts them with clone(CLONE_VM|CLONE_VFORK), where nothing is interposed)
# are placed too, when their program starts, and their output and status
# come back as at home.
got=$("$BIN/mosixrun" --vcluster 3 --spread always -np 1 python3 -c '
import os, sys
def say(s):
    sys.stdout.write(s)
    sys.stdout.flush()
say("python %s\n" % os.environ.get("MOSIX_NODE"))
os.system("echo system $MOSIX_NODE")
say(os.popen("echo popen $MOSIX_NODE").read())
pid = os.posix_spawn("/bin/sh", ["sh", "-c", "echo posix_spawn $MOSIX_NODE; exit 3"], dict(os.environ))
say("posix_spawn status %d\n" % os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
say("system status %d\n" % os.waitstatus_to_exitcode(os.system("exit 4")))
' < /dev/null | sed -E 's/ vnode[12]$/ away/')
check_eq "system, popen and posix_spawn: children placed away, their output and status as at home" \
  "python vnode0
system away
popen away
posix_spawn away
posix_spawn status 3
system status 4" "$got"

# SIGKILL of a deputy: its body goes too (nothing outlives the pid the parent knew).
marker="1000.$$"
"$BIN/mosixrun" --vcluster 3 --spread always -np 1 sh -c "sleep $marker & echo \$! > $TMP/deputy.pid; wait" \
  < /dev/null > "$TMP/kill.out" 2>&1 &
job=$!
if wait_for "[ -s $TMP/deputy.pid ] && pgrep -f '^sleep $marker' > /dev/null"; then
  pass "a body runs for the deputy"
else
  fail "no body appeared for the deputy"
fi
kill -KILL "$(cat "$TMP/deputy.pid")"
wait "$job" || true
if wait_for "! pgrep -f '^sleep $marker' > /dev/null"; then
  pass "SIGKILL of the deputy ended its body"
else
  fail "the body outlived its deputy"; pkill -f "^sleep $marker" || true
fi

# mosixctl ps lists a child placed on another node: its node, its parent's
# rank and its command; mosixctl nodes counts it on its node.
marker="2000.$$"
"$BIN/mosixrun" --vcluster 3 --spread always -np 1 sh -c "sleep $marker & wait" < /dev/null > "$TMP/ps.out" 2>&1 &
job=$!
bodies() { "$BIN/mosixctl" ps --job "$job" --json 2>/dev/null | jq -c '[.guests[] | select(.parent == 0)]'; }
# Until the child runs away, for as long as the job does (the child waits:
# no bound on the machine's speed), or until it is seen running at home,
# which fails. Before it is placed, the child runs under the program's name
# at home for a moment (its agent asks the deputy), so a shell's child of
# that name has stayed only once the deputy ran it again there
# (MOSIX_PLACED in the environment it was exec'd with) or once it sleeps in
# the program's own wait (nanosleep, clock_nanosleep: the agent's placement
# never sleeps).
# Only processes of this job count: other tests run shells and sleeps too.
in_job() {
  local p=$1
  while [[ -n $p && $p -gt 1 ]]; do
    [[ $p == "$job" ]] && return 0
    p=$(ps -o ppid= -p "$p" | tr -d ' ')
  done
  return 1
}
stayed_home() {
  local p parent
  for p in $(pgrep -x "$1"); do
    in_job "$p" || continue
    parent=$(ps -o ppid= -p "$p" | tr -d ' ')
    [[ -n $parent && $(ps -o comm= -p "$parent") == sh ]] || continue
    tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -q '^MOSIX_PLACED=' && return 0
    [[ $(cut -d' ' -f1 "/proc/$p/syscall" 2> /dev/null) =~ ^(35|230)$ ]] && return 0
  done
  return 1
}
body_runs() {
  while kill -0 "$job" 2> /dev/null; do
    bodies | grep -q '"state":"running"' && return 0
    stayed_home "$1" && return 1
    sleep 0.05
  done
  return 1
}
if body_runs sleep; then
  check_eq "ps: the child's command and state" '[{"command":"sleep '"$marker"'","state":"running"}]' \
    "$(bodies | jq -c '[.[] | {command, state}]')"
  node=$(bodies | jq -r '.[0].node')
  if [[ $node == vnode1 || $node == vnode2 ]]; then pass "ps: the child runs away from home ($node)"; else fail "ps: the child is on '$node'"; fi
  check_eq "ps: the child's pid is its body's" "$(pgrep -f "^sleep $marker")" "$(bodies | jq -r '.[0].pid')"
  check_contains "ps (text): whose child, and what it runs" "child of 0: sleep $marker" "$("$BIN/mosixctl" ps --job "$job")"
  check_eq "nodes: the child counts on its node" 1 \
    "$("$BIN/mosixctl" ps --job "$job" --json | jq --arg n "$node" '.nodes[] | select(.name == $n) | .guests')"
else
  fail "ps never listed the child: $("$BIN/mosixctl" ps --job "$job" 2>&1)"
fi
kill -TERM "$job"
wait "$job" || true
pkill -f "^sleep $marker" || true

# A child placed away moves like any guest (mosixctl migrate takes its
# rank): its output still reaches its deputy's file byte for byte, and its
# exit status its parent. agent_counter waits at its gate until the move is done.
"$BIN/agent_counter" 300 > "$TMP/counter.plain"
gate=$TMP/counter.gate
truncate -s 1 "$gate"
CKPT_GATE=$gate "$BIN/mosixrun" --vcluster 3 --spread always -np 1 \
  sh -c "\"$BIN/agent_counter\" 300 < /dev/null > $TMP/counter.out; echo \"child exit \$?\"" < /dev/null > "$TMP/move.out" 2>&1 &
job=$!
if body_runs agent_counter; then
  rank=$(bodies | jq -r '.[0].rank')
  from=$(bodies | jq -r '.[0].node')
  to=vnode1
  [[ $from == vnode1 ]] && to=vnode2
  moved=$("$BIN/mosixctl" migrate "$rank" "$to" --job "$job" --json 2>&1)
  check_eq "migrate: the child moved from $from to $to" "true $to" "$(jq -r '"\(.ok) \(.to)"' <<< "$moved" 2>&1)"
  check_eq "ps: the child runs on $to now, still its parent's" "$to 0 1" \
    "$(bodies | jq -r '.[0] | "\(.node) \(.parent) \(.migrations)"')"
else
  fail "the child did not run away from home: $(cat "$TMP/move.out")"
fi
rm -f "$gate"
wait "$job"
check_eq "migrate: the job ends as before" 0 "$?"
check_eq "migrate: the child's exit status reached its parent" "child exit 0" "$(cat "$TMP/move.out")"
if cmp -s "$TMP/counter.plain" "$TMP/counter.out"; then
  pass "migrate: the child's output as an uninterrupted run's"
else
  fail "migrate: the child's output differs: $(diff "$TMP/counter.plain" "$TMP/counter.out" | head -5)"
fi

# The render farm: every frame as a local render's (but its date line), on every node.
if command -v povray > /dev/null && [ -r /usr/share/povray-3.7/scenes/animations/clockd/clockd.pov ]; then
  (cd "$TMP" && sh "$SRC/examples/render-farm/farm.sh" local 6 96 72 > /dev/null 2>&1)
  # Where the frames render is the placement's and the balancer's choice, by
  # load. The frames spin at a gate (FARM_GATE, as busy as povray) until every
  # node has one: a child that stayed home is in no `mosixctl ps` line, one
  # placed away is, with its node. Six busy frames on three nodes leave none
  # idle for ever; the test waits for that, for as long as the job runs.
  gate=$TMP/farm.gate
  : > "$gate"
  FARM_GATE=$gate "$BIN/mosixrun" --vcluster 3 -np 1 sh "$SRC/examples/render-farm/farm.sh" "$TMP/farm" 6 96 72 \
    < /dev/null > /dev/null &
  job=$!
  spread_frames() {
    local away nodes
    [[ $(find "$TMP/farm" -name 'started.*' 2> /dev/null | wc -l) == 6 ]] || return 1
    away=$(bodies | jq -r '.[] | select(.state == "running") | .node' | sort)
    nodes=$(sort -u <<< "$away" | tr '\n' ' ')
    [[ $nodes == "vnode1 vnode2 " && $(wc -l <<< "$away") -lt 6 ]]
  }
  rendered_everywhere=no
  while kill -0 "$job" 2> /dev/null; do
    if spread_frames; then
      rendered_everywhere=yes
      break
    fi
    sleep 0.05
  done
  rm -f "$gate"
  status=0
  wait "$job" || status=$?
  check_eq "render farm: the job ends well" 0 "$status"
  same=0
  for f in "$TMP"/local/frame*.ppm; do
    if cmp -s <(sed '/^# Render Date/d' "$f") <(sed '/^# Render Date/d' "$TMP/farm/$(basename "$f")"); then
      same=$((same + 1))
    fi
  done
  check_eq "render farm: 6 frames pixel-identical to a local render" 6 "$same"
  check_eq "render farm: frames rendered on every node (mosixctl ps as they started)" yes "$rendered_everywhere"
else
  echo "povray or its example scenes are missing: render farm checks skipped"
fi
# The compile farm: the same objects and program as a local make, compilers away from home.
if command -v make > /dev/null && command -v cc > /dev/null; then
  sh "$SRC/examples/compile-farm/farm.sh" "$TMP/cf-local" 60 > /dev/null
  got=$("$BIN/mosixrun" --vcluster 3 -np 1 sh "$SRC/examples/compile-farm/farm.sh" "$TMP/cf-farm" 60 < /dev/null)
  check_eq "compile farm: make -j sized to the cluster, the program's result" \
    "built 60 units with make -j3: $("$TMP/cf-local/prog")" "$got"
  sums() { (cd "$1" && sha256sum ./*.o prog); }
  check_eq "compile farm: objects and program identical to a local build's" "$(sums "$TMP/cf-local")" "$(sums "$TMP/cf-farm")"
  spread=$(sort -u "$TMP/cf-farm/nodes.log" | wc -l)
  if ((spread > 1)); then pass "compile farm: compilers ran on $spread nodes"; else fail "compile farm: compilers ran on one node"; fi
else
  echo "make or cc missing: compile farm checks skipped"
fi
finish
