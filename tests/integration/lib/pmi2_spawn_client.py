# MPI_Comm_spawn and the name service as MPICH's PMI-2 client asks for them
# (simple2pmi.c's PMI2_Job_Spawn and PMI2_Nameserv_*, Slurm's and Hydra's
# pmi2 servers answer them), for mpich_pmi2_test, over PMI_FD
# (pmi2_wire.py). Stdlib only. Modes (argv[1]):
#   spawn WDIR [HOST]: rank 0 spawns 2 copies of this script ("child"), with
#     PARENT_ROOT_PORT_NAME and PARENT_JOBID preput and the info keys wdir
#     (and host); prints "parent R: ...".
#   child: (started by a spawn) checks what PMI-2 tells a spawned copy:
#     spawner-jobid (its parent's), PMI_SPAWNED, rank, size, appnum, its own
#     jobid, the preput keys, the process mapping, the universe size;
#     barriers with the other child and reads its key; prints
#     "child R of N: ...".
#   missing: rank 0 spawns a program that does not exist.
#   bad: rank 0 sends a spawn of 0 copies, a spawn whose ncmds does not match
#     its commands, and a frame that is no command; each must be answered
#     rc != 0, and the link must still serve.
#   names: rank 0 publishes a name, rank 1 looks it up (a fence between as
#     the handshake), fails to publish it again and to look up an unknown
#     one; rank 0 unpublishes it and rank 1 no longer finds it.
import os
import sys

sys.dont_write_bytecode = True  # nothing written beside the sources
from pmi2_wire import Link  # noqa: E402

link = Link(left_aligned=True)  # as MPICH 4.0's client writes
call, send_frame = link.call, link.frame


def say(text):
    # One write per line: the copies' lines must not interleave.
    os.write(1, (text + "\n").encode())


def spawn(program, count, args, infos, preput, ncmds=1):
    items = [("thrid", "0x55"), ("ncmds", ncmds), ("preputcount", len(preput))]
    for i, (k, v) in enumerate(preput):
        items += [(f"ppkey{i}", k), (f"ppval{i}", v)]
    items += [("subcmd", program), ("maxprocs", count), ("argc", len(args))]
    items += [(f"argv{i}", a) for i, a in enumerate(args)]
    items += [("infokeycount", len(infos))]
    for i, (k, v) in enumerate(infos):
        items += [(f"infokey{i}", k), (f"infoval{i}", v)]
    return call("spawn", items, must=False)


init = call("fullinit", [("pmirank", os.environ["PMI_RANK"]), ("threaded", "FALSE")])
rank, size, appnum = int(init["rank"]), int(init["size"]), init.get("appnum")
jobid = call("job-getid")["jobid"]
mode = sys.argv[1]

if "spawner-jobid" in init:
    if mode != "child":
        sys.exit(f"rank {rank}: told it was spawned, by {init['spawner-jobid']}")
    port = call("kvs-get", [("jobid", jobid), ("srcid", -1), ("key", "PARENT_ROOT_PORT_NAME")])
    parent = call("kvs-get", [("jobid", jobid), ("srcid", -1), ("key", "PARENT_JOBID")])
    mapping = call("info-getjobattr", [("key", "PMI_process_mapping")])
    universe = call("info-getjobattr", [("key", "universeSize")])
    call("kvs-put", [("key", f"card-{rank}"), ("value", f"from-{rank}")])
    call("kvs-fence")
    got = call("kvs-get", [("jobid", jobid), ("srcid", (rank + 1) % size), ("key", f"card-{(rank + 1) % size}")])
    call("finalize")
    say(f"child {rank} of {size}: PMI_SPAWNED {os.environ.get('PMI_SPAWNED')}, app {appnum}, "
        f"own job {jobid != init['spawner-jobid']}, spawner is parent {init['spawner-jobid'] == parent.get('value')}, "
        f"port {port.get('value')}, mapping {mapping.get('value')}, universe {universe.get('value')}, cwd {os.getcwd()}, got {got.get('value')}")
    sys.exit(0)

if mode == "child":
    sys.exit(f"rank {rank}: a child without spawner-jobid: {init}")
if "PMI_SPAWNED" in os.environ:
    sys.exit(f"rank {rank}: PMI_SPAWNED in a first copy")

if mode == "names":
    if size != 2:
        sys.exit("names: run it with 2 ranks")
    if rank == 0:
        call("name-publish", [("name", "mosix-svc"), ("port", "port;of-0"), ("infokeycount", 0)])
    call("kvs-fence")  # published before rank 1 looks
    if rank == 1:
        found = call("name-lookup", [("name", "mosix-svc"), ("infokeycount", 0)])
        say(f"rank 1: lookup mosix-svc: {found.get('port')} found {found.get('found')}")
        again = call("name-publish", [("name", "mosix-svc"), ("port", "other"), ("infokeycount", 0)], must=False)
        say(f"rank 1: publish of a taken name: rc {again.get('rc') != '0'}, errmsg {again.get('errmsg')}")
        unknown = call("name-lookup", [("name", "mosix-unknown"), ("infokeycount", 0)], must=False)
        say(f"rank 1: lookup mosix-unknown: rc {unknown.get('rc') != '0'}, found {unknown.get('found')}, "
            f"errmsg {unknown.get('errmsg')}")
    call("kvs-fence")  # looked up before rank 0 unpublishes
    if rank == 0:
        gone = call("name-unpublish", [("name", "mosix-svc"), ("infokeycount", 0)])
        say(f"rank 0: unpublish mosix-svc: rc {gone.get('rc')}")
    call("kvs-fence")  # unpublished before rank 1 looks again
    if rank == 1:
        after = call("name-lookup", [("name", "mosix-svc"), ("infokeycount", 0)], must=False)
        say(f"rank 1: lookup after unpublish: rc {after.get('rc') != '0'}, port {after.get('port')}")
elif rank != 0:
    say(f"parent {rank}: not the root")
elif mode == "spawn":
    infos = [("wdir", sys.argv[2])] + ([("host", sys.argv[3])] if len(sys.argv) > 3 else [])
    reply = spawn(sys.executable, 2, [os.path.abspath(sys.argv[0]), "child"], infos,
                  [("PARENT_ROOT_PORT_NAME", "tag#port;0$"), ("PARENT_JOBID", jobid)])
    say(f"parent 0: spawn rc={reply.get('rc')} thrid {reply.get('thrid')} new jobid "
        f"{reply.get('jobid', jobid) != jobid} nerrs {reply.get('nerrs')}")
elif mode == "missing":
    reply = spawn("/nonexistent/mosix-no-such-program", 2, [], [], [])
    say(f"parent 0: spawn of a missing program: rc {reply.get('rc') != '0'}, errmsg {'errmsg' in reply}")
elif mode == "bad":
    me = os.path.abspath(sys.argv[0])
    zero = spawn(sys.executable, 0, [me, "child"], [], [])
    say(f"parent 0: spawn of 0 copies: rc {zero.get('rc') != '0'}, errmsg {zero.get('errmsg')}")
    short = spawn(sys.executable, 1, [me, "child"], [], [], ncmds=2)
    say(f"parent 0: spawn of 2 commands with 1: rc {short.get('rc') != '0'}, errmsg {short.get('errmsg')}")
    garbage = send_frame("cmd=spawn;=x;")
    say(f"parent 0: a frame that is no command: {garbage.get('cmd')} rc {garbage.get('rc') != '0'}")
    say(f"parent 0: still served: {call('job-getid')['jobid'] == jobid}")
call("finalize")
