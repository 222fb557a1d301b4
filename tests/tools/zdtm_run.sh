#!/usr/bin/env bash
# Runs CRIU's zdtm static tests (a CRIU checkout with test/zdtm/lib and
# test/zdtm/static built; not part of this project) through our checkpoint
# and restart, and prints a table: pass, refused with a reason, failed after
# an accepted checkpoint (silent failure), restore error, with names.
#
# Usage: zdtm_run.sh [ZDTM_DIR]   ZDTM_DIR: the CRIU checkout, its test/zdtm,
#                                 or test/zdtm/static (default $ZDTM_DIR)
# Exit 77 when no built zdtm tree is found, 1 when a silent failure was seen.
# Environment:
#   MOSIX_BIN     directory of mosixctl and mosix-restore (default: build/bin of
#                 this checkout);  MOSIX_LIB  directory of libmosix.so (build/lib)
#   ZDTM_TESTS    test names to run (default: every static test with a .pid rule)
#   ZDTM_JOBS     tests run at a time (default 2)
#   ZDTM_USER     run the tests, mosixctl and the restorer as this user when
#                 started as root (default nobody; "root" keeps root)
#   ZDTM_WORK     work directory (default a new one under /tmp; kept)
#   ZDTM_TIMEOUT  seconds a test may take to end after SIGTERM, or to start,
#                 before it counts as hung (default 60)
#   ZDTM_TREE     1: checkpoint the test with its children (mosixctl
#                 checkpoint --tree) instead of the test process alone
#
# Per test: a control run without the agent decides whether it applies here
# (it must start and PASS on SIGTERM). Then it is started with the agent
# preloaded; once its pidfile exists (zdtm tests daemonize and write it when
# ready), `mosixctl checkpoint PID -o IMG --kill`; a refusal is recorded with
# its reason (and the test must still be alive: a checkpoint must not harm
# what it reads). An accepted image is restarted in the background in a
# session of its own, the restored process gets SIGTERM, and its outfile says
# PASS or FAIL.
set -u

self=$(readlink -f -- "${BASH_SOURCE[0]}")
src_root=$(dirname -- "$(dirname -- "$(dirname -- "$self")")")
MOSIX_BIN=${MOSIX_BIN:-$src_root/build/bin}
MOSIX_LIB=${MOSIX_LIB:-$src_root/build/lib}
TIMEOUT=${ZDTM_TIMEOUT:-60}

find_static() {
  local d=${1:-}
  [[ -n $d ]] || return 1
  for c in "$d/test/zdtm/static" "$d/zdtm/static" "$d/static" "$d"; do
    if [[ -f $c/Makefile && -f $c/../lib/libzdtmtst.a ]]; then
      readlink -f -- "$c"
      return 0
    fi
  done
  return 1
}

now_ms() { date +%s%3N; }

