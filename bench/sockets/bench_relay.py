#!/usr/bin/env python3
# The cost of a relayed socket (issue 17, docs/forwarded_sockets.md) against
# a direct one, in one run: a guest (Python) holds both ends of a TCP
# connection to itself (a thread on each end; both ends are the job's own,
# as between two guests of a job) and measures 1-byte round trips and a
# one-way bulk transfer, first at home (a real TCP socket), then moved to
# vnode1 (both ends relayed through the home: guest -> relay -> holder ->
# TCP -> holder -> relay -> guest). Prints each figure and its ratio.
# Usage: bench_relay.py BIN_DIR [--rounds N] [--mib M] [--repeat R]
# Not part of the test suite.
import argparse, json, os, subprocess, sys, tempfile

GUEST = r'''
import socket, sys, threading, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
a = socket.create_connection(l.getsockname()); b, _ = l.accept()
for s in (a, b): s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def rtt(n):
    def echo():
        for _ in range(n):
            b.sendall(b.recv(1))
    t = threading.Thread(target=echo); t.start()
    start = time.perf_counter()
    for _ in range(n):
        a.sendall(b"x")
        if not a.recv(1): sys.exit("eof")
    took = time.perf_counter() - start
    t.join()
    return took / n * 1e6
def bulk(mib):
    total = mib << 20
    def sink():
        got = 0
        while got < total: got += len(b.recv(1 << 16))
    t = threading.Thread(target=sink); t.start()
    chunk = b"y" * (1 << 16)
    start = time.perf_counter()
    for _ in range(total >> 16): a.sendall(chunk)
    t.join()
    return mib / (time.perf_counter() - start)
for line in sys.stdin:
    cmd, *arg = line.split()
    if cmd == "rtt": print(f"{rtt(int(arg[0])):.1f}", flush=True)
    elif cmd == "bulk": print(f"{bulk(int(arg[0])):.1f}", flush=True)
'''

def main():
    p = argparse.ArgumentParser()
    p.add_argument("bin")
    p.add_argument("--rounds", type=int, default=5000)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    o = p.parse_args()
    work = tempfile.mkdtemp(prefix="mosix-bench-relay.")
    with open(f"{work}/guest.py", "w") as f: f.write(GUEST)
    job = subprocess.Popen([f"{o.bin}/mosixrun", "--vcluster", "3", "--migrate", "off", "python3", "-u",
                            f"{work}/guest.py"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    def ask(line):
        job.stdin.write(line + "\n"); job.stdin.flush()
        got = job.stdout.readline().strip()
        if not got: sys.exit(f"the guest ended at '{line}'")
        return float(got)
    def measure():
        rtts = [ask(f"rtt {o.rounds}") for _ in range(o.repeat)]
        bulks = [ask(f"bulk {o.mib}") for _ in range(o.repeat)]
        return min(rtts), max(bulks)
    home = measure()
    r = subprocess.run([f"{o.bin}/mosixctl", "migrate", "0", "vnode1", "--job", str(job.pid), "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0 or not json.loads(r.stdout).get("ok"): sys.exit(f"the move failed: {r.stdout} {r.stderr}")
    away = measure()
    job.stdin.close(); job.wait()
    print(f"round trip, 1 byte (best of {o.repeat} x {o.rounds}): direct {home[0]:.1f} us, "
          f"relayed {away[0]:.1f} us: {away[0] / home[0]:.2f}x")
    print(f"bulk one way, {o.mib} MiB (best of {o.repeat}): direct {home[1]:.0f} MiB/s, "
          f"relayed {away[1]:.0f} MiB/s: {away[1] / home[1]:.2f}x")

main()
