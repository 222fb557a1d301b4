#!/bin/bash
# A body's kill() of its home's pids across separate hosts (issue 15, root
# only): two network namespaces as nodes, each with its own pid namespace
# (lib/netns.sh NETNS_PIDNS=1), so that a pid names different processes on
# the two nodes, as on two hosts. One copy, a shell on mosixns0, sends its
# children to mosixns1 (--spread always); each leaves a deputy on mosixns0.
# kill_probe (tests/programs) in those children:
#   - signals a sibling by the pid its parent knows ($!): the sibling gets it;
#   - signals its parent ($$ of the shell): the shell's trap runs;
#   - signals a pid nothing has on mosixns0: ESRCH comes back;
#   - signals its process group (kill 0): the shell's trap runs, and a child
#     it forked there gets it too;
#   - sigqueue()s, tgkill()s, tkill()s and rt_tgsigqueueinfo()s a process
#     kept at home (fd 3 open): it gets the signal with SI_QUEUE and the
#     value, or SI_TKILL, from the pid its parent knows the sender by ($!);
#   - pidfd_open() of that process is refused with ENOSYS and a line on
#     stderr; of its own pid it works.
# Each check fails if the kill is made on mosixns1, where those pids are
# other processes' or nobody's. Usage: netns_kill_test.sh BIN_DIR [LIB_DIR]
set -u
bin=${1:?usage: netns_kill_test.sh BIN_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETNS_PIDNS=1
source "$here/lib/netns.sh"
netns_test_start netns-kill "ip mpirun flock unshare readlink" "mosixrun mosixd kill_probe"
check_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

netns_mosixrun_up 2

# The copy. A takes USR1 and USR2 and ends at USR2 (saying whether USR1
# came first); its sibling B sends it USR1 once A's file says it takes it.
# The shell's own USR2 goes after B's kill() returned, through the same
# deputy: were B's kill made on mosixns1, A would end without USR1. The
# shell's pid namespace is read by a child that stays home (fd 3 open).
cat >"$work/family.sh" <<'FAMILY'
P=$1 W=$2
trap 'echo "parent got USR1"' USR1
trap 'echo "parent got USR2"' USR2
echo "parent where ${MOSIX_NODE:-} $(readlink /proc/self/ns/pid 3</dev/null)"
"$P" wait "$W/a.ready" >"$W/a.out" &
a=$!
"$P" kill $a USR1 "$W/a.ready" >"$W/sibling.out"
kill -USR2 $a
wait $a
echo "A exit $?"
"$P" kill $$ USR1 >"$W/parent.out"
free=$(($(cat /proc/sys/kernel/pid_max 3</dev/null) - 1))
while kill -0 $free 2>/dev/null; do free=$((free - 1)); done
"$P" kill $free 0 >"$W/nobody.out"
"$P" kill 0 USR2 >"$W/group.out"
echo "group kill done"
"$P" group >"$W/local.out"
"$P" waitinfo "$W/q.ready" >"$W/q.out" 3</dev/null &
q=$!
"$P" sigqueue $q USR1 4242 "$W/q.ready" >"$W/sigqueue.out" &
s=$!
wait $s
echo "sigqueue sender $s"
"$P" tgkill $q $q USR2 >"$W/tgkill.out" &
s=$!
wait $s
echo "tgkill sender $s"
grep -q '^tgkill: ok' "$W/tgkill.out" || kill -USR2 $q  # the check below fails; the run goes on
wait $q
echo "Q exit $?"
"$P" waitinfo "$W/t.ready" >"$W/t.out" 3</dev/null &
t=$!
"$P" tkill $t USR2 "$W/t.ready" >"$W/tkill.out" &
s=$!
wait $s
echo "tkill sender $s"
grep -q '^tkill: ok' "$W/tkill.out" || kill -USR2 $t  # the check below fails; the run goes on
wait $t
echo "T exit $?"
"$P" waitinfo "$W/r.ready" >"$W/r.out" 3</dev/null &
r=$!
"$P" tgsigqueue $r $r USR1 77 "$W/r.ready" >"$W/tgsigqueue.out" &
s=$!
wait $s
echo "tgsigqueue sender $s"
"$P" pidfd $r >"$W/pidfd.out" 2>"$W/pidfd.err"
kill -USR2 $r
wait $r
echo "R exit $?"
echo "end"
FAMILY

# The limit only stops a hung run; it bounds no performance.
timeout 300 "$bin/mosixrun" --host mosixns0:1,mosixns1:1 -np 1 --spread always \
  sh "$work/family.sh" "$bin/kill_probe" "$work" </dev/null >"$work/stdout" 2>"$work/stderr"
status=$?
check_eq "the job exits 0" 0 "$status"
[ $status = 0 ] || show "$work/stderr"
parent_ns=$(sed -n 's/^parent where mosixns0 //p' "$work/stdout")
if [ -n "$parent_ns" ]; then
  ok "the shell ran on mosixns0 ($parent_ns)"
else
  fail "the shell did not say it ran on mosixns0:"; show "$work/stdout"
fi
for f in a sibling parent nobody group local sigqueue tgkill tkill tgsigqueue pidfd; do
  where=$(sed -n 's/^where //p' "$work/$f.out" 2>/dev/null)
  if [ "${where% *}" = mosixns1 ] && [ -n "$parent_ns" ] && [ "${where#* }" != "$parent_ns" ]; then
    ok "$f: ran on mosixns1, in another pid namespace (${where#* })"
  else
    fail "$f: ran at '$where', not on mosixns1 in a pid namespace of its own"
  fi
done
check_eq "a sibling's kill by the pid its parent knows reaches it" "got USR1 got USR2" "$(grep -v '^where' "$work/a.out" | tr '\n' ' ' | sed 's/ $//')"
check_eq "... and the sibling's kill() returns 0" "kill: ok" "$(grep -v '^where' "$work/sibling.out")"
check_eq "... and the sibling ends well" "A exit 0" "$(grep '^A exit' "$work/stdout")"
check_eq "kill of the parent's pid: returns 0" "kill: ok" "$(grep -v '^where' "$work/parent.out")"
check_eq "... and the parent's trap ran" "parent got USR1" "$(grep '^parent got USR1' "$work/stdout")"
check_eq "kill of a pid nobody has at home: ESRCH" "kill: ESRCH" "$(grep -v '^where' "$work/nobody.out")"
check_eq "kill 0 (the process group): returns 0" "kill: ok" "$(grep -v '^where' "$work/group.out")"
check_eq "... and the parent's trap ran" "parent got USR2" "$(sed -n '/^parent got USR1/,/^group kill done/p' "$work/stdout" | grep '^parent got USR2')"
check_eq "kill 0 from a body that forked a child there: returns 0" "kill: ok" "$(grep '^kill' "$work/local.out")"
check_eq "... and the parent's trap ran" "parent got USR2" "$(sed -n '/^group kill done/,$p' "$work/stdout" | grep '^parent got USR2')"
check_eq "... and the body's own child got it too" "got USR1 got USR2" "$(grep '^got' "$work/local.out" | tr '\n' ' ' | sed 's/ $//')"
# sigqueue, tgkill and rt_tgsigqueueinfo of a process at home.
for f in q t r; do
  where=$(sed -n 's/^where //p' "$work/$f.out" 2>/dev/null)
  check_eq "$f: the waiter stayed at home (fd 3)" "mosixns0 $parent_ns" "$where"
done
sender() { sed -n "s/^$1 sender //p" "$work/stdout"; }
check_eq "sigqueue() of a home pid: returns 0" "sigqueue: ok" "$(grep -v '^where' "$work/sigqueue.out")"
check_eq "... and it came with its value, from the sender's pid at home" \
  "got USR1 SI_QUEUE value 4242 from $(sender sigqueue)" "$(grep '^got USR1' "$work/q.out")"
check_eq "tgkill() of a home thread: returns 0" "tgkill: ok" "$(grep -v '^where' "$work/tgkill.out")"
check_eq "... and it came as a tgkill, from the sender's pid at home" \
  "got USR2 SI_TKILL from $(sender tgkill)" "$(grep '^got USR2' "$work/q.out")"
check_eq "... and the waiter ends well" "Q exit 0" "$(grep '^Q exit' "$work/stdout")"
check_eq "tkill() of a home process's thread: returns 0" "tkill: ok" "$(grep -v '^where' "$work/tkill.out")"
check_eq "... and it came as a tkill, from the sender's pid at home" \
  "got USR2 SI_TKILL from $(sender tkill)" "$(grep '^got USR2' "$work/t.out")"
check_eq "... and the waiter ends well" "T exit 0" "$(grep '^T exit' "$work/stdout")"
check_eq "rt_tgsigqueueinfo of a home thread: returns 0" "tgsigqueue: ok" "$(grep -v '^where' "$work/tgsigqueue.out")"
check_eq "... and it came with its value" "got USR1 SI_QUEUE value 77 from $(sender tgsigqueue)" \
  "$(grep '^got USR1' "$work/r.out")"
check_eq "pidfd_open() of its own pid works" "self pidfd: ok" "$(grep '^self' "$work/pidfd.out")"
check_eq "pidfd_open() of a home pid: refused, ENOSYS" "pidfd_open: ENOSYS" "$(grep '^pidfd' "$work/pidfd.out")"
if grep -q "^mosix: pidfd_open(.*home node" "$work/pidfd.err"; then
  ok "... with a line on stderr saying why"
else
  fail "... no line on stderr says why:"; show "$work/pidfd.err"
fi
check_eq "... and the waiter ends well" "R exit 0" "$(grep '^R exit' "$work/stdout")"
check_eq "the shell ran to its end" "end" "$(tail -1 "$work/stdout")"

if [ $failures -ne 0 ]; then
  echo "stdout:"; show "$work/stdout"
  echo "$failures failure(s)"
  exit 1
fi
echo "all kill-across-hosts checks passed"
