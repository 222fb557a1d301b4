# MPI programs run by mosixrun as by mpirun (issue 14): each copy's MPI_Init
# reaches its node daemon's PMIx server and learns its rank, the world's
# size and where its peers run; the servers of a virtual cluster's nodes
# meet through the home node (fence). The output, sorted, is mpirun's: a
# collective (hello) and a ring passing 1 MiB blocks, on one node and on 3
# virtual nodes, where MPI sees one rank per node. MPI_Abort ends the job
# with its code and Open MPI's message; an MPI rank does not move, and
# mosixctl says why. --mpi none gives the old singletons.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
for tool in mosixrun mosixctl mpi_hello mpi_ring mpi_abort mpi_exit mpi_names mpi_stencil mpi_term; do
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

for np in 1 3; do
  want=$(mpirun --oversubscribe -np $np "$BIN/mpi_hello" | sort)
  rc=0
  got=$("$BIN/mosixrun" --oversubscribe -np $np "$BIN/mpi_hello" 2> "$TMP/err" | sort) || rc=$?
  check_eq "-np $np: mosixrun's output is mpirun's" "$want" "$got"
  check_eq "-np $np: exit status" 0 "$rc"
done
check_eq "mpirun really gave 3 ranks (the comparison means something)" \
  "rank 0 of 3 sum 3" "$(mpirun --oversubscribe -np 3 "$BIN/mpi_hello" | sort | head -1)"

# --mpi none: every copy starts alone, as before the PMIx server.
got=$("$BIN/mosixrun" --mpi none --oversubscribe -np 2 "$BIN/mpi_hello" 2> "$TMP/err" | sort)
check_eq "--mpi none: singletons" $'rank 0 of 1 sum 0\nrank 0 of 1 sum 0' "$got"

# Across nodes: a virtual cluster of 3, one rank on each node.
want=$(mpirun --oversubscribe -np 3 "$BIN/mpi_hello" | sort)
rc=0
got=$("$BIN/mosixrun" --vcluster 3 --map-by node -np 3 "$BIN/mpi_hello" 2> "$TMP/err" | sort) || rc=$?
check_eq "--vcluster 3: mosixrun's output is mpirun's" "$want" "$got"
check_eq "--vcluster 3: exit status" 0 "$rc"
got=$("$BIN/mosixrun" --vcluster 3 --map-by node -np 3 "$BIN/mpi_hello" local 2> "$TMP/err" | sort) || true
check_eq "--vcluster 3 --map-by node: MPI sees one rank on each node" \
  $'rank 0 local 1\nrank 1 local 1\nrank 2 local 1' "$got"
got=$("$BIN/mosixrun" --oversubscribe -np 3 "$BIN/mpi_hello" local 2> "$TMP/err" | sort) || true
check_eq "one node: MPI sees the 3 ranks on it" $'rank 0 local 3\nrank 1 local 3\nrank 2 local 3' "$got"
got=$("$BIN/mosixrun" --vcluster 2 --map-by slot --oversubscribe -np 4 "$BIN/mpi_hello" local 2> "$TMP/err" | sort) || true
check_eq "--vcluster 2 -np 4 by slot: two ranks on each node" \
  $'rank 0 local 2\nrank 1 local 2\nrank 2 local 2\nrank 3 local 2' "$got"

want=$(mpirun --oversubscribe -np 4 "$BIN/mpi_ring" | sort)
check_contains "mpirun's ring went round (the comparison means something)" "rank 0 of 4 token 6" "$want"
for where in "--oversubscribe" "--vcluster 3 --oversubscribe"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 4 "$BIN/mpi_ring" 2> "$TMP/err" | sort) || rc=$?
  check_eq "ring, $where: mosixrun's output is mpirun's" "$want" "$got"
  check_eq "ring, $where: exit status" 0 "$rc"
done

# A 2-D stencil with halo exchange over a 3x2 grid of ranks, the halos
# crossing 3 vnodes: the checksum is mpirun's to the last bit.
want=$(mpirun --oversubscribe -np 6 "$BIN/mpi_stencil" 2> /dev/null)
check_contains "mpirun's stencil ran on 3x2 ranks (the comparison means something)" "on 3x2 ranks: checksum" "$want"
for where in "--oversubscribe" "--vcluster 3 --oversubscribe"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 6 "$BIN/mpi_stencil" 2> "$TMP/err") || rc=$?
  check_eq "stencil, $where: mosixrun's checksum is mpirun's" "$want" "$got"
  check_eq "stencil, $where: exit status" 0 "$rc"
done

