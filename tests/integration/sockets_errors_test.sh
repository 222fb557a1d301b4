# Forwarded sockets (issue 17) when things go wrong, on a virtual cluster of
# 3 nodes; a guest (Python) told what to do line by line on its stdin, with
# the peers of its TCP connections in this test's driver (Python too):
# 1. A peer's reset (SO_LINGER 0) while the guest is away reads in the guest
#    exactly as the same reset of a real TCP socket read at home, before the
#    move: poll and epoll masks, the data queued before it, then ECONNRESET,
#    then end of stream, then EPIPE and SIGPIPE on a write; or, written before any read,
#    ECONNRESET (send and write), then the data, then end of stream. A peer's normal close reads
#    as a real one: the data, then end of stream. The guest closing a
#    socket with its peer's bytes unread resets the peer, as at home.
#    A connection reset at home and kept open by the program (read up to
#    its reset or not) moves, and reads as it would have at home.
# 2. The node daemon that holds the guest's real socket dies while the guest
#    is away (the socket was made on vnode1, the guest moved to vnode2): the
#    guest reads what had come, then the same reset.
# 1b. TCP and IP options read away as the real socket had them; those set
#    away read back, and are the real socket's once the guest is home again.
#    Options set away are set on the real socket at once (its errno comes
#    back: TCP_MAXSEG 1 is EINVAL; SO_KEEPALIVE: ss shows the live
#    connection's keepalive timer), and read from it (SO_SNDBUF doubled by
#    TCP, TCP_INFO's state): the same as at home, in the same run.
# 3. A guest with a forwarded listener ends while another rank runs on: its
#    holder closes the real listener, so a client is refused (checked once
#    the home has the guest's end, which its holder's close precedes).
# 4. A thread blocked in libc's accept on a listener (called through ctypes,
#    so Python's own EINTR retry is not there) while the guest moves: it
#    accepts the next client after each move (the restarted accept goes
#    through the agent), no EINTR.
set -u
BIN=$(cd "$1" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mosix-sockerr.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
command -v python3 > /dev/null || { echo "skip: python3 is not installed"; exit 77; }

cat > "$WORK/guest.py" <<'EOF'
import errno, os, select, socket, sys
conns, listener = {}, None
if os.environ["MOSIX_RANK"] != "0":  # a rank that runs on until the driver opens the fifo
    open(sys.argv[1]).read()
    sys.exit(0)
def say(*a): print(*a, flush=True)
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGPIPE])  # held: sigpending tells whether a write raised it
def ended(s, write):
    # Waits until the stream ended (POLLRDHUP; POLLHUP and POLLERR come anyway),
    # then tells what poll, epoll, reads and a write give. `write`: None, "after"
    # the reads, or "first" (send) / "firstw" (os.write) before them.
    p = select.poll(); p.register(s, select.POLLRDHUP); p.poll()
    p = select.poll(); p.register(s, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    e = select.epoll(); e.register(s, select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP)
    out = [f"poll {p.poll(0)[0][1]:#x} epoll {e.poll(0)[0][1]:#x}"]
    def write_once():
        try:
            s.send(b"x") if write != "firstw" else os.write(s.fileno(), b"x"); out.append("write ok")
        except OSError as x:
            out.append("write " + errno.errorcode[x.errno])
        if signal.SIGPIPE in signal.sigpending():
            signal.sigwait([signal.SIGPIPE]); out[-1] += "+SIGPIPE"
    if write in ("first", "firstw"): write_once()
    for _ in range(3):
        try:
            d = s.recv(100)
            out.append(f"data {len(d)}" if d else "eof")
        except OSError as x:
            out.append(errno.errorcode[x.errno])
    if write == "after": write_once()
    return ", ".join(out)
for line in sys.stdin:
    cmd, *a = line.split()
    if cmd == "connect":
        conns[a[0]] = socket.create_connection(("127.0.0.1", int(a[1]))); say("connected", os.environ["MOSIX_NODE"])
    elif cmd == "close":
        conns.pop(a[0]).close(); say("closed")
    elif cmd == "wait":  # until the stream ended; the socket kept open
        p = select.poll(); p.register(conns[a[0]], select.POLLRDHUP); p.poll(); say("ended")
    elif cmd == "drain":  # until the stream ended, then reads until the reset or end; kept open
        p = select.poll(); p.register(conns[a[0]], select.POLLRDHUP); p.poll()
        try:
            while conns[a[0]].recv(100): pass
            say("eof")
        except OSError as x:
            say(errno.errorcode[x.errno])
    elif cmd == "readable":
        select.select([conns[a[0]]], [], []); say("readable")
    elif cmd == "ended":
        say(ended(conns[a[0]], a[1] if len(a) > 1 else None)); conns.pop(a[0]).close()
    elif cmd == "setopt":  # setopt NAME LEVEL OPTION VALUE
        conns[a[0]].setsockopt(getattr(socket, a[1]), getattr(socket, a[2]), int(a[3])); say("set")
    elif cmd == "opts":
        out = []
        for level, name in (("IPPROTO_TCP", "TCP_NODELAY"), ("IPPROTO_TCP", "TCP_KEEPIDLE"),
                            ("IPPROTO_TCP", "TCP_KEEPINTVL"), ("IPPROTO_IP", "IP_TOS"), ("IPPROTO_IPV6", "IPV6_V6ONLY")):
            try:
                out.append(f"{name} {conns[a[0]].getsockopt(getattr(socket, level), getattr(socket, name))}")
            except OSError as x:
                out.append(f"{name} {errno.errorcode[x.errno]}")
        say(", ".join(out))
    elif cmd == "sockopts":  # sets, then reads, options a TCP connection's behaviour depends on
        s, out = conns[a[0]], []
        for level, name, v in (("SOL_SOCKET", "SO_KEEPALIVE", 1), ("IPPROTO_TCP", "TCP_NODELAY", 1),
                               ("SOL_SOCKET", "SO_SNDBUF", 65536), ("SOL_SOCKET", "SO_RCVBUF", 70000),
                               ("IPPROTO_TCP", "TCP_MAXSEG", 1)):
            try:
                s.setsockopt(getattr(socket, level), getattr(socket, name), v); out.append(f"set {name} ok")
            except OSError as x:
                out.append(f"set {name} {errno.errorcode[x.errno]}")
        for level, name in (("SOL_SOCKET", "SO_KEEPALIVE"), ("IPPROTO_TCP", "TCP_NODELAY"), ("SOL_SOCKET", "SO_SNDBUF"),
                            ("SOL_SOCKET", "SO_RCVBUF"), ("SOL_SOCKET", "SO_ERROR")):
            out.append(f"{name} {s.getsockopt(getattr(socket, level), getattr(socket, name))}")
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        out.append(f"TCP_INFO state {info[0]} length {len(info)}")
        say(", ".join(out))
    elif cmd == "listen":
        listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(4); say(listener.getsockname()[1])
    elif cmd == "serve":
        c, _ = listener.accept(); c.sendall(b"hi"); c.close(); say("served")
    elif cmd == "acceptor":  # a thread in libc's accept, called as C would (Python retries EINTR itself)
        import ctypes, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def accepting():
            import fcntl
            while True:
                if a[0] == "accept4":
                    c = libc.accept4(listener.fileno(), None, None, socket.SOCK_CLOEXEC)
                else:
                    c = libc.accept(listener.fileno(), None, None)
                if c < 0:
                    say("accept", errno.errorcode[ctypes.get_errno()]); return
                cloexec = fcntl.fcntl(c, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
                os.write(c, b"hi"); os.close(c); say("accepted", "cloexec" if cloexec else "inherited")
        threading.Thread(target=accepting, daemon=True).start(); say("started")
    elif cmd == "quit":
        break
EOF

cat > "$WORK/driver.py" <<'EOF'
import json, os, shutil, socket, struct, subprocess, sys, time
BIN, WORK = sys.argv[1], sys.argv[2]
failures = []
def check(what, want, got):
    print(f"  {what}: {got}" + ("" if got == want else f"  (WRONG: want {want})"), flush=True)
    if got != want: failures.append(what)

def start(np):
    return subprocess.Popen([f"{BIN}/mosixrun", "--vcluster", "3", "--migrate", "off", "-np", str(np), "python3", "-u", f"{WORK}/guest.py",
                             f"{WORK}/fifo"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(f"{WORK}/job{np}.err", "w"),
                            text=True)
def ask(job, line):
    job.stdin.write(line + "\n"); job.stdin.flush()
    got = job.stdout.readline().strip()
    if not got: sys.exit(f"FAIL: the guest ended at '{line}'; its job's stderr in {WORK}")
    return got
def migrate(job, node):
    r = subprocess.run([f"{BIN}/mosixctl", "migrate", "0", node, "--job", str(job.pid), "--json"],
                       capture_output=True, text=True)
    ok = r.returncode == 0 and json.loads(r.stdout).get("ok")
    print(f"  -> {node}" + ("" if ok else f": FAILED {r.stdout} {r.stderr}"), flush=True)
    if not ok: sys.exit(1)

peer = socket.socket(); peer.bind(("127.0.0.1", 0)); peer.listen(8)
port = peer.getsockname()[1]
peers = {}
def connect(job, name):
    node = ask(job, f"connect {name} {port}")
    peers[name] = peer.accept()[0]
    return node
def peer_reads(name):
    try:
        return f"{peers[name].recv(100)}"
    except OSError as x:
        return x.__class__.__name__
def abort(name):  # the guest closes with the peer's bytes unread: a real socket sends a reset
    peers[name].sendall(b"hello"); ask(job, f"readable {name}"); ask(job, f"close {name}")
    return peer_reads(name)
def reset(name):
    peers[name].sendall(b"hello")
    peers[name].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peers[name].close()
def close(name):
    peers[name].sendall(b"hello")
    peers[name].close()

job = start(1)
print("1. resets and ends, at home (real TCP) and away (relayed through the home)", flush=True)
for name in ("r0", "e0", "r1", "e1", "o", "a0", "a1", "w0", "w1", "v0", "v1", "k0", "k1", "k2", "p0", "p1"):
    connect(job, name)
ask(job, "setopt o IPPROTO_TCP TCP_KEEPIDLE 77")
want_opts = ask(job, "opts o")
want_sockopts = ask(job, "sockopts p0")
reset("r0"); want_reset = ask(job, "ended r0 after")
close("e0"); want_end = ask(job, "ended e0")
want_abort = abort("a0")
reset("w0"); want_first = ask(job, "ended w0 first")
reset("v0"); want_firstw = ask(job, "ended v0 firstw")
print(f"  a reset at home: {want_reset}\n  an end at home: {want_end}\n  a close with bytes unread at home:"
      f" its peer reads {want_abort}", flush=True)
check("a reset at home reads as Linux gives it", True, want_reset.endswith("data 5, ECONNRESET, eof, write EPIPE+SIGPIPE"))
print(f"  a reset at home, written first: {want_first}", flush=True)
check("a reset at home, written first, as Linux gives it", True,
      want_first.endswith("write ECONNRESET, data 5, eof, eof") and want_firstw == want_first)
# Reset at home and kept open by the program (TCP state CLOSE): one unread, one read up to its
# reset; they move (the home holds them, as any other) and read as they would have at home.
reset("k0"); ask(job, "wait k0")
reset("k1"); check("a reset at home, drained", "ECONNRESET", ask(job, "drain k1"))
reset("k2"); ask(job, "drain k2"); want_drained = ask(job, "ended k2 after")
print(f"  a reset at home, read, kept open: {want_drained}", flush=True)
migrate(job, "vnode1")
check("a reset at home, kept open unread, then moved", want_reset, ask(job, "ended k0 after"))
check("a reset at home, read, kept open, then moved", want_drained, ask(job, "ended k1 after"))
reset("r1"); check("a reset, away", want_reset, ask(job, "ended r1 after"))
close("e1"); check("an end, away", want_end, ask(job, "ended e1"))
check("the guest closes with bytes unread, away: its peer reads", want_abort, abort("a1"))
reset("w1"); check("a reset, away, written first (send)", want_first, ask(job, "ended w1 first"))
reset("v1"); check("a reset, away, written first (write)", want_first, ask(job, "ended v1 firstw"))
print(f"1b. TCP/IP options, at home: {want_opts}", flush=True)
check("options, away", want_opts, ask(job, "opts o"))
ask(job, "setopt o IPPROTO_TCP TCP_KEEPINTVL 33"); ask(job, "setopt o IPPROTO_IP IP_TOS 16")
want_set = want_opts.replace("TCP_KEEPINTVL 75", "TCP_KEEPINTVL 33").replace("IP_TOS 0", "IP_TOS 16")
check("options set away", want_set, ask(job, "opts o"))
print(f"  options set and read at home: {want_sockopts}", flush=True)
check("options set and read away (the real socket's, at once)", want_sockopts, ask(job, "sockopts p1"))
ss = subprocess.run(["ss", "-Htno", "state", "established", f"sport = :{peers['p1'].getpeername()[1]}"],
                    capture_output=True, text=True).stdout if shutil.which("ss") else None
if ss is None:
    print("  (ss is not installed: the live connection's keepalive not looked at)")
else:
    check("SO_KEEPALIVE set away: the live connection at home keeps alive", True, "keepalive" in ss)

print("2. the holder's node daemon dies while the guest is away", flush=True)
connect(job, "h")  # made on vnode1: its daemon holds it once the guest moves
migrate(job, "vnode2")
peers["h"].sendall(b"hello")
ask(job, "readable h")
victim = None
for pid in subprocess.run(["pgrep", "-x", "mosixd"], capture_output=True, text=True).stdout.split():
    try:
        cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")
        env = open(f"/proc/{pid}/environ").read().split("\0")
    except OSError:
        continue
    if f"--job {job.pid} " in cmd and ("MOSIX_NODE_RANK=1" in env or "OMPI_COMM_WORLD_RANK=1" in env): victim = int(pid)
if victim is None: sys.exit("the node daemon of vnode1 was not found")
os.kill(victim, 9)
check("the holder lost", want_reset, ask(job, "ended h after"))
migrate(job, "home")  # its own socket again, with what was set away
check("options set away, on the real socket at home", want_set, ask(job, "opts o"))
job.stdin.close()
job.wait()

print("3. a guest ends: its holder lets its forwarded listener go", flush=True)
os.mkfifo(f"{WORK}/fifo")
job = start(2)  # rank 0 gets the stdin; rank 1 waits on the fifo
lport = int(ask(job, "listen"))
migrate(job, "vnode2")
c = socket.create_connection(("127.0.0.1", lport)); ask(job, "serve"); check("served away", b"hi", c.recv(10)); c.close()
job.stdin.write("quit\n"); job.stdin.flush()
def rank0_state():
    r = subprocess.run([f"{BIN}/mosixctl", "ps", "--job", str(job.pid), "--json"], capture_output=True, text=True)
    return [g["state"] for g in json.loads(r.stdout)["guests"] if g["rank"] == 0][0] if r.returncode == 0 else "?"
while rank0_state() not in ("exited", "?"): time.sleep(0.05)  # a handshake: the home has its end
try:
    socket.create_connection(("127.0.0.1", lport)).close(); got = "connected"
except ConnectionRefusedError:
    got = "refused"
check("a client after it ended", "refused", got)
open(f"{WORK}/fifo", "w").close()
job.wait()


def guest_pid():
    r = subprocess.run([f"{BIN}/mosixctl", "ps", "--job", str(job.pid), "--json"], capture_output=True, text=True)
    return [g["pid"] for g in json.loads(r.stdout)["guests"] if g["rank"] == 0][0]
def blocked_in(calls):
    # A handshake: some thread of the guest sleeps in one of these system calls.
    pid = guest_pid()
    while True:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                if open(f"/proc/{pid}/task/{t}/syscall").read().split()[0] in calls: return
            except (OSError, IndexError):
                pass
        time.sleep(0.05)
for call, want in (("accept", "accepted inherited"), ("accept4", "accepted cloexec")):
    print(f"4. a thread blocked in {call} (libc's, no retry) while the guest moves: vnode1, vnode2, home", flush=True)
    job = start(1)
    lport = int(ask(job, "listen"))
    ask(job, f"acceptor {call}")
    for node, calls in (("vnode1", ("43", "288")), ("vnode2", ("271", "7")), ("home", ("271", "7"))):
        blocked_in(calls)  # accept/accept4 on the real listener; then the agent's ppoll on the relayed one
        migrate(job, node)
        c = socket.create_connection(("127.0.0.1", lport))
        said = job.stdout.readline().strip()  # "accepted" once it wrote to c, or how its accept failed
        check(f"a client after the move to {node}", f"{want} b'hi'", f"{said} {c.recv(10) if said == want else ''}")
        c.close()
        if said != want: break
    job.stdin.close()
    job.wait()
sys.exit(1 if failures else 0)
EOF

python3 "$WORK/driver.py" "$BIN" "$WORK" || { echo "FAIL (see above)"; exit 1; }
echo "all checks passed"
