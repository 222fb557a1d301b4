#!/usr/bin/env bash
# A real writer keeps its database lock across checkpoint --kill and restart:
# sqlite3 (the CLI) in the middle of an exclusive transaction holds POSIX
# locks on its database; after the restart a second sqlite3 still finds the
# database locked, and the restored one commits. Exits 77 without sqlite3.
# Usage: BIN_DIR LIB_DIR.
set -u

bin=${1:?usage: ckpt_locks_sqlite_test.sh BIN_DIR LIB_DIR}
lib=${2:?usage: ckpt_locks_sqlite_test.sh BIN_DIR LIB_DIR}
command -v sqlite3 > /dev/null || { echo "skip: no sqlite3 CLI (apt-get install sqlite3)"; exit 77; }
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"
ctl=$bin/mosixctl
work=$CKPT_WORK

# until_line FILE PATTERN [PID]: waits until FILE has a line matching PATTERN
# (or PID ended); polls, as bash cannot wait on a file.
until_line() {
  local i
  for (( i = 0; i < 6000; i++ )); do
    grep -q -- "$2" "$1" 2> /dev/null && return 0
    [[ -n ${3:-} ]] && ! _ckpt_alive "$3" && { grep -q -- "$2" "$1" 2> /dev/null; return; }
    sleep 0.05
  done
  return 1
}

# A real writer: sqlite3 in the middle of a transaction holds its POSIX
# locks on the database; after restart it still holds them, and commits.
db=$work/real.db
sqlite3 "$db" 'create table t(x); insert into t values (1);'
fifo=$work/sql.fifo
mkfifo "$fifo"
start_guest "$work/sql.out" sh -c "exec sqlite3 '$db' < '$fifo'"
sql=$CKPT_GUEST_PID
exec {feed}> "$fifo"
echo "begin exclusive; insert into t values (2); select 'in transaction';" >&"$feed"
if ! until_line "$work/sql.out" 'in transaction' "$sql"; then
  fail "sqlite3 did not start its transaction: $(cat "$work/sql.out.err")"
elif ! "$ctl" checkpoint "$sql" -o "$work/sql.img" --kill > "$work/sql.ckpt" 2>&1; then
  fail "sqlite3 checkpoint: $(cat "$work/sql.ckpt")"
else
  wait "$sql" 2> /dev/null
  (_ckpt_exec_clean "$ctl" restart "$work/sql.img") < "$fifo" >> "$work/sql.out" 2> "$work/sql.err" &
  sql=$!
  # Look only once the restorer has become sqlite3 again (it takes the locks
  # before that): a reader finding the database unlocked would roll back the
  # writer's hot journal.
  for (( i = 0; i < 6000; i++ )); do
    [[ $(cat "/proc/$sql/comm" 2> /dev/null) == sqlite3 ]] && break
    _ckpt_alive "$sql" || break
    sleep 0.05
  done
  busy=
  out=$(sqlite3 -cmd '.timeout 0' "$db" 'select count(*) from t;' 2>&1)
  [[ $out == *locked* ]] && busy=1
  if [[ -n $busy ]]; then
    echo "ok: the restored sqlite3 still holds its database lock (a second sqlite3: $out)"
  else
    fail "the restored sqlite3 does not hold its lock (a second sqlite3 read: $out) $(cat "$work/sql.err")"
  fi
fi
echo "commit; select count(*) from t;" >&"$feed"
exec {feed}>&-
wait "$sql" 2> /dev/null
check=$(sqlite3 "$db" 'select count(*) from t;')
[[ $check == 2 ]] && echo "ok: sqlite3 committed after the restart" || fail "sqlite3's table has $check rows, expected 2"

(( failures == 0 )) || { echo "$failures failure(s)" >&2; exit 1; }
echo "all checks passed"
