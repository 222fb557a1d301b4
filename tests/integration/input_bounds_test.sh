# Bounds on what mosixrun reads from its user: a copy count, times and a
# hostfile beyond their limits are refused in one line with exit 2, before
# anything starts or memory runs out; what a message quotes is printable.
BIN=$(cd "$1" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
RUN=$BIN/mosixrun

bad() {  # NAME NEEDLE ARGS...
  local name=$1 needle=$2; shift 2
  set +e; "$RUN" "$@" > "$TMP/bad.out" 2> "$TMP/bad.err"; local rc=$?; set -e
  local lines; lines=$(wc -l < "$TMP/bad.err")
  if [[ $rc == 2 && $lines == 1 && "$(cat "$TMP/bad.err")" == *"$needle"* && ! -s "$TMP/bad.out" ]]; then
    pass "refused: $name"
  else
    fail "refused: $name: rc=$rc lines=$lines err=[$(head -c 300 "$TMP/bad.err" | cat -v)] out=[$(head -c 200 "$TMP/bad.out" | cat -v)]"
  fi
}
probe=(sh -c "touch $TMP/started")

bad "--hostfile /dev/zero" "larger than 1048576 bytes" --hostfile /dev/zero "${probe[@]}"
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' '#' > "$TMP/big"
bad "a hostfile over 1 MiB" "larger than 1048576 bytes" --hostfile "$TMP/big" "${probe[@]}"
bad "a directory as hostfile" "it is a directory" --hostfile "$TMP" "${probe[@]}"
# Random bytes: the message quotes the first bad line, escaped.
head -c 4096 /dev/urandom > "$TMP/random"
printf 'n\033[2J\033]0;owned\007 slots=2\n' > "$TMP/escapes"
for f in random escapes; do
  bad "hostfile of $f bytes" "$TMP/$f:" --hostfile "$TMP/$f" "${probe[@]}"
  # Printable: no control byte (C0, DEL, C1) and nothing that is not UTF-8
  # (valid, printable UTF-8 may pass unescaped).
  if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]\|\xc2[\x80-\x9f]' "$TMP/bad.err" ||
     ! iconv -f UTF-8 -t UTF-8 "$TMP/bad.err" > /dev/null 2>&1; then
    fail "the message on a hostfile of $f bytes has unprintable bytes: $(cat -v "$TMP/bad.err")"
  else
    pass "the message on a hostfile of $f bytes is printable"
  fi
done
check_contains "escapes are shown as \\x" 'n\x1b[2J\x1b]0;owned\x07' "$(cat "$TMP/bad.err")"
bad "an option with escapes" 'unknown option' $'--\e[2Jx' "${probe[@]}"
if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$TMP/bad.err"; then fail "unknown option echoed raw"; else pass "unknown option escaped"; fi

bad "-np above the bound" "at most 65536 copies" -np 2000000000 "${probe[@]}"
bad "-np just above the bound" "at most 65536 copies" --oversubscribe -np 65537 "${probe[@]}"
bad "--timeout above a year" "--timeout" --timeout 1e10 "${probe[@]}"
bad "--timeout infinite" "--timeout" --timeout inf "${probe[@]}"
bad "--ckpt-interval above a year" "--ckpt-interval" --ckpt-interval 1e10 "${probe[@]}"
check_eq "nothing started by bad input" "" "$(ls "$TMP" | grep '^started$' || true)"

# Within the bounds all is as before.
"$RUN" --timeout 31536000 -np 1 "${probe[@]}"
check_eq "a timeout of a year is fine" started "$(ls "$TMP" | grep '^started$' || true)"

finish
