# A checkpoint request never kills a guest that is changing program. Between
# an exec and the new program's agent constructor the request signal (62,
# whose default action terminates) has no handler; the agent's exec wrappers
# and the guest spawner block it over that window, so a request stays pending
# until the new agent takes it, and the agent unblocks it once its handler is
# in place. sigmask_probe is static (no agent can load into it), so it shows
# the mask an exec left. Usage: agent_exec_signals_test.sh BIN_DIR LIB_DIR
BIN=$(cd "$1" && pwd)
LIB=$(cd "${2:-$1/../lib}" && pwd)
source "$(dirname "$0")/lib/common.sh"
AGENT=$LIB/libmosix.so
PROBE=$BIN/sigmask_probe

check_eq "a plain start blocks nothing" "blocked 0" "$("$PROBE")"
check_eq "an exec from a program with the agent holds its signals" "blocked 1" \
  "$(LD_PRELOAD=$AGENT sh -c "exec '$PROBE'")"
check_eq "so does execvp through env" "blocked 1" "$(LD_PRELOAD=$AGENT env "$PROBE")"
check_eq "a guest spawned with the agent starts with them held" "blocked 1" \
  "$("$BIN/mosixrun" -np 1 --ckpt-interval 3600 --ckpt-dir "$TMP/ck" "$PROBE" < /dev/null)"
check_eq "so does a plain copy (every copy has the agent)" "blocked 1" "$("$BIN/mosixrun" -np 1 "$PROBE" < /dev/null)"
check_eq "a guest without the agent (--no-agent) does not" "blocked 0" \
  "$("$BIN/mosixrun" --no-agent -np 1 "$PROBE" < /dev/null)"

# Once the agent is in, its handler is in place and the signals deliverable.
status=$(LD_PRELOAD=$AGENT grep -E '^(SigBlk|SigCgt):' /proc/self/status)
blk=$(sed -n 's/^SigBlk:\s*//p' <<< "$status")
cgt=$(sed -n 's/^SigCgt:\s*//p' <<< "$status")
check_eq "the agent unblocks signals 62 and 63" 0 $((0x$blk & 0x6000000000000000))
check_eq "and catches 62 and 63" $((0x6000000000000000)) $((0x$cgt & 0x6000000000000000))

# A request sent inside the window is kept, not fatal: the probe is held (by
# its handshake) with the mask its exec left, is sent signal 62, and lives.
mkfifo "$TMP/in"
LD_PRELOAD=$AGENT sh -c "exec '$PROBE' wait" < "$TMP/in" > "$TMP/out" &
pid=$!
exec 3> "$TMP/in"
wait_for "grep -q ready '$TMP/out'" || fail "the probe never got ready: $(cat "$TMP/out")"
kill -62 $pid
echo go >&3
exec 3>&-
set +e
wait $pid
rc=$?
set -e
check_eq "a request during the exec window does not kill the program" 0 $rc
check_eq "it stays pending for the next agent" "pending62 1" "$(tail -1 "$TMP/out")"

finish
