# PMI-2's wire as MPICH's and Slurm's PMI-2 clients speak it over PMI_FD,
# for the test clients (pmi2_client.py, pmi2_spawn_client.py): a PMI-1
# "init" line asking for version 2, then frames of a 6-character length and
# "cmd=NAME;k=v;...;", a ';' inside a value doubled (MPICH's escape). The
# length is aligned right (MPICH 4.1 on), or left and padded with blanks
# (MPICH 4.0's simple2pmi, Slurm's libpmi2) with left_aligned. Stdlib only.
import os
import socket
import sys


class Link:
    def __init__(self, left_aligned=False):
        self.length = "{:<6d}" if left_aligned else "{:6d}"
        self.sock = socket.socket(fileno=int(os.environ["PMI_FD"]))
        self.sock.sendall(b"cmd=init pmi_version=2 pmi_subversion=0\n")
        line = b""
        while not line.endswith(b"\n"):
            line += self.read_exact(1)
        if b"pmi_version=2" not in line or b"rc=0" not in line:
            sys.exit(f"init: {line!r}")

    def read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                sys.exit("PMI server closed the link")
            data += chunk
        return data

    def frame(self, body):
        """Sends one frame's body; the answer's fields (with its cmd)."""
        self.sock.sendall((self.length.format(len(body)) + body).encode())
        return parse(self.read_exact(int(self.read_exact(6).decode())).decode())

    def call(self, cmd, items=(), must=True):
        """cmd with (key, value) items; its answer, which must be cmd's
        response, and with must, rc=0."""
        body = "cmd=" + cmd + ";" + "".join(f"{k}={str(v).replace(';', ';;')};" for k, v in items)
        reply = self.frame(body)
        if reply.get("cmd") != cmd + "-response":
            sys.exit(f"{cmd}: answered {reply}")
        if must and reply.get("rc") != "0":
            sys.exit(f"{cmd}: {reply}")
        return reply


def parse(body):
    # Items end at a ';' that is not doubled.
    reply, item, i = {}, "", 0
    while i < len(body):
        if body[i] == ";" and i + 1 < len(body) and body[i + 1] == ";" and "=" in item:
            item += ";"
            i += 2
            continue
        if body[i] == ";":
            if "=" in item:
                k, v = item.split("=", 1)
                reply[k] = v
            item = ""
        else:
            item += body[i]
        i += 1
    return reply
