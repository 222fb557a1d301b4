# Forwarded sockets (issue 17) when things go wrong, on a virtual cluster of
# 3 nodes; a guest (Python) told what to do line by line on its stdin, with
# the peers of its TCP connections in this test's driver (Python too):
# 1. A peer's reset (SO_LINGER 0) while the guest is away reads in the guest
#    exactly as the same reset of a real TCP socket read at home, before the
#    move: poll and epoll masks, the data queued before it, then ECONNRESET,
#    then end of stream, then EPIPE on a write. A peer's normal close reads
#    as a real one: the data, then end of stream. The guest closing a
#    socket with its peer's bytes unread resets the peer, as at home.
# 2. The node daemon that holds the guest's real socket dies while the guest
#    is away (the socket was made on vnode1, the guest moved to vnode2): the
#    guest reads what had come, then the same reset.
# 1b. TCP and IP options read away as the real socket had them; those set
#    away read back, and are the real socket's once the guest is home again.
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
def ended(s, write):
    # Waits until the stream ended (POLLRDHUP; POLLHUP and POLLERR come anyway),
    # then tells what poll, epoll, reads and a write give.
    p = select.poll(); p.register(s, select.POLLRDHUP); p.poll()
    p = select.poll(); p.register(s, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    e = select.epoll(); e.register(s, select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP)
    out = [f"poll {p.poll(0)[0][1]:#x} epoll {e.poll(0)[0][1]:#x}"]
    for _ in range(3):
        try:
            d = s.recv(100)
            out.append(f"data {len(d)}" if d else "eof")
        except OSError as x:
            out.append(errno.errorcode[x.errno])
    if write:
        try:
            s.send(b"x"); out.append("write ok")
        except OSError as x:
            out.append("write " + errno.errorcode[x.errno])
    return ", ".join(out)
for line in sys.stdin:
    cmd, *a = line.split()
    if cmd == "connect":
        conns[a[0]] = socket.create_connection(("127.0.0.1", int(a[1]))); say("connected", os.environ["MOSIX_NODE"])
    elif cmd == "close":
        conns.pop(a[0]).close(); say("closed")
    elif cmd == "readable":
        select.select([conns[a[0]]], [], []); say("readable")
    elif cmd == "ended":
        say(ended(conns[a[0]], len(a) > 1)); conns.pop(a[0]).close()
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
import json, os, socket, struct, subprocess, sys, time
BIN, WORK = sys.argv[1], sys.argv[2]
failures = []
def check(what, want, got):
    print(f"  {what}: {got}" + ("" if got == want else f"  (WRONG: want {want})"), flush=True)
    if got != want: failures.append(what)

def start(np):
    return subprocess.Popen([f"{BIN}/mosixrun", "--vcluster", "3", "-np", str(np), "python3", "-u", f"{WORK}/guest.py",
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
for name in ("r0", "e0", "r1", "e1", "o", "a0", "a1"): connect(job, name)
ask(job, "setopt o IPPROTO_TCP TCP_KEEPIDLE 77")
want_opts = ask(job, "opts o")
reset("r0"); want_reset = ask(job, "ended r0 write")
close("e0"); want_end = ask(job, "ended e0")
want_abort = abort("a0")
print(f"  a reset at home: {want_reset}\n  an end at home: {want_end}\n  a close with bytes unread at home:"
      f" its peer reads {want_abort}", flush=True)
check("a reset at home reads as Linux gives it", True, want_reset.endswith("data 5, ECONNRESET, eof, write EPIPE"))
migrate(job, "vnode1")
reset("r1"); check("a reset, away", want_reset, ask(job, "ended r1 write"))
close("e1"); check("an end, away", want_end, ask(job, "ended e1"))
check("the guest closes with bytes unread, away: its peer reads", want_abort, abort("a1"))
print(f"1b. TCP/IP options, at home: {want_opts}", flush=True)
check("options, away", want_opts, ask(job, "opts o"))
ask(job, "setopt o IPPROTO_TCP TCP_KEEPINTVL 33"); ask(job, "setopt o IPPROTO_IP IP_TOS 16")
want_set = want_opts.replace("TCP_KEEPINTVL 75", "TCP_KEEPINTVL 33").replace("IP_TOS 0", "IP_TOS 16")
check("options set away", want_set, ask(job, "opts o"))

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
check("the holder lost", want_reset, ask(job, "ended h write"))
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
