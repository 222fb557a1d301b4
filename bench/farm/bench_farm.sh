#!/usr/bin/env bash
# bench_farm: fork and forget against one node (issue 15's benchmark).
#
# The render farm (examples/render-farm, POV-Ray's chess2 scene) and the
# compile farm (examples/compile-farm) run twice in this run:
#   baseline: one virtual node capped at SHARE CPU (mosixrun --vcluster 1), the
#             farm's own parallelism (background renders, make -j) on it;
#   farm:     NODES virtual nodes capped at SHARE each, children placed at exec.
# Printed: each time, the speed-up baseline/farm, and that speed-up as a
# ratio of the ideal (the sum of the nodes' speeds over one node's: NODES).
# Goal: >= 0.8 of the ideal. Needs NODES * SHARE CPUs free on this machine.
# As root it raises the weight of ROOT/mosix (the cgroup every job's vnodes
# live under) to the maximum while it runs, as bench_balance --real does, so
# that the jobs get their caps when other work shares the machine, and puts
# the old weight back at the end. Each time is printed with the load average
# before and after it.
#
#   bench/farm/bench_farm.sh [BIN_DIR] [NODES] [SHARE] [FRAMES] [UNITS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$src/build/bin}" && pwd)
nodes=${2:-4}
share=${3:-0.4}
frames=${4:-12}
units=${5:-240}
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
scene=/usr/share/povray-3.7/scenes/advanced/chess2.pov
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-farm.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
# The jobs' priority (docs/scheduling.md, bench_balance --real): cgroup v2's
# cpu.weight or v1's cpu.shares of ROOT/mosix, which the daemons leave in place.
weight=
if [[ $(id -u) == 0 ]]; then
  if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    weight=/sys/fs/cgroup/mosix/cpu.weight max=10000
  else
    v1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ {print $2; exit}' /proc/self/mounts)
    [[ -n $v1 ]] && weight=$v1/mosix/cpu.shares max=262144
  fi
fi
if [[ -n $weight ]] && mkdir -p "${weight%/*}" && old_weight=$(cat "$weight") && echo "$max" > "$weight"; then
  cleanup() { echo "$old_weight" > "$weight"; rm -rf "$work"; }
  echo "priority: $weight raised from $old_weight to $max during the runs" >&2
else
  echo "priority: not raised (not root, or no cgroup cpu controller): the jobs compete with the machine's other work" >&2
fi
shares=$(printf "$share%.0s," $(seq "$nodes")); shares=${shares%,}

# seconds COMMAND...: wall-clock seconds of one run (its output to a log).
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" < /dev/null > "$work/last.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
load() { cut -d' ' -f1 /proc/loadavg; }
report() {  # NAME BASE FARM
  awk -v n="$1" -v b="$2" -v f="$3" -v ideal="$nodes" 'BEGIN {
    s = b / f
    printf "%-13s one node %7.2f s  %d nodes %7.2f s  speed-up %.2fx  = %.2f of the ideal %dx (goal 0.80)\n",
           n, b, ideal, f, s, s / ideal, ideal }'
}

echo "bench_farm: $nodes virtual nodes at $share CPU against one at $share; $frames frames, $units units" >&2
if command -v povray > /dev/null && [[ -r $scene ]]; then
  echo "render farm: one node... (load $(load))" >&2
  base=$(cd "$work" && POV_SCENE=$scene seconds "$bin/mosixrun" --vcluster 1 --vcluster-cpu "$share" -np 1 \
    sh "$src/examples/render-farm/farm.sh" one "$frames" 96 72)
  echo "render farm: $nodes nodes... (load $(load))" >&2
  farm=$(cd "$work" && POV_SCENE=$scene seconds "$bin/mosixrun" --vcluster "$nodes" --vcluster-cpu "$shares" -np 1 \
    sh "$src/examples/render-farm/farm.sh" many "$frames" 96 72)
  echo "render farm: done (load $(load))" >&2
  report "render farm" "$base" "$farm"
  echo "  frames per node: $(awk '{print $3}' "$work/many/nodes.log" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
fi
echo "compile farm: one node... (load $(load))" >&2
base=$(seconds "$bin/mosixrun" --vcluster 1 --vcluster-cpu "$share" -np 1 \
  sh "$src/examples/compile-farm/farm.sh" "$work/cf-one" "$units")
echo "compile farm: $nodes nodes... (load $(load))" >&2
farm=$(seconds "$bin/mosixrun" --vcluster "$nodes" --vcluster-cpu "$shares" -np 1 \
  sh "$src/examples/compile-farm/farm.sh" "$work/cf-many" "$units")
echo "compile farm: done (load $(load))" >&2
report "compile farm" "$base" "$farm"
echo "  compilers per node: $(sort "$work/cf-many/nodes.log" | uniq -c | tr -s ' ' | tr '\n' ';')"