# Alive: not a zombie, or a zombie leader whose other threads still run.
alive() {
  local stat tasks
  { stat=$(< "/proc/$1/stat"); } 2> /dev/null || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z && ${stat:0:1} != X ]] && return 0
  tasks=(/proc/"$1"/task/*)
  (( ${#tasks[@]} > 1 ))
}

# wait_gone PID SECONDS: 0 once PID is gone (or a zombie), 1 on timeout.
wait_gone() {
  local pid=$1 end=$(( $(now_ms) + $2 * 1000 ))
  while alive "$pid"; do
    (( $(now_ms) < end )) || return 1
    sleep 0.05
  done
  return 0
}

# The command line of NAME's .pid rule, from make -n, with ./NAME made absolute.
test_command() {
  local name=$1 line
  line=$(make --no-print-directory -s -n -C "$STATIC" "$name.pid" 2> /dev/null | grep -E "^\./$name( |$)" | tail -n 1)
  [[ -n $line ]] || return 1
  printf '%s\n' "$STATIC/${line#./}"
}

# Runs "$@" as the test user, in the current directory.
as_user() {
  if [[ -n ${RUN_UID:-} ]]; then
    setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --inh-caps=-all -- "$@"
  else
    "$@"
  fi
}

# start_test DIR PRELOAD CMD: runs CMD in DIR (a zdtm test: it returns once the
# daemonized test wrote its pidfile); prints the test's pid.
start_test() {
  local dir=$1 preload=$2 cmd=$3 name pid
  name=$(basename -- "${cmd%% *}")
  (
    cd "$dir" || exit 1
    for f in /proc/"$BASHPID"/fd/*; do
      fd=${f##*/}
      if (( fd > 2 )) && [[ -e $f ]]; then eval "exec $fd>&-"; fi
    done
    if [[ -n $preload ]]; then export LD_PRELOAD=$preload; fi
    # shellcheck disable=SC2086
    exec timeout -k 5 "$TIMEOUT" setpriv --reuid="${RUN_UID:-0}" --regid="${RUN_GID:-0}" \
      ${RUN_UID:+--clear-groups --inh-caps=-all} -- $cmd
  ) > "$dir/start.log" 2>&1 < /dev/null
  local status=$?
  pid=$(cat "$dir/$name.pid" 2> /dev/null)
  if (( status != 0 )) || [[ -z $pid ]]; then
    return 1
  fi
  printf '%s\n' "$pid"
}

outcome() {  # DIR NAME: PASS, FAIL: <line>, or "no result"
  local out=$1/$2.out
  if [[ -f $out ]] && grep -q PASS "$out"; then
    echo PASS
  elif [[ -f $out ]]; then
    echo "FAIL: $(grep -v '^$' "$out" | tail -n 1 | tr -d '\n' | cut -c1-200)"
  elif [[ -f $out.inprogress ]]; then
    echo "no result: $(tail -n 1 "$out.inprogress" | tr -d '\n' | cut -c1-200)"
  else
    echo "no result"
  fi
}

# Kills what a test left behind (children it forked into other sessions, a
# test that outlived its run): processes running its binary, or in its
# work directory.
kill_leftovers() {
  local name=$1 p
  # One find, not a readlink per process: a loaded machine forks slowly.
  find /proc -mindepth 2 -maxdepth 2 \( -name exe -lname "$STATIC/$name" -o -name cwd -lname "$WORK/$name/*" \) \
    -printf '%h\n' 2> /dev/null | sort -u | while read -r p; do
    kill -KILL "${p#/proc/}" 2> /dev/null
  done
}

# run_one NAME: writes RESULTS/NAME as "CATEGORY<TAB>detail".
run_one() {
  _run_one "$@"
  kill_leftovers "$1"
}

