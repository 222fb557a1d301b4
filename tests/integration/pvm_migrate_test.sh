#!/usr/bin/env bash
# PVM tasks are guests that move while their messages are in flight (issue
# 16, docs/pvm.md "Checkpoints and moves"). tests/pvm_programs/pvm_stream.c,
# linked against Debian's libpvm3 and run with ours on --vcluster 3: the
# master and B stream numbered messages of 0 to 300,000 bytes to A, which
# takes them with wildcards and echoes each back; every message and echo is
# checked (in order per sender, none lost, none twice, every byte). While it
# streams, A is moved across the three nodes and back, each move waiting
# for the stream to go on after the one before (its "progress" lines), and
# A's and B's images are written (mosixctl checkpoint) mid-stream. Then the
# stream stops (a file the master looks for) and the master says whether
# everything matched. A second run checkpoints A with --kill mid-stream and
# restarts it (mosixctl restart) while the others stream on.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"

if [[ ! -r "$BIN/../lib/pvm/libpvm3.so.3" || ! -x "$BIN/pvm_stream" ]]; then
  echo "SKIP: libpvm3.so.3 or pvm_stream was not built (Debian packages pvm-dev, pvm)"
  exit 77
fi
command -v jq > /dev/null || { echo "SKIP: jq is not installed"; exit 77; }
export PATH="$BIN:$PATH"
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

out=$TMP/stream.out
stop=$TMP/stop
mosixrun --vcluster 3 --migrate off -np 1 pvm_stream "$stop" < /dev/null > "$out" 2> "$TMP/stream.err" &
job=$!
trap 'kill "$job" 2> /dev/null || true; rm -rf "$TMP"' EXIT
alive() { kill -0 "$job" 2> /dev/null; }
progress() { grep -c '^progress' "$out" || true; }
node_of() { mosixctl ps --job "$job" --json | jq -r ".guests[] | select(.rank == $1) | .node"; }

wait_for "grep -q '^streaming' '$out' || ! alive" || true
check_eq "pvm_stream streams before the first move" "streaming" "$(grep -m1 '^streaming' "$out" || true)"

# Rank 1 is A (the first task spawned), rank 2 is B.
moves=0
for node in vnode2 vnode0 vnode1 vnode0 vnode2 vnode1; do
  before=$(progress)
  moved=$(mosixctl migrate 1 "$node" --job "$job" --json 2> "$TMP/ctl.err" || true)
  if [[ $(jq -r .ok <<< "$moved" 2> /dev/null) != true ]]; then
    fail "A moves to $node mid-stream: $(jq -r .error <<< "$moved" 2> /dev/null) $(cat "$TMP/ctl.err")"
    break
  fi
  moves=$((moves + 1))
  [[ $(node_of 1) == "$node" ]] || fail "after its move mosixctl ps shows A on '$(node_of 1)', not $node"
  # The stream goes on after the move before the next one.
  wait_for "(( \$(progress) > $before )) || ! alive" || true
  alive || break
done
check_eq "A moved 6 times while streaming" 6 "$moves"

# Images of A and B, written while they stream; both run on.
before=$(progress)
for rank in 1 2; do
  if mosixctl checkpoint "$rank" --job "$job" -o "$TMP/rank$rank.img" > "$TMP/ckpt$rank.out" 2>&1; then
    pass "rank $rank's image is written mid-stream"
  else
    fail "rank $rank's image mid-stream: $(tail -n 2 "$TMP/ckpt$rank.out")"
  fi
done
wait_for "(( \$(progress) > $before )) || ! alive" || true

touch "$stop"
rc=0
wait "$job" || rc=$?
check_eq "the job ends with 0" 0 "$rc"
check_contains "every message and echo arrived once, in order, intact" \
  "every message and echo checked" "$(grep '^pvm_stream:' "$out" || true)"
check_eq "no mismatch" "" "$(grep MISMATCH "$out" || true)"
echo "$(grep '^pvm_stream:' "$out" || true) ($(progress) progress lines, $moves moves)"
[[ $rc == 0 ]] || tail -n 5 "$TMP/stream.err" >&2

# A checkpoint to a file with --kill, mid-stream, and mosixctl restart of the
# image: the image carries what was queued on A's link, its node daemon keeps
# what it had not written and what comes meanwhile, and the restarted A
# attaches to it again. The job counts the killed rank as ended (mpirun's
# rule: run with --keep-going, and its status is that rank's 137); the
# restarted A runs outside the job's count but in its stream.
out=$TMP/restart.out
stop=$TMP/stop2
mosixrun --vcluster 3 --migrate off --keep-going -np 1 pvm_stream "$stop" < /dev/null > "$out" \
  2> "$TMP/restart.err" &
job=$!
wait_for "grep -q '^streaming' '$out' || ! alive" || true
before=$(progress)
restarted=""
if mosixctl checkpoint 1 --job "$job" -o "$TMP/a.img" --kill > "$TMP/ckpt.out" 2>&1; then
  pass "A's image is written mid-stream and A is killed"
  mosixctl restart "$TMP/a.img" < /dev/null > "$TMP/a.out" 2>&1 &
  restarted=$!
  trap 'kill "$job" $restarted 2> /dev/null || true; rm -rf "$TMP"' EXIT
else
  fail "A's image with --kill: $(tail -n 2 "$TMP/ckpt.out")"
fi
wait_for "(( \$(progress) > $before )) || ! alive || { [[ -n '$restarted' ]] && ! kill -0 $restarted 2> /dev/null; }" || true
(( $(progress) > before )) && pass "the stream goes on with the restarted A" || fail "the stream stopped after A's restart"
if [[ -n $restarted ]] && ! kill -0 "$restarted" 2> /dev/null; then
  fail "the restart ended early: $(tail -n 2 "$TMP/a.out")"
  kill "$job" 2> /dev/null  # the others would wait for A for ever
fi
touch "$stop"
rc=0
wait "$job" || rc=$?
check_eq "the job ends with the killed rank's 137 (--keep-going)" 137 "$rc"
if [[ -n $restarted ]]; then
  rrc=0
  wait "$restarted" || rrc=$?
  check_eq "the restarted A ends with 0" 0 "$rrc"
fi
check_contains "after the restart every message and echo arrived once, in order, intact" \
  "every message and echo checked" "$(grep '^pvm_stream:' "$out" || true)"
echo "$(grep '^pvm_stream:' "$out" || true) (restart)"
finish
