# A PMI-2 client over PMI_FD, as MPICH's and Slurm's PMI-2 libraries speak it
# (a v1 "init" line, then frames of a 6-character length and
# "cmd=NAME;k=v;...;"), for mpich_pmi_test: the job's copies put a key each,
# fence, and each reads its neighbour's and the job's process mapping.
# Prints "rank R of N: got V mapping M". Stdlib only.
import os
import socket
import sys

fd = int(os.environ["PMI_FD"])
sock = socket.socket(fileno=fd)


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("PMI server closed the link")
        data += chunk
    return data


def call(cmd, **fields):
    body = "cmd=" + cmd + ";" + "".join(f"{k.replace('_', '-')}={v};" for k, v in fields.items())
    sock.sendall(f"{len(body):6d}{body}".encode())
    length = int(read_exact(6).decode())
    reply = {}
    for item in read_exact(length).decode().split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            reply[k] = v
    if reply.get("rc") != "0":
        sys.exit(f"{cmd}: {reply}")
    return reply


sock.sendall(b"cmd=init pmi_version=2 pmi_subversion=0\n")
line = b""
while not line.endswith(b"\n"):
    line += read_exact(1)
if b"pmi_version=2" not in line or b"rc=0" not in line:
    sys.exit(f"init: {line!r}")
init = call("fullinit", pmirank=os.environ["PMI_RANK"], threaded="FALSE")
rank, size = int(init["rank"]), int(init["size"])
jobid = call("job-getid")["jobid"]
mapping = call("info-getjobattr", key="PMI_process_mapping")
call("kvs-put", key=f"card-{rank}", value=f"from-{rank}")
call("kvs-fence", thrid="0x1234")
got = call("kvs-get", jobid=jobid, srcid=(rank + 1) % size, key=f"card-{(rank + 1) % size}")
call("finalize")
os.write(1, f"rank {rank} of {size}: got {got.get('value')} mapping {mapping.get('value')}\n".encode())
