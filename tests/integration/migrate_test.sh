# Migration on a virtual cluster of 3 nodes (mosixctl migrate): a guest moved
# once and then back and forth (MIGRATE_ROUNDS round trips, default 20) gives
# byte for byte the output of an uninterrupted run and its exit status; a
# 4-thread guest moves whole; event loops (ckpt_eventloop, Python asyncio) move with
# their epoll, signal and socketpair state; a guest holding TCP sockets moves
# with them forwarded from the node it left (sockets_test.sh has the rest).
# Prints the bytes moved and the stopped time of each migration.
# The guests never end before the test is done moving them: the ckpt
# programs wait at their gate file (ckpt_gate in tests/programs/
# ckpt_common.h; the gate travels in their environment), stdin_echo's input
# comes through pipe_gate, mem_hold waits for its done file.
# The balancer is off (--migrate off): a move of its own at the moment the
# test orders one is refused ("rank 0 is already moving"; seen at load 10).
set -u
BIN=$(cd "$1" && pwd)
STEPS=${MIGRATE_STEPS:-4000}
ROUNDS=${MIGRATE_ROUNDS:-20}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mosix-migrate.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Waits until FILE has at least N lines or process PID is gone.
wait_lines() {
  local file=$1 n=$2 pid=$3
  while { [[ ! -f $file ]] || [[ $(wc -l < "$file") -lt $n ]]; } && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

# gate_allow FILE N: a gated program may print N + 1 lines (or pipe_gate let
# N bytes through); gate_open FILE: to its end.
gate_allow() { truncate -s "$2" -- "$1"; }
gate_open() { rm -f -- "$1"; }

# migrate JOB RANK NODE: one migration; prints "bytes stopped_ms" and fails
# the test (with the reason) when the guest did not move.
migrate() {
  local job=$1 rank=$2 node=$3 out
  out=$("$BIN/mosixctl" migrate "$rank" "$node" --job "$job" --json 2>"$WORK/ctl.err")
  if [[ $(jq -r .ok <<<"$out") != true ]]; then
    fail "migrate rank $rank to $node: $(jq -r .error <<<"$out" 2>/dev/null) $(cat "$WORK/ctl.err")"
    return 1
  fi
  jq -r '"\(.bytes) \(.stopped_ms)"' <<<"$out" >> "$WORK/costs"
  echo "  rank $rank -> $(jq -r .to <<<"$out"): $(jq -r .bytes <<<"$out") bytes, stopped $(jq -r .stopped_ms <<<"$out") ms"
}

node_of() {
  "$BIN/mosixctl" ps --job "$1" --json | jq -r ".guests[] | select(.rank == $2) | .node"
}

# 1. Single-threaded, byte-exact across 1 + 2*ROUNDS migrations.
echo "agent_counter $STEPS: one move, then $ROUNDS round trips vnode1 <-> vnode2, then home"
"$BIN/agent_counter" "$STEPS" > "$WORK/plain.out" &
plain=$!
# It may go on by STEPS / (2 * ROUNDS + 4) lines a move, so it runs
# while it moves and ends only when let go.
gate=$WORK/gate1
per_move=$(( STEPS / (2 * ROUNDS + 4) ))
allowed=1
gate_allow "$gate" $allowed
CKPT_GATE=$gate "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/agent_counter" "$STEPS" < /dev/null > "$WORK/mig.out" 2> "$WORK/mig.err" &
job=$!
wait_lines "$WORK/mig.out" 2 $job
start_node=$(node_of $job 0)
step() { allowed=$(( allowed + per_move )); gate_allow "$gate" $allowed; }
step
migrate $job 0 vnode1
[[ $(node_of $job 0) == vnode1 ]] || fail "after the first move mosixctl ps shows rank 0 on '$(node_of $job 0)', not vnode1"
for ((i = 0; i < ROUNDS; i++)); do
  step
  migrate $job 0 vnode2 || break
  step
  migrate $job 0 vnode1 || break
done
step
migrate $job 0 home
[[ $(node_of $job 0) == vnode0 ]] || fail "after moving home mosixctl ps shows rank 0 on '$(node_of $job 0)'"
(( $(wc -l < "$WORK/mig.out") < STEPS )) || fail "agent_counter went past its gate"
gate_open "$gate"
wait $job
rc=$?
wait $plain
[[ $rc == 0 ]] || fail "the migrated job exited with $rc, not 0: $(cat "$WORK/mig.err")"
if cmp -s "$WORK/plain.out" "$WORK/mig.out"; then
  echo "  output identical to the uninterrupted run ($(wc -l < "$WORK/mig.out") lines, started on $start_node)"
else
  fail "agent_counter's output differs from the uninterrupted run: $(diff "$WORK/plain.out" "$WORK/mig.out" | head -5)"
fi
[[ -s "$WORK/mig.err" ]] && fail "unexpected stderr: $(head -3 "$WORK/mig.err")"
awk '{b += $1; s += $2; if ($2 > m) m = $2; n++} END {if (n) printf "  %d migrations: %.1f MiB each on average, stopped %.0f ms on average, %d ms at most\n", n, b / n / 1048576, s / n, m}' "$WORK/costs"

# 2. Four threads move whole, twice.
echo "ckpt_threads: vnode1, then vnode2"
"$BIN/ckpt_threads" 40 > "$WORK/th.plain" 2>/dev/null
gate=$WORK/gate2
gate_allow "$gate" 2
CKPT_GATE=$gate "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/ckpt_threads" 40 < /dev/null > "$WORK/th.out" 2> "$WORK/th.err" &
job=$!
wait_lines "$WORK/th.out" 2 $job
migrate $job 0 vnode1
gate_allow "$gate" 6
wait_lines "$WORK/th.out" 6 $job
migrate $job 0 vnode2
gate_open "$gate"
wait $job
rc=$?
[[ $rc == 0 ]] || fail "ckpt_threads exited with $rc: $(head -3 "$WORK/th.err")"
cmp -s "$WORK/th.plain" "$WORK/th.out" && echo "  output identical to the uninterrupted run" ||
  fail "ckpt_threads' output differs: $(diff "$WORK/th.plain" "$WORK/th.out" | head -5)"

# 2b. Event loops move: ckpt_eventloop (epoll, eventfd, signalfd, timerfd,
# socketpairs with queued data) and, where python3 is installed, an asyncio
# loop with a signal handler (issue 17), each vnode1 then vnode2.
for loop_prog in "$BIN/ckpt_eventloop" "python3 $(dirname -- "${BASH_SOURCE[0]}")/event_loops/ckpt_asyncio.py 400"; do
  read -r -a cmd <<< "$loop_prog"
  command -v "${cmd[0]}" > /dev/null || { echo "skip: ${cmd[0]} is not installed"; continue; }
  name=$(basename -- "${cmd[1]:-${cmd[0]}}")  # the script a python3 runs, else the program
  echo "$name: vnode1, then vnode2"
  "${cmd[@]}" > "$WORK/$name.plain" 2>/dev/null
  gate=$WORK/$name.gate
  gate_allow "$gate" 2
  CKPT_GATE=$gate "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "${cmd[@]}" < /dev/null > "$WORK/$name.out" 2> "$WORK/$name.err" &
  job=$!
  wait_lines "$WORK/$name.out" 2 $job
  migrate $job 0 vnode1
  gate_allow "$gate" 6
  wait_lines "$WORK/$name.out" 6 $job
  migrate $job 0 vnode2
  gate_open "$gate"
  wait $job
  rc=$?
  [[ $rc == 0 ]] || fail "$name exited with $rc: $(head -3 "$WORK/$name.err")"
  cmp -s "$WORK/$name.plain" "$WORK/$name.out" && echo "  output identical to the uninterrupted run" ||
    fail "$name's output differs: $(diff "$WORK/$name.plain" "$WORK/$name.out" | head -5)"
done

# 3. A guest with a listening TCP socket and a TCP connection to itself
# moves (its sockets stay open on the node it left, forwarded: issue 17) to
# vnode1, then vnode2, then home; at the end its listener still has its port
# and its connection still carries a byte (ckpt_socket checks both).
echo "ckpt_socket: forwarded sockets, vnode1, vnode2, home"
"$BIN/ckpt_socket" 200000 > "$WORK/so.plain" 2>/dev/null
# Held at its second line: its socket is open by then (not yet at its first).
gate=$WORK/gate3
gate_allow "$gate" 1
CKPT_GATE=$gate "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/ckpt_socket" 200000 < /dev/null > "$WORK/so.out" 2> "$WORK/so.err" &
job=$!
wait_lines "$WORK/so.out" 2 $job
migrate $job 0 vnode1
migrate $job 0 vnode2
migrate $job 0 home
gate_open "$gate"
wait $job
rc=$?
[[ $rc == 0 ]] || fail "ckpt_socket exited with $rc after its moves: $(grep -v listening "$WORK/so.err" | head -3)"
cmp -s "$WORK/so.plain" "$WORK/so.out" && echo "  output identical to the uninterrupted run" ||
  fail "ckpt_socket's output differs after its moves: $(diff "$WORK/so.plain" "$WORK/so.out" | head -5)"

# 4. A large image: mosixctl migrate shows its progress (on stderr, a line
# per phase when not on a terminal) and the guest's memory arrives intact
# (mem_hold checks every byte when told it is done).
# A stop-and-copy (MOSIX_PRECOPY=0): with pre-copy the memory goes in the
# transfer phase's rounds and the last image is small (precopy_test).
echo "mem_hold 1024 MiB: progress"
rm -f "$WORK/done"
MOSIX_PRECOPY=0 "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/mem_hold" 1024 "$WORK/done" 600 < /dev/null \
  > "$WORK/mh.out" 2> "$WORK/mh.err" &
job=$!
wait_lines "$WORK/mh.out" 1 $job
"$BIN/mosixctl" migrate 0 vnode2 --job $job > "$WORK/mh.ctl" 2> "$WORK/mh.progress" ||
  fail "moving mem_hold: $(cat "$WORK/mh.ctl" "$WORK/mh.progress")"
grep -q "^moving rank 0: checkpoint: [0-9]* MiB written" "$WORK/mh.progress" ||
  fail "no checkpoint progress shown: $(cat "$WORK/mh.progress")"
grep -q "^moving rank 0: restore: 1024 MiB" "$WORK/mh.progress" || fail "no restore progress shown: $(cat "$WORK/mh.progress")"
echo "  $(cat "$WORK/mh.ctl")"
sed 's/^/  /' "$WORK/mh.progress"
touch "$WORK/done"
wait $job
rc=$?
[[ $rc == 0 ]] && grep -q "RESULT mem_hold 1024 OK" "$WORK/mh.out" ||
  fail "mem_hold after its move: exit $rc, $(cat "$WORK/mh.out" "$WORK/mh.err")"

# 5. Rank 0 reading its stdin while it moves: what it had not read yet (in
# its pipe, or on the way) goes with it; its output is its input, in order.
# Its input is let through 300 lines a move (and 150 more that may be in
# its pipe or on the way when it moves).
echo "stdin_echo: 4 moves while it reads 4000 lines from a pipe"
seq -f "line %g of the input, with some padding to make it longer" 1 4000 > "$WORK/in.txt"
gate=$WORK/gate5
gate_allow "$gate" 0
"$BIN/pipe_gate" "$gate" < "$WORK/in.txt" | "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/stdin_echo" 1500 \
  > "$WORK/echo.out" 2> "$WORK/echo.err" &
job=$!
moves=0
for node in vnode1 vnode2 home vnode2; do
  moves=$(( moves + 1 ))
  gate_allow "$gate" "$(head -n $(( 300 * moves + 150 )) "$WORK/in.txt" | wc -c)"
  wait_lines "$WORK/echo.out" $(( 300 * moves )) $job
  migrate $job 0 $node || break
done
gate_open "$gate"
wait $job
rc=$?
[[ $rc == 0 ]] || fail "stdin_echo exited with $rc: $(head -3 "$WORK/echo.err")"
if cmp -s <(cat "$WORK/in.txt"; echo "RESULT stdin_echo 4000 $(wc -c < "$WORK/in.txt")") "$WORK/echo.out"; then
  echo "  output identical to its input"
else
  fail "stdin_echo's output is not its input: $(diff "$WORK/in.txt" "$WORK/echo.out" | head -5)"
fi

if ((failures)); then
  echo "migrate_test: $failures failure(s)"
  exit 1
fi
echo "migrate_test: all passed"
