# A node daemon killed during a job:
# 1. it held copies: the home reports which node died and which ranks were
#    lost with it, the job ends by mpirun's rule, no guest is left anywhere;
# 2. it held none: the job goes on and ends normally;
# 3. with --ckpt-interval: its ranks restart from their last checkpoints on
#    a live node and the job ends as an uninterrupted run would;
# 4. it was the target of a migration: the guest resumes where it was, the
#    migration fails with the reason, the guest's result is right;
# 5. a PVM task watches it (pvm_notify PvmHostDelete and PvmTaskExit of a
#    task there, tests/pvm_programs/pvm_hostdel.c, --keep-going): it is told
#    both (socket transport only: the MPI one adds nothing to the PVM side).
# The home declares a node gone after MOSIX_NODE_TIMEOUT seconds of silence
# (3 here; 10 by default), or, over the socket transport of a virtual cluster,
# as soon as the node's connection ends without its goodbye (scenario 2 checks
# that with a timeout too long to wait for).
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export MOSIX_NODE_TIMEOUT=3

# daemon_of JOB RANK: the pid of the job's node daemon of that rank (its MPI rank under
# mpirun, MOSIX_NODE_RANK when mosixd --launch started it).
daemon_of() {
  local pid found=""
  for pid in $(pgrep -x mosixd); do
    # Here-strings, not pipes: under pipefail, `tr | grep -q` fails when grep
    # has its match and exits before tr's next write (SIGPIPE): an MPI
    # daemon's environment is larger than one write.
    grep -q -- "--job $1 " <<< "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || continue
    if grep -qxE "(OMPI_COMM_WORLD|MOSIX_NODE)_RANK=$2" <<< "$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null)"; then found=$pid; fi
  done
  echo "$found"
}

"$BIN/mosixrun" --vcluster 2 --map-by node -np 4 sh -c \
  'echo "$$ $MOSIX_NODE" > '"$TMP"'/guest.$MOSIX_RANK; exec sleep 1000' 2> "$TMP/err" &
job=$!
wait_for '[ "$(ls "$TMP"/guest.* 2>/dev/null | wc -l)" = 4 ]' || fail "the 4 copies did not start: $(cat "$TMP/err")"

# The daemon of vnode1 is the mosixd whose MPI rank is 1.
victim=$(daemon_of $job 1)
check_contains "found the daemon of vnode1" "1" "${victim:+1}"
kill -9 "$victim"
set +e; wait $job; rc=$?; set -e

lost=$(grep -l vnode1 "$TMP"/guest.* | sed 's/.*guest\.//' | sort -n | xargs | sed 's/ /, /g')
first_lost=${lost%%,*}
check_eq "exit status: the lowest lost rank, killed (137)" 137 "$rc"
check_contains "names the node that died" "node vnode1 died" "$(cat "$TMP/err")"
check_contains "names the ranks lost with it" "ranks lost: $lost" "$(cat "$TMP/err")"
check_eq "rank $first_lost was on vnode1" 1 "$(grep -c vnode1 "$TMP/guest.$first_lost")"

gone() { for f in "$TMP"/guest.*; do kill -0 "$(cut -d' ' -f1 "$f")" 2>/dev/null && return 1; done; return 0; }
if wait_for gone; then pass "no guest left on any node"; else fail "guests left: $(cat "$TMP"/guest.* | xargs)"; fi
if wait_for '! pgrep -f -- "--job $job " > /dev/null'; then pass "no node daemon left"; else fail "node daemons left"; fi

# 2. A node without copies dies: the job goes on.
rm -f "$TMP"/guest.*
timeout=$MOSIX_NODE_TIMEOUT
[[ ${MOSIX_TRANSPORT:-} == mpi ]] || timeout=600  # its connection's end must tell
MOSIX_NODE_TIMEOUT=$timeout "$BIN/mosixrun" --vcluster 3 --map-by node -np 2 sh -c \
  'echo "$$ $MOSIX_NODE" > '"$TMP"'/guest.$MOSIX_RANK; while [ ! -e '"$TMP"'/go ]; do sleep 0.1; done; echo "rank $MOSIX_RANK done"' \
  > "$TMP/out2" 2> "$TMP/err2" &
