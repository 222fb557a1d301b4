#!/usr/bin/env bash
# Checkpoint/restart of real programs with the agent preloaded: each program
# runs plain, then under 1 and under 5 checkpoint --kill / restart rounds, and
# the outputs must be identical; one run with --leave-running checkpoints must
# print exactly the plain output too. A corrupted image (one flipped byte, a
# truncated copy) must be refused with exit 2 before anything is restored,
# and a process holding a socket must be refused with the descriptor named
# and keep running to its normal result. Also: mosixctl checkpoint finds a
# guest by its rank in the job registry (and asks for --job when two jobs
# have it), a restored process keeps its name for ps and pgrep -x, and an
# image read from a pipe (mosixctl restart -) restores. The stock programs
# are in ckpt_stock_test.sh.
# Usage: BIN_DIR LIB_DIR (LIB_DIR holds libmosix.so). CKPT_PROGRAMS may list
# the programs to run (default below).
set -u

bin=${1:?usage: ckpt_test.sh BIN_DIR LIB_DIR}
lib=${2:?usage: ckpt_test.sh BIN_DIR LIB_DIR}
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"

programs=${CKPT_PROGRAMS:-$CKPT_DEFAULT_PROGRAMS}

for name in $programs; do
  prog=$bin/$name
  [[ -x $prog ]] || { fail "$prog is missing"; continue; }
  args=(${CKPT_STEPS[$name]:-})
  plain=$CKPT_WORK/$name.plain
  run_plain "$plain" "$prog" "${args[@]}" || { fail "$name: plain run failed: $(tail -n 1 "$plain")"; continue; }
  for rounds in 1 5; do
    rounds_match_plain "$name" "$plain" "$rounds" "$prog" "${args[@]}"
  done
  out=$CKPT_WORK/$name.live
  if run_with_leave_running 2 "$out" "$prog" "${args[@]}" && compare_outputs "$plain" "$out"; then
    echo "ok: $name, 2 checkpoints with --leave-running"
  else
    fail "$name: --leave-running changed its output or failed: $(tail -n 3 "$out.log" 2> /dev/null)"
  fi
done

# A restored process keeps its name (as ps and pgrep -x show it), and
# mosixctl checkpoint finds a guest by its rank in the job registry.
# The program waits at its second line for the test (its gate file).
out=$CKPT_WORK/named.out
gate=$CKPT_WORK/named.gate
gate_allow "$gate" 1
CKPT_GATE_FILE=$gate start_guest "$out" "$bin/ckpt_threads" 200 || fail "ckpt_threads did not start"
if [[ -n ${CKPT_GUEST_PID:-} ]]; then
  guest=$CKPT_GUEST_PID
  wait_for_lines "$out" 2 "$guest"
  jobs_dir=$XDG_RUNTIME_DIR/mosix/jobs
  mkdir -p -m 700 "$XDG_RUNTIME_DIR/mosix" "$jobs_dir"
  job_record() {  # ID RANK PID
    printf '{"version": 1, "id": "%s", "launcher_pid": %d, "home_node": "%s", "command": "test",
      "guests": [{"rank": %d, "pid": %d, "node": "%s", "state": "running"}]}\n' \
      "$1" "$$" "$(hostname)" "$2" "$3" "$(hostname)" > "$jobs_dir/$1.json"
  }
  job_record 9001 3 "$guest"
  job_record 9002 3 "$$"
  msg=$("$bin/mosixctl" checkpoint 3 -o "$CKPT_WORK/rank.img" 2>&1)
  if (( $? != 0 )) && [[ $msg == *"--job"* ]]; then
    echo "ok: a rank in two jobs asks for --job: $msg"
  else
    fail "rank 3 in two jobs: expected a refusal naming --job, got: $msg"
  fi
  if "$bin/mosixctl" checkpoint 3 --job 9001 -o "$CKPT_WORK/rank.img" --kill > "$CKPT_WORK/rank.log" 2>&1; then
    echo "ok: rank 3 of job 9001 checkpointed (pid $guest)"
  else
    fail "checkpoint of rank 3 of job 9001: $(cat "$CKPT_WORK/rank.log")"
  fi
  rm -f "$jobs_dir"/900[12].json
  wait "$guest" 2> /dev/null
  gate_allow "$gate" 2
  (_ckpt_exec_clean "$bin/mosixctl" restart "$CKPT_WORK/rank.img") >> "$out" 2>> "$out.err" < /dev/null &
  restored=$!
  lines=$(_ckpt_lines "$out")
  wait_for_lines "$out" $(( lines + 1 )) "$restored"
  comm=$(ps -o comm= -p "$restored")
  if [[ $comm == ckpt_threads ]] && grep -qx "$restored" <<< "$(pgrep -x ckpt_threads)"; then
    echo "ok: the restored pid $restored is named ckpt_threads for ps and pgrep -x"
  else
    fail "the restored process $restored is named '$comm' (pgrep -x ckpt_threads: $(pgrep -x ckpt_threads | tr '\n' ' '))"
  fi
  kill -KILL "$restored" 2> /dev/null
  wait "$restored" 2> /dev/null
  gate_open "$gate"
