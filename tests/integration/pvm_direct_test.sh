#!/usr/bin/env bash
# Direct links between the PVM tasks of one node (issue 16's speed,
# docs/pvm.md "Direct links"). tests/pvm_programs/pvm_stream.c with the
# master, A and B all on vnode0 of --vcluster 3: their messages go on links
# of their own, not through the node daemon (A holds more sockets than its
# link to it). While they stream, A's and B's images are written (an image
# drains and closes a task's direct links: the stream goes on through the
# node daemon, then on new links), A moves to vnode1 and back, and A is
# checkpointed with --kill, then with --tree --kill, and restarted into its
# job each time. Every message and
# echo is checked (in order per sender, none lost, none twice, every byte).
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/pvm_stream.sh"
pvm_stream_start vnode0 vnode0
# The sockets rank $1 holds: 1 is its link to its node daemon; each direct
# link to or from another task is one more.
sockets_of() {
  local pid n=0 f
  pid=$(guest "$1" pid)
  [[ -n $pid && -d /proc/$pid/fd ]] || { echo 0; return; }
  for f in /proc/"$pid"/fd/*; do
    [[ $(readlink "$f" 2> /dev/null) == socket:* ]] && n=$((n + 1))
  done
  echo "$n"
}
# A has links from the master and B and to both: at least 3 more sockets.
linked() { (( $(sockets_of 1) >= 4 )); }
wait_for "grep -q '^streaming' '$out' || ! alive" || true
check_eq "pvm_stream streams with all three on vnode0" "streaming vnode0 vnode0" \
  "$(grep -m1 '^streaming' "$out" || true) $(guest 1 node) $(guest 2 node)"
wait_for "linked || ! alive" || true
linked && pass "A talks to the master and B over direct links" ||
  fail "A holds $(sockets_of 1) sockets: no direct links"

links="direct links"
pvm_links_rounds vnode1 vnode0

# The same with --tree (issue 16: a tree checkpoint with --kill of a job's
# task suspends it in its job too; before, the job counted it as ended, 137).
before=$(progress)
if mosixctl checkpoint 1 --job "$job" --tree -o "$TMP/a-tree.img" --kill > "$TMP/ckpt-tree.out" 2>&1; then
  wait_for "[[ \$(guest 1 state) == suspended ]] || ! alive" || true
  check_eq "after checkpoint --tree --kill A is suspended in its job, which runs on" "suspended alive" \
    "$(guest 1 state) $(alive && echo alive)"
  if mosixctl restart "$TMP/a-tree.img" < /dev/null > "$TMP/a-tree.out" 2>&1; then
    check_contains "A's tree image restarts in its job" "rank 1 of job $job restarts on" "$(cat "$TMP/a-tree.out")"
  else
    fail "mosixctl restart of A's tree image: $(tail -n 2 "$TMP/a-tree.out")"
  fi
  go_on "$before"
  (( $(progress) > before )) && pass "the stream goes on with A restarted from its tree image" ||
    fail "the stream stopped after A's restart from its tree image"
else
  fail "A's tree image with --kill: $(tail -n 2 "$TMP/ckpt-tree.out")"
fi

pvm_stream_end
finish