job=$!
wait_for '[ "$(ls "$TMP"/guest.* 2>/dev/null | wc -l)" = 2 ]' || fail "the 2 copies did not start: $(cat "$TMP/err2")"
check_eq "no copy on vnode2" 0 "$(cat "$TMP"/guest.* | grep -c vnode2)"
kill -9 "$(daemon_of $job 2)"
# The home's word on it: at once over sockets, else after MOSIX_NODE_TIMEOUT.
until grep -q "vnode2 died" "$TMP/err2" || ! kill -0 $job 2> /dev/null; do sleep 0.05; done
touch "$TMP/go"
set +e; wait $job; rc=$?; set -e
check_eq "a node without copies died: the job still exits 0" 0 "$rc"
check_contains "says the node died and that the job goes on" "node vnode2 died" "$(cat "$TMP/err2")"
check_contains "...with no copy lost" "no copy of the job was on it" "$(cat "$TMP/err2")"
check_eq "both copies finished" "rank 0 done rank 1 done" "$(sort "$TMP/out2" | xargs)"

# 3. With --ckpt-interval, a rank lost
# with its node restarts from its last checkpoint on a live node and ends
# with the uninterrupted run's result (its output since that checkpoint is
# repeated, so only the results are compared). The copies wait after their
# 301st line (the gate file, ckpt_gate in tests/programs/ckpt_common.h) until
# the node is gone, so they cannot end first; a restored copy has the same
# gate in its environment.
"$BIN/agent_counter" 1500 > "$TMP/plain4"
truncate -s 300 "$TMP/gate4"
CKPT_GATE=$TMP/gate4 "$BIN/mosixrun" --vcluster 2 --map-by node -np 2 --tag-output --ckpt-interval 1 \
  --ckpt-dir "$TMP/ckpt" "$BIN/agent_counter" 1500 > "$TMP/out4" 2> "$TMP/err4" &
job=$!
wait_for '[ -s "$TMP/ckpt/rank.1.img" ] && grep -q "^\[1,1\]<stdout>:step 200 " "$TMP/out4"' ||
  fail "no checkpoint of rank 1 by its step 200: $(ls "$TMP/ckpt" 2>&1) $(cat "$TMP/err4")"
check_eq "the copies wait at their gate" 0 "$(grep -c "RESULT" "$TMP/out4")"
kill -9 "$(daemon_of $job 1)"
wait_for 'grep -q "restarting from their last checkpoints" "$TMP/err4"' ||
  fail "rank 1 was not restarted: $(cat "$TMP/err4")"
rm -f "$TMP/gate4"
set +e; wait $job; rc=$?; set -e
check_eq "a rank lost with its node and restarted from its checkpoint: the job exits 0" 0 "$rc"
check_contains "says the rank restarts from its checkpoint" "restarting from their last checkpoints: rank 1 on vnode0" "$(cat "$TMP/err4")"
result=$(grep RESULT "$TMP/plain4")
check_eq "both ranks end with the uninterrupted run's result" "[1,0]<stdout>:$result [1,1]<stdout>:$result" \
  "$(grep RESULT "$TMP/out4" | sort | xargs)"
check_eq "rank 1 printed its last step" 1 "$(grep -c "^\[1,1\]<stdout>:$(tail -2 "$TMP/plain4" | head -1)\$" "$TMP/out4")"

# 3b. An image that someone else could have written is never restored: the
# checkpoint directory is opened to others (0777) while the copies wait at
# their gate, so rank 1's image could have been swapped; when its node is
# lost, rank 1 is not restarted, the home says why, and the job ends by the
# rule for a lost copy (before the check, only access(R_OK) was asked and
# the rank was restarted).
truncate -s 300 "$TMP/gate5"
CKPT_GATE=$TMP/gate5 "$BIN/mosixrun" --vcluster 2 --map-by node -np 2 --tag-output --ckpt-interval 1 \
  --ckpt-dir "$TMP/ckpt5" "$BIN/agent_counter" 1500 > "$TMP/out5" 2> "$TMP/err5" &
job=$!
wait_for '[ -s "$TMP/ckpt5/rank.1.img" ] && grep -q "^\[1,1\]<stdout>:step 200 " "$TMP/out5"' ||
  fail "no checkpoint of rank 1 by its step 200: $(ls "$TMP/ckpt5" 2>&1) $(cat "$TMP/err5")"
