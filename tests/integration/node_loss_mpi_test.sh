# node_loss_test.sh with the node daemons of the virtual cluster started by
# mpirun and talking over MPI (MOSIX_TRANSPORT=mpi), as on real nodes: the
# MPI transport's side of a lost node (sends to it dropped, the closing
# barrier among the survivors) is tested here.
MOSIX_TRANSPORT=mpi exec bash "$(dirname "$0")/node_loss_test.sh" "$@"
