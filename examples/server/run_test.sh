# The server example as a user runs it (run.sh): Python's http.server moves
# to vnode1, home and vnode2 while a client fetches pages; none is wrong.
BIN=$(cd "$1" && pwd)
source "$MOSIX_SOURCE_DIR/tests/integration/lib/common.sh"
command -v python3 > /dev/null || { echo "skip: no python3"; exit 77; }
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
rc=0
bash "$MOSIX_SOURCE_DIR/examples/server/run.sh" "$BIN" > "$TMP/out" 2> "$TMP/err" || rc=$?
cat "$TMP/out"
check_eq "run.sh succeeds" 0 "$rc"
check_eq "three moves" 3 "$(grep -c '^rank 0 moved from' "$TMP/out")"
check_contains "no page is wrong" " 0 wrong" "$(cat "$TMP/out")"
[[ $rc == 0 ]] || echo "$(cat "$TMP/err")" >&2
finish
