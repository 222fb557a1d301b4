#!/usr/bin/env bash
# mosixctl checkpoint --kill ends the process only once its image is verified
# and in place (79589c1): when the image fails after the agent's "ok", the
# process is continued where it was and the error says it was left running.
#
# The guest (python3 with the agent) is frozen in a cgroup freezer until the
# test lets it go, so the test can stop mosixctl between its request and the
# agent's answer (handshake: the signal is pending in the guest; a frozen
# process is not stopped, so mosixctl continues it after a failure). The agent
# then writes the image, says ok and stops the guest; while mosixctl is
# still stopped the test spoils what comes next, as a disk or another
# program could:
#   - verify: one byte in the middle of the written image is flipped;
#   - commit: a directory takes the image's name (the rename fails);
#   - control: nothing is spoiled: the image verifies, the process is gone.
# Each failure must leave the process running (it prints its last line and
# exits 0 when the test lets it finish), no image at the name asked for, no
# temporary beside it, and an error that says "left running".
# Usage: BIN_DIR LIB_DIR
set -u

bin=$(cd "${1:?usage: ckpt_kill_failure_test.sh BIN_DIR LIB_DIR}" && pwd) || exit 1
lib=$(cd "${2:?usage: ckpt_kill_failure_test.sh BIN_DIR LIB_DIR}" && pwd) || exit 1
command -v python3 > /dev/null || { echo "skip: python3 is not installed"; exit 77; }
# A freezer: cgroup v1's (freezer.state) or v2's (cgroup.freeze).
freezer=""
for d in /sys/fs/cgroup/freezer /sys/fs/cgroup/unified /sys/fs/cgroup; do
  if [[ -e $d/cgroup.procs ]] && mkdir "$d/mosix-ckpt-kill-$$" 2> /dev/null; then
    freezer=$d/mosix-ckpt-kill-$$
    if [[ -e $freezer/freezer.state || -e $freezer/cgroup.freeze ]]; then break; fi
    rmdir "$freezer"
    freezer=""
  fi
done
[[ -n $freezer ]] || { echo "skip: no cgroup freezer this user may use (freezer.state or cgroup.freeze; run as root)"; exit 77; }
freeze() {
  if [[ -e $freezer/freezer.state ]]; then echo "$1" > "$freezer/freezer.state"; else echo "$2" > "$freezer/cgroup.freeze"; fi
}
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"
trap 'freeze THAWED 0; for p in $(cat "$freezer/cgroup.procs" 2> /dev/null); do kill -KILL "$p"; done; rmdir "$freezer" 2> /dev/null; ckpt_cleanup' EXIT
ctl=$bin/mosixctl
work=$CKPT_WORK
mkdir -p -m 700 "$work/images"

cat > "$work/guest.py" << 'PY'
import os, sys, time
gate, finish = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while os.path.exists(gate):
    time.sleep(0.01)
print("went on", flush=True)
while not os.path.exists(finish):
    time.sleep(0.01)
print("finished", flush=True)
PY

