#!/usr/bin/env bash
# bench_start: what one child costs under fork and forget, start and end.
#
# A copy forks N children one after the other (bench/farm/start_probe.c,
# built here with cc) and waits for each. Each child notes when its main
# runs and when it exits; the parent when it forked and when waitpid
# returned. Printed, as medians (and 10th-90th percentiles) over the N:
#   start:      fork -> the child's main
#   end notice: the child's exit -> its parent's waitpid returns
# and the CPU time used on the parent's node per child (the children's own
# processes there: the whole child when it stays; when it is placed away,
# its start there and its deputy), which the wall times hide on a busy machine,
# for a child that stays on its parent's node (--spread load on an idle
# cluster: the node's seats page keeps it) and for one placed on another node
# (--spread always: through its deputy and the home node).
#
#   bench/farm/bench_start.sh [BIN_DIR] [N]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$src/build/bin}" && pwd)
n=${2:-40}
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-start.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/start_probe" "$src/bench/farm/start_probe.c"

# summary NAME LOG: medians and percentiles of main-fork and reaped-exit, ms.
summary() {
  awk -v name="$1" '
    $1 == "fork" { f = $2 } $1 == "main" { m = $2 } $1 == "exit" { e = $2 }
    $1 == "reaped" { s[n] = (m - f) / 1e6; d[n] = ($2 - e) / 1e6; n++ }
    $1 == "home_cpu" { cpu = $2 }
    function pct(a, p,   i, j, t, k) {
      for (i = 0; i < n; i++) b[i] = a[i]
      for (i = 1; i < n; i++) { t = b[i]; for (j = i - 1; j >= 0 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
      k = int(p * (n - 1) + 0.5); return b[k]
    }
    END {
      printf "%-22s start %6.1f ms (%.1f-%.1f)   end notice %6.1f ms (%.1f-%.1f)   CPU at home %5.2f ms   n=%d\n",
             name, pct(s, 0.5), pct(s, 0.1), pct(s, 0.9), pct(d, 0.5), pct(d, 0.1), pct(d, 0.9), cpu / 1e3 / n, n
    }' "$2"
}

for spread in load always; do
  log=$work/$spread.log
  "$bin/mosixrun" --vcluster 2 --spread "$spread" -np 1 "$work/start_probe" parent "$n" "$log" < /dev/null
  name="stays (load)"
  [[ $spread == always ]] && name="placed away (always)"
  summary "$name" "$log"
done
