# mosixrun inside a real Slurm allocation: a one-machine Slurm with two nodes
# (lib/slurm.sh), sbatch jobs that run mosixrun, their output and exit codes.
# Root only; skipped with a message otherwise or when Slurm is not installed.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/slurm.sh"

if reason=$(slurm_skip_reason); then
  echo "SKIP: slurm_test: $reason"
  exit 77
fi

# One test Slurm per machine at a time (it has fixed ports and one directory):
# another build's run of this test waits here for this one to end.
exec 9> "${MOSIX_SLURM_DIR}.lock"
flock 9
trap 'slurm_down; rm -rf "$TMP"' EXIT
if ! slurm_up; then
  echo "FAIL slurm_up: the test Slurm did not come up (see the lines above)" >&2
  exit 1
fi
pass "slurm_up: $(sinfo -h -N -o '%N %t' | tr '\n' ' ')"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# submit NAME SBATCH_OPTIONS... runs $TMP/NAME.sh as a batch job and waits
# for it; its output is in $TMP/NAME.out, sbatch's exit status in $rc. A job
# sbatch lost sight of (it then exits 0) is a failure, not a pass.
submit() {
  local name=$1
  shift
  rc=0
  sbatch --wait --quiet --time=1 --chdir="$TMP" --output="$TMP/$name.out" "$@" "$TMP/$name.sh" \
    2> "$TMP/$name.sbatch" || rc=$?
  if grep -q . "$TMP/$name.sbatch"; then
    fail "sbatch $name: $(tr '\n' ' ' < "$TMP/$name.sbatch")"
    [[ $rc != 0 ]] || rc=unknown
  fi
}

# The allocation as the batch script sees it: the values the unit tests of
# slurm_allocation() take as real.
cat > "$TMP/env.sh" << 'EOF'
#!/bin/bash
echo "$SLURM_JOB_NODELIST $SLURM_TASKS_PER_NODE $SLURM_JOB_CPUS_PER_NODE $SLURMD_NODENAME"
srun sh -c 'echo "step on $SLURMD_NODENAME"' | sort
EOF
submit env -N2
check_eq "sbatch -N2 exit status" 0 "$rc"
check_eq "sbatch -N2 allocation and steps on both nodes" \
  $'n[1-2] 1(x2) 1(x2) n1\nstep on n1\nstep on n2' "$(cat "$TMP/env.out")"

# What works today: mosixrun inside a one-node allocation.
cat > "$TMP/one_node.sh" << EOF
#!/bin/bash
"$BIN/mosixrun" --oversubscribe -np 2 sh -c 'echo "rank \$MOSIX_RANK"' | sort
EOF
submit one_node -N1
check_eq "sbatch -N1 mosixrun exit status" 0 "$rc"
check_eq "sbatch -N1 mosixrun output" $'rank 0\nrank 1' "$(cat "$TMP/one_node.out")"

cat > "$TMP/one_node_fail.sh" << EOF
#!/bin/bash
"$BIN/mosixrun" --oversubscribe -np 2 sh -c '[ "\$MOSIX_RANK" = 1 ] && exit 3; exit 0'
EOF
submit one_node_fail -N1
check_eq "sbatch -N1: rank 1 exits 3, the job exits 3" 3 "$rc"

# The node a copy runs on, as Slurm names it: its parent (the node daemon, or
# mosixrun itself on the home node) runs inside that node's job step.
copy_node='tr "\0" "\n" < /proc/$PPID/environ | sed -n "s/^SLURMD_NODENAME=//p"'

# Copies on both nodes of a two-node allocation, no option given: needs the
# multi-node path (node daemons started through mpirun), which comes with
# --vcluster.
two_nodes() {
  cat > "$TMP/two_nodes.sh" << EOF
#!/bin/bash
"$BIN/mosixrun" -np 2 sh -c 'echo "rank \$MOSIX_RANK on \$($copy_node)"' | sort
exit "\${PIPESTATUS[0]}"
EOF
  submit two_nodes -N2
  check_eq "sbatch -N2 mosixrun exit status" 0 "$rc"
  check_eq "sbatch -N2 mosixrun places one copy on each node" \
    $'rank 0 on n1\nrank 1 on n2' "$(cat "$TMP/two_nodes.out")"

  cat > "$TMP/two_nodes_fail.sh" << EOF
#!/bin/bash
"$BIN/mosixrun" -np 2 sh -c '[ "\$MOSIX_RANK" = 1 ] && exit 3; exit 0'
EOF
  submit two_nodes_fail -N2
  check_eq "sbatch -N2: rank 1 (on n2) exits 3, the job exits 3" 3 "$rc"

  # An MPI program over the two nodes (issue 14): wired up by each node's
  # PMIx server, as under srun --mpi=pmix.
  if [[ -x "$BIN/mpi_ring" ]]; then
    cat > "$TMP/two_nodes_mpi.sh" << EOF
#!/bin/bash
"$BIN/mosixrun" -np 2 "$BIN/mpi_ring" | sort
exit "\${PIPESTATUS[0]}"
EOF
    submit two_nodes_mpi -N2
    check_eq "sbatch -N2 mosixrun mpi_ring exit status" 0 "$rc"
    check_eq "sbatch -N2 mosixrun mpi_ring: the ring went round both nodes" \
      $'rank 0 of 2 token 1\nrank 1 of 2 token 0' "$(cat "$TMP/two_nodes_mpi.out")"
    # MPI_Comm_spawn inside the allocation: the children go over its nodes.
    cat > "$TMP/two_nodes_spawn.sh" << EOF
#!/bin/bash
"$BIN/mosixrun" -np 2 "$BIN/mpi_spawn" 2 | sort
exit "\${PIPESTATUS[0]}"
EOF
    submit two_nodes_spawn -N2
    check_eq "sbatch -N2 mosixrun mpi_spawn exit status" 0 "$rc"
    check_eq "sbatch -N2 mosixrun mpi_spawn: 2 parents and 2 children exchanged their ranks" \
      $'child 0 of 2: 2 parents sent sum 3 (ok)\nchild 1 of 2: 2 parents sent sum 3 (ok)\nparent 0 of 2: 2 children sent sum 1 (ok)\nparent 1 of 2: 2 children sent sum 1 (ok)' \
      "$(cat "$TMP/two_nodes_spawn.out")"
  elif [[ -x $BIN/mosix-pmix ]]; then
    # Built with MPI support, so the ring must be there: its absence is a
    # defect of the build, not a reason to pass without the check.
    fail "$BIN/mpi_ring is missing although this build has MPI support (mosix-pmix)"
  else
    echo "not run: an MPI program over two Slurm nodes (built with MOSIX_MPI=OFF: no MPI support to test)"
  fi
}

if grep -q -- '--vcluster' <<< "$("$BIN/mosixrun" --help 2>&1)"; then
  two_nodes
else
  echo "not run: copies over two Slurm nodes (this mosixrun has no multi-node path: no --vcluster in --help)"
fi

finish
