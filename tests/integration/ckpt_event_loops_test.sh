#!/usr/bin/env bash
# Unmodified event-loop runtimes through checkpoint/kill/restart rounds
# (issue 17): node running tests/integration/event_loops/ckpt_node.js
# (timers, setImmediate, a SIGUSR2 handler: libuv's epoll, eventfd and
# signal pipe) and Python running ckpt_asyncio.py (asyncio timers and
# loop.add_signal_handler: epoll and a socketpair wake-up descriptor). Each
# is compared, after 1 and 5 rounds, with a plain run of the same program;
# the programs send themselves SIGUSR2 and wait for their handler, so a lost
# signal descriptor or wake-up hangs or changes the output. An interpreter
# that is not installed is skipped (exit 77 when neither is).
# Usage: ckpt_event_loops_test.sh BIN_DIR LIB_DIR
set -u

bin=${1:?usage: ckpt_event_loops_test.sh BIN_DIR LIB_DIR}
lib=${2:?usage: ckpt_event_loops_test.sh BIN_DIR LIB_DIR}
here=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"

ran=0
for entry in "node:ckpt_node.js" "python3:ckpt_asyncio.py"; do
  interp=$(command -v "${entry%%:*}") || { echo "skip: ${entry%%:*} is not installed"; continue; }
  script=$here/event_loops/${entry#*:}
  name=${entry#*:}
  ran=$((ran + 1))
  plain=$CKPT_WORK/$name.plain
  run_plain "$plain" "$interp" "$script" 400 || { fail "$name: plain run failed: $(tail -n 1 "$plain")"; continue; }
  expect_result "$plain" "${name%.*}" || fail "$name: the plain run has no RESULT line"
  for rounds in 1 5; do
    rounds_match_plain "$name" "$plain" "$rounds" "$interp" "$script" 400
  done
done
(( ran > 0 )) || { echo "SKIP: neither node nor python3 is installed"; exit 77; }
if (( failures > 0 )); then
  echo "FAIL: $failures check(s) failed"
  exit 1
fi
echo "PASS"
