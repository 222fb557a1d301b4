# mosixrun --ckpt-interval: periodic checkpoints of every copy, the newest
# kept per copy; after the job is killed, a copy comes back from its image
# and finishes with the result of an uninterrupted run.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
PROG="$BIN/ckpt_cxx"
ROUNDS=60

plain=$("$PROG" $ROUNDS | tail -1)
check_contains "plain run ends with its result" "RESULT ckpt_cxx" "$plain"

# The copies wait after their 5th line (the gate file, ckpt_gate in
# tests/programs/ckpt_common.h) until the test is done with them, so they
# cannot end before their images are taken; the restored copy has the same
# gate in its environment, opened by then.
truncate -s 4 "$TMP/gate"
CKPT_GATE=$TMP/gate "$BIN/mosixrun" --oversubscribe -np 2 --ckpt-interval 0.3 --ckpt-dir "$TMP/ck" "$PROG" $ROUNDS \
  > "$TMP/job.out" 2> "$TMP/job.err" &
job=$!
images() { [ -s "$TMP/ck/rank.0.img" ] && [ -s "$TMP/ck/rank.1.img" ]; }
until images || ! kill -0 $job 2> /dev/null; do sleep 0.05; done
if images; then pass "an image of each copy"; else fail "no image of each copy: $(ls "$TMP/ck" 2>&1) $(cat "$TMP/job.err")"; fi
first=$(stat -c %i "$TMP/ck/rank.0.img" 2>/dev/null || true)
# A later round replaces the image in place: still one image per copy.
replaced() { [ "$(stat -c %i "$TMP/ck/rank.0.img" 2>/dev/null)" != "$first" ]; }
until replaced || ! kill -0 $job 2> /dev/null; do sleep 0.05; done
if replaced; then pass "a later checkpoint replaces the image"; else fail "the image was not replaced: $(cat "$TMP/job.err")"; fi
check_eq "the copies wait at their gate" 0 "$(grep -c RESULT "$TMP/job.out" || true)"
kill -9 $job
wait $job 2>/dev/null || true
check_eq "one image per copy, newest kept" "rank.0.img rank.1.img" "$(ls "$TMP/ck" | xargs)"
check_eq "images are private (0600)" "600" "$(stat -c %a "$TMP/ck/rank.0.img")"

rm -f "$TMP/gate"
set +e
"$BIN/mosixctl" restart "$TMP/ck/rank.0.img" > "$TMP/restarted.out" 2> "$TMP/restarted.err"
rc=$?
set -e
check_eq "the copy restarted from its image exits 0" 0 "$rc"
check_eq "and ends with the uninterrupted run's result" "$plain" "$(tail -1 "$TMP/restarted.out")"
finish
