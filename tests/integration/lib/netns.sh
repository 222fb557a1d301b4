# Network namespaces as cluster nodes, for tests that need MPI traffic to
# cross a real interface (root only). Source this file, then:
#   netns_up K         K namespaces ${NETNS_PREFIX}0.. joined by veth pairs to
#                      a bridge in the root namespace, addresses
#                      ${NETNS_SUBNET}.1.. (the bridge is ${NETNS_SUBNET}.254),
#                      loopback up; writes the rsh agent for mpirun
#   netns_mpirun ARGS  mpirun from the root namespace with one process in each
#                      namespace: ARGS are further mpirun options, then the
#                      program and its arguments; the command line itself is
#                      in the array NETNS_MPIRUN (e.g. for timeout)
#   netns_bytes I rx|tx  bytes the root end of namespace I's veth received or
#                      sent (what namespace I sent, or was sent)
#   netns_down         removes all of it; safe to call twice (use it in a trap)
#   netns_test_start   the checks, lock and work directory of a mosixrun test
#   netns_mosixrun_up K  netns_up K and the environment mosixrun needs there
# docs/netns.md explains how it works and the MCA settings.
# NETNS_PREFIX (default mosixns) and NETNS_SUBNET (the first three octets of a
# private /24, default 10.213.0) may be set before sourcing. NETNS_PIDNS=1
# before netns_up gives each namespace's processes a pid namespace (and /proc)
# of their own too, so that a pid means different processes on different
# nodes, as on separate hosts.

NETNS_PREFIX=${NETNS_PREFIX:-mosixns}
NETNS_SUBNET=${NETNS_SUBNET:-10.213.0}
NETNS_BRIDGE=${NETNS_PREFIX}br
NETNS_NAMES=()
NETNS_DIR=
NETNS_AGENT=
NETNS_MPIRUN=()  # the whole mpirun command line, set by netns_up

netns_veth() { echo "${NETNS_PREFIX}v$1"; }

# netns_test_start NAME "TOOLS" "PROGS": the start of a test of ours that
# runs mosixrun across namespaces (its BIN_DIR in $bin). Exits 77 (skipped)
# when not root or one of TOOLS is missing, 1 when one of PROGS is not built
# in $bin (made absolute). Then takes the host's lock (one run at a time:
# the names and the subnet are fixed; namespaces of ours still there were
# left by a killed run), makes $work (removed, with the namespaces, on exit)
# and defines fail, ok, show and $failures.
netns_test_start() {
  local name=$1 tools=$2 progs=$3 tool prog
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: $name needs root to make namespaces"
    exit 77
  fi
  for tool in $tools; do
    if ! command -v "$tool" >/dev/null; then
      echo "SKIP: $tool not found"
      exit 77
    fi
  done
  bin=$(cd "$bin" && pwd)
  for prog in $progs; do
    if [ ! -x "$bin/$prog" ]; then
      echo "FAIL: $bin/$prog not built"
      exit 1
    fi
  done
  exec 9>/run/lock/mosix-netns.lock
  flock 9
  netns_down
  work=$(mktemp -d "${TMPDIR:-/tmp}/mosix-$name.XXXXXX")
  chmod 755 "$work"
  trap 'netns_down; rm -rf "$work"' EXIT
  trap 'exit 130' INT TERM HUP
  failures=0
}
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
show() { sed 's/^/    /' "$@" | head -40; }

# netns_mosixrun_up K: netns_up K (the test ends with exit 1 if it cannot),
# then mpirun's settings for the namespaces (docs/netns.md) in the
# environment mosixrun hands to mpirun, and the job's socket and state in
# $work, which every namespace sees (they share the mount namespace).
netns_mosixrun_up() {
  if ! netns_up "$1"; then
    echo "FAIL: cannot bring up the namespaces"
    exit 1
  fi
  export OMPI_MCA_plm_rsh_agent=$NETNS_AGENT OMPI_MCA_plm_rsh_no_tree_spawn=1
  export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,tcp
  export OMPI_MCA_oob_tcp_if_include=$NETNS_SUBNET.0/24 OMPI_MCA_btl_tcp_if_include=$NETNS_SUBNET.0/24
  export XDG_RUNTIME_DIR=$work/run XDG_STATE_HOME=$work/state
  mkdir -p "$XDG_RUNTIME_DIR" "$XDG_STATE_HOME"
  chmod 700 "$XDG_RUNTIME_DIR"
}

netns_bytes() {
  cat "/sys/class/net/$(netns_veth "$1")/statistics/$2_bytes"
}

