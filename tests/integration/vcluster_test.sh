# The checks of mosixrun_test.sh again, through node daemons started by mpirun
# (mosixrun --vcluster 2): remote stdio, signals, exit rule and orphans.
BIN=$(cd "$1" && pwd)
WRAP=$(mktemp -d "${TMPDIR:-/tmp}/mosix-vc.XXXXXX")
printf '#!/bin/sh\nexec "%s/mosixrun" --vcluster 2 "$@"\n' "$BIN" > "$WRAP/mosixrun-vc"
chmod +x "$WRAP/mosixrun-vc"
export MOSIX_TEST_MODE=vcluster MOSIX_TEST_RUN="$WRAP/mosixrun-vc"
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export MOSIX_TEST_CLEANUP="$WRAP"
source "$(dirname "$0")/mosixrun_test.sh"
