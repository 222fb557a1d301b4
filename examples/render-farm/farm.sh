#!/bin/sh
# A render farm in one shell script: one background povray per frame of a
# POV-Ray example animation, then wait. Under mosixrun over several nodes
# each povray is placed at exec on the least loaded node (fork and forget):
#
#   mosixrun --vcluster 3 -np 1 sh farm.sh OUTDIR [FRAMES] [WIDTH HEIGHT]
#
# Frames are written to OUTDIR/frameNN.ppm; OUTDIR/nodes.log says where each
# was rendered (MOSIX_NODE, set by the node daemon that started it).
set -eu
out=${1:?usage: farm.sh OUTDIR [FRAMES] [WIDTH HEIGHT]}
frames=${2:-8}
width=${3:-320}
height=${4:-240}
scene=${POV_SCENE:-/usr/share/povray-3.7/scenes/animations/clockd/clockd.pov}
mkdir -p "$out"
: > "$out/nodes.log"
i=1
while [ "$i" -le "$frames" ]; do
  n=$(printf '%02d' "$i")
  # The frame's clock, (i - 1) / frames, in the shell itself: no helper
  # program to place, only the frames.
  c=$(( (i - 1) * 10000 / frames ))
  clock=$((c / 10000)).$(printf '%04d' $((c % 10000)))
  # One frame: the shell that runs it records its node, then becomes povray.
  # With FARM_GATE set (spread_test), it first says it started (OUTDIR/
  # started.NN) and spins, as busy as povray, while that file exists.
  sh -c 'echo "frame $1 ${MOSIX_NODE:-here}" >> "$2/nodes.log"
         if [ -n "${FARM_GATE:-}" ]; then : > "$2/started.$1"; while [ -e "$FARM_GATE" ]; do :; done; fi
         exec povray "+I$3" "+O$2/frame$1.ppm" +FP "+W$4" "+H$5" "+K$6" -D -V +WT1 2> "$2/frame$1.log"' \
    farm "$n" "$out" "$scene" "$width" "$height" "$clock" &
  i=$((i + 1))
done
wait
echo "rendered $frames frames into $out"