netns_up() {
  local k=${1:?usage: netns_up K}
  if [ "$(id -u)" != 0 ]; then
    echo "netns_up: network namespaces need root" >&2
    return 1
  fi
  if ! [[ $k =~ ^[0-9]+$ ]] || ((k < 1 || k > 250)); then
    echo "netns_up: K must be 1 to 250, not '$k'" >&2
    return 1
  fi
  if ip link show "$NETNS_BRIDGE" >/dev/null 2>&1 || [ -e "/run/netns/${NETNS_PREFIX}0" ]; then
    echo "netns_up: $NETNS_BRIDGE or ${NETNS_PREFIX}0 exists already: another run is using them" \
      "(or left them: remove them with netns_down, or set NETNS_PREFIX and NETNS_SUBNET)" >&2
    return 1
  fi
  NETNS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mosix-netns.XXXXXX") || return 1
  NETNS_AGENT=$NETNS_DIR/rsh_agent
  # mpirun runs "AGENT HOST COMMAND..." as it would run ssh; COMMAND is a
  # shell command line (it sets PATH and then starts orted). Each namespace
  # also gets its own UTS namespace with the host name HOST: Open MPI names
  # its session directory (/tmp/ompi.HOSTNAME.UID) by the host name, and
  # orteds of one job sharing it race on its files (hwloc.sm) and crash.
  cat >"$NETNS_AGENT" <<'AGENT'
#!/bin/sh
# mpirun puts its ssh options (plm_rsh_args, e.g. -o BatchMode=yes) before
# the host; they mean nothing here.
while [ $# -gt 0 ]; do
  case $1 in
    -o | -p | -l | -i | -F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host=$1
shift
if [ ! -e "/run/netns/$host" ]; then
  echo "netns rsh agent: no network namespace named '$host'" >&2
  exit 255
fi
exec ip netns exec "$host" unshare --uts /bin/sh -c 'hostname "$1" && exec /bin/sh -c "$2"' \
  sh "$host" "$*"
AGENT
  if [ "${NETNS_PIDNS:-0}" = 1 ]; then
    sed -i 's/unshare --uts /unshare --uts --pid --fork --mount-proc /' "$NETNS_AGENT"
    # orted --daemonize would leave the namespace's first process, which
    # ends it and everything in it: orted stays attached to the agent.
    export OMPI_MCA_orte_leave_session_attached=1
  fi
  chmod 755 "$NETNS_AGENT"

  ip link add "$NETNS_BRIDGE" type bridge &&
    ip addr add "$NETNS_SUBNET.254/24" dev "$NETNS_BRIDGE" &&
    ip link set "$NETNS_BRIDGE" up || { netns_down; return 1; }
  local i ns veth
  for ((i = 0; i < k; i++)); do
    ns=$NETNS_PREFIX$i
    veth=$(netns_veth $i)
    NETNS_NAMES+=("$ns")
    ip netns add "$ns" &&
      ip link add "$veth" type veth peer name eth0 netns "$ns" &&
      ip link set "$veth" master "$NETNS_BRIDGE" up &&
      ip -n "$ns" addr add "$NETNS_SUBNET.$((i + 1))/24" dev eth0 &&
      ip -n "$ns" link set eth0 up &&
      ip -n "$ns" link set lo up || { echo "netns_up: cannot set up $ns" >&2; netns_down; return 1; }
  done
  local hosts
  hosts=$(IFS=,; echo "${NETNS_NAMES[*]}")
  NETNS_MPIRUN=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    mpirun --mca plm_rsh_agent "$NETNS_AGENT" --mca plm_rsh_no_tree_spawn 1
    --mca pml ob1 --mca btl self,tcp
    --mca oob_tcp_if_include "$NETNS_SUBNET.0/24" --mca btl_tcp_if_include "$NETNS_SUBNET.0/24"
    --host "$hosts" -np "$k")
}

netns_mpirun() {
  if ((${#NETNS_MPIRUN[@]} == 0)); then
    echo "netns_mpirun: call netns_up first" >&2
    return 1
  fi
  "${NETNS_MPIRUN[@]}" "$@"
}

netns_down() {
  # The veth pairs go first: deleting a namespace deletes its pair only
  # later (the kernel cleans namespaces up asynchronously), and a next
  # netns_up needs the names free.
  local link ns
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
    grep -E "^${NETNS_PREFIX}v[0-9]+\$"); do
    ip link del "$link" 2>/dev/null
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${NETNS_PREFIX}[0-9]+\$"); do
    ip netns del "$ns" 2>/dev/null
  done
  ip link del "$NETNS_BRIDGE" 2>/dev/null
  if [ -n "$NETNS_DIR" ]; then rm -rf "$NETNS_DIR"; fi
  NETNS_NAMES=()
  NETNS_DIR=
  NETNS_AGENT=
  NETNS_MPIRUN=()
  return 0
}