state_of() { local s; s=$(cat "/proc/$1/stat" 2> /dev/null) || return; s=${s##*) }; echo "${s:0:1}"; }
request_pending() {
  local mask
  mask=$(awk '/^ShdPnd:/ {print $2}' "/proc/$1/status" 2> /dev/null)
  [[ -n $mask ]] && (( (16#$mask >> 61) & 1 ))
}

# spoil_verify IMG: flips the byte in the middle of the image being written.
spoil_verify() {
  local tmp
  tmp=$(ls "$(dirname "$1")"/."$(basename "$1")".tmp.* 2> /dev/null | head -n 1)
  [[ -n $tmp ]] || { fail "verify: no temporary image beside $1"; return; }
  python3 -c '
import os, sys
with open(sys.argv[1], "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    f.seek(size // 2); b = f.read(1); f.seek(size // 2); f.write(bytes([b[0] ^ 0xff]))
' "$tmp"
}
spoil_commit() { mkdir -p "$1/in-the-way"; }
spoil_control() { :; }

# one CASE: checkpoint --kill with the image spoiled by spoil_CASE.
one() {
  local name=$1 out=$work/$1.out img=$work/images/$1.img gate=$work/$1.gate finish=$work/$1.finish
  local guest ctl_pid status msg
  : > "$gate"
  start_guest "$out" python3 "$work/guest.py" "$gate" "$finish" || { fail "$name: did not start"; return; }
  guest=$CKPT_GUEST_PID
  wait_for_line_or_end "$out" '^ready' "$guest" || { fail "$name: no ready line: $(cat "$out.err")"; return; }
  echo "$guest" > "$freezer/cgroup.procs"
  freeze FROZEN 1
  "$ctl" checkpoint "$guest" -o "$img" --kill > "$work/$name.ctl" 2>&1 &
  ctl_pid=$!
  until request_pending "$guest"; do
    _ckpt_alive "$ctl_pid" || break
    sleep 0.01
  done
  if ! request_pending "$guest"; then
    fail "$name: mosixctl ended before its request reached the guest: $(cat "$work/$name.ctl")"
    freeze THAWED 0
    rm -f "$gate" && touch "$finish" && wait "$guest"
    return
  fi
  kill -STOP "$ctl_pid"
  rm -f "$gate"
  freeze THAWED 0
  # The agent writes the image, says ok and stops the guest (asked to stop,
  # not to kill: the kill is mosixctl's, after the image is in place).
  until [[ $(state_of "$guest") == T ]] || ! _ckpt_alive "$guest"; do sleep 0.01; done
  if ! _ckpt_alive "$guest"; then
    kill -CONT "$ctl_pid"
    wait "$ctl_pid"
    fail "$name: the process was ended before mosixctl had verified and committed its image: $(cat "$work/$name.ctl")"
    return
  fi
  "spoil_$name" "$img"
  kill -CONT "$ctl_pid"
  wait "$ctl_pid"
  status=$?
  msg=$(cat "$work/$name.ctl")
  if [[ $name == control ]]; then
    wait "$guest"
    if (( status == 0 )) && [[ -s $img ]] && ! _ckpt_alive "$guest"; then
      echo "ok: control: the image is in place and the process is gone"
    else
      fail "control: mosixctl exited $status ($msg); image: $(ls -l "$img" 2>&1)"
    fi
    return
  fi
  (( status != 0 )) || fail "$name: mosixctl succeeded with a spoiled image: $msg"
  [[ $msg == *"left running"* ]] || fail "$name: the error does not say the process was left running: $msg"
  case $name in
    verify) [[ $msg == *"does not verify"* ]] || fail "verify: the error does not say the image does not verify: $msg" ;;
    commit) [[ $msg == *"cannot rename"* ]] || fail "commit: the error does not say the rename failed: $msg" ;;
  esac
  [[ ! -f $img ]] || fail "$name: an image was left at $img"
  local temps
  temps=$(ls -A "$work/images" | grep -c '\.tmp\.')
  (( temps == 0 )) || fail "$name: $temps temporary image(s) left in $work/images"
  wait_for_line_or_end "$out" '^went on' "$guest"
  if [[ $(state_of "$guest") == [RS] ]] && grep -q '^went on' "$out"; then
    echo "ok: $name: refused ($msg), the process goes on"
  else
    fail "$name: the process is not running on (state $(state_of "$guest")): $(tail -n 2 "$out")"
  fi
  touch "$finish"
  wait "$guest"
  status=$?
  if (( status == 0 )) && grep -q '^finished' "$out"; then
    echo "ok: $name: the process finished normally"
  else
    fail "$name: the process ended with $status: $(tail -n 2 "$out") $(tail -n 2 "$out.err")"
  fi
}

# Waits until OUT has a line matching PATTERN, or PID has ended (then 1).
wait_for_line_or_end() {
  until grep -q -- "$2" "$1" 2> /dev/null; do
    _ckpt_alive "$3" || { grep -q -- "$2" "$1" 2> /dev/null; return; }
    sleep 0.01
  done
}

one verify
one commit
rm -rf "$work/images/commit.img"
one control

if (( failures > 0 )); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all checks passed"
