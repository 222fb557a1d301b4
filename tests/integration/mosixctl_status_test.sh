#!/usr/bin/env bash
# mosixctl status and tune as a user runs them: JSON layout, a stored speed
# that status then reports, CLI errors and help. Argument 1: the bin dir.
set -euo pipefail

BIN=$(cd "${1:?usage: mosixctl_status_test.sh BIN_DIR}" && pwd)
CTL="$BIN/mosixctl"
[[ -x "$CTL" ]] || { echo "FAIL: $CTL is not an executable (build the mosixctl target)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mosixctl_status_test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export XDG_STATE_HOME="$TMP/state"
export XDG_RUNTIME_DIR="$TMP/run"
mkdir -p "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
unset MOSIX_LOG

passed=0
failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1" >&2; failed=$((failed + 1)); }

# Runs python3 on the JSON in file $1 with check $2 (a Python expression over
# `s`); prints nothing, exits non-zero with the failing expression on stderr.
json_check() {
  python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
expr = sys.argv[2]
if not eval("(" + expr + ")"):
    sys.exit("check failed: " + expr + "\nJSON was: " + json.dumps(s, indent=1)[:2000])
' "$1" "$2"
}

# --- status before calibration ----------------------------------------------------
if "$CTL" status --json > "$TMP/status0.json" 2> "$TMP/status0.err"; then
  pass "status --json exits 0"
else
  fail "status --json exited $?: $(cat "$TMP/status0.err")"
fi
if json_check "$TMP/status0.json" '
all(k in s for k in ("version", "node", "topology", "speed", "load", "memory", "jobs"))
and s["version"] == 1 and isinstance(s["node"], str) and s["node"]
and s["topology"]["cores"] >= 1 and s["topology"]["pus"] >= s["topology"]["cores"]
and s["topology"]["sockets"] >= 1 and s["topology"]["memory_bytes"] > 0
and len(s["topology"]["core_pus"]) == s["topology"]["cores"]
and all(k in s["load"] for k in ("avg1", "avg5", "avg15", "running", "threads"))
and 0 < s["memory"]["available_bytes"] <= s["memory"]["total_bytes"]
and s["jobs"] == []'; then
  pass "status JSON has every field, cores >= 1, no jobs"
else
  fail "status JSON layout"
fi
if json_check "$TMP/status0.json" '
s["speed"]["calibrated"] is False and s["speed"]["value"] == 1.0 and s["speed"]["score"] is None
and s["speed"]["file"] == "'"$XDG_STATE_HOME"'/mosix/speed.json"'; then
  pass "uncalibrated node reports speed 1.0 and where it would be stored"
else
  fail "uncalibrated speed"
fi

human=$("$CTL" status)
if grep -q "not calibrated: run mosixctl tune" <<< "$human" && grep -q "^jobs *none" <<< "$human"; then
  pass "human status says 'not calibrated' and 'none'"
else
  fail "human status: expected 'not calibrated: run mosixctl tune' and 'jobs none', got:
$human"
fi

# --- tune stores a speed that status reports --------------------------------------
if "$CTL" tune --duration 1 --json > "$TMP/tune.json" 2> "$TMP/tune.err"; then
  pass "tune --duration 1 exits 0"
else
  fail "tune exited $?: $(cat "$TMP/tune.err")"
fi
speed_file="$XDG_STATE_HOME/mosix/speed.json"
if [[ -f "$speed_file" ]]; then
  pass "tune stored $speed_file"
else
  fail "tune did not store $speed_file"
fi
if [[ -f "$speed_file" ]] && json_check "$speed_file" '
s["speed"] > 0 and s["score"] > 0 and s["cores"] >= 1 and s["date"].endswith("Z")
and abs(s["speed"] - s["score"] / s["reference_score"]) < 1e-9'; then
  pass "speed file holds speed, score, cores and date"
else
  fail "speed file content: $(cat "$speed_file" 2>/dev/null)"
fi
if grep -q "run 4/4" "$TMP/tune.err"; then
  pass "tune reports progress on stderr, a line per run when not on a terminal"
else
  fail "tune progress: expected 'run 4/4' in: $(cat "$TMP/tune.err")"
fi
"$CTL" status --json > "$TMP/status1.json"
stored=$(python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["speed"]))' "$speed_file")
if json_check "$TMP/status1.json" '
s["speed"]["calibrated"] is True and s["speed"]["value"] == '"$stored"'
and s["speed"]["date"] is not None and s["speed"]["problem"] is None'; then
  pass "status reports the stored speed $stored"