fi

# An image read from a pipe (as migration will stream it) restores too.
if [[ -s $CKPT_WORK/agent_counter.plain ]]; then
  out=$CKPT_WORK/piped.out
  gate=$CKPT_WORK/piped.gate
  gate_allow "$gate" 99
  CKPT_GATE_FILE=$gate start_guest "$out" "$bin/agent_counter" "${CKPT_STEPS[agent_counter]}"
  guest=$CKPT_GUEST_PID
  wait_for_lines "$out" 100 "$guest"
  if "$bin/mosixctl" checkpoint "$guest" -o "$CKPT_WORK/piped.img" --kill > "$CKPT_WORK/piped.log" 2>&1; then
    wait "$guest" 2> /dev/null
    gate_open "$gate"
    (cat "$CKPT_WORK/piped.img" | _ckpt_exec_clean "$bin/mosixctl" restart -) >> "$out" 2>> "$out.err"
    status=$?
    if (( status == 0 )) && compare_outputs "$CKPT_WORK/agent_counter.plain" "$out"; then
      echo "ok: restart from a pipe (mosixctl restart -)"
    else
      fail "restart from a pipe: status $status: $(tail -n 2 "$out.err")"
    fi
  else
    fail "checkpoint for the piped restart: $(cat "$CKPT_WORK/piped.log")"
    kill -KILL "$guest" 2> /dev/null
    gate_open "$gate"
  fi
fi

# Corrupt images are refused with exit 2 and one line, before anything runs.
image=$(ls "$CKPT_WORK"/agent_counter.round1.img 2> /dev/null | head -n 1)
if [[ -n $image ]]; then
  size=$(stat -c %s "$image")
  flipped=$CKPT_WORK/flipped.img
  cp "$image" "$flipped"
  offset=$(( size / 2 ))
  byte=$(od -An -tu1 -j "$offset" -N1 "$flipped" | tr -d ' ')
  printf "$(printf '\\%03o' $(( byte ^ 0x40 )))" |
    dd of="$flipped" bs=1 seek="$offset" count=1 conv=notrunc status=none
  truncated=$CKPT_WORK/truncated.img
  head -c $(( size - 100 )) "$image" > "$truncated"
  for bad in "$flipped" "$truncated"; do
    msg=$("$bin/mosixctl" restart "$bad" 2>&1 < /dev/null)
    status=$?
    lines=$(printf '%s\n' "$msg" | wc -l)
    if (( status == 2 && lines == 1 )) && [[ $msg == *"$(basename "$bad")"* ]]; then
      echo "ok: $(basename "$bad") refused: $msg"
    else
      fail "$(basename "$bad"): expected exit 2 and one line, got status $status: $msg"
    fi
  done
else
  fail "no agent_counter image left to corrupt"
fi

# A process with an open socket is refused, names the descriptor, keeps running.
out=$CKPT_WORK/socket.out
gate=$CKPT_WORK/socket.gate
gate_allow "$gate" 1
CKPT_GATE_FILE=$gate start_guest "$out" "$bin/ckpt_socket" || fail "ckpt_socket did not start"
if [[ -n ${CKPT_GUEST_PID:-} ]]; then
  wait_for_lines "$out" 2 "$CKPT_GUEST_PID"
  msg=$("$bin/mosixctl" checkpoint "$CKPT_GUEST_PID" -o "$CKPT_WORK/socket.img" --kill 2>&1)
  status=$?
  gate_open "$gate"
  if (( status != 0 )) && [[ $msg == *"fd "*"socket"* ]] && [[ ! -e $CKPT_WORK/socket.img ]]; then
    echo "ok: socket refused: $msg"
  else
    fail "checkpoint of a process with a socket: status $status, message: $msg"
  fi
  wait "$CKPT_GUEST_PID"
  status=$?
  if (( status == 0 )) && expect_result "$out" ckpt_socket; then
    echo "ok: ckpt_socket ran on to its result after the refusal"
  else
    fail "ckpt_socket did not finish normally after the refusal (status $status)"
  fi
fi

if (( failures > 0 )); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all checkpoint tests passed"