_run_one() {
  local name=$1 cmd dir pid res
  local rec=$RESULTS/$name
  cmd=$(test_command "$name") || { printf 'skip\tno .pid rule\n' > "$rec"; return; }
  [[ -x ${cmd%% *} ]] || { printf 'skip\tnot built\n' > "$rec"; return; }

  dir=$WORK/$name/control
  rm -rf "$WORK/$name"; mkdir -p "$dir"; chmod -R a+rwx "$WORK/$name"
  if ! pid=$(start_test "$dir" "" "$cmd"); then
    printf 'n/a\tcontrol run did not start: %s\n' \
      "$(grep -hv '^$' "$dir/start.log" "$dir/$name.out"* 2> /dev/null | grep -v 'Test exited unexpectedly' | tail -n 1 | cut -c1-150)" > "$rec"
    return
  fi
  kill -TERM "$pid" 2> /dev/null
  if ! wait_gone "$pid" "$TIMEOUT"; then
    kill -KILL "$pid" 2> /dev/null
    printf 'n/a\tcontrol run hung after SIGTERM\n' > "$rec"
    return
  fi
  res=$(outcome "$dir" "$name")
  if [[ $res != PASS ]]; then
    printf 'n/a\tcontrol run: %s\n' "$res" > "$rec"
    return
  fi

  dir=$WORK/$name/ckpt
  mkdir -p "$dir"; chmod a+rwx "$dir"
  if ! pid=$(start_test "$dir" "$MOSIX_LIB/libmosix.so" "$cmd"); then
    printf 'agent\tdoes not start with the agent preloaded: %s\n' \
      "$(grep -hv '^$' "$dir/start.log" "$dir/$name.out"* 2> /dev/null | grep -v 'Test exited unexpectedly' | tail -n 1 | cut -c1-150)" > "$rec"
    return
  fi
  local tree=()
  [[ ${ZDTM_TREE:-0} == 1 ]] && tree=(--tree)
  if ! (cd "$dir" && as_user "$MOSIX_BIN/mosixctl" checkpoint "${tree[@]}" "$pid" -o img --kill) > "$dir/ckpt.log" 2>&1; then
    local why
    why=$(grep -v 'MiB written' "$dir/ckpt.log" | tail -n 1 | sed 's/^mosixctl: //' | cut -c1-220)
    if ! alive "$pid"; then
      printf 'silent\tthe refused checkpoint killed the test (%s)\n' "$why" > "$rec"
      return
    fi
    kill -KILL "$pid" 2> /dev/null
    printf 'refused\t%s\n' "$why" > "$rec"
    return
  fi
  wait_gone "$pid" 10 || kill -KILL "$pid" 2> /dev/null
  # The restored process runs in a session of its own (setsid does not fork
  # here: a background job of a non-interactive shell leads no group), so a
  # test that signals its process group cannot hit this script. Its
  # stdout and stderr are the restarter's (a guest's standard streams are its
  # home's), and a zdtm test writes its result there: they go to the outfile,
  # where the test had them (NAME.out.inprogress, renamed NAME.out at exit).
  local log=$dir/$name.out.inprogress
  (cd "$dir" && exec setsid setpriv --reuid="${RUN_UID:-0}" --regid="${RUN_GID:-0}" \
     ${RUN_UID:+--clear-groups --inh-caps=-all} -- "$MOSIX_BIN/mosixctl" restart "$dir/img") \
    >> "$log" 2>&1 < /dev/null &
  local rpid=$! end=$(( $(now_ms) + TIMEOUT * 1000 )) comm
  # Restored once the process no longer calls itself mosix-restore.
  while :; do
    comm=$(cat "/proc/$rpid/comm" 2> /dev/null) || break
    [[ $comm == mosix-restore || $comm == mosixctl || $comm == setpriv || $comm == setsid || $comm == bash ]] || break
    (( $(now_ms) < end )) || break
    sleep 0.02
  done
  if ! alive "$rpid"; then
    wait "$rpid"
    local st=$?
    res=$(outcome "$dir" "$name")
    if grep -qs 'mosix-restore' "$log" "$dir/$name.out"; then
      printf 'restore\texit %d: %s\n' "$st" "$(grep -hsv '^$' "$log" "$dir/$name.out" | tail -n 1 | cut -c1-200)" > "$rec"
    elif [[ $res == PASS ]]; then
      printf 'silent\tended by itself (status %d) before SIGTERM\n' "$st" > "$rec"
    else
      printf 'silent\tended after restore (status %d): %s\n' "$st" "$res" > "$rec"
    fi
    return
  fi
  kill -TERM "$rpid" 2> /dev/null
  if ! wait_gone "$rpid" "$TIMEOUT"; then
    kill -KILL "$rpid" 2> /dev/null
    wait "$rpid" 2> /dev/null
    printf 'silent\thung after restore and SIGTERM: %s\n' "$(outcome "$dir" "$name")" > "$rec"
    return
  fi
  wait "$rpid" 2> /dev/null
  res=$(outcome "$dir" "$name")
  if [[ $res == PASS ]]; then
    printf 'pass\t\n' > "$rec"
  elif grep -qs 'mosix-restore' "$log" "$dir/$name.out"; then
    printf 'restore\t%s\n' "$(grep -hsv '^$' "$log" "$dir/$name.out" | tail -n 1 | cut -c1-200)" > "$rec"
  else
    printf 'silent\t%s\n' "$res" > "$rec"
  fi
}

