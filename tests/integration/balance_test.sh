# Automatic rebalancing on a virtual cluster: the node daemons move guests on
# their own when one node is overloaded, and do not when the difference is
# below the stability margin, with --migrate=off, or for a pinned guest; and
# mosixctl ps --explain says why for each guest.
#   1. 3 nodes, 3 CPU-bound copies, rank 0 pinned: ranks 1 and 2 are crowded
#      by hand onto rank 0's node (load 3 there, 0 elsewhere). The balancer
#      moves them out until each node holds one; rank 0 never moves.
#   2. 2 nodes, 3 copies placed by load (2 and 1): a difference of one
#      process is below the margin (1.3 processes): nothing moves, and
#      --explain says "below the stability margin".
#   3. 3 nodes, --migrate=off, all 3 copies crowded onto one node: nothing
#      moves on the daemons' decision, --explain says "migration is off".
# Waiting is by polling while the job runs (guests must stay min_residency,
# 3 s, after arriving before they move).
BIN=$(cd "$1" && pwd)
source "$MOSIX_SOURCE_DIR/tests/integration/lib/common.sh"
set +e
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
JOBS=()
MOSIX_TEST_CLEANUP=""
trap 'for j in "${JOBS[@]}"; do kill -TERM "$j" 2>/dev/null; done; wait; rm -rf "$TMP"' EXIT

ps_json() { "$BIN/mosixctl" ps --job "$1" --json 2>/dev/null; }
node_of() { ps_json "$1" | jq -r ".guests[] | select(.rank == $2) | .node"; }
# The nodes of every running guest, sorted, one line: "vnode0 vnode1 vnode2".
nodes_of() { ps_json "$1" | jq -r '[.guests[] | select(.state == "running") | .node] | sort | join(" ")'; }
verdict_of() { ps_json "$1" | jq -r ".guests[] | select(.rank == $2) | .decision.verdict"; }
all_started() { [[ $(ps_json "$1" | jq '[.guests[] | select(.state == "running")] | length') == "$2" ]]; }

# Polls COMMAND every 0.25 s while the job JOB runs (its copies burn for
# 600 s; ctest's timeout guards against a hang): no bound on how slow the
# machine may be.
poll() {
  local job=$1
  shift
  while kill -0 "$job" 2> /dev/null; do
    if eval "$*"; then return 0; fi
    sleep 0.25
  done
  eval "$*"
}

