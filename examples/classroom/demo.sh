#!/usr/bin/env bash
# The classroom demo: a heterogeneous cluster on this machine, uneven work, the
# balancer moving copies, a forced migration, and a node that dies and whose
# copies come back from their checkpoints. Narrated step by step; it waits for
# a key press between steps unless --no-pause is given. See README.md.
#
#   demo.sh [--no-pause] [--size N] [--bin DIR] [--work-dir DIR]
#
# --size N   work of the copies: rank r does N x (6 2 1 5 3 2)[r] units of
#            about a tenth of a CPU second each (default 8)
# --bin DIR  where mosixrun, mosixctl and classroom_work are (default: next to
#            mosixrun on PATH, else build/bin of this source tree)
# --work-dir DIR  where the job's output and checkpoints go (default: a
#            temporary directory, removed at the end)
# Every step waits for what it shows to have happened (the job's own view,
# `mosixctl ps --json`), polling a bounded number of times; if it does not
# happen the demo says which step failed and why, and exits 1.
set -euo pipefail

pause=1
size=8
bin=""
work=""
usage() { echo "usage: demo.sh [--no-pause] [--size N] [--bin DIR] [--work-dir DIR]" >&2; exit 2; }
while (($# > 0)); do
  case $1 in
    --no-pause) pause=0 ;;
    --size) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; size=$2; shift ;;
    --bin) [[ -n ${2:-} ]] || usage; bin=$2; shift ;;
    --work-dir) [[ -n ${2:-} ]] || usage; work=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option '$1'" >&2; usage ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
if [[ -z $bin ]]; then
  if command -v mosixrun > /dev/null && [[ -x $(dirname "$(command -v mosixrun)")/classroom_work ]]; then
    bin=$(dirname "$(command -v mosixrun)")
  else
    bin=$here/../../build/bin
  fi
fi
[[ -d $bin ]] || { echo "demo.sh: no directory '$bin': give --bin DIR" >&2; exit 2; }
bin=$(cd "$bin" && pwd)
for program in mosixrun mosixctl mosixd classroom_work; do
  [[ -x $bin/$program ]] || { echo "demo.sh: $bin/$program is missing: build the project, or give --bin DIR" >&2; exit 2; }
done
command -v jq > /dev/null || { echo "demo.sh: needs jq (apt-get install jq)" >&2; exit 2; }
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

own_work=0
if [[ -z $work ]]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/mosix-classroom.XXXXXX")
  own_work=1
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
rm -f "$work/end" "$work/job.out" "$work/job.err"
job=""
cleanup() {
  if [[ -n $job ]] && kill -0 "$job" 2> /dev/null; then
    kill "$job" 2> /dev/null || true
    wait "$job" 2> /dev/null || true
  fi
  if ((own_work)); then rm -rf "$work"; fi
}
trap cleanup EXIT

if [[ -t 1 ]]; then bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'; else bold="" dim="" off=""; fi
step_no=0
step() {
  step_no=$((step_no + 1))
  printf '\n%s== %d. %s%s\n' "$bold" "$step_no" "$1" "$off"
}
say() { printf '%s\n' "$@"; }
show() {
  printf '%s$ %s%s\n' "$dim" "$*" "$off"
  "$@"
}
key() {
  if ((pause)); then read -r -s -n 1 -p "${dim}(press a key)${off}" < /dev/tty || true; echo; fi
}
checked() { printf 'demo: checked: %s\n' "$1"; }
die() {
  printf 'demo: step %d failed: %s\n' "$step_no" "$1" >&2
  if [[ -s $work/job.err ]]; then
    echo "demo: the job said:" >&2
    tail -5 "$work/job.err" >&2
  fi
  exit 1
}

ps_json() { "$bin/mosixctl" ps --job "$job" --json 2> /dev/null; }
# wait_until WHAT CONDITION: polls CONDITION (a shell command) five times a
# second, at most 1,500 times; fails the step if the job ends first.
wait_until() {
  local i
  for ((i = 0; i < 1500; i++)); do
    if eval "$2"; then return 0; fi
    kill -0 "$job" 2> /dev/null || die "the job ended before $1"
    sleep 0.2
  done
  die "$1 did not happen after 1,500 polls (5 minutes)"
}
jq_ps() { ps_json | jq -r "$1" 2> /dev/null; }
# The pid of the job's node daemon of virtual node K (mosixd --launch starts
# them with MOSIX_NODE_RANK=K in their environment).
daemon_of() {
  local pid
  for pid in $(pgrep -x mosixd); do
    grep -q -- "--job $job " <<< "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null)" || continue
    if grep -qxE "(MOSIX_NODE|OMPI_COMM_WORLD)_RANK=$1" <<< "$(tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null)"; then
      echo "$pid"
      return
    fi
  done
}

say "${bold}mosixrun classroom demo${off}: one machine plays a small cluster whose nodes differ."
say "Binaries: $bin"
say "Work directory: $work"
key

step "A heterogeneous virtual cluster, and uneven work"
say "mosixrun --vcluster 3 starts three virtual nodes (vnode0, vnode1, vnode2) on this machine," \
    "each a node daemon capped to its CPU share: 0.5, 1 and 1.5 CPUs, so vnode2 is three times" \
    "as fast as vnode0. Six copies of a program start, two on each node whatever its speed" \
    "(--map-by node), so the slow vnode0 is overloaded; and their work is uneven: rank r does" \
    "$size x (6 2 1 5 3 2)[r] units of CPU work. Every copy is checkpointed every 2 seconds." \
    "When its work is done, a copy waits for the end of the class, then prints its result."
