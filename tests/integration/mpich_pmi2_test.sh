# PMI-2's spawn and name service (issue 14), as MPICH's PMI-2 client asks for
# them (simple2pmi.c: PMI2_Job_Spawn, PMI2_Nameserv_*) and Hydra's and Slurm's
# pmi2 servers answer: a client of the wire protocol
# (lib/pmi2_spawn_client.py; Debian's MPICH speaks PMI-1 and cannot open an
# MPI port, so no real MPICH program can spawn here) spawns 2 copies of
# itself, on one node and on 3 vnodes (there on the node its host info key
# names). Each child speaks PMI-2, is told it was spawned (spawner-jobid, its
# parent's, and PMI_SPAWNED), gets its rank, size, own jobid, the parent's
# preput keys, the process mapping, the universe size and the wdir, and meets
# the other child at a fence. Bad spawns (a missing program, 0 copies, a
# malformed command, an unknown node) are answered rc != 0 with the reason,
# and the reason with the rank is on stderr. Names: publish, lookup, unpublish
# between two ranks (fences as the handshakes), a taken name and an unknown
# one refused.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
if [[ ! -x "$BIN/mosixrun" ]]; then
  echo "skip: mosixrun not built in $BIN"
  exit 77
fi
if ! command -v mpiexec.mpich > /dev/null || ! command -v python3 > /dev/null; then
  echo "skip: no MPICH (apt-get install mpich libmpich-dev) or no python3"
  exit 77
fi
client=$(cd "$(dirname "$0")/lib" && pwd)/pmi2_spawn_client.py
run() { "$BIN/mosixrun" --mpi pmi "$@" 2> "$TMP/err" | sort; }

wdir=$TMP/wdir
mkdir -p "$wdir"
child="PMI_SPAWNED 1, app 0, own job True, spawner is parent True, port tag#port;0\$, mapping (vector,(0,1,2)), universe 2, cwd $wdir"
want="child 0 of 2: $child, got from-1
child 1 of 2: $child, got from-0
parent 0: spawn rc=0 thrid 0x55 new jobid True nerrs 0
parent 1: not the root"
for where in "--oversubscribe" "--vcluster 3 --map-by node"; do
  host=()
  [[ $where == --vcluster* ]] && host=(vnode2)
  rc=0
  got=$(run $where -np 2 python3 "$client" spawn "$wdir" "${host[@]}") || rc=$?
  check_eq "PMI-2 spawn, $where: parent and children as MPICH's PMI-2 client sees them" "$want" "$got"
  check_eq "PMI-2 spawn, $where: exit status" 0 "$rc"

  rc=0
  got=$(run $where -np 2 python3 "$client" missing) || rc=$?
  check_eq "PMI-2 spawn of a missing program, $where: refused" \
    $'parent 0: spawn of a missing program: rc True, errmsg True\nparent 1: not the root' "$got"
  check_contains "PMI-2 spawn of a missing program, $where: the reason, with the rank" \
    "rank 0: MPI_Comm_spawn: program '/nonexistent/mosix-no-such-program' not found" "$(cat "$TMP/err")"
  check_eq "PMI-2 spawn of a missing program, $where: the job ends well" 0 "$rc"

  got=$(run $where -np 2 python3 "$client" names) || true
  check_eq "PMI-2 names, $where: publish, lookup, unpublish between two ranks" \
    "rank 0: unpublish mosix-svc: rc 0
rank 1: lookup after unpublish: rc True, port None
rank 1: lookup mosix-svc: port;of-0 found TRUE
rank 1: lookup mosix-unknown: rc True, found FALSE, errmsg no name mosix-unknown is published
rank 1: publish of a taken name: rc True, errmsg name mosix-svc is published already" "$got"
done

# Malformed spawns and frames: answered (no hang), the link still serves.
got=$(run --oversubscribe -np 2 python3 "$client" bad) || true
check_eq "PMI-2 bad spawns: each answered rc != 0 with its reason" \
  "parent 0: a frame that is no command: spawn-response rc True
parent 0: spawn of 0 copies: rc True, errmsg PMI-2 spawn: command 1: asks for 0 copies
parent 0: spawn of 2 commands with 1: rc True, errmsg PMI-2 spawn: ncmds=2 but 1 commands (subcmd) follow
parent 0: still served: True
parent 1: not the root" "$got"
check_contains "PMI-2 bad spawns: stderr names the rank and the reason" \
  "rank 0: MPI_Comm_spawn: PMI-2 spawn: command 1: asks for 0 copies" "$(cat "$TMP/err")"

# A host the job does not have: the home node's placement refuses it.
got=$(run --vcluster 3 --map-by node -np 2 python3 "$client" spawn "$wdir" vnode7) || true
check_eq "PMI-2 spawn on an unknown node: refused" \
  $'parent 0: spawn rc=-1 thrid 0x55 new jobid False nerrs None\nparent 1: not the root' "$got"
check_contains "PMI-2 spawn on an unknown node: the reason" "rank 0: MPI_Comm_spawn: no node named 'vnode7'" \
  "$(cat "$TMP/err")"

finish
