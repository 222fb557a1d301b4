#!/usr/bin/env bash
# The SMP view (issue 15, docs/mosixrun.md): inside a job over several nodes
# the program sees the cluster's CPUs and memory: nproc in a --vcluster 3 job
# prints 3, and every way smp_probe asks (sysconf, get_nprocs,
# sched_getaffinity, pthread_getaffinity_np, /proc/cpuinfo by open and fopen,
# /sys/devices/system/cpu/online, MemTotal, sysinfo) agrees, with shares
# rounded up per node. --no-smp, --no-agent and a one-node job show this
# machine. A guest checkpointed and restored outside the job keeps its view.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"

here_cpus=$(nproc)
here_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)

check_eq "nproc in a --vcluster 3 job" 3 "$("$BIN/mosixrun" --vcluster 3 -np 1 nproc)"
check_eq "nproc --all in a --vcluster 3 job" 3 "$("$BIN/mosixrun" --vcluster 3 -np 1 nproc --all)"
check_eq "nproc with --no-smp is this machine's" "$here_cpus" "$("$BIN/mosixrun" --vcluster 3 --no-smp -np 1 nproc)"
check_eq "nproc with --no-agent is this machine's" "$here_cpus" "$("$BIN/mosixrun" --vcluster 3 --no-agent -np 1 nproc)"
check_eq "nproc in a one-node job is this machine's" "$here_cpus" "$("$BIN/mosixrun" -np 1 nproc)"
check_eq "a child of the copy sees it too" 3 "$("$BIN/mosixrun" --vcluster 3 -np 1 sh -c 'nproc')"

# Shares 0.4, 0.5 and 1.5: 1 + 1 + 2 CPUs; the memory of 3 nodes like this one.
expected_view() {  # CPUS ONLINE MEMORY
  local name
  for name in sysconf_onln sysconf_conf get_nprocs get_nprocs_conf sched_getaffinity sched_getaffinity_tid \
              pthread_getaffinity_np cpuinfo_open cpuinfo_fopen; do
    echo "$name $1"
  done
  echo "cpu_online $2"
  echo "meminfo_total_kib $3"
  echo "sysinfo_total_kib $3"
}
check_eq "every interface shows the cluster's 4 CPUs and 3 nodes' memory" \
  "$(expected_view 4 0-3 $((3 * here_kib)))" "$("$BIN/mosixrun" --vcluster-cpu 0.4,0.5,1.5 -np 1 "$BIN/smp_probe")"
plain=$("$BIN/smp_probe")
check_eq "with --no-smp every interface shows this machine" "$plain" \
  "$("$BIN/mosixrun" --vcluster-cpu 0.4,0.5,1.5 --no-smp -np 1 "$BIN/smp_probe")"
check_eq "the agent alone changes nothing on one node" "$plain" "$("$BIN/mosixrun" -np 1 "$BIN/smp_probe")"

# Checkpointed in a --vcluster 2 job, restored here, outside any job: the
# same view. The probe prints it, waits for the gate file, prints it again.
gate=$TMP/gate
"$BIN/mosixrun" --vcluster 2 -np 1 "$BIN/smp_probe" "$gate" > "$TMP/job.out" 2> "$TMP/job.err" &
job=$!
wait_for "[ \"\$(wc -l < '$TMP/job.out')\" -ge 12 ] || ! kill -0 $job 2> /dev/null"
first=$(cat "$TMP/job.out")
check_eq "the guest's view in a --vcluster 2 job" "$(expected_view 2 0-1 $((2 * here_kib)))" "$first"
probe=$(pgrep -n -x smp_probe || true)
if [[ -n $probe ]] && "$BIN/mosixctl" checkpoint "$probe" -o "$TMP/probe.img" --kill > "$TMP/ckpt.log" 2>&1; then
  pass "the probe checkpointed"
else
  fail "checkpoint of the probe (pid '${probe}'): $(cat "$TMP/ckpt.log" 2> /dev/null) $(cat "$TMP/job.err")"
fi
wait $job 2> /dev/null || true
touch "$gate"
env -u MOSIX_SMP_CPUS -u MOSIX_SMP_MEMORY_KIB "$BIN/mosixctl" restart "$TMP/probe.img" > "$TMP/restored.out" 2> "$TMP/restored.err" < /dev/null || true
check_eq "restored outside the job, the same view" "$first"$'\n'done "$(cat "$TMP/restored.out")"
finish
