# MPICH programs under mosixrun (issue 14): the node daemon serves each MPICH
# copy PMI-1 over PMI_FD, as Hydra's mpiexec does, and the daemons of a
# virtual cluster meet through the home node for each barrier's key-value
# exchange. hello (a collective) and ring (1 MiB blocks between neighbours),
# built with mpicc.mpich, print what `mpiexec.mpich` prints for the same
# binary (sorted), on one node and on 3 virtual nodes; MPI_Abort ends the job
# with its code. An MPICH copy is told from an Open MPI one by the library it
# links, and gets no PMIx variables.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
for tool in mosixrun mpich_mpi_hello mpich_mpi_ring mpich_mpi_abort; do
  if [[ ! -x "$BIN/$tool" ]]; then
    echo "skip: $tool not built in $BIN (no mpicc.mpich: apt-get install libmpich-dev mpich)"
    exit 77
  fi
done
if ! command -v mpiexec.mpich > /dev/null; then
  echo "skip: no mpiexec.mpich to compare with"
  exit 77
fi
hello=$BIN/mpich_mpi_hello ring=$BIN/mpich_mpi_ring

want=$(mpiexec.mpich -n 4 "$hello" | sort)
check_eq "mpiexec.mpich really gave 4 ranks (the comparison means something)" \
  "rank 0 of 4 sum 6" "$(head -1 <<< "$want")"
for where in "--oversubscribe" "--vcluster 3 --oversubscribe"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 4 "$hello" 2> "$TMP/err" | sort) || rc=$?
  check_eq "hello, $where: mosixrun's output is mpiexec.mpich's" "$want" "$got"
  check_eq "hello, $where: exit status" 0 "$rc"
done

want=$(mpiexec.mpich -n 4 "$ring" | sort)
check_contains "mpiexec.mpich's ring went round (the comparison means something)" "rank 0 of 4 token 6" "$want"
for where in "--oversubscribe" "--vcluster 3 --oversubscribe"; do
  rc=0
  got=$("$BIN/mosixrun" $where -np 4 "$ring" 2> "$TMP/err" | sort) || rc=$?
  check_eq "ring, $where: mosixrun's output is mpiexec.mpich's" "$want" "$got"
  check_eq "ring, $where: exit status" 0 "$rc"
done

# MPICH sees which ranks share a node (PMI_process_mapping): 2 on each of 2
# vnodes by slot, all 3 on one node.
got=$("$BIN/mosixrun" --vcluster 2 --map-by slot --oversubscribe -np 4 "$hello" local 2> "$TMP/err" | sort) || true
check_eq "--vcluster 2 -np 4 by slot: MPICH sees two ranks on each node" \
  $'rank 0 local 2\nrank 1 local 2\nrank 2 local 2\nrank 3 local 2' "$got"
got=$("$BIN/mosixrun" --oversubscribe -np 3 "$hello" local 2> "$TMP/err" | sort) || true
check_eq "one node: MPICH sees the 3 ranks on it" $'rank 0 local 3\nrank 1 local 3\nrank 2 local 3' "$got"

# MPI_Abort(comm, 7) in rank 2: MPICH prints its message and waits to be
# ended, as Hydra ends it; the job ends with 7, as under mpiexec.mpich.
rc=0
timeout 120 mpiexec.mpich -n 3 "$BIN/mpich_mpi_abort" > /dev/null 2>&1 || rc=$?
check_eq "mpiexec.mpich: MPI_Abort(comm, 7) ends the job with 7 (the comparison means something)" 7 "$rc"
for where in "--oversubscribe" "--vcluster 3"; do
  rc=0
  "$BIN/mosixrun" $where -np 3 "$BIN/mpich_mpi_abort" > /dev/null 2> "$TMP/err" || rc=$?
  check_eq "abort, $where: the job ends with MPI_Abort's 7" 7 "$rc"
  check_contains "abort, $where: MPICH's message names the rank" "rank 2 in comm 0" "$(cat "$TMP/err")"
done

