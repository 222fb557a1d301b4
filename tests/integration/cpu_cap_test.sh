#!/bin/bash
# CPU caps on the real cgroup hierarchy (root only): a burner capped to 0.25
# CPU, run beside an uncapped one, gets clearly less CPU time than it (a
# ratio between the two, no wall-clock bound); the group carries the quota
# while it runs, the program's exit status comes through, and the group is
# gone afterwards. Usage: cpu_cap_test.sh BIN_DIR [LIB_DIR]
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

# Two burners side by side; the capped one's CPU time against the other's.
# Both run at the highest priority, so that other work on the host takes
# little from either and the cap is what sets them apart.
nice -n -19 "$bin/cpu_burn" 3 >"$tmp/free" &
free_pid=$!
nice -n -19 "$bin/cpu_cap_run" "$job/capped" 0.25 "$bin/cpu_burn" 3 >"$tmp/capped" 2>"$tmp/err"
capped_status=$?
wait $free_pid
free_status=$?
capped_cpu=$(sed -n 's/^cpu_seconds //p' "$tmp/capped")
free_cpu=$(sed -n 's/^cpu_seconds //p' "$tmp/free")
if [ $capped_status != 0 ] || [ $free_status != 0 ] || [ -z "$capped_cpu" ] || [ -z "$free_cpu" ]; then
  fail "burners: capped status $capped_status [$capped_cpu], free status $free_status [$free_cpu]: $(cat "$tmp/err")"
else
  # The ratio is about 0.25; allow up to 0.6 before calling it uncapped.
  ratio=$(awk -v c="$capped_cpu" -v f="$free_cpu" 'BEGIN { printf "%.3f", (f > 0 ? c / f : 99) }')
  if awk -v r="$ratio" 'BEGIN { exit !(r < 0.6) }'; then
    ok "capped burner got $capped_cpu s of CPU, free one $free_cpu s (ratio $ratio < 0.6)"
  else
    fail "capped burner got $capped_cpu s of CPU, free one $free_cpu s: ratio $ratio is not below 0.6"
  fi
fi

if [ -e "$parent/mosix/$job" ]; then fail "$parent/mosix/$job left behind"; else ok "groups removed"; fi

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all CPU cap checks passed"
