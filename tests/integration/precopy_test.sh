# Pre-copy migration (docs/migration.md) on a virtual cluster of 3 nodes:
# guests whose memory changes while their pages go to the target in rounds
# check their own results after the moves. precopy_writers threads (4
# threads rewriting 32 MiB) makes MOVES moves (default 20: 10 round trips
# vnode1 <-> vnode2); precopy_writers churn (mappings made and unmapped, the
# break moved, between and during rounds) makes 6; mem_hold rewriting 64 MiB
# at 100 MB/s makes 2, each pre-copied (rounds >= 1 in mosixctl's answer);
# precopy_writers fork (the threads' writers, and a fork+exec every 20 ms
# between and during rounds) makes 6;
# every pre-copied move's target started its restorer early (early_bytes > 0
# in mosixctl's answer), except with MOSIX_EARLY_RESTORE=0 (2 moves, 0);
# with MOSIX_PRECOPY=0 the same moves are stop-and-copy (rounds 0) and right
# as well; a target that cannot keep the image (pre-copied or not) fails the
# move at once with the reason, and the guest runs on. Exits 77 where the kernel offers no write tracking (the node
# daemon says so once and moves stop-and-copy). The guests wait for their
# done file: nothing ends before the test has moved it.
set -u
BIN=$(cd "$1" && pwd)
MOVES=${PRECOPY_MOVES:-20}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mosix-precopy.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
command -v jq > /dev/null || { echo "skip: jq is not installed"; exit 77; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Waits until FILE holds TEXT or process PID is gone.
wait_for_text() {
  local file=$1 text=$2 pid=$3
  until grep -q -- "$text" "$file" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

# migrate JOB NODE ROUNDS: moves rank 0; ROUNDS "some" wants a pre-copy, 0
# a stop-and-copy. Fails the test (with the reason) otherwise. A move refused
# for a child (precopy_writers fork: its child lives, or waits to be waited
# for, a millisecond in every 20) is tried again, up to 50 times: the guest runs on meanwhile.
migrate() {
  local job=$1 node=$2 want=$3 out rounds early try
  for ((try = 0; try < 50; try++)); do
    out=$("$BIN/mosixctl" migrate 0 "$node" --job "$job" --json 2>"$WORK/ctl.err")
    [[ $(jq -r .ok <<<"$out") != true && $(jq -r .error <<<"$out") =~ (live|ended)\ child ]] || break
  done
  if [[ $(jq -r .ok <<<"$out") != true ]]; then
    fail "migrate to $node: $(jq -r .error <<<"$out" 2>/dev/null) $(cat "$WORK/ctl.err")"
    return 1
  fi
  rounds=$(jq -r '.rounds // 0' <<<"$out")
  echo "  -> $(jq -r .to <<<"$out"): $rounds round(s), $(jq -r '.precopy_bytes // 0' <<<"$out") bytes pre-copied," \
       "$(jq -r '.early_bytes // 0' <<<"$out") put in place early, image $(jq -r .bytes <<<"$out") bytes," \
       "stopped $(jq -r .stopped_ms <<<"$out") ms"
  early=$(jq -r '.early_bytes // 0' <<<"$out")
  if [[ $want == some && $rounds == 0 ]]; then
    fail "the move to $node was not pre-copied"
    return 1
  elif [[ $want == some && ${MOSIX_EARLY_RESTORE:-1} != 0 && $early == 0 ]]; then
    fail "the move to $node was pre-copied, but its target did not start the restorer early"
    return 1
  elif [[ ${MOSIX_EARLY_RESTORE:-1} == 0 && $early != 0 ]]; then
    fail "the move to $node started an early restorer with MOSIX_EARLY_RESTORE=0"
    return 1
  elif [[ $want == 0 && $rounds != 0 ]]; then
    fail "the move to $node was pre-copied with MOSIX_PRECOPY=0"
    return 1
  fi
}

# run NAME MOVES WANT PROGRAM ARGS...: starts PROGRAM as rank 0 of a
# 3-node virtual cluster, moves it MOVES times between vnode1 and vnode2,
# then lets it check itself; its last line must be a RESULT ... OK.
run() {
  local name=$1 moves=$2 want=$3
  shift 3
  echo "$name: $moves moves ($([[ $want == 0 ]] && echo stop-and-copy || echo pre-copy))"
  # shellcheck disable=SC2086  # RUN_FLAGS: words for mosixrun
  "$BIN/mosixrun" --vcluster 3 --migrate off ${RUN_FLAGS:-} -np 1 "$@" < /dev/null > "$WORK/$name.out" 2> "$WORK/$name.err" &
  local job=$!
  wait_for_text "$WORK/$name.out" " ready" $job
  local i node
  for ((i = 0; i < moves; i++)); do
    node=$([[ $((i % 2)) == 0 ]] && echo vnode1 || echo vnode2)
    if ! migrate $job $node "$want"; then
      if [[ $i == 0 ]] && grep -q "no pre-copy here" "$WORK/$name.err"; then
        echo "skip: $(grep -m1 "no pre-copy here" "$WORK/$name.err")"
        touch "$WORK/$name.done"
        wait $job
        exit 77
      fi
      break
    fi
  done
  touch "$WORK/$name.done"
  wait $job
  local rc=$?
  [[ $rc == 0 ]] || fail "$name exited with $rc: $(tail -3 "$WORK/$name.out") $(head -3 "$WORK/$name.err")"
  if grep -q "^RESULT .* OK (no transparent huge pages here" "$WORK/$name.out"; then
    echo "  skip: $name: $(grep "^RESULT" "$WORK/$name.out")"
  elif grep -q "^RESULT .* OK" "$WORK/$name.out"; then
    echo "  $(grep "^RESULT" "$WORK/$name.out")"
  else
    fail "$name did not check out: $(tail -3 "$WORK/$name.out") $(grep -v "^\s*$" "$WORK/$name.err" | tail -3)"
  fi
}

run threads "$MOVES" some "$BIN/precopy_writers" threads "$WORK/threads.done" 600
run churn 6 some "$BIN/precopy_writers" churn "$WORK/churn.done" 600
run dirty 2 some "$BIN/mem_hold" 64 "$WORK/dirty.done" 600 100
# The child of each fork stays on the guest's node (--spread off), so that
# it lives as briefly as /bin/true does.
RUN_FLAGS="--spread off" run fork 6 some "$BIN/precopy_writers" fork "$WORK/fork.done" 600
MOSIX_EARLY_RESTORE=0 run threads_late 2 some "$BIN/precopy_writers" threads "$WORK/threads_late.done" 600
# Huge pages kept by a pre-copied move whose restorer started early (and by
# a stop-and-copy, below): the program checks its own AnonHugePages.
run hugepage 4 some "$BIN/precopy_writers" hugepage "$WORK/hugepage.done" 600

# full NAME TEXT: a target that cannot keep what it is sent (its node
# daemons limited to 1 MiB files: each write into an image's memfd fails
# with EFBIG) fails the move at once with a reason holding TEXT; the guest
# runs on where it was, a move elsewhere then succeeds, and the program's
# memory checks out.
full() {
  local name=$1 text=$2 out p
  echo "$name: a target that cannot keep the image"
  "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/mem_hold" 64 "$WORK/$name.done" 600 100 \
    < /dev/null > "$WORK/$name.out" 2> "$WORK/$name.err" &
  local job=$!
  wait_for_text "$WORK/$name.out" " ready" $job
  for p in $(pgrep -f -- "--job $job .*--node-rank 2 "); do prlimit --fsize=1048576 --pid "$p"; done
  out=$("$BIN/mosixctl" migrate 0 vnode2 --job "$job" --json 2>/dev/null)
  echo "  -> vnode2: $(jq -r .error <<<"$out")"
  if [[ $(jq -r .ok <<<"$out") == true ]]; then
    fail "$name: the move to a target that cannot keep its image succeeded"
  elif [[ $(jq -r .error <<<"$out") != *"$text"* ]]; then
    fail "$name: the move failed for another reason than '$text': $(jq -r .error <<<"$out")"
  fi
  [[ $("$BIN/mosixctl" ps --job "$job" --json | jq -r '.guests[0].node') == vnode0 ]] ||
    fail "$name: rank 0 is not on vnode0 after the failed move: $("$BIN/mosixctl" ps --job "$job")"
  migrate "$job" vnode1 "$3"
  touch "$WORK/$name.done"
  wait $job
  local rc=$?
  [[ $rc == 0 ]] || fail "$name exited with $rc: $(tail -3 "$WORK/$name.out") $(head -3 "$WORK/$name.err")"
  grep -q "^RESULT .* OK" "$WORK/$name.out" || fail "$name did not check out: $(tail -3 "$WORK/$name.out")"
}
full full_precopy "vnode2 cannot keep the pre-copied pages (pwrite: File too large)" some

export MOSIX_PRECOPY=0  # read by the node daemons of the next job
run threads_stop 2 0 "$BIN/precopy_writers" threads "$WORK/threads_stop.done" 600
run hugepage_stop 2 0 "$BIN/precopy_writers" hugepage "$WORK/hugepage_stop.done" 600
full full_stop "vnode2 cannot hold the image (pwrite: File too large)" 0

if ((failures)); then
  echo "precopy_test: $failures failure(s)"
  exit 1
fi
echo "precopy_test: all passed"
