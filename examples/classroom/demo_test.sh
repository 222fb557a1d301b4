# The classroom demo runs through (--no-pause, small work) and each of its
# steps happened: the demo itself waits for each in the job's own view
# (mosixctl ps --json) and says "demo: checked: ..." once it has; here we
# check that every step said so and that the demo exited 0.
BIN=$(cd "$1" && pwd)
source "${MOSIX_SOURCE_DIR:-$(dirname "$0")/../..}/tests/integration/lib/common.sh"
command -v jq > /dev/null || { echo "jq is missing: skipped"; exit 77; }
[[ -x $BIN/mosixd ]] || { echo "no mosixd (MOSIX_MPI off): skipped"; exit 77; }

set +e
bash "$(dirname "$0")/demo.sh" --no-pause --size 4 --bin "$BIN" --work-dir "$TMP/work" > "$TMP/out" 2> "$TMP/err"
rc=$?
set -e
check_eq "the demo exits 0" 0 "$rc"
out=$(cat "$TMP/out")
check_contains "step 1: six copies running on the virtual cluster" "checked: 6 copies running on 3 nodes" "$out"
check_contains "step 2: mon and ps showed the nodes and copies" "checked: mon and ps show the 3 nodes and the 6 copies" "$out"
check_contains "step 2: mon drew the three nodes" "vnode2" "$out"
check_contains "step 3: the balancer moved a copy" "checked: the balancer moved a copy (rank" "$out"
check_contains "step 3: ps --explain gave the decisions" "decision:" "$out"
check_contains "step 4: a forced migration" "checked: rank 4 moved from" "$out"
check_contains "step 5: a node died and its copies came back" "came back from their checkpoints" "$out"
check_contains "step 6: the results of a run never interrupted" "checked: the job exited 0, and the restored copies' results" "$out"
check_eq "six results" 6 "$(grep -c 'units, sum' "$TMP/work/job.out" || true)"
if ((FAILURES > 0)); then
  echo "--- demo output" >&2; cat "$TMP/out" >&2
  echo "--- demo errors" >&2; cat "$TMP/err" >&2
fi
# Nothing of the job is left running.
check_eq "no copy or mosixrun of the demo left" "" "$(pgrep -f -- "$TMP/work" || true)"
finish
