#!/bin/bash
# CPU caps on the real cgroup hierarchy (root only): a burner capped to 0.25
# CPU is throttled by the kernel and gets at most its quarter of a CPU (what
# the kernel enforced, so a loaded machine cannot make it fail or pass); the
# group carries the quota while it runs, the program's exit status comes
# through, and the group is gone afterwards. Usage: cpu_cap_test.sh BIN_DIR [LIB_DIR]
set -u
bin=${1:?usage: cpu_cap_test.sh BIN_DIR}
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: cpu_cap_test needs root to write the cgroup hierarchy"
  exit 77
fi
for tool in cpu_cap_run cpu_burn; do
  if [ ! -x "$bin/$tool" ]; then
    echo "FAIL: $bin/$tool is not built"
    exit 1
  fi
done
where=$("$bin/cpu_cap_run" --why)
case $? in
  0) echo "caps go to: $where" ;;
  3) echo "SKIP: $where"; exit 77 ;;
  *) echo "FAIL: cpu_cap_run --why: $where"; exit 1 ;;
esac
version=$(sed -n 's/^cgroup v\([12]\) under .*/\1/p' <<<"$where")
parent=${where#cgroup v? under }

job=cputest$$
tmp=$(mktemp -d)
cleanup() {
  rm -rf "$tmp"
  rmdir "$parent/mosix/$job"/* "$parent/mosix/$job" 2>/dev/null || true
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# The group carries the quota while the program runs in it.
if [ "$version" = 2 ]; then
  expected_quota="25000 100000"; quota_file=cpu.max
else
  expected_quota=25000; quota_file=cpu.cfs_quota_us
fi
seen=$("$bin/cpu_cap_run" "$job/probe" 0.25 cat "$parent/mosix/$job/probe/$quota_file" 2>"$tmp/err")
if [ "$seen" = "$expected_quota" ]; then ok "quota $quota_file = $seen"; else fail "quota: expected [$expected_quota], got [$seen] ($(cat "$tmp/err"))"; fi
inside=$("$bin/cpu_cap_run" "$job/probe" 0.25 cat /proc/self/cgroup 2>/dev/null)
if grep -q "mosix/$job/probe\$" <<<"$inside"; then ok "program runs in mosix/$job/probe"; else fail "program not in its group: $inside"; fi

# Exit status and signals come through.
"$bin/cpu_cap_run" "$job/status" 1 sh -c 'exit 7' 2>/dev/null
status=$?
if [ $status = 7 ]; then ok "exit status 7 comes through"; else fail "exit status: expected 7, got $status"; fi
"$bin/cpu_cap_run" "$job/status" 1 sh -c 'kill -TERM $$' 2>/dev/null
status=$?
if [ $status = 143 ]; then ok "SIGTERM comes through as 143"; else fail "killed program: expected 143, got $status"; fi

# The cap is what the kernel enforces: a burner in a group capped to 0.25 CPU
# is throttled by the kernel (cpu.stat nr_throttled), and while it runs it
# gets no more than its quarter of a CPU per unit of wall time. Load on the
# machine only lowers what it gets, so neither check depends on an idle
# machine; without the cap the group is never throttled and the run fails.
out=$("$bin/cpu_cap_run" --until-throttled "$job/capped" 0.25 "$bin/cpu_burn" 3600 2>"$tmp/err")
status=$?
read -r _ throttled _ cpu _ wall <<<"$out"
if [ $status != 0 ] || [ -z "$wall" ]; then
  fail "capped burner: status $status, [$out] $(cat "$tmp/err")"
else
  # 0.25 of a CPU, plus at most one 100 ms period's quota of slack over at
  # least 5 periods (5 throttles, or 5 s of CPU: 20 s and more): 0.3; 0.35
  # leaves room for the time to the first poll.
  ratio=$(awk -v c="$cpu" -v w="$wall" 'BEGIN { printf "%.3f", (w > 0 ? c / w : 99) }')
  if awk -v r="$ratio" 'BEGIN { exit !(r <= 0.35) }'; then
    ok "capped burner throttled $throttled times, $cpu s of CPU in $wall s (ratio $ratio <= 0.35)"
  else
    fail "capped burner got $cpu s of CPU in $wall s: ratio $ratio is above its cap of 0.25"
  fi
fi

if [ -e "$parent/mosix/$job" ]; then fail "$parent/mosix/$job left behind"; else ok "groups removed"; fi

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all CPU cap checks passed"
