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

# For the tests of direct links (pvm_direct_test, pvm_remote_test): rank $1's
# field $2 as mosixctl ps shows it (node, pid, state).
guest() { mosixctl ps --job "$job" --json 2> /dev/null | jq -r ".guests[] | select(.rank == $1) | .$2"; }
go_on() {  # the stream goes on after what was done (progress was $1 before)
  wait_for "(( \$(progress) > $1 )) || ! alive" || true
}

# The rounds both direct-link tests take while A (rank 1) streams over its
# links; the caller defines linked (A has its links now) and sets $links
# (what they are, for the checks' names). Images of A and B to files (each
# ends the task's links; the stream goes on through the node daemons, then
# on new links); A moves to each node given, in turn; A is checkpointed
# with --kill and restarted into its job. After each, A has links again.
pvm_links_rounds() {
  local rank node moved before
  for rank in 1 2; do
    before=$(progress)
    if mosixctl checkpoint "$rank" --job "$job" -o "$TMP/rank$rank.img" > "$TMP/ckpt$rank.out" 2>&1; then
      pass "rank $rank's image is written while it talks over $links"
    else
      fail "rank $rank's image: $(tail -n 2 "$TMP/ckpt$rank.out")"
    fi
    go_on "$before"
  done
  wait_for "linked || ! alive" || true
  linked && pass "A has $links again after the images" || fail "no $links after the images"

  for node in "$@"; do
    before=$(progress)
    moved=$(mosixctl migrate 1 "$node" --job "$job" --json 2> "$TMP/ctl.err" || true)
    [[ $(jq -r .ok <<< "$moved" 2> /dev/null) == true ]] ||
      fail "A moves to $node: $(jq -r .error <<< "$moved" 2> /dev/null) $(cat "$TMP/ctl.err")"
    go_on "$before"
  done
  wait_for "linked || ! alive" || true
  linked && pass "A has $links again after moving to $* in turn" || fail "no $links after the moves"

  before=$(progress)
  if mosixctl checkpoint 1 --job "$job" -o "$TMP/a.img" --kill > "$TMP/ckpt.out" 2>&1; then
    wait_for "[[ \$(guest 1 state) == suspended ]] || ! alive" || true
    if mosixctl restart "$TMP/a.img" < /dev/null > "$TMP/a.out" 2>&1; then
      check_contains "A's image with --kill restarts in its job" "rank 1 of job $job restarts on" "$(cat "$TMP/a.out")"
    else
      fail "mosixctl restart of A's image: $(tail -n 2 "$TMP/a.out")"
    fi
    go_on "$before"
    (( $(progress) > before )) && pass "the stream goes on with the restarted A" ||
      fail "the stream stopped after A's restart"
    wait_for "linked || ! alive" || true
    linked && pass "the restarted A has $links again" || fail "no $links after A's restart"
  else
    fail "A's image with --kill: $(tail -n 2 "$TMP/ckpt.out")"
    kill "$job" 2> /dev/null
  fi
}
