# The start shared by the tests that stream with tests/pvm_programs/pvm_stream.c
# (sourced after lib/common.sh, with BIN set): exits 77 where libpvm3 or
# pvm_stream was not built or jq is missing; then pvm_stream_start [HOST...]
# starts pvm_stream as the one task of a --vcluster 3 job, its output in
# $out, its stop file $stop, the job's pid in $job (killed at exit);
# pvm_stream_end [NOTE] stops it and checks how it ended.
if [[ ! -r "$BIN/../lib/pvm/libpvm3.so.3" || ! -x "$BIN/pvm_stream" ]]; then
  echo "SKIP: libpvm3.so.3 or pvm_stream was not built (Debian packages pvm-dev, pvm)"
  exit 77
fi
command -v jq > /dev/null || { echo "SKIP: jq is not installed"; exit 77; }
export PATH="$BIN:$PATH"
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

pvm_stream_start() {
  out=$TMP/stream.out
  stop=$TMP/stop
  mosixrun --vcluster 3 --migrate off -np 1 pvm_stream "$stop" "$@" < /dev/null > "$out" 2> "$TMP/stream.err" &
  job=$!
  trap 'kill "$job" 2> /dev/null || true; rm -rf "$TMP"' EXIT
}

alive() { kill -0 "$job" 2> /dev/null; }
progress() { grep -c '^progress' "$out" || true; }

# Stops the stream, waits for the job, and checks that it ended with 0 and
# that every message and echo arrived once, in order, intact; prints
# pvm_stream's summary line with NOTE after its progress count.
pvm_stream_end() {
  touch "$stop"
  local rc=0
  wait "$job" || rc=$?
  check_eq "the job ends with 0" 0 "$rc"
  check_contains "every message and echo arrived once, in order, intact" \
    "every message and echo checked" "$(grep '^pvm_stream:' "$out" || true)"
  check_eq "no mismatch" "" "$(grep MISMATCH "$out" || true)"
  echo "$(grep '^pvm_stream:' "$out" || true) ($(progress) progress lines${1:+, $1})"
  [[ $rc == 0 ]] || tail -n 5 "$TMP/stream.err" >&2
}
