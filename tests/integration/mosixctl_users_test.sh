# Another user's mosixctl against a job is refused, with the reason (root
# only: it creates a user for the test and removes it afterwards). A job of
# root runs a guest that waits; as the new user, mosixctl ps, checkpoint and
# migrate against it must each fail and say why, and the guest must be
# untouched (still running, no image written). The job's control socket is
# then made reachable to everyone (its directories 0711, the socket 0777), so
# that only the socket's own check of its peer (SO_PEERCRED) stands between
# the user and the job: it must refuse too, naming the other user.
# Usage: mosixctl_users_test.sh BIN_DIR [LIB_DIR]
BIN=$(cd "$1" && pwd)
if [[ $(id -u) != 0 ]]; then
  echo "SKIP: mosixctl_users_test needs root to create a user"
  exit 77
fi
for tool in useradd userdel runuser python3; do
  if ! command -v $tool > /dev/null; then
    echo "SKIP: $tool not found"
    exit 77
  fi
done
source "$(dirname "$0")/lib/common.sh"
set +e

user=mosixu$$
useradd -M -N -s /bin/sh -d /nonexistent "$user" || { echo "FAIL: useradd $user"; exit 1; }
job=
cleanup() {
  [[ -n $job ]] && kill -TERM "$job" 2> /dev/null && wait "$job" 2> /dev/null
  userdel "$user" 2> /dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
# The user may enter the test's directory (not read it) and write its own.
chmod 711 "$TMP"
mkdir -m 700 "$TMP/u" && chown "$user" "$TMP/u"
as_user() {
  runuser -u "$user" -- env -i PATH=/usr/bin:/bin XDG_RUNTIME_DIR="$1" XDG_STATE_HOME="$TMP/u/state" \
    "${@:2}"
}

"$BIN/mosixrun" -np 1 sh -c 'echo $$ > '"$TMP"'/guest.pid; exec sleep 1000' > "$TMP/job.out" 2> "$TMP/job.err" &
job=$!
wait_for '[ -s "$TMP/guest.pid" ]' || fail "the job did not start: $(cat "$TMP/job.err")"
guest=$(cat "$TMP/guest.pid")
check_contains "root's own mosixctl ps sees the guest" "$guest" "$("$BIN/mosixctl" ps --job $job 2>&1)"

# refused NAME NEEDLE_REGEX COMMAND...: COMMAND fails and says why.
refused() {
  local name=$1 why=$2 rc msg
  shift 2
  msg=$("$@" 2>&1)
  rc=$?
  if (( rc != 0 )) && [[ ${msg,,} =~ $why ]]; then
    pass "$name: refused ($(head -n 1 <<< "$msg"))"
  else
    fail "$name: expected a refusal saying why ($why), got exit $rc: $msg"
  fi
}

# As the user, with its own runtime directory: the job is not among its
# jobs, and the guest is not its process.
mkdir -m 700 "$TMP/u/run" && chown "$user" "$TMP/u/run"
own="$TMP/u/run"
refused "ps --job of root's job" "no (running )?job|another user|not yours" \
  as_user "$own" "$BIN/mosixctl" ps --job $job
refused "checkpoint of root's guest" "another user|not (yours|permitted)|permission|owned by" \
  as_user "$own" "$BIN/mosixctl" checkpoint "$guest" -o "$TMP/u/stolen.img"
refused "migrate in root's job" "no (running )?job|another user|not yours" \
  as_user "$own" "$BIN/mosixctl" migrate 0 home --job $job
check_eq "no image was written for the user" "" "$(ls "$TMP/u" | grep img || true)"

# Pointed at root's runtime directory, made reachable to everyone (its
# directories 0711, the socket 0777): mosixctl itself refuses a registry of
# another user, and the job's control socket refuses the connection (its
# check of the peer, SO_PEERCRED), naming the other user.
sock=$(find "$XDG_RUNTIME_DIR" -name control.sock 2> /dev/null | head -n 1)
if [[ -z $sock ]]; then
  fail "the job's control socket is not under $XDG_RUNTIME_DIR: $(find "$XDG_RUNTIME_DIR" 2>&1 | head)"
else
  d=$(dirname "$sock")
  while [[ $d == "$TMP"/* ]]; do chmod 711 "$d"; d=$(dirname "$d"); done
  chmod 777 "$sock"
  refused "ps with root's runtime directory" "another user|not to you" \
    as_user "$XDG_RUNTIME_DIR" "$BIN/mosixctl" ps --job $job
  refused "migrate with root's runtime directory" "another user|not to you" \
    as_user "$XDG_RUNTIME_DIR" "$BIN/mosixctl" migrate 0 home --job $job
  for cmd in ps migrate; do
    refused "a '$cmd' request straight to the control socket" "belongs to another user" \
      as_user "$own" python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall((json.dumps({"cmd": sys.argv[2], "rank": 0, "target": "home"}) + "\n").encode())
except BrokenPipeError:
    pass  # refused at once: the reason is already in the socket
reply = json.loads(s.makefile().readline())
print(reply.get("error", reply))
sys.exit(0 if reply.get("ok") else 1)' "$sock" "$cmd"
  done
fi

kill -0 "$guest" 2> /dev/null && pass "the guest still runs" || fail "the guest $guest is gone"
check_contains "and root's mosixctl still reaches it" "$guest" "$("$BIN/mosixctl" ps --job $job 2>&1)"
kill -TERM $job
wait $job 2> /dev/null
job=
finish
