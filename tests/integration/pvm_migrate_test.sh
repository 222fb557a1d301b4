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
# everything matched. A second run checkpoints A with --kill mid-stream: A
# stays in its job, suspended, and mosixctl restart gives it back to the job
# while the others stream on.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/pvm_stream.sh"
pvm_stream_start
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

# A move right after an image to a file, A not reading meanwhile (it holds
# while $stop.hold exists): the image shut A's link and took what was
# queued on it into A's memory; the move takes what A's node daemon kept
# for it. Before, such a move was refused (the link, shut, was a connected
# socket to the agent) until A had read the rest of its old link.
for node in vnode0 vnode2; do
  touch "$stop.hold"
  wait_for "[[ -e '$stop.hold.held' ]] || ! alive" || true
  mosixctl checkpoint 1 --job "$job" -o "$TMP/held.img" > "$TMP/ckpt-held.out" 2>&1 ||
    fail "A's image while it holds: $(tail -n 2 "$TMP/ckpt-held.out")"
  moved=$(mosixctl migrate 1 "$node" --job "$job" --json 2> "$TMP/ctl.err" || true)
  if [[ $(jq -r .ok <<< "$moved" 2> /dev/null) == true ]]; then
    pass "A moves to $node right after its image, before it read its link again"
  else
    fail "A moves to $node right after its image: $(jq -r .error <<< "$moved" 2> /dev/null) $(cat "$TMP/ctl.err")"
  fi
  before=$(progress)
  rm -f "$stop.hold"
  wait_for "(( \$(progress) > $before )) || ! alive" || true
done

pvm_stream_end "$moves moves"

# A checkpoint to a file with --kill, mid-stream, and mosixctl restart of the
# image: A stays a member of its job, suspended (the job waits for it; its
# node daemon keeps what it had not written and what comes meanwhile), the
# restart goes back into the job as rank 1 on its node, the image carries
# what was queued on A's link, and the job ends with A's own status (0),
# not the kill's 137.
out=$TMP/restart.out
stop=$TMP/stop2
mosixrun --vcluster 3 --migrate off -np 1 pvm_stream "$stop" < /dev/null > "$out" 2> "$TMP/restart.err" &
job=$!
state_of() { mosixctl ps --job "$job" --json 2> /dev/null | jq -r ".guests[] | select(.rank == $1) | .state"; }
wait_for "grep -q '^streaming' '$out' || ! alive" || true
before=$(progress)
restarted=no
# A holds (reads nothing): its link's queue is full when its image is written.
touch "$stop.hold"
wait_for "[[ -e '$stop.hold.held' ]] || ! alive" || true
if mosixctl checkpoint 1 --job "$job" -o "$TMP/a.img" --kill > "$TMP/ckpt.out" 2>&1; then
  pass "A's image is written mid-stream and A is killed"
  wait_for "[[ \$(state_of 1) == suspended ]] || ! alive" || true
  check_eq "A is suspended in its job, which runs on" "suspended alive" "$(state_of 1) $(alive && echo alive)"
  if mosixctl restart "$TMP/a.img" < /dev/null > "$TMP/a.out" 2>&1; then
    check_contains "mosixctl restart gives A back to its job" "rank 1 of job $job restarts on" "$(cat "$TMP/a.out")"
    restarted=yes
  else
    fail "mosixctl restart of A's image: $(tail -n 2 "$TMP/a.out")"
  fi
else
  fail "A's image with --kill: $(tail -n 2 "$TMP/ckpt.out")"
fi
rm -f "$stop.hold"
if [[ $restarted == yes ]]; then
  wait_for "(( \$(progress) > $before )) || ! alive" || true
  (( $(progress) > before )) && pass "the stream goes on with the restarted A" || fail "the stream stopped after A's restart"
  check_eq "A runs again in its job" running "$(state_of 1)"
else
  kill "$job" 2> /dev/null  # the others would wait for A for ever
fi
touch "$stop"
rc=0
wait "$job" || rc=$?
check_eq "the job ends with 0, the restarted A's status" 0 "$rc"
check_contains "after the restart every message and echo arrived once, in order, intact" \
  "every message and echo checked" "$(grep '^pvm_stream:' "$out" || true)"
echo "$(grep '^pvm_stream:' "$out" || true) (restart)"
[[ $rc == 0 ]] || tail -n 5 "$TMP/restart.err" >&2

# A task moved before its first PVM call: what was sent to it meanwhile waited
# on its node, goes with it, and it attaches on the node it runs on now.
if [[ -x $BIN/pvm_late ]]; then
  gate=$TMP/late.gate
  touch "$gate"
  out=$TMP/late.out
  mosixrun --vcluster 3 --migrate off -np 1 pvm_late "$gate" < /dev/null > "$out" 2> "$TMP/late.err" &
  job=$!
  wait_for "grep -q '^sent' '$out' || ! alive" || true
  moved=$(mosixctl migrate 1 vnode2 --job "$job" --json 2> "$TMP/ctl.err" || true)
  [[ $(jq -r .ok <<< "$moved" 2> /dev/null) == true ]] ||
    fail "the worker moves before its first call: $(jq -r .error <<< "$moved" 2> /dev/null) $(cat "$TMP/ctl.err")"
  rm -f "$gate"
  wait_for "grep -q '^pvm_late:' '$out' || ! alive" || true
  check_eq "a task moved before its first call gets what was sent to it, in order" "pvm_late: got 123" \
    "$(grep '^pvm_late:' "$out" || true)"
  kill "$job" 2> /dev/null || true
  wait "$job" 2> /dev/null || true
fi
finish
