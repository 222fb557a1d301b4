#!/usr/bin/env bash
# Checkpoint/restart of stock Debian programs, unmodified, with the agent
# preloaded: python3 running a hashing loop, bc -l computing pi to 400-2000
# digits and printing multiples of it, gzip and xz compressing 128 MiB of
# deterministic text, and povray rendering one of its examples with two
# threads. Each runs plain, then under 1 and under 5 checkpoint --kill /
# restart rounds; its output (povray's picture, written to stdout, minus its
# "# Render Date" line) must be byte for byte the plain run's. The test holds
# each program where it checkpoints it (lib/ckpt_rounds.sh): the python
# script passes the gate file after each line, the others block writing
# their stdout into pipe_gate. Each run lasts 2-3 s here; the whole script
# about a minute.
# Usage: BIN_DIR LIB_DIR (LIB_DIR holds libmosix.so). Needs the Debian
# packages python3, bc, gzip, xz-utils, povray and povray-examples.
set -u

bin=${1:?usage: ckpt_stock_test.sh BIN_DIR LIB_DIR}
lib=${2:?usage: ckpt_stock_test.sh BIN_DIR LIB_DIR}
# shellcheck source=lib/ckpt_rounds.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/ckpt_rounds.sh"
ckpt_test_start "$bin" "$lib"

scene=/usr/share/doc/povray/examples/advanced/biscuit.pov
for f in /usr/bin/python3 /usr/bin/bc /usr/bin/gzip /usr/bin/xz /usr/bin/povray "$scene"; do
  if [[ ! -e $f ]]; then
    echo "SKIP: $f is missing (install python3 bc gzip xz-utils povray povray-examples; scripts/setup does)"
    exit 77
  fi
done

cat > "$CKPT_WORK/hash.py" << 'EOF'
import hashlib, os, sys, time
n = int(sys.argv[1])
gate = os.environ.get("CKPT_GATE")
lines = 0
def line(*words):
    # Then wait, as ckpt_gate in tests/programs/ckpt_common.h, until the
    # gate file is as long as the count of lines printed, or gone.
    global lines
    print(*words, flush=True)
    lines += 1
    while gate:
        try:
            if os.stat(gate).st_size >= lines:
                break
        except FileNotFoundError:
            break
        time.sleep(0.001)
h = hashlib.sha256()
d = b"mosix"
line("start", n)
for i in range(1, n + 1):
    h.update(d + str(i).encode())
    d = h.digest()
    if i % (n // 10) == 0:
        line("step", i, h.hexdigest()[:16])
line("RESULT python3", h.hexdigest(), "OK")
EOF
cat > "$CKPT_WORK/pi.bc" << 'EOF'
for (s = 400; s <= 2000; s += 400) {
  scale = s
  p = 4 * a(1)
  for (j = 1; j <= 60; j++) p * j
}
EOF
data=$CKPT_WORK/data.txt
seq 1 20000000 | head -c $(( 128 << 20 )) > "$data"

# name, pacing ("lines" or "time") and command line. povray writes its
# picture to stdout.
tests=(
  "python3|lines|/usr/bin/python3 $CKPT_WORK/hash.py 6000000"
  "bc|time|/usr/bin/bc -l $CKPT_WORK/pi.bc"
  "gzip|time|/usr/bin/gzip -c -6 $data"
  "xz|time|/usr/bin/xz -c -0 -T1 $data"
  "povray|time|/usr/bin/povray +I$scene +O- +FP +W1024 +H768 +WT2 -D -V"
)

# The output without povray's line that holds the time of the render.
picture() { grep -av '^# Render Date' "$1"; }

for t in "${tests[@]}"; do
  IFS='|' read -r name pace cmdline <<< "$t"
  [[ -z ${CKPT_STOCK:-} || " $CKPT_STOCK " == *" $name "* ]] || continue
  export CKPT_PACE=$pace
  plain=$CKPT_WORK/$name.plain
  # shellcheck disable=SC2206
  args=($cmdline)
  if ! run_plain "$plain" "${args[@]}" || [[ ! -s $plain ]]; then
    fail "$name: plain run failed: $(tail -n 2 "$plain.err")"
    continue
  fi
  for rounds in 1 5; do
    out=$CKPT_WORK/$name.rounds$rounds
    run_with_rounds "$rounds" "$out" "${args[@]}"
    status=$?
    if (( status != 0 )); then
      fail "$name: $rounds round(s): exit status $status: $(tail -n 2 "$out.err") $(tail -n 3 "$out.log" 2> /dev/null)"
    elif [[ $name == povray ]] && ! cmp -s <(picture "$plain") <(picture "$out"); then
      fail "$name: the picture after $rounds round(s) differs from the plain run's"
    elif [[ $name != povray ]] && ! compare_outputs "$plain" "$out"; then
      fail "$name: output after $rounds round(s) differs from the plain run"
    else
      echo "ok: $name, $rounds checkpoint/kill/restart round(s)"
    fi
  done
done
unset CKPT_PACE

if (( failures > 0 )); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all stock program checkpoint tests passed"