# MPI's name service (publish, lookup, unpublish): the names live at the home
# node, whichever node publishes or looks.
want=$(mpirun --oversubscribe -np 3 "$BIN/mpi_names" 2> /dev/null | sort)
check_contains "mpirun: rank 2 found rank 0's port (the comparison means something)" \
  "rank 2: mosix-ocean -> port-of-rank-0" "$want"
for where in "--oversubscribe" "--vcluster 3"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 3 "$BIN/mpi_names" 2> "$TMP/err" | sort) || rc=$?
  check_eq "names, $where: mosixrun's output is mpirun's" "$want" "$got"
  check_eq "names, $where: exit status" 0 "$rc"
done

# MPI_Abort in rank 2: the job ends with its code, and Open MPI's own message
# names the rank, as under mpirun.
rc=0
mpirun --oversubscribe -np 3 "$BIN/mpi_abort" > /dev/null 2> "$TMP/mpirun.err" || rc=$?
check_eq "mpirun: MPI_Abort(7) gives 7" 7 "$rc"
for where in "--oversubscribe" "--vcluster 3"; do
  rc=0
  "$BIN/mosixrun" $where -np 3 "$BIN/mpi_abort" > "$TMP/out" 2> "$TMP/err" || rc=$?
  check_eq "MPI_Abort, $where: exit status 7" 7 "$rc"
  check_contains "MPI_Abort, $where: the message names the rank" \
    "MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD" "$(cat "$TMP/err")"
  check_eq "MPI_Abort, $where: no rank got past the barrier" "" "$(cat "$TMP/out")"
done

# A rank that exits without MPI_Finalize while the others wait for it: the
# job ends by mpirun's rule (its code, or 1 for a 0), and says why.
for code in 0 3; do
  rc=0
  mpirun --oversubscribe -np 3 "$BIN/mpi_exit" $code > /dev/null 2>&1 || rc=$?
  want=$rc
  check_eq "mpirun: exit($code) without MPI_Finalize gives $((code ? code : 1))" $((code ? code : 1)) "$want"
  for where in "--oversubscribe" "--vcluster 3"; do
    rc=0
    "$BIN/mosixrun" $where -np 3 "$BIN/mpi_exit" $code > "$TMP/out" 2> "$TMP/err" || rc=$?
    check_eq "exit($code) without MPI_Finalize, $where: mpirun's status" "$want" "$rc"
    check_eq "... nobody passed the barrier" "" "$(cat "$TMP/out")"
    if ((code == 0)); then
      check_contains "... says why" "exited with status 0 without calling MPI_Finalize" "$(cat "$TMP/err")"
    fi
  done
done

# --bind-to auto (the default), as mpirun: an MPI job of 2 copies is bound to
# a core each (where the node has 2); of 3, and a program that is not MPI, not.
allowed='grep Cpus_allowed_list /proc/self/status | cut -f2'
if (($(nproc) >= 2)); then
  got=$("$BIN/mosixrun" --mpi pmix -np 2 sh -c "$allowed" | sort)
  check_eq "an MPI job of 2 copies: each bound to a core of its own" \
    "$(printf '%s\n' "$got" | grep -cxE '[0-9]+' | tr -d ' ')/$(printf '%s\n' "$got" | sort -u | wc -l)" "2/2"
  check_eq "... not with --bind-to none" 0 \
    "$("$BIN/mosixrun" --mpi pmix --bind-to none -np 2 sh -c "$allowed" | grep -cxE '[0-9]+' || true)"
  check_eq "... not for 3 copies (mpirun binds those to a package)" 0 \
    "$("$BIN/mosixrun" --mpi pmix --oversubscribe -np 3 sh -c "$allowed" | grep -cxE '[0-9]+' || true)"
  check_eq "... not for a program that is not MPI" 0 \
    "$("$BIN/mosixrun" -np 2 sh -c "$allowed" | grep -cxE '[0-9]+' || true)"
fi

# An MPI rank stays where it started: mosixctl ps says why, and migrate refuses.
mkfifo "$TMP/in"
"$BIN/mosixrun" --vcluster 2 --map-by node -np 2 "$BIN/mpi_ring" wait < "$TMP/in" > "$TMP/ring.out" 2> "$TMP/ring.err" &
job=$!
exec {feed}> "$TMP/in"
both_ready() { [[ $(grep -c ready "$TMP/ring.out") == 2 ]]; }
while kill -0 $job 2> /dev/null && ! both_ready; do sleep 0.05; done  # as long as the job runs
if both_ready; then
  check_contains "mosixctl ps: an MPI rank cannot move, and why" "cantmove: MPI peer connections" \
    "$("$BIN/mosixctl" ps --job $job 2>&1)"
  rc=0
  out=$("$BIN/mosixctl" migrate 1 vnode0 --job $job 2>&1) || rc=$?
  check_contains "mosixctl migrate refuses an MPI rank with the reason" "cannot move: MPI peer connections" "$out"
  [[ $rc != 0 ]] && pass "... and fails" || fail "... and fails: it succeeded"
