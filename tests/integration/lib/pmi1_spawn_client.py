# MPI_Comm_spawn as MPICH's PMI-1 client asks for it (simple_pmi.c's
# PMI_Spawn_multiple: "mcmd=spawn" lines per app, ended by "endcmd", answered
# by one spawn_result), for mpich_pmi_test; Debian's MPICH (ch4:ucx) cannot
# open an MPI port, so no real MPICH program can spawn on this machine, even
# under Hydra. Stdlib only. Over PMI_FD:
#   parent (no PMI_SPAWNED): rank 0 spawns 2 copies of this script (app 0)
#     and 1 (app 1), with PARENT_ROOT_PORT_NAME preput as MPICH does; prints
#     "parent R: spawn rc=RC". With argument "missing" it spawns a program
#     that does not exist and prints whether that failed.
#   child (PMI_SPAWNED=1): checks its world (own kvsname, size 3, app
#     number), reads the preput port, puts a key, barriers with the other
#     children, reads its neighbour's; prints "child R of N: ...".
import os
import socket
import sys

sock = socket.socket(fileno=int(os.environ["PMI_FD"]))
inbox = b""


def line():
    global inbox
    while b"\n" not in inbox:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("PMI server closed the link")
        inbox += chunk
    text, inbox = inbox.split(b"\n", 1)
    return dict(item.split("=", 1) for item in text.decode().split() if "=" in item)


def call(text):
    sock.sendall((text + "\n").encode())
    return line()


init = call("cmd=init pmi_version=1 pmi_subversion=1")
if init.get("rc") != "0":
    sys.exit(f"init: {init}")
kvsname = call("cmd=get_my_kvsname")["kvsname"]
appnum = call("cmd=get_appnum")["appnum"]
rank, size = int(os.environ["PMI_RANK"]), int(os.environ["PMI_SIZE"])


def say(text):
    # One write per line: the copies' lines must not interleave.
    os.write(1, (text + "\n").encode())


def spawn(apps, port):
    lines = []
    for i, (program, count, args) in enumerate(apps):
        lines += ["mcmd=spawn", f"nprocs={count}", f"execname={program}", f"totspawns={len(apps)}",
                  f"spawnssofar={i + 1}"]
        lines += [f"arg{k + 1}={a}" for k, a in enumerate(args)]
        lines += [f"argcnt={len(args)}", "preput_num=1", "preput_key_0=PARENT_ROOT_PORT_NAME",
                  f"preput_val_0={port}", "info_num=0", "endcmd"]
    sock.sendall(("\n".join(lines) + "\n").encode())
    return line()


if os.environ.get("PMI_SPAWNED") != "1":
    if rank == 0 and sys.argv[1:] == ["missing"]:
        reply = spawn([("/nonexistent/mosix-no-such-program", 2, [])], "port-" + kvsname)
        say(f"parent {rank}: spawn of a missing program "
            f"{'failed, as it should' if reply.get('rc') != '0' else 'SUCCEEDED'}")
    elif rank == 0:
        me = os.path.abspath(sys.argv[0])
        reply = spawn([(sys.executable, 2, [me, "first"]), (sys.executable, 1, [me, "second"])], "port-of-parents")
        say(f"parent {rank}: spawn rc={reply.get('rc')}")
    else:
        say(f"parent {rank}: not the root")
    call("cmd=finalize")
    sys.exit(0)

port = call("cmd=get kvsname=" + kvsname + " key=PARENT_ROOT_PORT_NAME").get("value")
mapping = call("cmd=get kvsname=" + kvsname + " key=PMI_process_mapping").get("rc")
call(f"cmd=put kvsname={kvsname} key=card-{rank} value=from-{rank}")
call("cmd=barrier_in")
got = call(f"cmd=get kvsname={kvsname} key=card-{(rank + 1) % size}").get("value")
call("cmd=finalize")
say(f"child {rank} of {size}: app {appnum} {sys.argv[1]}, own world {'.spawn' in kvsname}, "
    f"parent port {port}, mapping rc {mapping}, got {got}")
