# MPI_Comm_spawn of an Open MPI program under mosixrun (issue 14): the
# parents' PMIx server asks the home node, which places the children with
# our placement, gives them a PMIx namespace of their own on every node that
# takes part and starts them as MPI copies; parents and children connect and
# talk over the intercommunicator. The output, sorted, is mpirun's, on one
# node and on 3 virtual nodes; the children's exit statuses count in the exit
# rule; a program that does not exist makes MPI_Comm_spawn return an error
# (mpirun ends the whole job instead), it does not hang.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
for tool in mosixrun mosixctl mpi_spawn mpi_spawn_multiple; do
  if [[ ! -x "$BIN/$tool" ]]; then
    echo "skip: $tool not built in $BIN (MOSIX_MPI=OFF?)"
    exit 77
  fi
done
if ! command -v mpirun > /dev/null; then
  echo "skip: no mpirun to compare with"
  exit 77
fi
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

# 2 parents spawn 3 children: every child sends its rank to every parent
# (sum 0+1+2 = 3), every parent its rank + 1 to every child (sum 1+2 = 3).
# mpirun is the reference: its failure is reported, not a silent end (set -e).
want=$(mpirun --oversubscribe -np 2 "$BIN/mpi_spawn" 3 2> "$TMP/mpirun.err" | sort) ||
  fail "mpirun -np 2 mpi_spawn 3 failed: $(tail -5 "$TMP/mpirun.err")"
check_contains "mpirun spawned 3 children (the comparison means something)" \
  "child 2 of 3: 2 parents sent sum 3 (ok)" "$want"
check_contains "mpirun's parents heard from the 3" "parent 1 of 2: 3 children sent sum 3 (ok)" "$want"
for where in "--oversubscribe" "--vcluster 3 --oversubscribe" "--vcluster 3 --map-by node"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 2 "$BIN/mpi_spawn" 3 2> "$TMP/err" | sort) || rc=$?
  check_eq "$where: mosixrun's output is mpirun's" "$want" "$got"
  check_eq "$where: exit status" 0 "$rc"
done

# --tag-output: the children's lines are tagged as mpirun tags them ([2,R]: job 2, their own rank).
want=$(mpirun --oversubscribe --tag-output -np 2 "$BIN/mpi_spawn" 2 2> "$TMP/mpirun.err" | sort) ||
  fail "mpirun --tag-output -np 2 mpi_spawn 2 failed: $(tail -5 "$TMP/mpirun.err")"
check_contains "mpirun tags a child [2,1] (the comparison means something)" "[2,1]<stdout>:child 1 of 2" "$want"
got=$("$BIN/mosixrun" --vcluster 3 --oversubscribe --tag-output -np 2 "$BIN/mpi_spawn" 2 2> "$TMP/err" | sort)
check_eq "--tag-output: mosixrun's tags are mpirun's" "$want" "$got"

# The children go where our placement puts them: with one parent on each of
# vnode0 and vnode1, the least loaded node, vnode2, gets the first child, a
# node that runs no parent (its PMIx server starts for the children).
rc=0
got=$(MOSIX_LOG=debug "$BIN/mosixrun" --vcluster 3 --map-by node -np 2 "$BIN/mpi_spawn" 4 2> "$TMP/err" | sort) ||
  rc=$?
check_eq "4 children over 3 vnodes: exit status" 0 "$rc"
check_contains "4 children: the last one checked its sums" "child 3 of 4: 2 parents sent sum 3 (ok)" "$got"
check_contains "the first child went to vnode2, which runs no parent" \
  "rank 0 spawns MPI rank 2 (mosix." "$(grep -- '-> node 2' "$TMP/err" || true)"

# Two children on each of 2 vnodes: each child's shared-memory segment is
# its own node's (Open MPI passes the parent's OMPI_MCA_* to its children; the
# parent node's folder made children of two vnodes share segments of one
# name, and they crashed).
want4="child 0 of 4: 2 parents sent sum 3 (ok)
child 1 of 4: 2 parents sent sum 3 (ok)
child 2 of 4: 2 parents sent sum 3 (ok)
child 3 of 4: 2 parents sent sum 3 (ok)
parent 0 of 2: 4 children sent sum 6 (ok)
parent 1 of 2: 4 children sent sum 6 (ok)"
rc=0
got=$("$BIN/mosixrun" --vcluster 2 --map-by node -np 2 "$BIN/mpi_spawn" 4 2> "$TMP/err" | sort) || rc=$?
check_eq "2 children on each of 2 vnodes: every sum right" "$want4" "$got"
check_eq "2 children on each of 2 vnodes: exit status" 0 "$rc"

