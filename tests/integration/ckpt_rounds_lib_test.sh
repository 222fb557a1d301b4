#!/usr/bin/env bash
# Tests lib/ckpt_rounds.sh itself, without the real agent: a fake mosixctl
# "checkpoints" by killing the program and noting how many lines it printed,
# and "restarts" by running it again from the start and dropping those lines.
# The ckpt programs are deterministic, so a correct round driver must produce
# exactly the plain output, with every checkpoint landing mid-run.
# Usage: BIN_DIR [LIB_DIR].
set -u

bin=${1:?usage: ckpt_rounds_lib_test.sh BIN_DIR [LIB_DIR]}
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_init "$bin" "${2:-}" || exit 1
trap ckpt_cleanup EXIT

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$(( failures + 1 ))
}

# The fake mosixctl. An image holds the number of lines printed so far, then
# the command line, one argument a line.
fake=$CKPT_WORK/fake/mosixctl
mkdir -p "$(dirname -- "$fake")"
cat > "$fake" << 'EOF'
#!/usr/bin/env bash
set -u
gone() {
  local stat
  { stat=$(< "/proc/$1/stat"); } 2> /dev/null || return 0
  stat=${stat##*) }
  [[ ${stat:0:1} == Z || ${stat:0:1} == X ]]
}
case $1 in
  checkpoint)
    pid=$2 img= mode=leave-running
    shift 2
    while (( $# > 0 )); do
      case $1 in
        -o) img=$2; shift 2 ;;
        --kill | --stop | --leave-running) mode=${1#--}; shift ;;
        *) echo "fake mosixctl: unknown option $1" >&2; exit 2 ;;
      esac
    done
    kill -STOP "$pid" || exit 1
    cmd=$(tr '\0' '\n' < "/proc/$pid/cmdline")
    # Output goes to a file, or (after a fake restart) through a pipe to the
    # restart whose stdout is the file.
    parent=$(< "/proc/$pid/stat")
    parent=${parent##*) }
    parent=$(cut -d' ' -f2 <<< "$parent")
    out=$(readlink "/proc/$pid/fd/1")
    piped=0
    if [[ ! -f $out ]]; then
      out=$(readlink "/proc/$parent/fd/1")
      piped=1
    fi
    if [[ $mode == kill ]]; then
      kill -KILL "$pid"
      while ! gone "$pid"; do sleep 0.01; done
      # What was still in the pipe reaches the file before the restart ends.
      if (( piped )); then
        while ! gone "$parent"; do sleep 0.01; done
      fi
    fi
    { wc -l < "$out"; printf '%s\n' "$cmd"; } > "$img.tmp" && mv "$img.tmp" "$img"
    [[ $mode == leave-running ]] && kill -CONT "$pid"
    echo "fake checkpoint: $img"
    ;;
  restart)
    mapfile -t image < "$2"
    "${image[@]:1}" | {
      n=0
      while IFS= read -r line; do
        (( ++n > image[0] )) && printf '%s\n' "$line"
      done
    }
    exit "${PIPESTATUS[0]}"
    ;;
  *) echo "fake mosixctl: unknown command $1" >&2; exit 2 ;;
esac
EOF
chmod +x "$fake"
export CKPT_MOSIXCTL=$fake CKPT_AGENT=none

w=$CKPT_WORK
prog=$bin/ckpt_threads

# Five kill/restart rounds give the plain output, each checkpoint mid-run.
run_plain "$w/threads.plain" "$prog" || fail "ckpt_threads failed plain"
total=$CKPT_PLAIN_LINES
run_with_rounds 5 "$w/threads.rounds" "$prog"
status=$?
(( status == 0 )) || fail "run_with_rounds returned $status, expected 0 ($(tail -n 2 "$w/threads.rounds.log"))"
compare_outputs "$w/threads.plain" "$w/threads.rounds" || fail "rounds output differs from the plain one"
expect_result "$w/threads.rounds" ckpt_threads || fail "rounds output lacks the RESULT line"
prev=0
for r in 1 2 3 4 5; do
  img=$w/ckpt_threads.round$r.img
  if [[ ! -f $img ]]; then
    fail "no image for round $r"
    continue
  fi
  at=$(head -n 1 "$img")
  (( at > prev && at < total )) || fail "round $r checkpointed after line $at (previous $prev, total $total)"
  prev=$at
done

