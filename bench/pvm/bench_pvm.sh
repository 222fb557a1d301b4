#!/usr/bin/env bash
# Round-trip latency and bandwidth of pvm_send/pvm_recv between two tasks
# (Debian's `timing` example and its `timing_slave`), under mosixrun with no
# pvmd against a real pvmd, in one run: ratios, never absolute goals.
#   bench_pvm.sh BIN_DIR [ROUNDS]
# Ours on one node (the slave on the master's node) and on --vcluster 2 (the
# slave on the other vnode, over a TCP link of the two tasks; "routed": with
# MOSIX_PVM_TCP=0, through the node daemons); the pvmd on this one host (its default route,
# through the daemon). Goal (issue 16): latency <= 1.0x pvmd's, bandwidth >=
# 1.0x. A machine busy with other work makes any one round meaningless:
# compare the medians.
set -euo pipefail
BIN=$(cd "${1:?usage: bench_pvm.sh BIN_DIR [ROUNDS]}" && pwd)
ROUNDS=${2:-5}
for prog in timing timing_slave; do command -v "$prog" > /dev/null || { echo "no $prog (pvm-examples)"; exit 2; }; done
TMP=$(mktemp -d)
export XDG_RUNTIME_DIR="$TMP/run" PVM_ROOT=/usr/lib/pvm3 PVM_TMP="$TMP/pvm"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
mkdir -p "$PVM_TMP"
pvmd_pid=
trap 'if [[ -n $pvmd_pid ]]; then kill $pvmd_pid 2>/dev/null || true; fi; rm -rf "$TMP"' EXIT

# "RTT_us MB_per_s" of one run's output: the round trip average, and the
# send bandwidth of the largest message size (1 MB).
measure() {
  awk '/^RTT Avg uSec/ { rtt = $4 } /^Avg Byte\/uSec/ { getline; bw = $2 } END { print rtt, bw }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A rtt bw
run_case() {  # NAME COMMAND...
  local name=$1 i out
  shift
  for ((i = 0; i < ROUNDS; i++)); do
    out=$("$@" 2> /dev/null | measure || true)  # timing exits 1 when done
    rtt[$name]+="${out% *} "
    bw[$name]+="${out#* } "
  done
}

run_case one_node "$BIN/mosixrun" -np 1 timing
run_case two_vnodes env MOSIX_PVM_TCP=1 "$BIN/mosixrun" --vcluster 2 -np 1 timing
# The same without TCP links between the tasks (compat/pvm/direct.cpp):
# every message through the node daemons, as before they were made.
run_case routed env MOSIX_PVM_TCP=0 "$BIN/mosixrun" --vcluster 2 -np 1 timing
echo '* ep=/usr/bin' > "$PVM_TMP/hosts"
if [[ $(id -u) == 0 ]]; then export PVM_ALLOW_ROOT=1; fi
/usr/lib/pvm3/lib/pvmd "$PVM_TMP/hosts" > "$PVM_TMP/out" 2>&1 &
pvmd_pid=$!
for ((i = 0; i < 600; i++)); do  # until pvmd says where it listens
  [[ -s "$PVM_TMP/out" ]] && break
  sleep 0.05
done
run_case pvmd timing
echo halt | /usr/lib/pvm3/lib/pvm > /dev/null 2>&1 || true
wait "$pvmd_pid" 2> /dev/null || true
pvmd_pid=

m() { tr ' ' '\n' <<< "$1" | grep -v '^$' | median; }
base_rtt=$(m "${rtt[pvmd]}")
base_bw=$(m "${bw[pvmd]}")
printf '%-11s %12s %14s %10s %10s\n' case "RTT us" "1MB B/us" "RTT ratio" "BW ratio"
for name in pvmd one_node two_vnodes routed; do
  r=$(m "${rtt[$name]}")
  b=$(m "${bw[$name]}")
  printf '%-11s %12s %14s %10.2f %10.2f\n' "$name" "$r" "$b" "$(echo "$r / $base_rtt" | bc -l)" \
    "$(echo "$b / $base_bw" | bc -l)"
done
echo "(medians of $ROUNDS rounds; ratios against pvmd in this run; load: $(cut -d' ' -f1-3 /proc/loadavg))"
