# mosixrun on one node: environment, stdio, exit rule, signals, orphans, bad input.
# vcluster_test.sh runs the same checks through node daemons (MOSIX_TEST_MODE=vcluster).
BIN=$(cd "$1" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
MODE=${MOSIX_TEST_MODE:-local}
RUN=${MOSIX_TEST_RUN:-$BIN/mosixrun}

# --- environment of each copy -------------------------------------------------
out=$("$RUN" --oversubscribe -np 3 sh -c \
  'echo "$MOSIX_RANK/$MOSIX_SIZE $OMPI_COMM_WORLD_RANK/$OMPI_COMM_WORLD_SIZE $OMPI_COMM_WORLD_LOCAL_RANK/$OMPI_COMM_WORLD_LOCAL_SIZE home=${MOSIX_HOME_NODE:+set}"' | sort)
if [[ $MODE == local ]]; then
  check_eq "rank variables" $'0/3 0/3 0/3 home=set\n1/3 1/3 1/3 home=set\n2/3 2/3 2/3 home=set' "$out"
else
  check_eq "rank variables" "0/3 0/3 1/3 1/3 2/3 2/3 home=set" \
    "$(cut -d' ' -f1,2 <<< "$out" | tr '\n' ' ')home=set"
  out=$("$RUN" --oversubscribe -np 4 sh -c 'echo "$MOSIX_NODE $OMPI_COMM_WORLD_LOCAL_RANK/$OMPI_COMM_WORLD_LOCAL_SIZE"' | sort | xargs)
  check_eq "copies spread over the nodes, local ranks per node" "vnode0 0/2 vnode0 1/2 vnode1 0/2 vnode1 1/2" "$out"
  # A reader that does not read: the remote copy must block on its pipe
  # (flow control), not pile 300 MiB up in the node daemons' memory. The
  # reader looks once the writer (rank 1, on vnode1) is held: asleep, with
  # nothing more written since the last look (its pipe full, the daemons
  # reading no more), or ended (it wrote everything: no flow control).
  rm -f "$TMP/writer.pid"
  # The largest of this job's daemons (their job socket is in our runtime
  # directory), in KiB.
  daemons_rss() { ps -o rss= -p "$(pgrep -d, -f -- "--home-socket $XDG_RUNTIME_DIR/")" | sort -rn | head -1 | tr -d ' '; }
  writer_held() {
    local pid last="" now
    wait_for '[ -s "$TMP/writer.pid" ]' || return
    daemons_rss > "$TMP/rss0"
    pid=$(cat "$TMP/writer.pid")
    while now=$(awk '/^wchar:/ {print $2}' "/proc/$pid/io" 2>/dev/null) && [[ -n $now ]]; do
      [[ $(ps -o stat= -p "$pid" | cut -c1) == S && $now == "$last" ]] && break
      last=$now
      sleep 0.05
    done
    echo "${now:-all}" > "$TMP/written"
  }
  # Under ASan the daemons' freed frames wait in its quarantine (256 MiB by
  # default) and count in their size: a small one, so that the size is
  # what they hold (a build without ASan ignores the variable).
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8 \
  "$RUN" --map-by node -np 2 sh -c '[ "$MOSIX_RANK" = 1 ] || exit 0; echo $$ > '"$TMP"'/writer.pid; exec head -c 300M /dev/zero' |
    { writer_held
      daemons_rss > "$TMP/rss"
      wc -c > "$TMP/count"; }
  check_eq "all 300 MiB from the remote copy arrive" 314572800 "$(tr -d ' ' < "$TMP/count")"
  written=$(cat "$TMP/written")
  if [[ $written != all ]] && (( written < 150 << 20 )); then
    pass "the writer is held after $((written >> 20)) MiB while the reader waits"
  else
    fail "the writer was not held while the reader waited (it wrote ${written} bytes)"
  fi
  # A pile-up would hold most of the 300 MiB (307200 KiB) on top of what the
  # daemons held when the writer started. Their own size varies with the
  # build (under ASan about 200000 KiB at stop 23, 152536 at stop 14), so
  # the check is on the growth: under half the 300 MiB.
  rss0=$(cat "$TMP/rss0") rss=$(cat "$TMP/rss")
  if [[ -n $rss0 && -n $rss ]] && (( rss - rss0 < 153600 )); then
    pass "node daemons stay small while the reader waits ($rss0 -> $rss KiB)"
  else
    fail "a node daemon grew from ${rss0:-?} to ${rss:-?} KiB while the reader waited"
  fi
fi

out=$(FOO=outer "$RUN" -np 1 -x FOO -x BAR=baz sh -c 'echo "$FOO $BAR"')
check_eq "-x passes and sets variables" "outer baz" "$out"

out=$(cd / && "$RUN" -np 1 -wdir "$TMP" pwd)
check_eq "-wdir" "$TMP" "$out"

if [[ $(nproc) -ge 2 ]]; then  # on a virtual cluster too: its node daemons bind
  out=$("$RUN" --oversubscribe --bind-to core -np 2 sh -c 'echo "$MOSIX_RANK $(grep Cpus_allowed_list /proc/self/status | cut -f2)"' | sort | cut -d' ' -f2 | sort -u | wc -l)
  check_eq "--bind-to core gives the copies different cores" 2 "$out"
fi

# A running job answers mosixctl: its guests and its nodes.
"$RUN" --oversubscribe -np 2 sh -c 'echo $$ > '"$TMP"'/ps.$MOSIX_RANK; exec sleep 1000' &
job=$!
wait_for '[ -s "$TMP/ps.0" ] && [ -s "$TMP/ps.1" ]'
ps_json=$("$BIN/mosixctl" ps --json)
check_eq "mosixctl ps lists the guests with their real pids" "$(cat "$TMP/ps.0") $(cat "$TMP/ps.1")" \
  "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(str(g["pid"]) for g in sorted(d["guests"], key=lambda g: g["rank"])))' <<< "$ps_json")"
check_contains "mosixctl mon draws the nodes" "GUESTS" "$("$BIN/mosixctl" mon --once)"
kill -TERM $job; wait $job 2>/dev/null || true

# --- stdio ----------------------------------------------------------------------
head -c $((16 * 1024 * 1024)) /dev/urandom > "$TMP/in.bin"
"$RUN" -np 1 cat < "$TMP/in.bin" > "$TMP/out.bin"
if cmp -s "$TMP/in.bin" "$TMP/out.bin"; then pass "16 MiB byte-exact through stdin/stdout (pipe-less stdin)"; else fail "16 MiB through a file stdin"; fi
cat "$TMP/in.bin" | "$RUN" -np 1 cat | cat > "$TMP/out2.bin"
if cmp -s "$TMP/in.bin" "$TMP/out2.bin"; then pass "16 MiB byte-exact through pipes"; else fail "16 MiB through pipes"; fi
if [[ $MODE != local ]]; then
  # The same through a copy on another node than the home's: rank 1 of
  # --map-by node writes the 16 MiB from vnode1; and rank 0, moved to vnode1
  # before its input is let through (pipe_gate), reads them there and
  # writes them back.
  "$RUN" --map-by node -np 2 sh -c '[ "$MOSIX_RANK" = 1 ] || exit 0; echo "$MOSIX_NODE" > '"$TMP"'/stdout.node
    exec cat '"$TMP"'/in.bin' > "$TMP/out3.bin"
  check_eq "the 16 MiB writer ran on vnode1" vnode1 "$(cat "$TMP/stdout.node" 2>/dev/null)"
  if cmp -s "$TMP/in.bin" "$TMP/out3.bin"; then pass "16 MiB byte-exact from a copy on vnode1"; else fail "16 MiB from vnode1"; fi
  truncate -s 0 "$TMP/stdin.gate"
  "$BIN/pipe_gate" "$TMP/stdin.gate" < "$TMP/in.bin" | "$RUN" -np 1 cat > "$TMP/out4.bin" &
  job=$!
  rank0() { "$BIN/mosixctl" ps --job $job --json 2>/dev/null | jq -r ".guests[] | select(.rank == 0) | .$1"; }
  wait_for '[ "$(rank0 state)" = running ]' || fail "cat did not start under the job $job"
  if [[ $(rank0 node) != vnode1 ]]; then
    "$BIN/mosixctl" migrate 0 vnode1 --job $job > /dev/null 2> "$TMP/mig.err" || fail "moving cat to vnode1: $(cat "$TMP/mig.err")"
  fi
  check_eq "the 16 MiB reader runs on vnode1" vnode1 "$(rank0 node)"
  rm -f "$TMP/stdin.gate"
  wait $job || fail "cat on vnode1 failed"
  if cmp -s "$TMP/in.bin" "$TMP/out4.bin"; then pass "16 MiB byte-exact through stdin and stdout of a copy on vnode1"; else fail "16 MiB through vnode1's stdin"; fi
fi

out=$(printf 'line1\nline2\n' | "$RUN" --oversubscribe -np 3 sh -c 'c=$(cat | wc -l); echo "$MOSIX_RANK:$c"' | sort)
check_eq "stdin goes to rank 0 only, others see EOF" $'0:2\n1:0\n2:0' "$out"

# stderr stays stderr, binary safe
"$RUN" -np 1 sh -c 'printf "o\000ut"; printf "e\001rr" >&2' > "$TMP/o" 2> "$TMP/e"
if cmp -s "$TMP/o" <(printf 'o\000ut') && cmp -s "$TMP/e" <(printf 'e\001rr'); then
  pass "stdout and stderr stay apart, binary-safe"
else
  fail "stdout/stderr mixed or changed: $(od -c "$TMP/o" | head -2) / $(od -c "$TMP/e" | head -2)"
fi

# Per-copy order with many copies writing a lot at once: each copy's own
# stream (in its --output-filename file, and in its tagged lines) is exact.
"$RUN" --oversubscribe -np 4 --output-filename "$TMP/many" sh -c 'seq 1 50000 | sed "s/^/$MOSIX_RANK /"' > "$TMP/many.all"
ok=1
for r in 0 1 2 3; do
  cmp -s "$TMP/many/1/rank.$r/stdout" <(seq 1 50000 | sed "s/^/$r /") || ok=0
done
per_copy=$(seq 1 50000 | sed 's/^/0 /' | wc -c)
check_eq "every byte of every copy, in order" "1 $((per_copy * 4))" "$ok $(wc -c < "$TMP/many.all")"
"$RUN" --oversubscribe -np 4 --tag-output sh -c 'seq 1 50000' > "$TMP/tagged"
ok=1
for r in 0 1 2 3; do
  cmp -s <(grep -F "[1,$r]<stdout>:" "$TMP/tagged" | cut -d: -f2) <(seq 1 50000) || ok=0
done
check_eq "tagged lines of each copy complete and in order" 1 "$ok"

out=$("$RUN" --oversubscribe -np 2 --tag-output sh -c 'printf "a\nb\n"; echo c >&2' 2>&1 | sort)
check_eq "--tag-output prefixes like Open MPI" \
  $'[1,0]<stderr>:c\n[1,0]<stdout>:a\n[1,0]<stdout>:b\n[1,1]<stderr>:c\n[1,1]<stdout>:a\n[1,1]<stdout>:b' "$out"

out=$("$RUN" --oversubscribe -np 2 --output-filename "$TMP/of" sh -c 'echo out$MOSIX_RANK; echo err$MOSIX_RANK >&2' 2>/dev/null | sort)
check_eq "--output-filename still prints" $'out0\nout1' "$out"
check_eq "--output-filename stdout file" "out1" "$(cat "$TMP/of/1/rank.1/stdout")"
check_eq "--output-filename stderr file" "err0" "$(cat "$TMP/of/1/rank.0/stderr")"

# --- exit status ------------------------------------------------------------------
set +e
# Every copy ignores SIGTERM before any copy may exit (a barrier on files), so
# each one ends with its own status whatever the order of their exits.
mkdir -p "$TMP/barrier"
"$RUN" --oversubscribe -np 3 sh -c 'trap "" TERM; touch '"$TMP"'/barrier/$MOSIX_RANK
  while [ "$(ls '"$TMP"'/barrier | wc -l)" -lt 3 ]; do sleep 0.01; done; exit $((3 + MOSIX_RANK))' 2>/dev/null; rc=$?
check_eq "exit codes 3/4/5 by rank give 3" 3 "$rc"
"$RUN" -np 1 sh -c 'kill -SEGV $$' 2>/dev/null; rc=$?
check_eq "SIGSEGV gives 139" 139 "$rc"
"$RUN" --oversubscribe -np 2 sh -c 'exit 0'; rc=$?
check_eq "all succeed gives 0" 0 "$rc"
"$RUN" --oversubscribe -np 2 sh -c 'if [ $MOSIX_RANK = 1 ]; then exit 7; fi; exec sleep 1000' 2>"$TMP/err"; rc=$?
check_eq "one failure ends the others" 7 "$rc"
check_contains "the failure is reported" "rank 1" "$(cat "$TMP/err")"
# Rank 0 goes on only once the job has seen rank 1 fail (mosixctl ps; without
# the agent, which a sanitized mosixctl would refuse to have loaded first).
"$RUN" --oversubscribe --keep-going -np 2 sh -c 'if [ $MOSIX_RANK = 1 ]; then exit 7; fi
  until env -u LD_PRELOAD "'"$BIN"'/mosixctl" ps --json 2>/dev/null | grep -q "\"exit_status\": 7"; do sleep 0.05; done; echo survived' > "$TMP/kg" 2>/dev/null; rc=$?
check_eq "--keep-going lets the others finish" "7 survived" "$rc $(cat "$TMP/kg")"
"$RUN" --timeout 0.5 sleep 1000 2>"$TMP/err"; rc=$?
check_eq "--timeout ends the job with mpirun's 110" 110 "$rc"
check_contains "--timeout is reported" "--timeout" "$(cat "$TMP/err")"
# A timeout that fires while the job is still starting (its node daemons, on
# a virtual cluster) is still the timeout: 110, not a failed start's 2.
"$RUN" --timeout 0.005 sleep 1000 2>"$TMP/err"; rc=$?
check_eq "--timeout during the start still gives 110" 110 "$rc"
set -e

# --- signals ------------------------------------------------------------------
cat > "$TMP/sig.sh" <<'SH'
trap 'echo "usr1 $MOSIX_RANK"' USR1
trap 'echo "usr2 $MOSIX_RANK"; exit 0' USR2
echo ready
while :; do sleep 0.05; done
SH
"$RUN" --oversubscribe -np 2 sh "$TMP/sig.sh" > "$TMP/sig.out" &
pid=$!
wait_for '[ "$(grep -c ready "$TMP/sig.out" 2>/dev/null)" = 2 ]'
kill -USR1 $pid
wait_for '[ "$(grep -c usr1 "$TMP/sig.out")" = 2 ]'
kill -USR2 $pid
set +e; wait $pid; rc=$?; set -e
check_eq "SIGUSR1 and SIGUSR2 reach every copy" "0 1 1 1 1" \
  "$rc $(grep -c 'usr1 0' "$TMP/sig.out") $(grep -c 'usr1 1' "$TMP/sig.out") $(grep -c 'usr2 0' "$TMP/sig.out") $(grep -c 'usr2 1' "$TMP/sig.out")"

"$RUN" --oversubscribe -np 2 sh -c 'echo $$ > '"$TMP"'/pid.$MOSIX_RANK; exec sleep 1000' &
pid=$!
wait_for '[ -s "$TMP/pid.0" ] && [ -s "$TMP/pid.1" ]'
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
check_eq "SIGTERM to mosixrun ends the job with status 1" 1 "$rc"
alive=0
for f in "$TMP"/pid.*; do kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
check_eq "no copy outlives SIGTERM" 0 "$alive"

# SIGTSTP stops every copy; SIGCONT resumes them.
rm -f "$TMP"/pid.*
"$RUN" --oversubscribe -np 2 sh -c 'echo $$ > '"$TMP"'/pid.$MOSIX_RANK; exec sleep 1000' &
pid=$!
wait_for '[ -s "$TMP/pid.0" ] && [ -s "$TMP/pid.1" ]'
kill -TSTP $pid
wait_for '[ "$(ps -o stat= -p "$(cat "$TMP/pid.0")" | cut -c1)" = T ] && [ "$(ps -o stat= -p "$(cat "$TMP/pid.1")" | cut -c1)" = T ]'
check_eq "SIGTSTP stops every copy" "T T" "$(ps -o stat= -p "$(cat "$TMP/pid.0")" | cut -c1) $(ps -o stat= -p "$(cat "$TMP/pid.1")" | cut -c1)"
kill -CONT $pid
wait_for '[ "$(ps -o stat= -p "$(cat "$TMP/pid.0")" | cut -c1)" = S ]'
check_eq "SIGCONT resumes them" "S" "$(ps -o stat= -p "$(cat "$TMP/pid.0")" | cut -c1)"
kill -TERM $pid; wait $pid || true

# kill -9 of mosixrun leaves no copy, and no child of a copy, behind.
rm -f "$TMP"/pid.*
"$RUN" --oversubscribe -np 2 sh -c 'sleep 1000 & echo $! > '"$TMP"'/pid.child.$MOSIX_RANK; echo $$ > '"$TMP"'/pid.$MOSIX_RANK; wait' &
pid=$!
wait_for '[ -s "$TMP/pid.0" ] && [ -s "$TMP/pid.1" ] && [ -s "$TMP/pid.child.0" ] && [ -s "$TMP/pid.child.1" ]'
kill -9 $pid
wait $pid 2>/dev/null || true
gone() { for f in "$TMP"/pid.*; do kill -0 "$(cat "$f")" 2>/dev/null && return 1; done; return 0; }
if wait_for gone; then pass "no orphan after kill -9 of mosixrun"; else fail "orphans left after kill -9: $(cat "$TMP"/pid.* | xargs)"; fi
# Its watcher removes the job's socket directory too (mosixctl's registry
# drops the record itself: its owner is gone).
if wait_for '[ ! -e "$XDG_RUNTIME_DIR/mosix/job-$pid" ]'; then
  pass "no socket directory left after kill -9 of mosixrun"
else
  fail "kill -9 of mosixrun left $XDG_RUNTIME_DIR/mosix/job-$pid: $(ls -A "$XDG_RUNTIME_DIR/mosix/job-$pid" | xargs)"
fi

if [[ $MODE != local ]]; then finish; exit; fi

# --- bad input: one line, exit 2, nothing started ---------------------------------
bad() {  # NAME NEEDLE ARGS...
  local name=$1 needle=$2; shift 2
  set +e; "$RUN" "$@" > "$TMP/bad.out" 2> "$TMP/bad.err"; local rc=$?; set -e
  local lines; lines=$(wc -l < "$TMP/bad.err")
  if [[ $rc == 2 && $lines == 1 && "$(cat "$TMP/bad.err")" == *"$needle"* && ! -s "$TMP/bad.out" ]]; then
    pass "bad input: $name"
  else
    fail "bad input: $name: rc=$rc lines=$lines err=[$(cat "$TMP/bad.err")] out=[$(head -c 200 "$TMP/bad.out")]"
  fi
}
# The program of each case would run and leave a file if it were started
# (it does, below, with good input).
probe=$TMP/probe
printf '#!/bin/sh\ntouch %s/started-probe\n' "$TMP" > "$probe"; chmod 755 "$probe"
"$RUN" -np 1 "$probe"
check_eq "the probe runs when started" "started-probe" "$(ls "$TMP" | grep started-probe || true)"
rm -f "$TMP/started-probe"
bad "unknown option" "unknown option '--bogus'" --bogus "$probe"
bad "-np 0" "at least 1" -np 0 "$probe"
bad "negative -np" "at least 1" -np -3 "$probe"
bad "missing program" "not found" -np 1 ./no-such-program
bad "missing program in PATH" "not found in PATH" -np 1 no-such-program-xyz
printf '#!/bin/sh\ntouch %s/started-noexec\n' "$TMP" > "$TMP/noexec"; chmod 644 "$TMP/noexec"
bad "unexecutable program" "not executable" -np 1 "$TMP/noexec"
bad "unreadable hostfile" "cannot read hostfile" --hostfile "$TMP/none" "$probe"
printf 'localhost slots=2\n\nlocalhost slots=two\n' > "$TMP/hf"
bad "malformed hostfile names the line" "$TMP/hf:3:" --hostfile "$TMP/hf" "$probe"
bad "more copies than slots" "--oversubscribe" -np 64 "$probe"
bad "more copies than --host slots" "--oversubscribe" --host localhost:2 -np 3 "$probe"
bad "bad --wdir" "is not a directory" -wdir "$TMP/nodir" "$probe"
bad "no program" "no program" -np 2
printf '# only comments\n\n' > "$TMP/hf-empty"
bad "hostfile naming no slot" "names no host" --hostfile "$TMP/hf-empty" "$probe"
bad "unresolvable host" "cannot be resolved" --host no-such-host.invalid -np 1 "$probe"
export SLURM_JOB_ID=1 SLURM_JOB_NODELIST='n[1-' SLURM_TASKS_PER_NODE=1
bad "malformed Slurm node list" "SLURM_JOB_NODELIST" -np 1 "$probe"
unset SLURM_JOB_ID SLURM_JOB_NODELIST SLURM_TASKS_PER_NODE
check_eq "nothing started by bad input" "" "$(ls "$TMP" | grep started- || true)"

out=$("$RUN" --host localhost:2 -np 2 sh -c 'echo $MOSIX_RANK' | sort | xargs)
check_eq "--host slots on this node" "0 1" "$out"
printf '# two slots\nlocalhost slots=2\n' > "$TMP/hf2"
out=$("$RUN" --hostfile "$TMP/hf2" sh -c 'echo $MOSIX_RANK' | sort | xargs)
check_eq "-np defaults to the hostfile's slots" "0 1" "$out"

check_contains "--help" "--oversubscribe" "$("$RUN" --help)"
check_contains "--version" "mosixrun " "$("$RUN" --version)"

finish
