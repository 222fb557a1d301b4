# Checkpoint images are code: mosixrun --ckpt-interval writes them only into a
# directory that is ours alone to write (created 0700), never into a shared
# fallback, and refuses a --ckpt-dir that is a symlink, another user's, or
# writable by others. Each refusal is one line, exit 2, nothing started.
BIN=$(cd "$1" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
RUN=$BIN/mosixrun

bad() {  # NAME NEEDLE ARGS... (runs mosixrun with the environment of $ENV_CMD)
  local name=$1 needle=$2; shift 2
  set +e; ${ENV_CMD:-} "$RUN" "$@" > "$TMP/bad.out" 2> "$TMP/bad.err"; local rc=$?; set -e
  local lines; lines=$(wc -l < "$TMP/bad.err")
  if [[ $rc == 2 && $lines == 1 && "$(cat "$TMP/bad.err")" == *"$needle"* && ! -s "$TMP/bad.out" ]]; then
    pass "refused: $name"
  else
    fail "refused: $name: rc=$rc lines=$lines err=[$(cat "$TMP/bad.err")] out=[$(head -c 200 "$TMP/bad.out")]"
  fi
}
started="$TMP/started"
probe=(-np 1 sh -c "touch $started")

# With neither HOME nor XDG_STATE_HOME there is no private default: refuse,
# rather than write images under a shared /tmp/.local/state/mosix.
shared_images() { { find /tmp/.local/state/mosix/ckpt -maxdepth 1 2>/dev/null || true; } | wc -l; }
before=$(shared_images)
ENV_CMD="env -u HOME -u XDG_STATE_HOME" bad "no HOME, no default directory" "set HOME, or give --ckpt-dir" \
  --ckpt-interval 100 "${probe[@]}"
check_eq "nothing written under /tmp/.local" "$before" "$(shared_images)"

mkdir -m 700 "$TMP/real"
ln -s "$TMP/real" "$TMP/link"
bad "--ckpt-dir is a symlink" "symbolic link" --ckpt-interval 100 --ckpt-dir "$TMP/link" "${probe[@]}"
mkdir "$TMP/shared"; chmod 1777 "$TMP/shared"
bad "--ckpt-dir others may write" "chmod go-w" --ckpt-interval 100 --ckpt-dir "$TMP/shared" "${probe[@]}"
check_eq "the refusal leaves its mode alone" 1777 "$(stat -c %a "$TMP/shared")"
mkdir "$TMP/group"; chmod 770 "$TMP/group"
bad "--ckpt-dir the group may write" "chmod go-w" --ckpt-interval 100 --ckpt-dir "$TMP/group" "${probe[@]}"
if [[ $(id -u) == 0 ]]; then
  mkdir -m 700 "$TMP/theirs"; chown 65534:65534 "$TMP/theirs"
  bad "--ckpt-dir of another user" "belongs to uid 65534" --ckpt-interval 100 --ckpt-dir "$TMP/theirs" "${probe[@]}"
fi
check_eq "nothing started by a refused directory" "" "$(ls "$TMP" | grep '^started$' || true)"

# The default and a new --ckpt-dir are created 0700, and the job runs.
"$RUN" --ckpt-interval 100 "${probe[@]}"
check_eq "job ran with the default directory" "started" "$(ls "$TMP" | grep '^started$' || true)"
check_eq "default directory created 0700" 700 "$(stat -c %a "$XDG_STATE_HOME"/mosix/ckpt/job-*)"
"$RUN" --ckpt-interval 100 --ckpt-dir "$TMP/new/ckpt" -np 1 true
check_eq "new --ckpt-dir created 0700" "700 700" "$(stat -c %a "$TMP/new" "$TMP/new/ckpt" | xargs)"
"$RUN" --ckpt-interval 100 --ckpt-dir "$TMP/real" -np 1 true
pass "an existing private --ckpt-dir is used"

finish