# Spawned MPI ranks stay where they are, as the job's own: mosixctl ps says
# why, and mosixctl migrate refuses. The children wait for a file (the test's
# handshake) before they end.
"$BIN/mosixrun" --vcluster 2 -np 1 "$BIN/mpi_spawn" 2 wait "$TMP/go" > "$TMP/waiting.out" 2> "$TMP/err" &
job_pid=$!  # mosixrun's pid is its job's id
# Should this script end before the children do, their job goes with it.
trap 'kill "$job_pid" 2> /dev/null; rm -rf "$TMP" ${MOSIX_TEST_CLEANUP:-}' EXIT
three_cantmove() {  # all three started, and each says why it stays
  local ps
  ps=$("$BIN/mosixctl" ps --job "$job_pid" 2> /dev/null) || return 1
  (($(grep -c "cantmove: MPI peer connections" <<< "$ps") == 3 && $(grep -c " running " <<< "$ps") == 3))
}
if wait_for three_cantmove; then
  pass "mosixctl ps: the parent and both children: cantmove: MPI peer connections"
  check_contains "mosixctl migrate refuses a spawned child" "rank 2 cannot move: MPI peer connections" \
    "$("$BIN/mosixctl" migrate --job "$job_pid" 2 vnode1 2>&1 || true)"
else
  fail "mosixctl ps never showed 3 MPI ranks: $("$BIN/mosixctl" ps --job "$job_pid" 2>&1 || true)"
fi
touch "$TMP/go"
rc=0
wait "$job_pid" || rc=$?
trap 'rm -rf "$TMP" ${MOSIX_TEST_CLEANUP:-}' EXIT
check_eq "the waiting children ended: exit status" 0 "$rc"

# MPI_Comm_spawn_multiple (two apps: PMIx app numbers), twice in a job, and
# a child that spawns a grandchild (a namespace whose parent is spawned).
# What mpirun prints for it, sorted; written here, not run each time:
# mpirun's own grandchild sometimes hangs in PMIx_Init (caught in 1 of 9
# runs on a loaded machine, its parents in MPI_Comm_spawn and disconnect).
want="child 0 of 1: app 0 (grandchild)
child 0 of 3: app 0 first
child 0 of 3: app 0 first
child 1 got 0 from its grandchild
child 1 of 3: app 1 nest
child 1 of 3: app 1 second
child 2 of 3: app 1 nest
child 2 of 3: app 1 second
round 0: the parent got sum 3 from 3 children (ok)
round 1: the parent got sum 3 from 3 children (ok)"
for where in "" "--vcluster 3"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 1 "$BIN/mpi_spawn_multiple" 2> "$TMP/err" | sort) || rc=$?
  check_eq "spawn_multiple, twice, nested, ${where:-one node}: mosixrun's output is mpirun's" "$want" "$got"
  check_eq "spawn_multiple, twice, nested, ${where:-one node}: exit status" 0 "$rc"
done

# Children that exit with 7 after MPI_Finalize: the job's status is 7, as
# mpirun's.
want_rc=0
mpirun --oversubscribe -np 2 "$BIN/mpi_spawn" 2 exit7 > /dev/null 2>&1 || want_rc=$?
check_eq "mpirun: a child's status 7 is the job's" 7 "$want_rc"
for where in "--oversubscribe" "--vcluster 3"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 2 "$BIN/mpi_spawn" 2 exit7 2> "$TMP/err" | sort) || rc=$?
  check_eq "$where: a child's status 7 is the job's" "$want_rc" "$rc"
  check_contains "$where: the children ran before they exited 7" "child 1 of 2: 2 parents sent sum 3 (ok)" "$got"
done

# A program that does not exist: MPI_Comm_spawn returns an error, which the
# parent reports, and the job ends normally. (Open MPI 4.1's other parents
# would wait in MPI_Comm_spawn for their root: one parent.)
for where in "" "--vcluster 3"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 1 "$BIN/mpi_spawn" missing 2> "$TMP/err") || rc=$?
  check_eq "missing program ${where:-one node}: MPI_Comm_spawn returned an error" \
    "parent 0 of 1: spawn of a missing program failed, as it should" "$got"
  check_eq "missing program ${where:-one node}: exit status" 0 "$rc"
  check_contains "missing program ${where:-one node}: the reason is given" \
    "/nonexistent/mosix-no-such-program' not found" "$(cat "$TMP/err")"
done

finish