# The same seed gives the same checkpoint points.
first=$(for r in 1 2 3 4 5; do head -n 1 "$w/ckpt_threads.round$r.img"; done | tr "\n" " ")
rm -f "$w"/ckpt_threads.round*.img
run_with_rounds 5 "$w/threads.rounds2" "$prog" || fail "second run_with_rounds failed"
second=$(for r in 1 2 3 4 5; do head -n 1 "$w/ckpt_threads.round$r.img"; done | tr "\n" " ")
[[ $first == "$second" ]] || echo "note: checkpoint lines moved with the same seed ($first vs $second): timing, not a failure"

# Checkpoints with --leave-running do not disturb the output.
run_plain "$w/memory.plain" "$bin/ckpt_memory" || fail "ckpt_memory failed plain"
run_with_leave_running 3 "$w/memory.live" "$bin/ckpt_memory" || fail "run_with_leave_running failed"
compare_outputs "$w/memory.plain" "$w/memory.live" || fail "--leave-running output differs from the plain one"
[[ -f $w/ckpt_memory.live3.img ]] || fail "no image of the third --leave-running checkpoint"

# A program that ends before its first round (it prints none of the lines
# a plain run was said to print) is reported, not waited for.
CKPT_PLAIN_LINES=10 CKPT_PLAIN_MS=1000 run_with_rounds 2 "$w/short.rounds" /bin/true 2> "$w/short.msg"
status=$?
(( status != 0 )) || fail "run_with_rounds on a program that ends at once returned 0"
[[ $(< "$w/short.msg") == *"before round 1"* ]] || fail "the early end was not named: $(< "$w/short.msg")"

# Paced by time, a program whose output is too small to hold by its pipe
# is refused before it starts.
run_plain "$w/memory.plain" "$bin/ckpt_memory"
CKPT_PACE=time run_with_rounds 2 "$w/small.rounds" "$bin/ckpt_memory" 2> "$w/small.msg"
status=$?
(( status != 0 )) || fail "run_with_rounds paced by time on a small output returned 0"
[[ $(< "$w/small.msg") == *"to hold it through a pipe"* ]] || fail "the small output was not named: $(< "$w/small.msg")"

# The gate holds: a program allowed its first line only (a gate file of
# size 0) is found asleep in the gate (clock_nanosleep in /proc/PID/syscall;
# ckpt_memory sleeps nowhere else) with that one line printed, and ends with
# the plain output once the gate is gone. Without the gate it would run to
# its end instead, and this fails.
gate=$w/held.gate
gate_allow "$gate" 0
CKPT_GATE_FILE=$gate start_guest "$w/held.out" "$bin/ckpt_memory"
held=$CKPT_GUEST_PID
in_gate() { [[ " 35 230 " == *" $(cut -d' ' -f1 "/proc/$held/syscall" 2> /dev/null) "* ]]; }
asleep=0
while _ckpt_alive "$held"; do
  if in_gate; then asleep=1; break; fi
  sleep 0.01
done
if (( asleep )) && (( $(_ckpt_lines "$w/held.out") == 1 )); then
  echo "ok: a gated program waits after its first line"
else
  fail "the gated program was not held at its first line: $(_ckpt_lines "$w/held.out") lines, $(tail -n 1 "$w/held.out")"
fi
gate_open "$gate"
wait "$held" || fail "the held program failed once let go"
compare_outputs "$w/memory.plain" "$w/held.out" || fail "the held program's output differs from the plain one"

# compare_outputs and expect_result catch a changed line and a FAIL line.
mapfile -t lines < "$w/threads.plain"
lines[2]="ckpt_threads round 2/20 pipeline=0 stencil=0"
printf '%s\n' "${lines[@]}" > "$w/threads.changed"
if compare_outputs "$w/threads.plain" "$w/threads.changed" 2> "$w/diff.msg"; then
  fail "compare_outputs accepted a changed line"
fi
[[ $(< "$w/diff.msg") == *"line 3:"* ]] || fail "compare_outputs did not show line 3: $(< "$w/diff.msg")"
head -c -1 "$w/threads.plain" > "$w/threads.nonl"
compare_outputs "$w/threads.plain" "$w/threads.nonl" 2> /dev/null && fail "compare_outputs missed a lost final newline"
printf 'ckpt_x start\nFAIL ckpt_x: broken\n' > "$w/failed.out"
expect_result "$w/failed.out" ckpt_x 2> /dev/null && fail "expect_result accepted a FAIL line"

(( failures == 0 )) || { echo "$failures failure(s)" >&2; exit 1; }
echo "ckpt_rounds.sh works with a replaying mosixctl"
