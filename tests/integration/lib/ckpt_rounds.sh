# Bash functions for the checkpoint tests, sourced by tests/integration/*_test.sh.
# They run a program plain, or as a guest (the agent preloaded) that is
# checkpointed, killed and restarted N times, and compare the outputs, which
# must be identical. Only bash, coreutils and cmp are used.
#
#   ckpt_init BIN_DIR [LIB_DIR [WORK_DIR]]   once, before the rest
#   run_plain OUT PROG [ARGS...]            stdout to OUT, stderr to OUT.err
#   run_with_rounds N OUT PROG [ARGS...]    N checkpoint --kill / restart rounds
#   run_with_leave_running N OUT PROG [ARGS...]  N checkpoints, never stopped
#   compare_outputs PLAIN ROUNDS            0 if identical, else shows the diff
#   expect_result OUT NAME                  last line "RESULT NAME <hex16> OK"
#   start_guest OUT PROG [ARGS...]          background guest, pid in CKPT_GUEST_PID
#                                           (held by the gate file CKPT_GATE_FILE
#                                           when that is set, see gate_allow)
#   gate_allow FILE N                       a gated guest may print N + 1 lines
#   gate_open FILE                          the guest runs to its end
#   wait_for_lines OUT N [PID]              until OUT has N lines (or PID ends)
#   ckpt_cleanup                            removes the work directory
#   rounds_match_plain NAME PLAIN N PROG [ARGS...]  N rounds, output compared
#                                           with PLAIN; says ok or fail()s
#   ckpt_test_start BIN_DIR LIB_DIR         the start of a checkpoint test:
#                                           ckpt_init, cleanup at exit, a private
#                                           XDG_RUNTIME_DIR, fail() counting into
#                                           $failures, the agent, mosixctl and
#                                           the restorer present
#
# Every function returns the program's exit status or nonzero on a failure,
# after printing one line that says what went wrong. Knobs (environment):
#   CKPT_SEED      seed of the points and delays of the checkpoints (default:
#                  random, printed, so a failing run can be replayed)
#   CKPT_MOSIXCTL  mosixctl to use (default BIN_DIR/mosixctl)
#   CKPT_AGENT     preload library (default LIB_DIR/libmosix.so); "none" starts
#                  guests without one (for testing this file with a fake mosixctl)
#   CKPT_LAUNCHER  words of a command that starts the first incarnation and
#                  preloads the agent itself, e.g. "BIN/mosixrun -np 1"
#                  (default: none, the guest is started with LD_PRELOAD=CKPT_AGENT;
#                  restarts are mosixctl restart either way)
#   CKPT_TMPDIR    scratch directory of the programs (default WORK_DIR/tmp)
#   CKPT_RUN_MS    expected run time when no plain run was measured (3000)
#   CKPT_PACE      "time" paces rounds by the plain run's time and output
#                  bytes, for programs that print nothing until the end or
#                  write binary output (default: by output lines when the
#                  plain run printed at least 3)
#
# The test never races the program (a fast idle machine finishes programs
# sooner than one expects): the program waits for the test at the point
# where it is checkpointed, and cannot end before the last round is done.
#   - Paced by lines: the program (tests/programs, ckpt_gate in
#     ckpt_common.h) waits after its k-th line until the file named by
#     $CKPT_GATE is k bytes long or gone. Round R lets it print up to its
#     target line plus one.
#   - Paced by time: the program's stdout goes through pipe_gate (a one-page
#     pipe, then a copy of at most as many bytes as its gate file is long),
#     so it blocks writing once it is a page ahead of what round R allows.
#     Its output must be well over a page per round.
# The seeded delay after the target point lands the checkpoint either in the
# middle of the next step or in the wait; the result is the same.

