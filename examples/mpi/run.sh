#!/bin/bash
# Builds hello.c and ring.c with mpicc into a scratch folder and runs them
# under mosixrun, on one node and on a virtual cluster. Usage:
#   run.sh [BIN]   BIN: where mosixrun is (default: found on PATH)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$(dirname "$(command -v mosixrun)")}
work=$(mktemp -d "${TMPDIR:-/tmp}/mosix-mpi-example.XXXXXX")
trap 'rm -rf "$work"' EXIT
mpicc -o "$work/hello" "$here/hello.c"
mpicc -o "$work/ring" "$here/ring.c"
set -x
"$bin/mosixrun" --oversubscribe -np 2 "$work/hello"
"$bin/mosixrun" --vcluster 3 --map-by node -np 3 "$work/hello"
"$bin/mosixrun" --vcluster 2 --oversubscribe -np 4 "$work/ring"
