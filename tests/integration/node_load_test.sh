# A node's load is its real load (issue 15): the runnable tasks of the node,
# children and other jobs included, per unit of speed.
#   1. A virtual cluster of 3 nodes capped at half a CPU each: the job's one
#      copy, a shell, starts 3 busy children (not guests) that spin until the
#      test releases them. The load of the copy's node counts them, per unit
#      of its speed (3 tasks on 0.5 CPU: load 6), and its CPU use is theirs;
#      the two other nodes, which run nothing, stay at load 0. mosixctl ps,
#      mon and their --json show it.
#   2. One real node: busy loops the test starts outside the job (another
#      job, as far as the node knows) count in the node's load.
#   3. As root, case 1 again as user nobody, who cannot make cgroups: the
#      vnodes run uncapped and a vnode's load is the job's process trees
#      there, the copy's children included.
# Handshake: the children spin until a file exists; the test polls the job's
# view a bounded number of times (no time bound: each poll is one request),
# then creates the file and the job ends with its status.
BIN=$(cd "$1" && pwd)
source "$MOSIX_SOURCE_DIR/tests/integration/lib/common.sh"
set +e
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
BURNERS=()
JOBS=()
VIEW=""
trap 'touch "$TMP/release"; for p in "${BURNERS[@]}" "${JOBS[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait; rm -rf "$TMP"' EXIT

nodes_json() { "$BIN/mosixctl" ps --job "$1" --json 2>/dev/null | jq -c '.nodes'; }
# The node number of rank 0 of job JOB, once it runs.
copy_node() {
  "$BIN/mosixctl" ps --job "$1" --json 2>/dev/null |
    jq -r '(.guests[] | select(.rank == 0 and .state == "running") | .node) as $n | .nodes[] | select(.name == $n) | .node'
}
# Of node NUMBER (0 is the home node) in the nodes' JSON VIEW: the runnable
# tasks its load stands for (load * speed * cores), its load, its CPU use.
tasks_of() { jq -r ".[] | select(.node == $2) | .load * .speed * .cores" <<<"$1"; }
load_of() { jq -r ".[] | select(.node == $2) | .load" <<<"$1" | awk '{ printf "%.2f", $1 }'; }
cpu_of() { jq -r ".[] | select(.node == $2) | .cpu" <<<"$1"; }
# A >= B, to 0.01 (load * speed is a floating-point product).
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0.01 >= b + 0) }'; }