# ckpt_init BIN_DIR [LIB_DIR [WORK_DIR]]: sets CKPT_BIN, CKPT_LIB, CKPT_WORK
# (a new temporary directory unless given) and exports CKPT_TMPDIR.
ckpt_init() {
  CKPT_BIN=${1:?ckpt_init: BIN_DIR missing}
  CKPT_LIB=${2:-}
  if [[ -n ${3:-} ]]; then
    CKPT_WORK=$3
    mkdir -p "$CKPT_WORK" || return 1
    _ckpt_own_work=0
  else
    CKPT_WORK=$(mktemp -d "${TMPDIR:-/tmp}/ckpt_rounds.XXXXXX") || return 1
    _ckpt_own_work=1
  fi
  CKPT_MOSIXCTL=${CKPT_MOSIXCTL:-$CKPT_BIN/mosixctl}
  CKPT_AGENT=${CKPT_AGENT:-${CKPT_LIB:+$CKPT_LIB/libmosix.so}}
  export CKPT_TMPDIR=${CKPT_TMPDIR:-$CKPT_WORK/tmp}
  mkdir -p "$CKPT_TMPDIR" || return 1
  if [[ -z ${CKPT_SEED:-} ]]; then
    CKPT_SEED=$(( (RANDOM << 15 | RANDOM) % 1000000 ))
  fi
  _ckpt_log "CKPT_SEED=$CKPT_SEED (set it to replay the same checkpoint delays)"
  CKPT_PLAIN_MS=
  CKPT_PLAIN_LINES=
  CKPT_PLAIN_BYTES=
  CKPT_GUEST_PID=
}

# gate_allow FILE N: a program held by FILE may print N + 1 lines (or let N
# bytes through pipe_gate). gate_open FILE: no more holding.
gate_allow() { truncate -s "$2" -- "$1"; }
gate_open() { rm -f -- "$1"; }

