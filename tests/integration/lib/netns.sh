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
# docs/netns.md explains how it works and the MCA settings.
# NETNS_PREFIX (default mosixns) and NETNS_SUBNET (the first three octets of a
# private /24, default 10.213.0) may be set before sourcing.

NETNS_PREFIX=${NETNS_PREFIX:-mosixns}
NETNS_SUBNET=${NETNS_SUBNET:-10.213.0}
NETNS_BRIDGE=${NETNS_PREFIX}br
NETNS_NAMES=()
NETNS_DIR=
NETNS_AGENT=
NETNS_MPIRUN=()  # the whole mpirun command line, set by netns_up

netns_veth() { echo "${NETNS_PREFIX}v$1"; }

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