# Polls until node NUMBER of job JOB counts N runnable tasks and shows CPU
# use; at most 600 polls, while the job runs. Leaves the view in $VIEW.
wait_for_load() {
  local job=$1 node=$2 n=$3 i
  for ((i = 0; i < 600; i++)); do
    kill -0 "$job" 2>/dev/null || return 1
    VIEW=$(nodes_json "$job")
    if [[ -n $VIEW ]] && at_least "$(tasks_of "$VIEW" "$node")" "$n" &&
       at_least "$(cpu_of "$VIEW" "$node")" 0.05; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# 1 once `mosixctl ARGS...` lists node vnode$here with 5.99 or more in
# column COLUMN (3 tasks on 0.5 CPU), at most 100 tries; else 0.
shows_load() {
  local column=$1 i
  shift
  for ((i = 0; i < 100; i++)); do
    "$BIN/mosixctl" "$@" | awk -v n="vnode$here" -v c="$column" '$1 == n && $c + 0 >= 5.99 { k++ } END { exit !k }' &&
      { echo 1; return; }
    sleep 0.05
  done
  echo 0
}

spin='while [ ! -e "$0" ]; do :; done'

# Case 1's job, as the user running the test or, with AS=USER, as USER.
vcluster_job() {
  local dir=$1
  exec ${AS:+runuser -u "$AS" -- env XDG_RUNTIME_DIR="$dir/run" XDG_STATE_HOME="$dir/state"} \
    "$BIN/mosixrun" --vcluster 3 --vcluster-cpu 0.5,0.5,0.5 --migrate=off --spread off -np 1 \
    sh -c 'for i in 1 2 3; do sh -c "$1" "$0" & done; wait; echo released' "$dir/release" "$spin" \
    < /dev/null > "$dir/1.out" 2> "$dir/1.err"
}

# 1. A vnode's load: its cgroup's runnable tasks, the copy's children included.
vcluster_job "$TMP" &
job=$!
JOBS+=("$job")
wait_for "[[ -n \$(copy_node $job) ]] || ! kill -0 $job 2>/dev/null"
here=$(copy_node "$job")
if [[ -n $here ]] && wait_for_load "$job" "$here" 3; then
  pass "the load of the copy's node (vnode$here) counts its 3 busy children, and their CPU use"
  check_eq "vnode$here has 0.5 CPU" 0.50 "$(jq -r ".[] | select(.node == $here) | .speed * .cores" <<<"$VIEW" | awk '{ printf "%.2f", $1 }')"
  at_least "$(load_of "$VIEW" "$here")" 6
  check_eq "its load is per unit of speed (3 tasks on 0.5 CPU: 6 or more)" 0 "$?"
  for other in 0 1 2; do
    [[ $other == "$here" ]] && continue
    check_eq "vnode$other runs nothing: load 0" 0.00 "$(load_of "$VIEW" "$other")"
  done
  ps_text=$("$BIN/mosixctl" ps --job "$job")
  check_contains "mosixctl ps has a CPU column" "LOAD    CPU" "$ps_text"
  # Each command takes a sample of its own, which may fall between two of
  # the node's load reports: each is asked again (at most 100 times) until
  # it shows the load, as wait_for_load does.
  check_eq "mosixctl ps shows the load" 1 "$(shows_load 4 ps --job "$job")"
  mon_json=$("$BIN/mosixctl" mon --job "$job" --once --json)
  check_eq "mosixctl mon --json shows the load" true \
    "$(jq ".nodes[] | select(.node == $here) | .load * .speed * .cores >= 2.99" <<<"$mon_json")"
  check_eq "mosixctl mon shows the load" 1 "$(shows_load 5 mon --job "$job" --once)"
else
  fail "the copy's node (vnode$here) never counted its 3 busy children (last view: $VIEW)"
fi
touch "$TMP/release"
wait "$job"
check_eq "the job ends with its status once released" 0 "$?"
check_eq "the copy saw its children end" released "$(cat "$TMP/1.out")"
rm -f "$TMP/release"

# 2. A real node's load: the machine's run queue, other jobs included.
"$BIN/mosixrun" -np 1 sh -c 'while [ ! -e "$0" ]; do sleep 0.1; done; echo released' "$TMP/release" \
  < /dev/null > "$TMP/2.out" 2> "$TMP/2.err" &
job=$!
JOBS+=("$job")
for i in 1 2 3; do
  sh -c "$spin" "$TMP/release" &
  BURNERS+=("$!")
done
wait_for_load "$job" 0 3
check_eq "a real node's load counts 3 busy processes of no job" 0 "$?"
touch "$TMP/release"
wait "$job"
check_eq "the one-node job ends with its status" 0 "$?"
check_eq "the one-node job was released" released "$(cat "$TMP/2.out")"
# 3. No cgroup: the job's process trees.
if [[ $(id -u) == 0 ]] && command -v runuser > /dev/null && runuser -u nobody -- test -x "$BIN/mosixrun"; then
  NB=$(mktemp -d /tmp/mosix-load-nobody.XXXXXX)
  chmod 755 "$NB"
  mkdir -m 777 "$NB/out"
  mkdir -m 700 "$NB/out/run" "$NB/out/state"
  chown nobody "$NB/out/run" "$NB/out/state"
  AS=nobody vcluster_job "$NB/out" &
  job=$!
  JOBS+=("$job")
  ctl() { runuser -u nobody -- env XDG_RUNTIME_DIR="$NB/out/run" XDG_STATE_HOME="$NB/out/state" "$BIN/mosixctl" "$@"; }
  nodes_json() { ctl ps --json 2>/dev/null | jq -c '.nodes'; }
  copy_node() {
    ctl ps --json 2>/dev/null |
      jq -r '(.guests[] | select(.rank == 0 and .state == "running") | .node) as $n | .nodes[] | select(.name == $n) | .node'
  }
  VIEW=""
  wait_for "[[ -n \$(copy_node) ]] || ! kill -0 $job 2>/dev/null"
  here=$(copy_node)
  if [[ -n $here ]] && wait_for_load "$job" "$here" 3; then
    pass "uncapped, the load of the copy's node (vnode$here) counts its 3 busy children"
    check_contains "the vnodes ran uncapped" "uncapped" "$(cat "$NB/out/1.err")"
    for other in 0 1 2; do
      [[ $other == "$here" ]] && continue
      check_eq "uncapped, vnode$other runs nothing: load 0" 0.00 "$(load_of "$VIEW" "$other")"
    done
  else
    fail "uncapped, the copy's node (vnode$here) never counted its 3 busy children (last view: $VIEW; $(cat "$NB/out/1.err"))"
  fi
  touch "$NB/out/release"
  wait "$job"
  check_eq "the uncapped job ends with its status once released" 0 "$?"
  rm -rf "$NB"
else
  echo "skip: case 3 needs root, runuser and a build nobody can run"
fi
finish
