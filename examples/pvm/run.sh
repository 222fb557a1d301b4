#!/usr/bin/env bash
# Builds farm.c against Debian's pvm-dev and runs it under mosixrun, on one
# node and on a virtual cluster of 3. Usage: run.sh [DIRECTORY_OF_MOSIXRUN]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$(dirname "$(command -v mosixrun)")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -o "$work/farm" "$here/farm.c" -lpvm3
cd "$work"
# The master spawns "farm" by name, found on PATH as exec finds it.
export PATH="$work:$PATH"
"$bin/mosixrun" -np 1 ./farm
"$bin/mosixrun" --vcluster 3 -np 1 ./farm