end_job() {
  kill -TERM "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# 1. Overloaded: the balancer spreads the crowd, the pinned rank stays.
"$BIN/mosixrun" --vcluster 3 -np 3 --pin 0 "$BIN/cpu_burn" 600 < /dev/null > "$TMP/1.out" 2> "$TMP/1.err" &
job=$!
JOBS+=("$job")
poll "$job" all_started "$job" 3 || fail "overloaded: the 3 copies did not all start: $(cat "$TMP/1.err")"
n0=$(node_of "$job" 0)
# Each copy is crowded onto rank 0's node by hand. The balancer may send rank
# 1 on again before rank 2 has arrived (its 3 s residency can pass during a
# slow move, under ASan), so each move is checked on its own, not all three
# at one moment.
for rank in 1 2; do
  if [[ $(node_of "$job" $rank) != "$n0" ]]; then
    out=$("$BIN/mosixctl" migrate $rank "$n0" --job "$job" 2>&1) || fail "overloaded: moving rank $rank to $n0 by hand: $out"
    check_contains "overloaded: rank $rank was moved by hand onto $n0" "$n0" "$out $(node_of "$job" $rank)"
  else
    pass "overloaded: rank $rank was placed on $n0"
  fi
done
check_contains "overloaded: the pinned rank is not moved by hand either" "pinned" \
  "$("$BIN/mosixctl" migrate 0 best --job "$job" 2>&1)"
if poll "$job" '[[ $(nodes_of "$job" | tr " " "\n" | sort -u | wc -l) == 3 ]]'; then
  pass "overloaded: the balancer spread the copies over the 3 nodes ($(nodes_of "$job"))"
else
  fail "overloaded: the copies stayed on $(nodes_of "$job"): $("$BIN/mosixctl" ps --job "$job" --explain)"
fi
json=$(ps_json "$job")
check_eq "overloaded: ranks 1 and 2 were moved by the balancer" "1 1" \
  "$(jq -r '[.guests[] | select(.rank > 0) | .balancer_migrations | if . > 0 then 1 else 0 end] | join(" ")' <<<"$json")"
check_eq "overloaded: the pinned rank 0 never moved" "$n0 0" \
  "$(jq -r '.guests[] | select(.rank == 0) | "\(.node) \(.migrations)"' <<<"$json")"
check_eq "overloaded: --explain says rank 0 is pinned" "pinned" "$(verdict_of "$job" 0)"
"$BIN/mosixctl" ps --job "$job" --explain > "$TMP/1.ps"
check_contains "overloaded: ps --explain prints a decision line with the numbers" "decision: " "$(cat "$TMP/1.ps")"
grep -q "decision: .*load [0-9.]*, remaining" "$TMP/1.ps" || fail "overloaded: the decision line has no load: $(cat "$TMP/1.ps")"
end_job "$job"

# 2 and 3 run side by side (their loads are their own guests').
# 2. Below the margin: 2 copies on one node, 1 on the other: no move.
"$BIN/mosixrun" --vcluster 2 -np 3 "$BIN/cpu_burn" 600 < /dev/null > "$TMP/2.out" 2> "$TMP/2.err" &
below=$!
JOBS+=("$below")
# 3. --migrate=off: everything crowded on one node stays there.
"$BIN/mosixrun" --vcluster 3 -np 3 --migrate off "$BIN/cpu_burn" 600 < /dev/null > "$TMP/3.out" 2> "$TMP/3.err" &
off=$!
JOBS+=("$off")
poll "$below" all_started "$below" 3 || fail "below margin: the copies did not all start: $(cat "$TMP/2.err")"
poll "$off" all_started "$off" 3 || fail "migrate=off: the copies did not all start: $(cat "$TMP/3.err")"
check_eq "below margin: placed on both nodes, 2 and 1" "2 1" \
  "$(ps_json "$below" | jq -r '[.guests[] | .node] | group_by(.) | map(length) | sort | reverse | join(" ")')"
target=$(node_of "$off" 0)
for rank in 1 2; do
  if [[ $(node_of "$off" $rank) != "$target" ]]; then
    out=$("$BIN/mosixctl" migrate $rank "$target" --job "$off" 2>&1) || fail "migrate=off: moving rank $rank by hand: $out"
  fi
done
before_below=$(ps_json "$below" | jq -c '[.guests[] | [.rank, .node]]')
# Long enough for every guest's residency (10 s) to pass and for several
# decisions after it: a crowded rank's verdict must be the margin's.
crowded=$(ps_json "$below" | jq -r '[.guests[] | .node] | group_by(.) | map(select(length == 2)) | .[0][0]')
crowded_rank=$(ps_json "$below" | jq -r --arg n "$crowded" '[.guests[] | select(.node == $n) | .rank][0]')
if poll "$below" '[[ $(verdict_of "$below" "$crowded_rank") == "below the stability margin" ]]'; then
  pass "below margin: --explain says 'below the stability margin' for rank $crowded_rank on $crowded"
else
  fail "below margin: rank $crowded_rank's verdict is '$(verdict_of "$below" "$crowded_rank")'"
fi
# Three more decisions on the crowded node: each round's explanation carries
# the rank's remaining time anew (it grows as the rank burns CPU).
declare -A explanations=()
three_more_decisions() {
  local e
  e=$(ps_json "$below" | jq -r ".guests[] | select(.rank == $crowded_rank) | .decision.explanation")
  [[ -n $e ]] && explanations["$e"]=1
  (( ${#explanations[@]} >= 4 ))
}
poll "$below" three_more_decisions || fail "below margin: no new decision on rank $crowded_rank: $(ps_json "$below")"
check_eq "below margin: no guest moved" "$before_below" "$(ps_json "$below" | jq -c '[.guests[] | [.rank, .node]]')"
check_eq "below margin: no migration at all" "0" "$(ps_json "$below" | jq '[.guests[] | .migrations] | add')"
check_eq "migrate=off: all three stay crowded on $target" "$target $target $target" "$(nodes_of "$off")"
check_eq "migrate=off: no move by the balancer" "0" "$(ps_json "$off" | jq '[.guests[] | .balancer_migrations] | add')"
check_eq "migrate=off: --explain says so" "migration is off" "$(verdict_of "$off" 1)"
end_job "$below"
end_job "$off"

finish