else
  fail "status after tune does not report speed $stored"
fi

# --- the topology of another machine, through hwloc's HWLOC_XMLFILE -------------
fixture="${MOSIX_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/fixtures/hwloc/two_socket_server.xml"
if HWLOC_XMLFILE="$fixture" "$CTL" status --json > "$TMP/server.json" \
   && json_check "$TMP/server.json" '
s["topology"]["sockets"] == 2 and s["topology"]["cores"] == 32 and s["topology"]["pus"] == 64
and s["topology"]["core_pus"][1] == [1, 33]'; then
  pass "HWLOC_XMLFILE makes status report the 2-socket fixture"
else
  fail "status with HWLOC_XMLFILE=$fixture"
fi

# --- command-line errors and help -------------------------------------------------
set +e
"$CTL" bogus > "$TMP/bogus.out" 2> "$TMP/bogus.err"
rc=$?
set -e
if [[ $rc -eq 2 ]] && grep -q "bogus" "$TMP/bogus.err" && [[ $(wc -l < "$TMP/bogus.err") -eq 1 ]] \
   && [[ ! -s "$TMP/bogus.out" ]]; then
  pass "unknown subcommand: exit 2, one line naming it"
else
  fail "mosixctl bogus: exit $rc, stderr: $(cat "$TMP/bogus.err")"
fi
set +e
"$CTL" tune --duration -5 > /dev/null 2> "$TMP/range.err"
rc=$?
set -e
if [[ $rc -eq 2 ]] && grep -q "duration" "$TMP/range.err"; then
  pass "bad --duration: exit 2 naming the option"
else
  fail "tune --duration -5: exit $rc, stderr: $(cat "$TMP/range.err")"
fi
if help=$("$CTL" --help) && grep -q "status" <<< "$help" && grep -q "tune" <<< "$help"; then
  pass "--help lists the subcommands and exits 0"
else
  fail "--help"
fi
if grep -q -- "--json" <<< "$("$CTL" status --help)"; then
  pass "status --help shows --json"
else
  fail "status --help"
fi
if version=$("$CTL" --version) && [[ $version == mosixctl\ * ]]; then
  pass "--version prints '$version'"
else
  fail "--version"
fi

# --- a record in the job registry shows up; a dead launcher's does not -------------
sleep 300 &
live=$!
trap 'kill $live 2> /dev/null || true; rm -rf "$TMP"' EXIT
mkdir -p "$XDG_RUNTIME_DIR/mosix/jobs"
chmod 700 "$XDG_RUNTIME_DIR/mosix" "$XDG_RUNTIME_DIR/mosix/jobs"
cat > "$XDG_RUNTIME_DIR/mosix/jobs/$live.json" <<JSON
{"version": 1, "id": "$live", "launcher_pid": $live, "home_node": "here", "command": "./prog 1",
 "cwd": "/", "start_time": 1700000000,
 "guests": [{"rank": 0, "pid": $live, "node": "here", "state": "running", "exit_code": -1}]}
JSON
bash -c 'exit 0' &
dead=$!
wait $dead
cat > "$XDG_RUNTIME_DIR/mosix/jobs/$dead.json" <<JSON
{"version": 1, "id": "$dead", "launcher_pid": $dead, "command": "./gone", "start_time": 1}
JSON
"$CTL" status --json > "$TMP/status2.json"
if json_check "$TMP/status2.json" '
[j["id"] for j in s["jobs"]] == ["'"$live"'"] and s["jobs"][0]["command"] == "./prog 1"
and s["jobs"][0]["guests"][0]["state"] == "running"'; then
  pass "status lists the live job only"
else
  fail "jobs in status"
fi
if [[ ! -e "$XDG_RUNTIME_DIR/mosix/jobs/$dead.json" ]]; then
  pass "the dead launcher's record was removed"
else
  fail "the dead launcher's record is still there"
fi
kill $live
wait $live 2> /dev/null || true

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