# kill_tree PID: SIGKILL to PID and every descendant of it (listed first,
# then killed, so none is reparented away in between). For a test that
# gives up on a tree it started.
kill_tree() {
  local all=("$1") i=0 t kid
  while (( i < ${#all[@]} )); do
    for t in /proc/"${all[i]}"/task/*/children; do
      for kid in $(cat "$t" 2>/dev/null); do all+=("$kid"); done
    done
    i=$((i + 1))
  done
  kill -KILL "${all[@]}" 2>/dev/null
}

ckpt_cleanup() {
  if [[ ${_ckpt_own_work:-0} == 1 && -n ${CKPT_WORK:-} ]]; then
    rm -rf -- "$CKPT_WORK"
  fi
}

_ckpt_log() { printf 'ckpt_rounds: %s\n' "$*" >&2; }

_ckpt_now_ms() { date +%s%3N; }

_ckpt_lines() {
  local n
  { n=$(wc -l < "$1"); } 2> /dev/null || n=0
  printf '%s\n' "${n:-0}"
}

# Sleeps MS milliseconds (coreutils sleep takes fractions).
_ckpt_sleep_ms() {
  local ms=$1
  (( ms > 0 )) || return 0
  sleep "$(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 )))"
}

# Runs CMD with no descriptors but 0, 1 and 2: a guest holding one it
# inherited (from a CI runner, say) would be refused a checkpoint. Call it in
# a subshell; it does not return.
_ckpt_exec_clean() {
  local f fd
  # No redirection around the loop: bash would park fd 2 on a descriptor
  # that the loop then closes. The glob's own directory descriptor is gone
  # by the time it is listed, hence the -e.
  for f in /proc/"$BASHPID"/fd/*; do
    fd=${f##*/}
    if (( fd > 2 )) && [[ -e $f ]]; then
      eval "exec $fd>&-"
    fi
  done
  exec "$@"
}

# A process is alive while it exists and is not a zombie.
_ckpt_alive() {
  local stat
  { stat=$(< "/proc/$1/stat"); } 2> /dev/null || return 1
  stat=${stat##*) }
  [[ -n $stat && ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# run_plain OUT PROG [ARGS...]: runs PROG without the agent. Sets CKPT_PLAIN_MS
# (elapsed) and CKPT_PLAIN_LINES (lines of OUT): the next run_with_rounds or
# run_with_leave_running paces its checkpoints by them, so run the same
# program plain first (or clear both to pace by CKPT_RUN_MS alone).
run_plain() {
  local out=${1:?run_plain: OUT missing}
  shift
  local t0 status
  t0=$(_ckpt_now_ms)
  (_ckpt_exec_clean "$@") > "$out" 2> "$out.err" < /dev/null
  status=$?
  CKPT_PLAIN_MS=$(( $(_ckpt_now_ms) - t0 ))
  CKPT_PLAIN_LINES=$(_ckpt_lines "$out")
  CKPT_PLAIN_BYTES=$(wc -c < "$out")
  return "$status"
}

# start_guest OUT PROG [ARGS...]: starts PROG in the background with the agent
# preloaded, stdout to OUT and stderr to OUT.err. Sets CKPT_GUEST_PID. With
# CKPT_GATE_FILE set, the program is held by that file (gate_allow; a
# program of tests/programs waits after its first line until then).
start_guest() {
  local out=${1:?start_guest: OUT missing}
  shift
  _ckpt_check_agent || return 1
  # shellcheck disable=SC2086 # CKPT_LAUNCHER is words
  (_ckpt_guest_env; _ckpt_exec_clean ${CKPT_LAUNCHER:-} "$@") > "$out" 2> "$out.err" < /dev/null &
  CKPT_GUEST_PID=$!
}

_ckpt_check_agent() {
  [[ ${CKPT_AGENT:-} == none || ( -n ${CKPT_AGENT:-} && -r $CKPT_AGENT ) ]] && return 0
  _ckpt_log "no agent library '${CKPT_AGENT:-}': pass LIB_DIR to ckpt_init or set CKPT_AGENT"
  return 1
}

# In the guest's subshell: the agent and the gate.
_ckpt_guest_env() {
  [[ ${CKPT_AGENT:-} == none || -n ${CKPT_LAUNCHER:-} ]] || export LD_PRELOAD=$CKPT_AGENT
  if [[ -n ${CKPT_GATE_FILE:-} ]]; then
    [[ -e $CKPT_GATE_FILE ]] || : > "$CKPT_GATE_FILE"
    export CKPT_GATE=$CKPT_GATE_FILE
  fi
}

# _ckpt_start_piped OUT GATE PROG [ARGS...]: the guest's stdout appended to
# OUT through pipe_gate GATE; CKPT_GUEST_PID is a subshell that ends with the
# program's exit status once pipe_gate has copied everything. PROG may be
# mosixctl restart IMAGE (then the agent is not preloaded into it).
_ckpt_start_piped() {
  local out=$1 gate=$2
  shift 2
  [[ -e $gate ]] || : > "$gate"
  (
    if [[ $(basename -- "$1") == "$(basename -- "$CKPT_MOSIXCTL")" ]]; then
      (_ckpt_exec_clean "$@") 2>> "$out.err" < /dev/null | "$CKPT_BIN/pipe_gate" "$gate" >> "$out"
    else
      # shellcheck disable=SC2086 # CKPT_LAUNCHER is words
      (CKPT_GATE_FILE= _ckpt_guest_env; _ckpt_exec_clean ${CKPT_LAUNCHER:-} "$@") 2>> "$out.err" < /dev/null |
        "$CKPT_BIN/pipe_gate" "$gate" >> "$out"
    fi
    exit "${PIPESTATUS[0]}"
  ) &
  CKPT_GUEST_PID=$!
}

# wait_for_lines OUT N [PID]: returns 0 once OUT has at least N lines, 1 if
# PID (when given) ends first. Polls: bash cannot wait on a file.
wait_for_lines() {
  local out=$1 want=$2 pid=${3:-}
  while (( $(_ckpt_lines "$out") < want )); do
    if [[ -n $pid ]] && ! _ckpt_alive "$pid"; then
      (( $(_ckpt_lines "$out") >= want ))
      return
    fi
    sleep 0.01
  done
}

# Prints the pid of the guest that LAUNCHER runs: a process named COMM,
# LAUNCHER itself (mosixctl restart becomes the restored process) or one of
# its descendants. When none has that name and LAUNCHER has no children,
# LAUNCHER is the guest and its name was not restored: says so and uses it.
# Waits while there is neither; fails if LAUNCHER ends first.
_ckpt_find_guest() {
  local launcher=$1 comm=$2 pid child name descendants
  local -a todo
  while _ckpt_alive "$launcher"; do
    todo=("$launcher")
    descendants=0
    while (( ${#todo[@]} > 0 )); do
      pid=${todo[0]}
      todo=("${todo[@]:1}")
      { name=$(< "/proc/$pid/comm"); } 2> /dev/null || continue
      if [[ $name == "$comm" ]]; then
        printf '%s\n' "$pid"
        return 0
      fi
      for child in $(cat /proc/"$pid"/task/*/children 2> /dev/null); do
        todo+=("$child")
        descendants=$(( descendants + 1 ))
      done
    done
    if (( descendants == 0 )); then
      { name=$(< "/proc/$launcher/comm"); } 2> /dev/null || continue
      _ckpt_log "pid $launcher is named '$name', not '$comm' (process name not restored?)"
      printf '%s\n' "$launcher"
      return 0
    fi
    sleep 0.01
  done
  return 1
}

# Round R's target and delay, from the plain run when known. Paced by lines:
# the target is an output line, the rounds spread over the lines before the
# last; the delay is a seeded random point inside the first half of a
# line's span. Paced by time: the target is a count of output bytes spread
# over all but the last 64 KiB; the delay counts from the start of each
# incarnation and the n delays add up to less than the run, whatever the
# seed. Sets _ckpt_target (line or bytes) and _ckpt_delay_ms.
_ckpt_time_paced() {
  [[ ${CKPT_PACE:-} == time ]] || (( ${CKPT_PLAIN_LINES:-0} < 3 ))
}

_ckpt_margin=65536

_ckpt_plan_round() {
  local r=$1 n=$2
  local lines=${CKPT_PLAIN_LINES:-0} ms=${CKPT_PLAIN_MS:-}
  [[ -n $ms ]] || ms=${CKPT_RUN_MS:-3000}
  if ! _ckpt_time_paced; then
    _ckpt_target=$(( r * (lines - 1) / (n + 1) ))
    (( _ckpt_target >= 1 )) || _ckpt_target=1
    local span=$(( ms / lines ))
    _ckpt_delay_ms=$(( RANDOM % 1000 * span * 5 / 10000 ))
  else
    _ckpt_target=$(( r * (${CKPT_PLAIN_BYTES:-0} - _ckpt_margin) / (n + 1) ))
    local span=$(( ms / (n + 1) ))
    _ckpt_delay_ms=$(( span / 5 + RANDOM % 1000 * span * 7 / 10000 ))
  fi
}

# Whether the program can be held through its rounds: enough lines for a
# line gate, enough output for a pipe gate. Says why not.
_ckpt_can_hold() {
  local base=$1
  if ! _ckpt_time_paced; then
    return 0
  fi
  if (( ${CKPT_PLAIN_BYTES:-0} < 4 * _ckpt_margin )); then
    _ckpt_log "$base: paced by time, its output must be at least $(( 4 * _ckpt_margin )) bytes to hold it" \
      "through a pipe (the plain run printed ${CKPT_PLAIN_BYTES:-nothing measured}); run it plain first or make it print more"
    return 1
  fi
}

_ckpt_ended_early() {
  local base=$1 status=$2 what=$3 out=$4
  if (( status == 0 )); then
    _ckpt_log "$base: ended (status 0) before $what, although the test held it (does it pass the gate? ckpt_gate in ckpt_common.h)"
  else
    _ckpt_log "$base: ended with status $status before $what: $(tail -n 1 "$out") (see $out.err)"
  fi
}

# _ckpt_plan N: the targets and delays of rounds 1..N, from CKPT_SEED, in
# _ckpt_targets[R] and _ckpt_delays[R].
_ckpt_plan() {
  local r _ckpt_target _ckpt_delay_ms
  RANDOM=$CKPT_SEED
  _ckpt_targets=() _ckpt_delays=()
  for (( r = 1; r <= $1; r++ )); do
    _ckpt_plan_round "$r" "$1"
    _ckpt_targets[r]=$_ckpt_target
    _ckpt_delays[r]=$_ckpt_delay_ms
  done
}

# _ckpt_hold_to OUT LAUNCHER R: lets the program run to round R's target and
# holds it there: the line gate allows the target line (never less than
# before), the pipe gate the target's bytes minus what the current
# incarnation's pipe_gate started at. Then waits for the target line (paced
# by lines) and the delay, which it sets in _ckpt_delay_ms. Returns 1 if
# LAUNCHER ends first.
_ckpt_hold_to() {
  local out=$1 launcher=$2 target=${_ckpt_targets[$3]}
  _ckpt_delay_ms=${_ckpt_delays[$3]}
  if ! _ckpt_time_paced; then
    (( target > _ckpt_allowed )) && _ckpt_allowed=$target
    gate_allow "$_ckpt_gate" "$_ckpt_allowed"
    wait_for_lines "$out" "$target" "$launcher" || return 1
    # Past the target already: no margin left for the delay.
    (( $(_ckpt_lines "$out") > target )) && _ckpt_delay_ms=0
  else
    local allow=$(( target - _ckpt_base_bytes ))
    (( allow > 0 )) || allow=0
    gate_allow "$_ckpt_gate" "$allow"
  fi
  _ckpt_sleep_ms "$_ckpt_delay_ms"
  _ckpt_alive "$launcher"
}

# _ckpt_start_held OUT PROG [ARGS...]: the first incarnation, held at once.
_ckpt_start_held() {
  local out=$1
  shift
  _ckpt_check_agent || return 1
  : > "$out"
  : > "$out.err"
  : > "$_ckpt_gate"
  if _ckpt_time_paced; then
    _ckpt_start_piped "$out" "$_ckpt_gate" "$@"
  else
    CKPT_GATE_FILE=$_ckpt_gate start_guest "$out" "$@"
  fi
}

# run_with_rounds N OUT PROG [ARGS...]: starts PROG as a guest, then N times:
# lets it run to its round's point (held there, see above), checkpoints it
# with --kill, and restarts the image in the background with the output
# appended to OUT. Then lets it end and returns the program's exit status
# (mosixctl restart's). Images stay in CKPT_WORK as <prog>.round<R>.img; the
# checkpoint/restart commands' own messages go to OUT.log.
run_with_rounds() {
  local n=${1:?run_with_rounds: N missing} out=${2:?run_with_rounds: OUT missing}
  shift 2
  local prog=$1 comm base launcher guest img status r lines_before incarnation=0
  local _ckpt_gate _ckpt_allowed=0 _ckpt_base_bytes=0 _ckpt_delay_ms
  local -a _ckpt_targets _ckpt_delays
  base=$(basename -- "$prog")
  comm=${base:0:15}
  : > "$out.log"
  _ckpt_can_hold "$base" || return 1
  _ckpt_plan "$n"
  _ckpt_gate=$CKPT_WORK/$base.gate$incarnation
  _ckpt_start_held "$out" "$@" || return 1
  launcher=$CKPT_GUEST_PID
  for (( r = 1; r <= n; r++ )); do
    if ! _ckpt_hold_to "$out" "$launcher" "$r" ||
       ! guest=$(_ckpt_find_guest "$launcher" "$comm"); then
      gate_open "$_ckpt_gate"
      wait "$launcher" 2> /dev/null
      _ckpt_ended_early "$base" $? "round $r's checkpoint" "$out"
      return 1
    fi
    img=$CKPT_WORK/$base.round$r.img
    _ckpt_log "$base: round $r/$n: checkpoint --kill pid $guest after $(_ckpt_time_paced && echo "byte" || echo "line") ${_ckpt_targets[r]} + ${_ckpt_delay_ms} ms"
    # A group, so that bash's own "Killed" report of the guest job goes to the log too.
    { "$CKPT_MOSIXCTL" checkpoint "$guest" -o "$img" --kill; } >> "$out.log" 2>&1
    status=$?
    # What the program wrote before the checkpoint reaches OUT in full.
    _ckpt_time_paced && gate_open "$_ckpt_gate"
    if (( status != 0 )); then
      _ckpt_log "$base: round $r: mosixctl checkpoint $guest failed with status $status (see $out.log)"
      kill -KILL "$guest" 2> /dev/null
      gate_open "$_ckpt_gate"
      wait "$launcher" 2> /dev/null
      return 1
    fi
    wait "$launcher" 2> /dev/null
    if _ckpt_alive "$guest"; then
      _ckpt_log "$base: round $r: pid $guest still runs after checkpoint --kill"
      kill -KILL "$guest" 2> /dev/null
      return 1
    fi
    lines_before=$(_ckpt_lines "$out")
    if _ckpt_time_paced; then
      # A new pipe_gate, held at once; the next round (or the end) lets the
      # restored program go on.
      incarnation=$(( incarnation + 1 ))
      _ckpt_gate=$CKPT_WORK/$base.gate$incarnation
      _ckpt_base_bytes=$(wc -c < "$out")
      gate_allow "$_ckpt_gate" 0
      _ckpt_start_piped "$out" "$_ckpt_gate" "$CKPT_MOSIXCTL" restart "$img"
      launcher=$CKPT_GUEST_PID
      continue
    fi
    # The restored process must make progress before the next round: one
    # more line (its last one, at least, is still to come). The gate lets
    # it go on to the next round's target line, or to its end. (CKPT_GATE
    # in the restart's environment is for a fake mosixctl that runs the
    # program again; a restored process has its own environment.)
    if (( r < n )); then
      (( lines_before > _ckpt_allowed )) && _ckpt_allowed=$lines_before
      (( _ckpt_targets[r + 1] > _ckpt_allowed )) && _ckpt_allowed=${_ckpt_targets[r + 1]}
      gate_allow "$_ckpt_gate" "$_ckpt_allowed"
    else
      gate_open "$_ckpt_gate"
    fi
    (_ckpt_exec_clean env CKPT_GATE="$_ckpt_gate" "$CKPT_MOSIXCTL" restart "$img") >> "$out" 2>> "$out.err" < /dev/null &
    launcher=$!
    if ! wait_for_lines "$out" $(( lines_before + 1 )) "$launcher"; then
      wait "$launcher" 2> /dev/null
      local st=$?
      # The work directory goes at the end of the test: say here what it said.
      _ckpt_log "$base: round $r: mosixctl restart $img ended with status $st before printing a line;" \
        "its last words: $(tail -n 3 "$out.err" 2> /dev/null | tr '\n' ' ')"
      return 1
    fi
  done
  gate_open "$_ckpt_gate"
  wait "$launcher"
}

# run_with_leave_running N OUT PROG [ARGS...]: starts PROG as a guest and
# checkpoints it N times with --leave-running, held as run_with_rounds; the
# process is never restarted. Returns the program's exit status.
run_with_leave_running() {
  local n=${1:?run_with_leave_running: N missing} out=${2:?run_with_leave_running: OUT missing}
  shift 2
  local base comm launcher guest status r
  local _ckpt_gate _ckpt_allowed=0 _ckpt_base_bytes=0 _ckpt_delay_ms
  local -a _ckpt_targets _ckpt_delays
  base=$(basename -- "$1")
  comm=${base:0:15}
  : > "$out.log"
  _ckpt_can_hold "$base" || return 1
  _ckpt_plan "$n"
  _ckpt_gate=$CKPT_WORK/$base.gate
  _ckpt_start_held "$out" "$@" || return 1
  launcher=$CKPT_GUEST_PID
  for (( r = 1; r <= n; r++ )); do
    if ! _ckpt_hold_to "$out" "$launcher" "$r" ||
       ! guest=$(_ckpt_find_guest "$launcher" "$comm"); then
      gate_open "$_ckpt_gate"
      wait "$launcher" 2> /dev/null
      _ckpt_ended_early "$base" $? "checkpoint $r" "$out"
      return 1
    fi
    _ckpt_log "$base: checkpoint $r/$n --leave-running after $(_ckpt_time_paced && echo "byte" || echo "line") ${_ckpt_targets[r]} + ${_ckpt_delay_ms} ms"
    "$CKPT_MOSIXCTL" checkpoint "$guest" -o "$CKPT_WORK/$base.live$r.img" --leave-running >> "$out.log" 2>&1
    status=$?
    if (( status != 0 )); then
      _ckpt_log "$base: mosixctl checkpoint $guest --leave-running failed with status $status (see $out.log)"
      kill -KILL "$guest" 2> /dev/null
      gate_open "$_ckpt_gate"
      wait "$launcher" 2> /dev/null
      return 1
    fi
  done
  gate_open "$_ckpt_gate"
  wait "$launcher"
}

# compare_outputs PLAIN ROUNDS: 0 when the files are byte for byte the same;
# otherwise prints where they differ (up to 10 lines) and returns 1.
compare_outputs() {
  local a=${1:?compare_outputs: PLAIN missing} b=${2:?compare_outputs: ROUNDS missing}
  local -a la lb
  local i shown=0 max size_a size_b
  cmp -s -- "$a" "$b" && return 0
  size_a=$(wc -c < "$a") || return 1
  size_b=$(wc -c < "$b") || return 1
  mapfile -t la < "$a"
  mapfile -t lb < "$b"
  if (( size_a == size_b && ${#la[@]} == ${#lb[@]} )); then
    for (( i = 0; i < ${#la[@]}; i++ )); do
      [[ ${la[i]} == "${lb[i]}" ]] || break
    done
    (( i == ${#la[@]} )) && return 0
  fi
  _ckpt_log "outputs differ: $a (${#la[@]} lines, $size_a bytes) vs $b (${#lb[@]} lines, $size_b bytes)"
  max=$(( ${#la[@]} > ${#lb[@]} ? ${#la[@]} : ${#lb[@]} ))
  for (( i = 0; i < max && shown < 10; i++ )); do
    if [[ ${la[i]-<none>} != "${lb[i]-<none>}" ]]; then
      printf '  line %d:\n    - %s\n    + %s\n' $(( i + 1 )) "${la[i]-<no line>}" "${lb[i]-<no line>}" >&2
      shown=$(( shown + 1 ))
    fi
  done
  (( shown > 0 )) || _ckpt_log "  same lines; the files differ in their last newline"
  return 1
}

# expect_result OUT NAME: the last line of OUT must be
# "RESULT NAME <16 hex digits> OK".
expect_result() {
  local out=${1:?expect_result: OUT missing} name=${2:?expect_result: NAME missing} last
  last=$(tail -n 1 "$out")
  if [[ ! $last =~ ^RESULT\ $name\ [0-9a-f]{16}\ OK$ ]]; then
    _ckpt_log "$name: last line is '$last', expected 'RESULT $name <checksum> OK'"
    return 1
  fi
}

# rounds_match_plain NAME PLAIN N PROG [ARGS...]: runs PROG through N
# checkpoint --kill / restart rounds (run_with_rounds, output in
# CKPT_WORK/NAME.roundsN) and compares its output with the plain run's in
# PLAIN; prints an ok line, or calls fail() (ckpt_test_start's) with what
# went wrong. Returns 0 when they match.
rounds_match_plain() {
  local name=$1 plain=$2 rounds=$3 out status
  shift 3
  out=$CKPT_WORK/$name.rounds$rounds
  run_with_rounds "$rounds" "$out" "$@"
  status=$?
  if (( status != 0 )); then
    fail "$name: $rounds round(s): exit status $status: $(tail -n 1 "$out") $(tail -n 3 "$out.err" 2> /dev/null) $(
      tail -n 3 "$out.log" 2> /dev/null)"
    return 1
  fi
  if ! compare_outputs "$plain" "$out"; then
    fail "$name: output after $rounds round(s) differs from the plain run"
    return 1
  fi
  echo "ok: $name, $rounds checkpoint/kill/restart round(s)"
}

# The programs the round tests run by default (CKPT_PROGRAMS overrides), and
# step counts that make each run last 1-3 s here. The programs wait for the
# test where it checkpoints them, so a faster machine does not end them
# first; the counts only spread the checkpoints.
CKPT_DEFAULT_PROGRAMS="agent_counter ckpt_clock ckpt_cxx ckpt_shared_map ckpt_threads ckpt_files ckpt_memory ckpt_signals ckpt_eventloop"
declare -gA CKPT_STEPS=([agent_counter]=600 [ckpt_clock]=1200 [ckpt_signals]=45000)

# ckpt_test_start BIN_DIR LIB_DIR: what every checkpoint test does first.
# Exits the test if the build is incomplete.
ckpt_test_start() {
  ckpt_init "$1" "$2" || exit 1
  trap ckpt_cleanup EXIT
  # The request directory of mosixctl and the agent, private to this test.
  export XDG_RUNTIME_DIR=$CKPT_WORK/run
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
  failures=0
  local f
  for f in "$2/libmosix.so" "$1/mosixctl" "$1/mosix-restore"; do
    [[ -e $f ]] || { echo "FAIL: $f is missing" >&2; exit 1; }
  done
}

fail() {
  echo "FAIL: $*" >&2
  failures=$(( ${failures:-0} + 1 ))
}

# Waits until OUT has a line matching PATTERN, or PID has ended (then 1).
wait_for_line() {
  local out=$1 pattern=$2 pid=$3
  until grep -q -- "$pattern" "$out" 2> /dev/null; do
    _ckpt_alive "$pid" || { grep -q -- "$pattern" "$out" 2> /dev/null; return; }
    sleep 0.01
  done
}

# Waits until PID (a restart) is the restored program: its name is the
# caller's $prog's again, or it has ended.
wait_restored() {
  local pid=$1 comm want
  want=$(basename "$prog")
  # Until it ends: an ended restart not yet waited for is a zombie, whose
  # comm still reads (a loop on comm alone waited for ever).
  while _ckpt_alive "$pid" && comm=$(cat "/proc/$pid/comm" 2> /dev/null); do
    [[ $comm == "${want:0:15}" ]] && return 0
    sleep 0.01
  done
  return 1
}
