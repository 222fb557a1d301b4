#!/bin/bash
# The MPI transport under a real mpirun with 3 ranks, over shared memory
# (Open MPI's default on one host) and over TCP (what crosses a real network):
# every message type echoed, order per sender, 64 MiB streamed in pieces and
# in one frame, and a rank speaking another protocol version refused by name
# and both versions. Usage: transport_mpi_test.sh BIN_DIR [LIB_DIR]
set -u
bin=${1:?usage: transport_mpi_test.sh BIN_DIR}
check=$bin/transport_mpi_check
if [ ! -x "$check" ]; then
  echo "SKIP: $check not built (MOSIX_MPI=OFF)"
  exit 77
fi
if ! command -v mpirun >/dev/null; then
  echo "SKIP: mpirun not found"
  exit 77
fi
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
failures=0

run() {  # run NAME MPIRUN_OPTIONS... -- PROGRAM_ARGS...
  local name=$1; shift
  local opts=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  # The limit only stops a hung run; it bounds no performance.
  if timeout 240 mpirun --oversubscribe "${opts[@]}" -np 3 "$check" "$@" >"$out" 2>&1; then
    echo "ok: $name"
    return 0
  fi
  echo "FAIL: $name"
  sed 's/^/    /' "$out"
  failures=$((failures + 1))
  return 1
}

for transport in shm tcp; do
  case $transport in
    shm) opts=() ;;
    tcp) opts=(--mca btl self,tcp) ;;
  esac
  run "$transport every message type" "${opts[@]}" -- every-type
  run "$transport order per sender" "${opts[@]}" -- order
  run "$transport 64 MiB in pieces and whole" "${opts[@]}" -- large
  for old in 0 2; do
    if run "$transport rank $old of another protocol version" "${opts[@]}" -- version $old; then
      ours=$(sed -n 's/^this daemon speaks protocol version \([0-9]*\)$/\1/p' "$out")
      expected="refused rank $old: message from rank $old: node 'node-$old' (mosix 9.9.9) speaks protocol version $((ours + 1)), this daemon speaks version $ours"
      if ! grep -qF "$expected" "$out"; then
        echo "FAIL: $transport: refusal of rank $old does not say: $expected"
        sed 's/^/    /' "$out"
        failures=$((failures + 1))
      fi
    fi
  done
done

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all transport checks passed"