chmod 0777 "$TMP/ckpt5"
kill -9 "$(daemon_of $job 1)"
wait_for 'grep -q "rank 1 is not restarted" "$TMP/err5"' ||
  fail "no word that rank 1 is not restarted: $(cat "$TMP/err5")"
rm -f "$TMP/gate5"
set +e; wait $job; rc=$?; set -e
check_eq "an image in a directory others may write is not restored: the lost copy ends the job" 137 "$rc"
check_contains "and the home says why" "others may write to it" "$(grep "rank 1 is not restarted" "$TMP/err5")"
check_eq "rank 1 did not come back" 0 "$(grep -c "restarting from their last checkpoints" "$TMP/err5" || true)"

# 4. The target of a migration dies during the move: the guest resumes on
# its node and its memory is intact (mem_hold checks every byte at the end).
# The target's daemon is stopped before the move starts, so the move cannot
# end before the test kills it.
# The node's end must be told by its connection over sockets (the stopped
# daemon is silent for as long as the test takes); MPI can only time out.
rm -f "$TMP/go" "$TMP/done"
timeout=600
[[ ${MOSIX_TRANSPORT:-} != mpi ]] || timeout=30
MOSIX_NODE_TIMEOUT=$timeout "$BIN/mosixrun" --vcluster 3 --map-by node --migrate off -np 2 sh -c \
  'if [ "$MOSIX_RANK" = 1 ]; then exec '"$BIN"'/mem_hold 768 '"$TMP"'/done 600; else while [ ! -e '"$TMP"'/done ]; do sleep 0.1; done; fi' \
  > "$TMP/out3" 2> "$TMP/err3" &
job=$!
# mem_hold says "ready" once its memory is filled.
wait_for 'grep -q "mem_hold ready" "$TMP/out3"' || fail "mem_hold did not start: $(cat "$TMP/out3" "$TMP/err3")"
target=$(daemon_of $job 2)
kill -STOP "$target"
"$BIN/mosixctl" migrate 1 vnode2 --job $job --json > "$TMP/mig3" 2> "$TMP/mig3.err" &
mig=$!
wait_for '[ "$("$BIN/mosixctl" ps --job $job --json 2>/dev/null | jq -r ".guests[] | select(.rank == 1) | .state")" = migrating ]' ||
  fail "the move of rank 1 did not start: $(cat "$TMP/mig3" "$TMP/mig3.err")"
kill -9 "$target"
set +e; wait $mig; mig_rc=$?; set -e
check_eq "the migration failed" "1 false" "$mig_rc $(jq -r .ok "$TMP/mig3" 2>/dev/null)"
check_contains "...because the target died" "died during the move" "$(cat "$TMP/mig3" "$TMP/mig3.err")"
check_eq "rank 1 is still on vnode1" vnode1 "$("$BIN/mosixctl" ps --job $job --json | jq -r '.guests[] | select(.rank == 1) | .node')"
touch "$TMP/done"
set +e; wait $job; rc=$?; set -e
check_eq "the job exits 0 after its target died" 0 "$rc"
check_contains "mem_hold found its memory intact" "OK" "$(cat "$TMP/out3")"

# 5. A PVM task told of a lost node and of its task there.
if [[ -x "$BIN/pvm_hostdel" && -r "$BIN/../lib/pvm/libpvm3.so.3" && ${MOSIX_TRANSPORT:-} != mpi ]]; then
  PATH="$BIN:$PATH" "$BIN/mosixrun" --vcluster 3 --keep-going -np 1 pvm_hostdel > "$TMP/out6" 2> "$TMP/err6" &
  job=$!
  wait_for "grep -q watching $TMP/out6" || fail "pvm_hostdel did not start watching: $(cat "$TMP/out6" "$TMP/err6")"
  kill -9 "$(daemon_of $job 2)"
  set +e; wait $job; set -e
  check_eq "PvmHostDelete and PvmTaskExit reach the PVM task" "watching host c0000 and task t40002
host c0000 deleted
task t40002 exited" "$(cat "$TMP/out6")"
fi
finish
