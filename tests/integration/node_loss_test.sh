# A node daemon killed during a job: the home reports which node died and
# which ranks were lost with it, the job ends by mpirun's rule, and no guest
# is left behind on any node.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

"$BIN/mosixrun" --vcluster 2 --map-by node -np 4 sh -c \
  'echo "$$ $MOSIX_NODE" > '"$TMP"'/guest.$MOSIX_RANK; exec sleep 1000' 2> "$TMP/err" &
job=$!
wait_for '[ "$(ls "$TMP"/guest.* 2>/dev/null | wc -l)" = 4 ]'

# The daemon of vnode1 is the mosixd whose MPI rank is 1.
victim=""
for pid in $(pgrep -x mosixd); do
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--job $job " || continue
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$pid; fi
done
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
finish
