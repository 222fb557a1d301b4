#!/bin/bash
# mosixrun across network namespaces (root only): two namespaces as nodes,
# `mosixrun --host mosixns0:2,mosixns1:2 -np 4` with the MCA settings of
# lib/netns.sh given as OMPI_MCA_* variables, so mpirun starts one node
# daemon in each namespace through the rsh agent "ip netns exec NS" and the
# home node's daemon (rank 0, no slots) in the root namespace. Checks: each
# copy runs in the namespace of its node; each copy's 1 MiB of stdout reaches
# the home node byte-exact, in the --output-filename files and through the
# tagged terminal stream; the veth counters grew by at least that output; the
# exit rule holds and the other copies are ended; an MPI ring across the
# namespaces gives mpirun's output; nothing of a job is left running
# afterwards. Usage: netns_mosixrun_test.sh BIN_DIR [LIB_DIR]
set -u
bin=${1:?usage: netns_mosixrun_test.sh BIN_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/netns.sh"
netns_test_start netns-run "ip mpirun flock awk cmp" "mosixrun mosixd"

netns_mosixrun_up 2
# Every process of a job inherits this (mpirun, orted, mosixd, guests): what
# still carries it after the job ended was left behind.
export MOSIX_NETNS_TEST_MARK="netns-mosixrun-$$-$RANDOM"
hosts=mosixns0:2,mosixns1:2

# Each copy writes 16384 lines of 64 bytes (1 MiB) numbered and named by its
# rank, so a lost, doubled, reordered or mixed-up byte shows.
lines=16384
copy_bytes=$((lines * 64))
cat >"$work/gen.sh" <<'GEN'
awk -v r="$1" -v n="$2" 'BEGIN {
  for (i = 0; i < n; i++)
    printf "r%d %07d abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n", r, i
}'
GEN
for r in 0 1 2 3; do sh "$work/gen.sh" $r $lines >"$work/expected.$r"; done
if [ "$(stat -c %s "$work/expected.0")" != $copy_bytes ]; then
  echo "FAIL: the generator wrote $(stat -c %s "$work/expected.0") bytes, not $copy_bytes"
  exit 1
fi

# Nothing of ours may outlive a job: no process carrying the mark, none in
# the namespaces. Processes take a moment to be reaped after mosixrun
# returns, so this polls (a bounded number of times) until they are gone.
leftovers() {
  local p f found=
  # grep must not carry the mark itself, or it finds its own environment.
  for f in $(env -u MOSIX_NETNS_TEST_MARK grep -lsz "^MOSIX_NETNS_TEST_MARK=$MOSIX_NETNS_TEST_MARK\$" /proc/[0-9]*/environ); do
    p=${f%/environ}
    found+=" ${p#/proc/}($(tr '\0' ' ' 2>/dev/null <"$p/cmdline" | cut -c1-60))"
  done
  for ns in mosixns0 mosixns1; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      found+=" $p[$ns]($(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-60))"
    done
  done
  echo "$found"
}
check_nothing_left() {
  local i left
  for ((i = 0; i < 200; i++)); do
    left=$(leftovers)
    [ -z "$left" ] && break
    sleep 0.05
  done
  if [ -z "$left" ]; then
    ok "$1: nothing left running (no mpirun, orted, mosixd or guest)"
  else
    fail "$1: left running:$left"
  fi
}

declare -a ns_id rx0 tx0
for i in 0 1; do
  ns_id[i]=$(ip netns exec "mosixns$i" readlink /proc/self/ns/net)
  rx0[i]=$(netns_bytes $i rx)
  tx0[i]=$(netns_bytes $i tx)
done
root_ns=$(readlink /proc/self/ns/net)

# 1. Placement, namespaces and output.
# The limit only stops a hung run; it bounds no performance. Each rank's
# namespace is read by a child (readlink): --spread off keeps it on the rank's
# node (spread_test covers children placed away).
timeout 120 "$bin/mosixrun" --host $hosts -np 4 --spread off --tag-output --output-filename "$work/out" \
  sh -c 'echo "netns $OMPI_COMM_WORLD_RANK $(readlink /proc/self/ns/net) $MOSIX_NODE" >&2
         exec sh "$0" "$OMPI_COMM_WORLD_RANK" "$1"' "$work/gen.sh" $lines \
  </dev/null >"$work/stdout" 2>"$work/stderr"
status=$?
if [ $status = 0 ]; then
  ok "mosixrun --host $hosts -np 4 exited 0"
else
  fail "mosixrun --host $hosts -np 4 exited $status; stderr:"; show "$work/stderr"