# PMI-2 (what MPICH built --with-pmi=pmi2 and Slurm's pmi2 plugin speak;
# Debian's MPICH speaks PMI-1 only): a client of its wire protocol
# (lib/pmi2_client.py) puts a key, fences, and reads its neighbour's, on one
# node and across 2 vnodes.
if command -v python3 > /dev/null; then
  client=$(dirname "$0")/lib/pmi2_client.py
  got=$("$BIN/mosixrun" --mpi pmi --oversubscribe -np 3 python3 "$client" 2> "$TMP/err" | sort) || true
  check_eq "PMI-2, one node: each rank reads its neighbour's key after the fence" \
    $'rank 0 of 3: got from-1 mapping (vector,(0,1,3))\nrank 1 of 3: got from-2 mapping (vector,(0,1,3))\nrank 2 of 3: got from-0 mapping (vector,(0,1,3))' \
    "$got"
  got=$("$BIN/mosixrun" --mpi pmi --vcluster 2 --map-by node -np 4 python3 "$client" 2> "$TMP/err" | sort) || true
  check_eq "PMI-2, --vcluster 2: the fence carries the keys across nodes" \
    $'rank 0 of 4: got from-1 mapping (vector,(0,2,1),(0,2,1))\nrank 1 of 4: got from-2 mapping (vector,(0,2,1),(0,2,1))\nrank 2 of 4: got from-3 mapping (vector,(0,2,1),(0,2,1))\nrank 3 of 4: got from-0 mapping (vector,(0,2,1),(0,2,1))' \
    "$got"

  # MPI_Comm_spawn as MPICH's PMI-1 client asks for it (lib/pmi1_spawn_client.py:
  # Debian's MPICH cannot open an MPI port, so even under Hydra no real MPICH
  # program can spawn here): rank 0 spawns 2 + 1 copies of the client (two
  # apps); the children are a world of their own (kvsname, size, app numbers,
  # barrier) whose space starts with the parent's PARENT_ROOT_PORT_NAME; on
  # one node and over 3 vnodes. A missing program: spawn_result rc != 0.
  client=$(dirname "$0")/lib/pmi1_spawn_client.py
  want="child 0 of 3: app 0 first, own world True, parent port port-of-parents, mapping rc 0, got from-1
child 1 of 3: app 0 first, own world True, parent port port-of-parents, mapping rc 0, got from-2
child 2 of 3: app 1 second, own world True, parent port port-of-parents, mapping rc 0, got from-0
parent 0: spawn rc=0
parent 1: not the root"
  for where in "--oversubscribe" "--vcluster 3 --map-by node"; do
    rc=0
    got=$("$BIN/mosixrun" --mpi pmi $where -np 2 python3 "$client" 2> "$TMP/err" | sort) || rc=$?
    check_eq "PMI-1 spawn, $where: parents and children as MPICH's PMI sees them" "$want" "$got"
    check_eq "PMI-1 spawn, $where: exit status" 0 "$rc"
    rc=0
    got=$("$BIN/mosixrun" --mpi pmi $where -np 2 python3 "$client" missing 2> "$TMP/err" | sort) || rc=$?
    check_eq "PMI-1 spawn of a missing program, $where: refused" \
      $'parent 0: spawn of a missing program failed, as it should\nparent 1: not the root' "$got"
    check_contains "PMI-1 spawn of a missing program, $where: the reason" "mosix-no-such-program' not found" \
      "$(cat "$TMP/err")"
  done
fi

# The copy's environment: PMI's, not PMIx's (no helper was started for it).
got=$("$BIN/mosixrun" --mpi pmi -np 2 sh -c 'echo "$PMI_RANK/$PMI_SIZE fd=${PMI_FD:+set} pmix=${PMIX_SERVER_URI4:-none}"' \
  2> "$TMP/err" | sort)
check_eq "--mpi pmi: PMI_RANK, PMI_SIZE and PMI_FD, no PMIx server" $'0/2 fd=set pmix=none\n1/2 fd=set pmix=none' "$got"

# Each MPICH copy has a session of its own, as Hydra gives each rank (with
# the kernel's autogroup scheduling, ranks that share one session share one
# session's CPU: MPICH ran at half Hydra's speed on a busy machine).
got=$("$BIN/mosixrun" --mpi pmi -np 2 sh -c 'ps -o pid=,sid= -p $$' 2> "$TMP/err" | awk '$1 == $2' | wc -l)
check_eq "--mpi pmi: each copy leads its own session" 2 "$got"

# --mpi none: every copy starts alone, as a singleton.
got=$("$BIN/mosixrun" --mpi none --oversubscribe -np 2 "$hello" 2> "$TMP/err" | sort)
check_eq "--mpi none: singletons" $'rank 0 of 1 sum 0\nrank 0 of 1 sum 0' "$got"

finish
