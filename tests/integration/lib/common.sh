# Shared helpers of the integration tests. Source it after setting BIN=$1.
set -euo pipefail

FAILURES=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mosix-test.XXXXXX")
trap 'rm -rf "$TMP" ${MOSIX_TEST_CLEANUP:-}' EXIT
export XDG_RUNTIME_DIR="$TMP/run" XDG_STATE_HOME="$TMP/state"
mkdir -p "$XDG_RUNTIME_DIR" "$XDG_STATE_HOME"
chmod 700 "$XDG_RUNTIME_DIR"

pass() { printf 'ok   %s\n' "$1"; }
fail() { printf 'FAIL %s\n' "$1" >&2; FAILURES=$((FAILURES + 1)); }

# check NAME EXPECTED ACTUAL
check_eq() {
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

# check_contains NAME NEEDLE HAYSTACK
check_contains() {
  if [[ "$3" == *"$2"* ]]; then pass "$1"; else fail "$1: [$2] not in [$3]"; fi
}

# Waits until COMMAND succeeds, polling; gives up after many tries (no timing claim).
wait_for() {
  local i
  for ((i = 0; i < 600; i++)); do
    if eval "$1"; then return 0; fi
    sleep 0.05
  done
  return 1
}

finish() {
  if ((FAILURES > 0)); then
    echo "$FAILURES check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}
