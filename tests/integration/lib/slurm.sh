# A real Slurm (22.05) on this one machine for the tests: munged, one
# slurmctld and two slurmd named n1 and n2, both on this host (Debian's slurmd
# runs several per host: NodeHostname=localhost with a Port= each, started as
# `slurmd -N NAME`). Root only. Source it; every function is idempotent.
#
#   slurm_skip_reason      prints why Slurm cannot run here (and returns 0), or returns 1
#   slurm_up               munged, slurmctld, slurmd n1 and n2; waits until both nodes are idle
#   slurm_down             stops the daemons slurm_up started (munged only if it started it)
#
# Everything lives in $MOSIX_SLURM_DIR (default /tmp/mosix-slurm): slurm.conf,
# state, spool, pid files, logs. SLURM_CONF is exported so sbatch, srun,
# salloc, sinfo and scontrol talk to this cluster. Ports 16817 (slurmctld),
# 16818 (n1) and 16819 (n2) on 127.0.0.1; MOSIX_SLURM_PORT moves all three.
# No /etc/hosts entry is needed: the nodes' NodeAddr is 127.0.0.1, and
# srun and mpirun reach them through slurmctld.

MOSIX_SLURM_DIR=${MOSIX_SLURM_DIR:-/tmp/mosix-slurm}
MOSIX_SLURM_PORT=${MOSIX_SLURM_PORT:-16817}
MOSIX_SLURM_NODES=(n1 n2)
export SLURM_CONF="$MOSIX_SLURM_DIR/slurm.conf"

slurm_skip_reason() {
  local cmd
  if [[ $(id -u) != 0 ]]; then
    echo "not root: a test Slurm needs root (munged key, slurmd as root)"
    return 0
  fi
  for cmd in munged munge unmunge slurmctld slurmd sbatch srun salloc sinfo scontrol; do
    if ! command -v "$cmd" > /dev/null; then
      echo "$cmd not found: install the Debian packages slurm-wlm and munge (scripts/setup does)"
      return 0
    fi
  done
  return 1
}

# Polls COMMAND until it succeeds; gives up after about a minute of tries.
_slurm_wait() {
  local i
  for ((i = 0; i < 600; i++)); do
    if eval "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# PID runs (a zombie does not: daemons that double-fork may end up children
# of an init that is slow to reap them).
_slurm_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2> /dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

_slurm_pid_alive() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(< "$1")
  [[ $pid =~ ^[0-9]+$ ]] && _slurm_running "$pid"
}

_slurm_log_tail() {
  local f
  for f in "$MOSIX_SLURM_DIR"/log/*.log; do
    [[ -f $f ]] || continue
    echo "--- $f" >&2
    tail -n 15 "$f" >&2
  done
}

# munged with a key in /etc/munge/munge.key (0400, owned by munge). A munged
# that already answers is used as it is.
slurm_munge_up() {
  if munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then return 0; fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  if ! runuser -u munge -- /usr/sbin/munged; then
    echo "slurm_up: munged did not start (see /var/log/munge/munged.log)" >&2
    return 1
  fi
  echo started > "$MOSIX_SLURM_DIR/munged.ours"
  if ! _slurm_wait 'munge -n 2> /dev/null | unmunge > /dev/null 2>&1'; then
    echo "slurm_up: munged started but does not answer on /run/munge/munge.socket.2" >&2
    return 1
  fi
}

slurm_write_conf() {
  local d=$MOSIX_SLURM_DIR hw port node
  mkdir -p "$d/state" "$d/log"
  for node in "${MOSIX_SLURM_NODES[@]}"; do mkdir -p "$d/spool/$node"; done
  # This host's layout as slurmd sees it, so neither node is drained for it.
  hw=$(slurmd -C | head -n 1 | grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*')
  [[ -n $hw ]] || hw="CPUs=$(nproc)"
  {
    cat << EOF
# Written by tests/integration/lib/slurm.sh: two nodes on this one host.
ClusterName=mosixtest
SlurmctldHost=localhost
SlurmctldPort=$MOSIX_SLURM_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd-%n.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# sbatch --wait polls after 2 s, then every 8 s, unless MinJobAge/2 <= 2:
# with 5 it polls every 2 s, and a finished job stays 5 s for it to see.
MinJobAge=5
SlurmdParameters=config_overrides
EOF
    port=$MOSIX_SLURM_PORT
    for node in "${MOSIX_SLURM_NODES[@]}"; do
      port=$((port + 1))
      echo "NodeName=$node NodeHostname=localhost NodeAddr=127.0.0.1 Port=$port $hw State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=$(IFS=,; echo "${MOSIX_SLURM_NODES[*]}") Default=YES MaxTime=INFINITE State=UP"
  } > "$d/slurm.conf.new"
  mv "$d/slurm.conf.new" "$d/slurm.conf"
}

# Both nodes of the test cluster idle (or allocated/mixed by a job: up).
_slurm_nodes_up() {
  local states
  states=$(sinfo -h -N -o '%N %t' 2> /dev/null | sort -u | tr '\n' ' ')
  [[ $states =~ n1\ (idle|alloc|mix) ]] && [[ $states =~ n2\ (idle|alloc|mix) ]]
}

slurm_up() {
  local reason node
  if reason=$(slurm_skip_reason); then
    echo "slurm_up: $reason" >&2
    return 1
  fi
  mkdir -p "$MOSIX_SLURM_DIR"
  slurm_munge_up || return 1
  if ! _slurm_pid_alive "$MOSIX_SLURM_DIR/slurmctld.pid"; then
    slurm_write_conf
    # -c: start without the jobs of an earlier run.
    if ! slurmctld -c; then
      echo "slurm_up: slurmctld did not start" >&2
      _slurm_log_tail
      return 1
    fi
  fi
  if ! _slurm_wait 'scontrol ping 2> /dev/null | grep -q "is UP"'; then
    echo "slurm_up: slurmctld does not answer on port $MOSIX_SLURM_PORT" >&2
    _slurm_log_tail
    return 1
  fi
  for node in "${MOSIX_SLURM_NODES[@]}"; do
    if ! _slurm_pid_alive "$MOSIX_SLURM_DIR/slurmd-$node.pid"; then
      if ! slurmd -N "$node"; then
        echo "slurm_up: slurmd -N $node did not start" >&2
        _slurm_log_tail
        return 1
      fi
    fi
  done
  if ! _slurm_wait _slurm_nodes_up; then
    echo "slurm_up: nodes did not become idle: $(sinfo -h -N -o '%N %t %E' 2>&1 | tr '\n' ';')" >&2
    _slurm_log_tail
    return 1
  fi
}

_slurm_stop_pidfile() {
  local pid
  _slurm_pid_alive "$1" || return 0
  pid=$(< "$1")
  kill -TERM "$pid" 2> /dev/null || return 0
  _slurm_wait "! _slurm_running $pid" || kill -KILL "$pid" 2> /dev/null
  return 0
}

slurm_down() {
  local node
  [[ -d $MOSIX_SLURM_DIR ]] || return 0
  for node in "${MOSIX_SLURM_NODES[@]}"; do
    _slurm_stop_pidfile "$MOSIX_SLURM_DIR/slurmd-$node.pid"
  done
  _slurm_stop_pidfile "$MOSIX_SLURM_DIR/slurmctld.pid"
  if [[ -f $MOSIX_SLURM_DIR/munged.ours ]]; then
    _slurm_stop_pidfile /run/munge/munged.pid
    rm -f "$MOSIX_SLURM_DIR/munged.ours"
  fi
}