else
  fail "the ring's ranks did not both get through MPI_Init: $(cat "$TMP/ring.err")"
fi
echo go >&$feed
exec {feed}>&-
rc=0
wait $job || rc=$?
check_eq "the ring ends well after the look" 0 "$rc"
check_eq "... and went round" $'rank 0 of 2 token 1\nrank 1 of 2 token 0' "$(grep token "$TMP/ring.out" | sort)"

# Ctrl-C at the terminal: SIGINT to the whole foreground group (here the
# group setsid gives mosixrun), the PMIx helper of a one-node job included.
# mosixrun ends the job with SIGTERM to the ranks; these catch it and
# finalize, which needs their PMIx server still there.
setsid "$BIN/mosixrun" -np 2 "$BIN/mpi_term" > "$TMP/term.out" 2> "$TMP/term.err" < /dev/null &
job=$!
both_ready() { [[ $(grep -c ready "$TMP/term.out") == 2 ]]; }
while kill -0 $job 2> /dev/null && ! both_ready; do sleep 0.05; done  # as long as the job runs
if both_ready && [[ $(ps -o pgid= -p $job | tr -d ' ') == "$job" ]]; then
  kill -INT -- -$job
  wait $job || true
  check_eq "Ctrl-C: both ranks finalize on the SIGTERM that follows" $'finalized 0\nfinalized 1' \
    "$(grep finalized "$TMP/term.out" | sort)"
  check_eq "... and nothing complains" "" "$(grep -v '^$' "$TMP/term.err")"
else
  kill -KILL $job 2> /dev/null
  fail "Ctrl-C: the job did not start in a process group of its own, or its ranks did not get ready: $(cat "$TMP/term.err")"
fi

rc=0
"$BIN/mosixrun" --mpi maybe -np 1 true 2> "$TMP/err" || rc=$?
check_eq "--mpi maybe: usage error" 2 "$rc"
check_contains "... names the choices" "use auto, pmix, pmi or none" "$(cat "$TMP/err")"

# The PMIx server's data stores, which its clients mmap, are on a memory
# file system, wherever the runtime directory is (here under /tmp, a disk on
# most machines): on a disk a busy machine stalled the helpers.
got=$("$BIN/mosixrun" --mpi pmix -np 1 sh -c 'stat -f -c %T "$PMIX_SERVER_TMPDIR"' 2> "$TMP/err") || true
check_eq "the PMIx server's files are on tmpfs" tmpfs "$got"

# More copies than cores on a node: Open MPI is told it is oversubscribed, as
# mpirun tells it (its waiting ranks then yield their core); the user's own
# setting stays.
got=$("$BIN/mosixrun" --mpi pmix --vcluster 2 --vcluster-cpu 1,1 -np 4 sh -c 'echo "o=$OMPI_MCA_mpi_oversubscribe"' \
  2> "$TMP/err" | sort -u)
check_eq "2 copies on a vnode of 1 CPU: OMPI_MCA_mpi_oversubscribe=1" "o=1" "$got"
got=$("$BIN/mosixrun" --mpi pmix --vcluster 2 --vcluster-cpu 1,1 -np 2 sh -c 'echo "o=$OMPI_MCA_mpi_oversubscribe"' \
  2> "$TMP/err" | sort -u)
check_eq "1 copy on a vnode of 1 CPU: not oversubscribed" "o=" "$got"
got=$("$BIN/mosixrun" --mpi pmix -x OMPI_MCA_mpi_oversubscribe=0 --vcluster 2 --vcluster-cpu 1,1 -np 4 \
  sh -c 'echo "o=$OMPI_MCA_mpi_oversubscribe"' 2> "$TMP/err" | sort -u)
check_eq "... the user's -x OMPI_MCA_mpi_oversubscribe stays" "o=0" "$got"

# A program that is not MPI is started as before: no PMIx variables.
got=$("$BIN/mosixrun" -np 1 sh -c 'env | grep -c "^PMIX_" || true')
check_eq "a program that is not MPI gets no PMIx environment" 0 "$got"

finish
