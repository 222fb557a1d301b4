# mpirun's exit rule when copies on several nodes fail together, repeated:
# the job's status is that of the lowest-ranked copy that failed on its own,
# whichever failure reaches the home first. A copy still starting when the
# first failure is seen is not ended before it ran; a copy that ended by a
# signal of its own (its end on its way) is not taken for one we ended.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
if [[ ! -x "$BIN/mosixrun" || ! -x "$BIN/mosixd" ]]; then
  echo "skip: mosixrun or mosixd not built in $BIN"
  exit 77
fi
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
RUNS=${MOSIX_EXIT_RULE_RUNS:-10}

# repeat NAME EXPECTED COUNT MOSIXRUN-ARGS...: every run must end with EXPECTED.
repeat() {
  local name=$1 expected=$2 count=$3 i rc got=""
  shift 3
  for ((i = 0; i < count; i++)); do
    rc=0
    "$BIN/mosixrun" "$@" 2>>"$TMP/stderr" || rc=$?
    got+="$rc "
  done
  local want
  want=$(printf "$expected %.0s" $(seq "$count"))
  check_eq "$name ($count runs)" "$want" "$got"
}

# Every copy fails at once, the lowest rank with the highest status: the
# others' failures often reach the home first.
repeat "3 nodes, ranks exit 5 4 3" 5 "$RUNS" --vcluster 3 -np 3 sh -c 'exit $((5 - MOSIX_RANK))'
repeat "3 nodes, ranks exit 3 4 5" 3 "$RUNS" --vcluster 3 -np 3 sh -c 'exit $((3 + MOSIX_RANK))'
repeat "3 nodes, 6 ranks exit 9..4" 9 "$RUNS" --vcluster 3 -np 6 sh -c 'exit $((9 - MOSIX_RANK))'
repeat "3 nodes, rank 0 succeeds, ranks 1 2 exit 7 6" 7 "$RUNS" --vcluster 3 -np 3 \
  sh -c 'case $MOSIX_RANK in 0) exit 0 ;; 1) exit 7 ;; *) exit 6 ;; esac'

# Killed by a signal of its own (SIGKILL, SIGTERM: the two the runtime
# sends when it ends a job), at the same time as the others fail: it counts.
repeat "rank 0 kills itself with SIGKILL, ranks 1 2 exit 4 3" 137 "$RUNS" --vcluster 3 -np 3 \
  sh -c '[ "$MOSIX_RANK" = 0 ] && kill -KILL $$; exit $((5 - MOSIX_RANK))'
repeat "rank 0 kills itself with SIGTERM, ranks 1 2 exit 4 3" 143 "$RUNS" --vcluster 3 -np 3 \
  sh -c '[ "$MOSIX_RANK" = 0 ] && kill -TERM $$; exit $((5 - MOSIX_RANK))'
repeat "one node: rank 0 kills itself with SIGKILL" 137 "$RUNS" --oversubscribe -np 3 \
  sh -c '[ "$MOSIX_RANK" = 0 ] && kill -KILL $$; exit $((5 - MOSIX_RANK))'

# The same work on every copy, rank 0's node slowed to 5% of a CPU (the
# cgroup cap: root only): ranks 1 and 2 fail long before rank 0 gets as far.
# Rank 0 gets the job's end only once it has used as much CPU time as they
# did, and more: it fails on its own, and its status is the job's. Ended
# after a fixed wall time instead, it would count as ended by us (status 4).
if [[ $(id -u) == 0 ]]; then
  repeat "rank 0 on a node capped to 5% of a CPU, ranks exit 5 4 3 after the same work" 5 5 \
    --vcluster 3 --vcluster-cpu 0.05,1,1 --map-by node -np 3 \
    sh -c 'i=0; while [ $i -lt 30000 ]; do i=$((i + 1)); done; exit $((5 - MOSIX_RANK))'
else
  echo "not root: the case of a node capped to 5% of a CPU is not run (the cap needs a cgroup of root's)"
fi

# A copy that runs on is ended by the runtime and does not count: the job
# has the status of the copy that failed. Rank 0 waits to be ended.
repeat "rank 2 fails, rank 0 runs on and is ended" 3 3 --vcluster 3 -np 3 \
  sh -c 'case $MOSIX_RANK in 0) exec sleep 1000 ;; 1) exit 0 ;; *) exit 3 ;; esac'

if ((FAILURES > 0)); then
  echo "--- mosixrun's stderr:" >&2
  tail -n 40 "$TMP/stderr" >&2
fi
finish
