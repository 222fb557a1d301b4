#!/usr/bin/env bash
# Every copy is a guest (issue 15): a plain copy of `mosixrun -np 1 PROG`,
# with no --ckpt-interval, has the agent and is checkpointed by
# `mosixctl checkpoint PID`. Each probe program runs plain, then as such a
# copy through 5 checkpoint --kill / restart rounds (lib/ckpt_rounds.sh: the
# first incarnation under mosixrun, the restarts by mosixctl restart), and
# the outputs must be identical. The copy is also checkpointed by its rank
# (mosixctl checkpoint 0), --no-agent copies are refused as not guests, and
# a copy holding a socket is refused by name and runs on to its result.
#
# Programs: agent_counter and every ckpt_* of tests/programs that runs in
# rounds, at ckpt_test.sh's step counts. Not here: ckpt_locks and
# ckpt_never_silent, which run one mode per state (ckpt_locks_test.sh,
# ckpt_never_silent_test.sh, with LD_PRELOAD, the same agent).
# Usage: BIN_DIR LIB_DIR. CKPT_PROGRAMS may list the programs to run.
set -u

bin=${1:?usage: ckpt_plain_copy_test.sh BIN_DIR LIB_DIR}
lib=${2:?usage: ckpt_plain_copy_test.sh BIN_DIR LIB_DIR}
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"
[[ -x $bin/mosixrun ]] || { echo "FAIL: $bin/mosixrun is missing" >&2; exit 1; }

programs=${CKPT_PROGRAMS:-$CKPT_DEFAULT_PROGRAMS}

for name in $programs; do
  prog=$bin/$name
  [[ -x $prog ]] || { fail "$prog is missing"; continue; }
  args=(${CKPT_STEPS[$name]:-})
  plain=$CKPT_WORK/$name.plain
  run_plain "$plain" "$prog" "${args[@]}" || { fail "$name: plain run failed: $(tail -n 1 "$plain")"; continue; }
  out=$CKPT_WORK/$name.rounds
  CKPT_LAUNCHER="$bin/mosixrun -np 1" run_with_rounds 5 "$out" "$prog" "${args[@]}"
  status=$?
  if (( status != 0 )); then
    fail "$name: 5 rounds as a copy of mosixrun -np 1: exit status $status: $(tail -n 1 "$out")" \
      "$(tail -n 3 "$out.log" 2> /dev/null) $(tail -n 3 "$out.err" 2> /dev/null)"
  elif compare_outputs "$plain" "$out"; then
    echo "ok: $name, a copy of mosixrun -np 1, 5 checkpoint/kill/restart rounds"
  else
    fail "$name: output after 5 rounds as a copy of mosixrun -np 1 differs from the plain run"
  fi
done

# The job's copy by its rank, and a copy started --no-agent. Each waits at
# its second line for the test (its gate file).
gate=$CKPT_WORK/rank.gate
gate_allow "$gate" 1
(_ckpt_exec_clean env CKPT_GATE="$gate" "$bin/mosixrun" -np 1 "$bin/agent_counter" 20) \
  > "$CKPT_WORK/rank.out" 2> "$CKPT_WORK/rank.err" < /dev/null &
job=$!
if wait_for_lines "$CKPT_WORK/rank.out" 2 "$job"; then
  # The job registry names the copy once mosixrun has heard it started.
  until grep -qs '"state": *"running"' "$XDG_RUNTIME_DIR"/mosix/jobs/*.json || ! _ckpt_alive "$job"; do
    sleep 0.05
  done
  if "$bin/mosixctl" checkpoint 0 -o "$CKPT_WORK/rank.img" --leave-running > "$CKPT_WORK/rank.log" 2>&1; then
    echo "ok: mosixctl checkpoint 0 (the rank) of a plain copy"
  else
    fail "mosixctl checkpoint 0 of a plain copy: $(cat "$CKPT_WORK/rank.log")"
  fi
else
  fail "mosixrun -np 1 agent_counter did not print its first lines: $(cat "$CKPT_WORK/rank.err")"
fi
gate_open "$gate"
wait "$job" || fail "the copy checkpointed by rank did not end well: $(tail -n 2 "$CKPT_WORK/rank.err")"

gate_allow "$gate" 1
(_ckpt_exec_clean env CKPT_GATE="$gate" "$bin/mosixrun" --no-agent -np 1 "$bin/agent_counter" 20) \
  > "$CKPT_WORK/noagent.out" 2> "$CKPT_WORK/noagent.err" < /dev/null &
job=$!
if wait_for_lines "$CKPT_WORK/noagent.out" 2 "$job" && guest=$(_ckpt_find_guest "$job" agent_counter); then
  msg=$("$bin/mosixctl" checkpoint "$guest" -o "$CKPT_WORK/noagent.img" 2>&1)
  status=$?
  if (( status != 0 )) && [[ $msg == *"guest"* ]] && ! grep -q libmosix "/proc/$guest/maps"; then
    echo "ok: a --no-agent copy has no agent and is refused: $msg"
  else
    fail "--no-agent copy: status $status, agent mapped: $(grep -c libmosix "/proc/$guest/maps"), message: $msg"
  fi
else
  fail "mosixrun --no-agent -np 1 agent_counter did not print its first lines: $(cat "$CKPT_WORK/noagent.err")"
fi
gate_open "$gate"
wait "$job" || fail "the --no-agent copy did not end well: $(tail -n 2 "$CKPT_WORK/noagent.err")"

# A copy with an open socket is refused, with the descriptor named, and runs on.
gate_allow "$gate" 1
(_ckpt_exec_clean env CKPT_GATE="$gate" "$bin/mosixrun" -np 1 "$bin/ckpt_socket") \
  > "$CKPT_WORK/socket.out" 2> "$CKPT_WORK/socket.err" < /dev/null &
job=$!
if wait_for_lines "$CKPT_WORK/socket.out" 2 "$job" && guest=$(_ckpt_find_guest "$job" ckpt_socket); then
  msg=$("$bin/mosixctl" checkpoint "$guest" -o "$CKPT_WORK/socket.img" --kill 2>&1)
  status=$?
  if (( status != 0 )) && [[ $msg == *"fd "*"socket"* ]] && [[ ! -e $CKPT_WORK/socket.img ]]; then
    echo "ok: a copy with a socket is refused: $msg"
  else
    fail "checkpoint of a copy with a socket: status $status, message: $msg"
  fi
else
  fail "mosixrun -np 1 ckpt_socket did not print its first lines: $(cat "$CKPT_WORK/socket.err")"
fi
gate_open "$gate"
if wait "$job" && expect_result "$CKPT_WORK/socket.out" ckpt_socket; then
  echo "ok: the copy with a socket ran on to its result"
else
  fail "the copy with a socket did not finish normally: $(tail -n 2 "$CKPT_WORK/socket.err")"
fi

if (( failures > 0 )); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all plain copies were checkpointed and restored"
