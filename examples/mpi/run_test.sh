# The MPI example as a user runs it (run.sh: mpicc, then mosixrun on one
# node and on a virtual cluster): every rank says hello and the ring goes round.
BIN=$(cd "$1" && pwd)
source "$MOSIX_SOURCE_DIR/tests/integration/lib/common.sh"
if ! command -v mpicc > /dev/null || ! command -v mpirun > /dev/null; then
  echo "skip: no mpicc/mpirun (Open MPI's development package)"
  exit 77
fi
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
rc=0
bash "$MOSIX_SOURCE_DIR/examples/mpi/run.sh" "$BIN" > "$TMP/out" 2> "$TMP/err" || rc=$?
check_eq "run.sh succeeds" 0 "$rc"
out=$(cat "$TMP/out")
check_eq "one node: both ranks say hello" 2 "$(grep -c 'of 2 on' "$TMP/out")"
check_eq "three virtual nodes: the three ranks say hello" 3 "$(grep -c 'of 3 on' "$TMP/out")"
check_contains "the ring crosses the nodes and comes back" "the ring of 4 ranks went round: 6 (expected 6)" "$out"
[[ $rc == 0 ]] || echo "$(cat "$TMP/err")" >&2
finish