fi
for r in 0 1 2 3; do
  # mpirun's by-slot rule: ranks 0 and 1 fill mosixns0's two slots, 2 and 3 mosixns1's.
  node=$((r / 2))
  want=${ns_id[node]}
  got=$(sed -n "s/^\[1,$r\]<stderr>:netns $r //p" "$work/stderr")
  if [ "${got% *}" = "$want" ]; then
    ok "rank $r ran in mosixns$node ($want)"
  else
    fail "rank $r ran in '${got% *}', not in mosixns$node ($want; the root namespace is $root_ns)"
  fi
  # The node daemon names its node by its host name, which the rsh agent
  # set to the namespace's name.
  if [ "${got##* }" = "mosixns$node" ]; then
    ok "rank $r: MOSIX_NODE is mosixns$node"
  else
    fail "rank $r: MOSIX_NODE is '${got##* }', not mosixns$node"
  fi
  if cmp -s "$work/expected.$r" "$work/out/1/rank.$r/stdout"; then
    ok "rank $r: --output-filename file holds its $copy_bytes bytes exactly"
  else
    fail "rank $r: $work/out/1/rank.$r/stdout differs from what it wrote:"
    cmp "$work/expected.$r" "$work/out/1/rank.$r/stdout" 2>&1 | show
  fi
  grep -a "^\[1,$r\]<stdout>:" "$work/stdout" | cut -d: -f2- >"$work/terminal.$r"
  if cmp -s "$work/expected.$r" "$work/terminal.$r"; then
    ok "rank $r: its tagged lines on mosixrun's stdout are its $copy_bytes bytes, in order"
  else
    fail "rank $r: its tagged lines on mosixrun's stdout differ from what it wrote:"
    cmp "$work/expected.$r" "$work/terminal.$r" 2>&1 | show
  fi
done
untagged=$(grep -avc '^\[1,[0-3]\]<stdout>:' "$work/stdout")
if [ "$untagged" = 0 ]; then
  ok "every line on mosixrun's stdout is a copy's tagged line"
else
  fail "$untagged line(s) on mosixrun's stdout are no copy's tagged line:"
  grep -av '^\[1,[0-3]\]<stdout>:' "$work/stdout" | show
fi
for i in 0 1; do
  # Namespace i's two copies sent their output to the home node in the root
  # namespace: the root end of veth i received it (rx), plus headers.
  rx=$(($(netns_bytes $i rx) - rx0[i]))
  tx=$(($(netns_bytes $i tx) - tx0[i]))
  if ((rx >= 2 * copy_bytes)); then
    ok "$(netns_veth $i) carried $rx bytes from mosixns$i (>= $((2 * copy_bytes)), the output of its copies) and $tx to it"
  else
    fail "$(netns_veth $i) carried only $rx bytes from mosixns$i, less than the $((2 * copy_bytes)) bytes its copies wrote"
  fi
done
check_nothing_left "after a job that ended well"

# 2. The exit rule across namespaces: rank 2 (on mosixns1) exits 3 while the
# others wait for input that never comes; mosixrun ends them and exits 3.
timeout 120 "$bin/mosixrun" --host $hosts -np 4 \
  sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 2 ]; then exit 3; fi; exec tail -f /dev/null' \
  </dev/null >"$work/stdout" 2>"$work/stderr"
status=$?
if [ $status = 3 ]; then
  ok "rank 2 in mosixns1 exits 3: mosixrun exits 3"
else
  fail "rank 2 exits 3: mosixrun exited $status; stderr:"; show "$work/stderr"
fi
check_nothing_left "after rank 2 failed"

# 3. An MPI program across the namespaces (issue 14): each node daemon's
# PMIx server wires up its ranks, the fence goes through the home node, and
# the ranks talk TCP over the veths (the btl settings above). The ring's
# output, sorted, is mpirun's with the same hosts.
if [ -x "$bin/mpi_ring" ]; then
  want=$(timeout 120 mpirun --allow-run-as-root --host $hosts -np 4 "$bin/mpi_ring" </dev/null 2>"$work/mpirun.err" | sort)
  got=$(timeout 120 "$bin/mosixrun" --host $hosts -np 4 "$bin/mpi_ring" </dev/null 2>"$work/stderr" | sort)
  status=$?
  if [ -n "$want" ] && [ "$got" = "$want" ]; then
    ok "mpi_ring across the namespaces: mosixrun's output is mpirun's"
  else
    fail "mpi_ring across the namespaces: mosixrun gave [$got], mpirun [$want]; stderr:"; show "$work/stderr" "$work/mpirun.err"
  fi
  check_nothing_left "after the MPI ring"
else
  fail "$bin/mpi_ring not built (tests/mpi_programs)"
fi

# 4. MPI_Comm_spawn across the namespaces: 2 parents spawn 2 children, which
# our placement puts where the load is least; parents and children connect
# and exchange their ranks over TCP between the namespaces. Sorted output as
# mpirun's with the same hosts.
if [ -x "$bin/mpi_spawn" ]; then
  want=$(timeout 120 mpirun --allow-run-as-root --host $hosts -np 2 "$bin/mpi_spawn" 2 </dev/null 2>"$work/mpirun.err" | sort)
  got=$(timeout 120 "$bin/mosixrun" --host $hosts -np 2 "$bin/mpi_spawn" 2 </dev/null 2>"$work/stderr" | sort)
  if [ -n "$want" ] && [ "$got" = "$want" ]; then
    ok "mpi_spawn across the namespaces: mosixrun's output is mpirun's"
  else
    fail "mpi_spawn across the namespaces: mosixrun gave [$got], mpirun [$want]; stderr:"; show "$work/stderr" "$work/mpirun.err"
  fi
  check_nothing_left "after the MPI spawn"
fi

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all mosixrun network namespace checks passed"