cmd=("$bin/mosixrun" --vcluster 3 --vcluster-cpu 0.5,1,1.5 --map-by node --ckpt-interval 2
     --ckpt-dir "$work/ckpt" --tag-output -np 6 "$bin/classroom_work" --uneven "$size" "$work/end")
printf '%s$ mosixrun --vcluster 3 --vcluster-cpu 0.5,1,1.5 --map-by node --ckpt-interval 2 \\\n' "$dim"
printf '    --ckpt-dir %s --tag-output -np 6 classroom_work --uneven %s %s &%s\n' \
  "$work/ckpt" "$size" "$work/end" "$off"
"${cmd[@]}" > "$work/job.out" 2> "$work/job.err" &
job=$!
wait_until "the six copies were running" '[[ $(jq_ps "[.guests[] | select(.state == \"running\")] | length") == 6 ]]'
checked "6 copies running on 3 nodes (job $job)"
key

step "Watching the cluster: mosixctl mon"
say "mosixctl mon shows each node's speed and load (runnable copies per unit of speed), like" \
    "MOSIX's mosmon. vnode0 carries two copies on half a CPU: its load is the highest."
wait_until "every node reported its load" '[[ $(jq_ps "[.nodes[] | select(.load > 0)] | length") == 3 ]]'
show "$bin/mosixctl" mon --job "$job" --once
show "$bin/mosixctl" ps --job "$job"
checked "mon and ps show the 3 nodes and the 6 copies"
key

step "The balancer moves copies on its own"
say "Each node daemon decides about once a second whether one of its copies would finish sooner" \
    "elsewhere (MOSIX's algorithm: load per unit of speed, a stability margin, the cost of the" \
    "move). Waiting for its first move..."
wait_until "the balancer moved a copy" '[[ $(jq_ps "[.guests[].balancer_migrations // 0] | add") -ge 1 ]]'
show "$bin/mosixctl" ps --job "$job" --explain
moved=$(jq_ps '[.guests[] | select((.balancer_migrations // 0) >= 1) | "rank \(.rank): \(.last_migration)"] | join("; ")')
checked "the balancer moved a copy ($moved)"
key

step "Moving a copy by hand: mosixctl migrate"
rank=4
from=$(jq_ps ".guests[] | select(.rank == $rank) | .node")
target=vnode1
[[ $from == vnode1 ]] && target=vnode2
say "Rank $rank runs on $from. We move it to $target ourselves: it is checkpointed, its image" \
    "streamed to $target's daemon and restored there; it goes on where it was."
before=$(jq_ps ".guests[] | select(.rank == $rank) | .migrations // 0")
show "$bin/mosixctl" migrate "$rank" "$target" --job "$job" || die "mosixctl migrate $rank $target failed"
wait_until "rank $rank ran on $target" '[[ $(jq_ps ".guests[] | select(.rank == '"$rank"') | \"\(.node) \(.state)\"") == "'"$target"' running" ]]'
after=$(jq_ps ".guests[] | select(.rank == $rank) | .migrations // 0")
((after > before)) || die "rank $rank's migrations did not grow ($before, then $after)"
checked "rank $rank moved from $from to $target"
key

step "A node dies; its copies come back from their checkpoints"
victim=""
for node in vnode2 vnode1; do
  if [[ -n $(jq_ps "[.guests[] | select(.node == \"$node\")] | .[0].rank // empty") ]]; then victim=$node; break; fi
done
[[ -n $victim ]] || die "neither vnode1 nor vnode2 holds a copy"
ranks=$(jq_ps "[.guests[] | select(.node == \"$victim\") | .rank] | join(\" \")")
say "$victim holds rank(s) $ranks. Each has a checkpoint image, at most a few seconds old:"
for r in $ranks; do
  wait_until "rank $r had a checkpoint image" "[[ -s '$work/ckpt/rank.$r.img' ]]"
done
show ls -l "$work/ckpt"
victim_rank=${victim#vnode}
pid=$(daemon_of "$victim_rank")
[[ -n $pid ]] || die "cannot find the node daemon of $victim"
say "Now we kill $victim's node daemon (pid $pid) with SIGKILL, as if the machine had died."
show kill -9 "$pid"
wait_until "the home node restarted the lost copies" 'grep -q "restarting from their last checkpoints" "$work/job.err"'
for r in $ranks; do
  wait_until "rank $r ran again on a live node" '[[ $(jq_ps ".guests[] | select(.rank == '"$r"') | \"\(.node) \(.state)\"") =~ ^vnode[0-9]+\ running$ && $(jq_ps ".guests[] | select(.rank == '"$r"') | .node") != "'"$victim"'" ]]'
done
grep "node $victim died\|restarting from" "$work/job.err" || true
show "$bin/mosixctl" ps --job "$job"
checked "$victim died and rank(s) $ranks came back from their checkpoints"
key

step "The end of the class"
say "We tell the copies that the class is over; each finishes its work and prints its result."
touch "$work/end"
set +e
wait "$job"
rc=$?
set -e
job=""
((rc == 0)) || die "the job exited $rc"
show sort "$work/job.out"
[[ $(grep -c "units, sum" "$work/job.out") == 6 ]] || die "not every copy printed its result"
weights=(6 2 1 5 3 2)
for r in $ranks; do
  units=$((size * weights[r]))
  expected=$(MOSIX_RANK=$r "$bin/classroom_work" "$units")
  got=$(sed -n "s/^\[1,$r\]<stdout>://p" "$work/job.out")
  [[ $got == "$expected" ]] || die "rank $r, restored from its checkpoint, printed '$got'; a run never interrupted prints '$expected'"
done
checked "the job exited 0, and the restored copies' results are those of a run never interrupted"
say "" "That was mosixrun: the same program, unmodified, placed, moved and rescued by the cluster."
