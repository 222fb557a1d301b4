#!/usr/bin/env bash
# Runs every ckpt_* test program plain, twice: both runs must exit 0, print
# the same bytes, and end with "RESULT <name> <checksum> OK". The checkpoint
# tests compare a checkpointed run with a plain one, so this proves the
# programs are deterministic on their own. Usage: BIN_DIR [LIB_DIR].
set -u

bin=${1:?usage: ckpt_programs_plain_test.sh BIN_DIR [LIB_DIR]}
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_init "$bin" "${2:-}" || exit 1
trap ckpt_cleanup EXIT

expected=(ckpt_memory ckpt_threads ckpt_files ckpt_signals ckpt_clock ckpt_cxx ckpt_shared_map ckpt_socket ckpt_eventloop)
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$(( failures + 1 ))
}

for name in "${expected[@]}"; do
  [[ -x $bin/$name ]] || fail "$bin/$name is missing"
done
# Only the programs of tests/programs (other targets share the ckpt_ prefix).
for src in "${MOSIX_SOURCE_DIR:-$(dirname "$0")/../..}"/tests/programs/ckpt_*.c*; do
  name=$(basename -- "${src%.*}")
  prog=$bin/$name
  [[ -x $prog && -f $prog ]] || continue
  # Programs run in one mode per state by their own tests (a usage line and
  # exit 2 without one), not checkpointed in rounds.
  case $name in ckpt_fifo | ckpt_locks | ckpt_mappings | ckpt_never_silent | ckpt_process_flags | ckpt_tree | ckpt_tree_files | ckpt_tree_stopped) continue ;; esac
  for run in 1 2; do
    out=$CKPT_WORK/$name.plain$run
    run_plain "$out" "$prog"
    status=$?
    if (( status != 0 )); then
      fail "$name run $run exited with status $status: $(tail -n 1 "$out") $(head -c 300 "$out.err")"
      continue 2
    fi
  done
  compare_outputs "$CKPT_WORK/$name.plain1" "$CKPT_WORK/$name.plain2" || fail "$name printed different output in two plain runs"
  expect_result "$CKPT_WORK/$name.plain1" "$name" || fail "$name did not end with its RESULT line"
  lines=$(wc -l < "$CKPT_WORK/$name.plain1")
  (( lines >= 4 )) || fail "$name printed $lines lines; progress lines are needed to pace checkpoints"
  echo "ok: $name ($lines lines, ${CKPT_PLAIN_MS} ms) $(tail -n 1 "$CKPT_WORK/$name.plain1")"
done

shopt -s nullglob dotglob
left=("$CKPT_TMPDIR"/*)
(( ${#left[@]} == 0 )) || fail "programs left scratch files behind: ${left[*]}"
(( failures == 0 )) || { echo "$failures failure(s)" >&2; exit 1; }
echo "all ckpt programs are deterministic"
