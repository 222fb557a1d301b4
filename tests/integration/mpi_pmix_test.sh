# An MPI program run by mosixrun as by mpirun (issue 14, one node): each
# copy's MPI_Init reaches the node daemon's PMIx server and learns its rank
# and the world's size; a collective across them checks that all took part.
# The output, sorted, is mpirun's. --mpi none gives the old singletons; an
# MPI job across nodes is refused with the reason (not wired up yet).
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
for tool in mosixrun mpi_hello; do
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

# Across nodes: refused before anything starts, with the reason and the way out.
rc=0
"$BIN/mosixrun" --vcluster 2 -np 2 "$BIN/mpi_hello" > "$TMP/out" 2> "$TMP/err" || rc=$?
check_eq "an MPI job across nodes: usage error" 2 "$rc"
check_contains "... says why" "on one node only for now" "$(cat "$TMP/err")"
check_contains "... and what to do" "--mpi none" "$(cat "$TMP/err")"
check_eq "... nothing ran" "" "$(cat "$TMP/out")"

rc=0
"$BIN/mosixrun" --mpi maybe -np 1 true 2> "$TMP/err" || rc=$?
check_eq "--mpi maybe: usage error" 2 "$rc"
check_contains "... names the choices" "use auto, pmix or none" "$(cat "$TMP/err")"

# A program that is not MPI is started as before: no PMIx variables.
got=$("$BIN/mosixrun" -np 1 sh -c 'env | grep -c "^PMIX_" || true')
check_eq "a program that is not MPI gets no PMIx environment" 0 "$got"

finish
