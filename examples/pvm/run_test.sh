# The PVM example as a user runs it (run.sh): the farm's total is right on
# one node and on a virtual cluster of 3, with no pvmd.
BIN=$(cd "$1" && pwd)
source "$MOSIX_SOURCE_DIR/tests/integration/lib/common.sh"
if [[ ! -r /usr/include/pvm3.h || ! -r "$BIN/../lib/pvm/libpvm3.so.3" ]] || ! command -v cc > /dev/null; then
  echo "skip: no pvm3.h (Debian's pvm-dev), no cc, or libpvm3 was not built"
  exit 77
fi
rc=0
bash "$MOSIX_SOURCE_DIR/examples/pvm/run.sh" "$BIN" > "$TMP/out" 2> "$TMP/err" || rc=$?
check_eq "run.sh succeeds" 0 "$rc"
out=$(cat "$TMP/out")
check_contains "one node: one worker" "farm: 1 workers on 1 nodes" "$out"
check_contains "three virtual nodes: three workers" "farm: 3 workers on 3 nodes" "$out"
check_eq "both totals are right" 2 "$(grep -c '(right)$' "$TMP/out")"
[[ $rc == 0 ]] || echo "$(cat "$TMP/err")" >&2
finish
