#!/bin/bash
# MPI across network namespaces (root only): two namespaces joined to a
# bridge by veth pairs, mpirun in the root namespace starting one rank in
# each through the rsh agent "ip netns exec NS". The ranks must run in their
# namespaces, pass a ring of checked bytes, and the veth counters must grow
# by at least the bytes sent, so the traffic really crossed an interface.
# With the MPI transport's check program built, the transport runs across
# them too. Usage: netns_mpi_test.sh BIN_DIR [LIB_DIR]
set -u
bin=${1:?usage: netns_mpi_test.sh BIN_DIR}
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: netns_mpi_test needs root to make network namespaces"
  exit 77
fi
for tool in ip mpirun flock; do
  if ! command -v $tool >/dev/null; then
    echo "SKIP: $tool not found"
    exit 77
  fi
done
if [ ! -x "$bin/netns_ping" ]; then
  echo "SKIP: $bin/netns_ping not built (MOSIX_MPI=OFF)"
  exit 77
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/netns.sh"

# One run at a time on this host: the names and the subnet are fixed. With
# the lock held, namespaces of ours still there were left by a killed run.
exec 9>/run/lock/mosix-netns.lock
flock 9
netns_down
out=$(mktemp)
trap 'netns_down; rm -f "$out"' EXIT
trap 'exit 130' INT TERM HUP
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

if ! netns_up 2; then
  echo "FAIL: cannot bring up the namespaces"
  exit 1
fi

bytes=$((4 << 20))
declare -a rx0 tx0
for i in 0 1; do rx0[i]=$(netns_bytes $i rx); tx0[i]=$(netns_bytes $i tx); done
# The limit only stops a hung run; it bounds no performance.
timeout 120 "${NETNS_MPIRUN[@]}" "$bin/netns_ping" $bytes >"$out" 2>&1
status=$?
if [ $status = 0 ] && grep -qx "netns_ping: ok, 2 ranks, $bytes bytes each" "$out"; then
  ok "ring of $bytes bytes across 2 namespaces"
else
  fail "netns_ping exited $status:"; sed 's/^/    /' "$out"
fi
for i in 0 1; do
  expected=$(ip netns exec "$NETNS_PREFIX$i" readlink /proc/self/ns/net)
  if grep -qxF "netns_ping: rank $i in $expected" "$out"; then
    ok "rank $i ran in $NETNS_PREFIX$i ($expected)"
  else
    fail "rank $i did not run in $NETNS_PREFIX$i ($expected):"; sed 's/^/    /' "$out"
  fi
  # The root end of veth i receives what namespace i sends and sends what
  # it receives: each rank sent and received $bytes.
  rx=$(($(netns_bytes $i rx) - rx0[i]))
  tx=$(($(netns_bytes $i tx) - tx0[i]))
  if ((rx >= bytes && tx >= bytes)); then
    ok "$(netns_veth $i) carried $rx bytes from and $tx bytes to $NETNS_PREFIX$i (>= $bytes each)"
  else
    fail "$(netns_veth $i) carried only $rx bytes from and $tx bytes to $NETNS_PREFIX$i, expected >= $bytes each"
  fi
done

# A failing rank's exit status comes back through the agent and orted.
timeout 120 "${NETNS_MPIRUN[@]}" /bin/sh -c 'exit $((OMPI_COMM_WORLD_RANK * 5))' >"$out" 2>&1
status=$?
if [ $status = 5 ]; then ok "exit status 5 of rank 1 comes back"; else fail "exit status: expected 5, got $status"; sed 's/^/    /' "$out"; fi

if [ -x "$bin/transport_mpi_check" ]; then
  for mode in every-type order; do
    timeout 120 "${NETNS_MPIRUN[@]}" "$bin/transport_mpi_check" $mode >"$out" 2>&1
    status=$?
    if [ $status = 0 ] && grep -q "transport_mpi_check $mode: ok" "$out"; then
      ok "MPI transport '$mode' across namespaces"
    else
      fail "MPI transport '$mode' across namespaces exited $status:"; sed 's/^/    /' "$out"
    fi
  done
else
  echo "note: $bin/transport_mpi_check not built; the MPI transport is not run across namespaces"
fi

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all network namespace checks passed"