if [[ ${1:-} == --one ]]; then
  STATIC=$2 WORK=$3 RESULTS=$4 RUN_UID=${5:-} RUN_GID=${6:-}
  run_one "$7"
  exit 0
fi

STATIC=$(find_static "${1:-${ZDTM_DIR:-}}") || {
  echo "zdtm_run: no built zdtm tree (give the CRIU checkout as an argument or in ZDTM_DIR, with" \
       "test/zdtm/lib and test/zdtm/static built by make): skipped" >&2
  exit 77
}
for f in "$MOSIX_BIN/mosixctl" "$MOSIX_BIN/mosix-restore" "$MOSIX_LIB/libmosix.so"; do
  [[ -e $f ]] || { echo "zdtm_run: $f is missing: build the project or set MOSIX_BIN/MOSIX_LIB" >&2; exit 2; }
done

RUN_UID= RUN_GID=
if (( EUID == 0 )) && [[ ${ZDTM_USER:-nobody} != root ]]; then
  RUN_UID=$(id -u "${ZDTM_USER:-nobody}") && RUN_GID=$(id -g "${ZDTM_USER:-nobody}") ||
    { echo "zdtm_run: no user ${ZDTM_USER:-nobody}" >&2; exit 2; }
fi
WORK=${ZDTM_WORK:-$(mktemp -d /tmp/zdtm_run.XXXXXX)}
RESULTS=$WORK/results
mkdir -p "$RESULTS"
chmod a+rx "$WORK"
# The static tests with a .pid rule (the state tests have none).
tests=${ZDTM_TESTS:-$(make --no-print-directory -s -C "$STATIC" -f Makefile -f - print-tests <<< 'print-tests: ; @echo $(TST)' 2> /dev/null)}
echo "zdtm_run: $(wc -w <<< "$tests") tests from $STATIC$( [[ ${ZDTM_TREE:-0} == 1 ]] && echo ' (whole trees)'), ${ZDTM_JOBS:-2} at a time, as ${ZDTM_USER:-$( (( EUID == 0 )) && echo nobody || id -un)}; work in $WORK" >&2
export MOSIX_BIN MOSIX_LIB ZDTM_TIMEOUT=$TIMEOUT ZDTM_TREE=${ZDTM_TREE:-0}
tr ' ' '\n' <<< "$tests" | grep -v '^$' |
  xargs -P "${ZDTM_JOBS:-2}" -I{} bash "$self" --one "$STATIC" "$WORK" "$RESULTS" "$RUN_UID" "$RUN_GID" {}

declare -A names count
cats=(pass refused silent restore agent n/a skip)
for c in "${cats[@]}"; do names[$c]=; count[$c]=0; done
for rec in "$RESULTS"/*; do
  [[ -f $rec ]] || continue
  n=${rec##*/}
  IFS=$'\t' read -r cat detail < "$rec"
  printf '%-8s %-28s %s\n' "$cat" "$n" "$detail"
done | sort > "$WORK/details.txt"
while IFS= read -r line; do
  cat=${line%% *}
  n=$(awk '{print $2}' <<< "$line")
  count[$cat]=$(( ${count[$cat]:-0} + 1 ))
  names[$cat]+="$n "
done < "$WORK/details.txt"
applies=$(( count[pass] + count[refused] + count[silent] + count[restore] + count[agent] ))
echo
echo "| applies | pass | refused with a reason | failed after an accepted checkpoint | restore error | broken by the agent alone |"
echo "|---|---|---|---|---|---|"
echo "| ${applies} | ${count[pass]} | ${count[refused]} | ${count[silent]} | ${count[restore]} | ${count[agent]} |"
echo
echo "not applicable (control run failed): ${count[n/a]}; skipped (not built / no rule): ${count[skip]}"
for c in pass silent restore agent; do
  echo "$c: ${names[$c]}"
done
echo
echo "Details (category, test, reason): $WORK/details.txt"
grep -E '^(silent|restore|agent|refused) ' "$WORK/details.txt"
(( count[silent] == 0 ))
