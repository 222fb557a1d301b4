#!/usr/bin/env bash
# Direct links between PVM tasks of different nodes (issue 16's speed,
# docs/pvm.md "Direct links"): TCP connections the tasks make themselves,
# offered through the node daemons. tests/pvm_programs/pvm_stream.c with the
# master on vnode0, A on vnode1 and B on vnode2 of --vcluster 3: A's
# messages from and to the master and B go on TCP links of its own (A holds
# established TCP sockets). While they stream, A's and B's images are
# written (an image ends a task's links: what was not acknowledged on them
# goes again through the node daemons, then they are made again), A moves to
# vnode2 (beside B: a socketpair from its node daemon) and back, and A is
# checkpointed with --kill and restarted into its job (pvm_links_rounds, in
# lib/pvm_stream.sh); after each, A has its TCP links again. Every message
# and echo is checked (in order per sender, none lost, none twice, every byte).
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/pvm_stream.sh"
[[ -r /proc/net/tcp ]] || { echo "SKIP: no /proc/net/tcp"; exit 77; }
export MOSIX_PVM_TCP=1  # TCP links are opt-in for now (docs/pvm.md)
pvm_stream_start vnode1 vnode2
# The established TCP connections rank $1 holds: its sockets' inodes found
# in /proc/net/tcp with state 01.
tcp_of() {
  local pid f n=0 inodes=" "
  pid=$(guest "$1" pid)
  [[ -n $pid && -d /proc/$pid/fd ]] || { echo 0; return; }
  for f in /proc/"$pid"/fd/*; do
    f=$(readlink "$f" 2> /dev/null) || continue
    [[ $f == socket:* ]] && inodes+="${f//[^0-9]/} "
  done
  while read -r _ _ _ st _ _ _ _ _ inode _; do
    [[ $st == 01 && $inodes == *" $inode "* ]] && n=$((n + 1))
  done < <(cat /proc/net/tcp /proc/net/tcp6 2> /dev/null)
  echo "$n"
}
# A receives from the master and B and echoes to both: four TCP links.
linked() { (( $(tcp_of 1) >= 4 )); }
wait_for "grep -q '^streaming' '$out' || ! alive" || true
check_eq "pvm_stream streams with A on vnode1 and B on vnode2" "streaming vnode1 vnode2" \
  "$(grep -m1 '^streaming' "$out" || true) $(guest 1 node) $(guest 2 node)"
wait_for "linked || ! alive" || true
linked && pass "A talks to the master and B over TCP links of its own" ||
  fail "A holds $(tcp_of 1) established TCP connections: no links between nodes"

# A moves beside B (a socketpair to B, TCP to the master) and back.
links="TCP links"
pvm_links_rounds vnode2 vnode1

pvm_stream_end
finish
