# Forwarded sockets (issue 17) on a virtual cluster of 3 nodes.
# 1. http_server (ours: 4 threads, one epoll, keep-alive) serves http_load
#    (ours: 32 keep-alive connections, some requests pipelined, bodies up to
#    256 KiB checked byte for byte, a new connection every 1-40 requests)
#    while it moves to vnode1, home, vnode2, and vnode1 again: every request
#    is answered, every body is the one expected, no connection is reset
#    (http_load counts any of those as an error). Each move waits until the
#    clients have had 1000 more answers (a handshake through http_load's
#    progress file), so each runs under load.
# 2. Requests/s with the server at home, then served through the home after
#    a move to vnode1 (printed; no pass/fail on speed).
# 3. Debian's python3 -m http.server (ThreadingHTTPServer, HTTP/1.0: one
#    connection per request, so every client comes through the forwarded
#    listener) under the same moves, its files fetched and compared.
# 1b (after 2). Calls in flight during moves complete exactly once.
# 3b. Four threads blocked in accept on one listener move, idle, 3 times.
# 4. A guest holding a netlink socket is refused with the reason and runs on.
# 5. A statically linked program is refused as such.
set -u
BIN=$(cd "$1" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mosix-sockets.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
command -v jq > /dev/null || { echo "skip: jq is not installed"; exit 77; }
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }  # stderr: also when a caller sends stdout away

migrate() {
  local job=$1 node=$2 out
  out=$("$BIN/mosixctl" migrate 0 "$node" --job "$job" --json 2>"$WORK/ctl.err")
  if [[ $(jq -r .ok <<<"$out") != true ]]; then
    fail "migrate to $node: $(jq -r .error <<<"$out" 2>/dev/null) $(cat "$WORK/ctl.err")"
    return 1
  fi
  echo "  -> $(jq -r .to <<<"$out"): stopped $(jq -r .stopped_ms <<<"$out") ms"
}

progress() { local n=0; [[ -s $1 ]] && n=$(tr -d ' \n' < "$1"); echo "${n:-0}"; }
# wait_more FILE N PID: until FILE's count grew by N, or PID is gone.
wait_more() {
  local target=$(( $(progress "$1") + $2 ))
  while (( $(progress "$1") < target )) && kill -0 "$3" 2>/dev/null; do sleep 0.05; done
}
wait_file() { while [[ ! -s $1 ]] && kill -0 "$2" 2>/dev/null; do sleep 0.05; done; }

quit_server() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /quit HTTP/1.1\r\nHost: test\r\n\r\n")
data = b""
while not data.endswith(b"bye"):
    more = s.recv(100)
    if not more:
        break
    data += more
EOF
}

# 1 and 2.
echo "http_server under http_load, 32 connections: vnode1, home, vnode2, vnode1"
"$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/http_server" "$WORK/port" 4 < /dev/null > "$WORK/srv.out" 2> "$WORK/srv.err" &
job=$!
wait_file "$WORK/port" $job
port=$(cat "$WORK/port")
"$BIN/http_load" "$port" 32 "$WORK/progress" "$WORK/stop" > "$WORK/load.out" 2> "$WORK/load.err" &
load=$!
wait_more "$WORK/progress" 1000 $load
for node in vnode1 home vnode2 vnode1; do
  migrate $job $node || break
  wait_more "$WORK/progress" 1000 $load
done
touch "$WORK/stop"
wait $load
rc=$?
echo "  $(cat "$WORK/load.out")"
[[ $rc == 0 ]] || fail "http_load: $(head -5 "$WORK/load.err")"

echo "requests/s, 8 connections, 20000 requests each run"
migrate $job home > /dev/null
rm -f "$WORK/stop"
"$BIN/http_load" "$port" 8 "$WORK/p2" "$WORK/stop" 20000 > "$WORK/local.out" 2> "$WORK/local.err" ||
  fail "http_load, server at home: $(head -3 "$WORK/local.err")"
migrate $job vnode1 > /dev/null
"$BIN/http_load" "$port" 8 "$WORK/p3" "$WORK/stop" 20000 > "$WORK/away.out" 2> "$WORK/away.err" ||
  fail "http_load, server on vnode1: $(head -3 "$WORK/away.err")"
field() { grep -o "$1 [0-9.]*" "$2" | cut -d' ' -f2; }
local_rate=$(field rate "$WORK/local.out")
away_rate=$(field rate "$WORK/away.out")
echo "  local (server at home): ${local_rate:-?} requests/s, p99 $(field p99 "$WORK/local.out") ms;" \
  "served through the home from vnode1: ${away_rate:-?} requests/s, p99 $(field p99 "$WORK/away.out") ms" \
  "($(awk -v a="${away_rate:-0}" -v l="${local_rate:-1}" 'BEGIN {printf "%.2f", a / l}')x)"
quit_server "$port"
wait $job
rc=$?
[[ $rc == 0 ]] || fail "http_server exited with $rc: $(grep -v 'not calibrated' "$WORK/srv.err" | head -5)"
grep -q "http_server: quit, 0 gated calls" "$WORK/srv.out" || fail "http_server did not say it quit: $(cat "$WORK/srv.out")"

# 1b. Calls in flight complete exactly once: a call the server is inside
# (held at its gate) and a second one pipelined behind it, unread, while the
# server moves to vnode1 (the unread request stays in the real socket) and
# then to vnode2 (it is in the guest's relayed end: taken out and given to
# the next). Then the gate opens: two answers, each checked, then /quit's
# on the same connection (a duplicate answer would come before it), and
# the server counts one gated call.
echo "calls in flight: held in the server while it moves to vnode1, then vnode2"
rm -f "$WORK/port"
touch "$WORK/gate"
HTTP_GATE=$WORK/gate "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$BIN/http_server" "$WORK/port" 4 < /dev/null \
  > "$WORK/srv.out" 2> "$WORK/srv.err" &
job=$!
wait_file "$WORK/port" $job
port=$(cat "$WORK/port")
python3 - "$port" "$WORK/gate" > "$WORK/inflight.out" 2>&1 <<'EOF' &
import os, socket, sys, time
port, gate = int(sys.argv[1]), sys.argv[2]
def body(seed, size):  # http_body.h
    mask = 2**64 - 1
    x, out = (seed * 2654435761 + 1) & mask, bytearray(size)
    for i in range(size):
        x ^= (x << 13) & mask; x ^= x >> 7; x ^= (x << 17) & mask
        out[i] = 97 + x % 26
    return bytes(out)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /gate/77/300000 HTTP/1.1\r\nHost: t\r\n\r\n")
while not os.path.exists(gate + ".in"):  # the server is inside the first call
    time.sleep(0.05)
s.sendall(b"GET /body/78/1000 HTTP/1.1\r\nHost: t\r\n\r\n")  # nobody reads it yet
open(gate + ".sent", "w").close()
buf = b""
def response():
    global buf
    while b"\r\n\r\n" not in buf:
        more = s.recv(65536)
        if not more: raise SystemExit("closed before an answer")
        buf += more
    head, buf = buf.split(b"\r\n\r\n", 1)
    n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(buf) < n:
        more = s.recv(65536)
        if not more: raise SystemExit("closed in a body")
        buf += more
    b, buf = buf[:n], buf[n:]
    return b
ok = response() == body(77, 300000) and response() == body(78, 1000)
s.sendall(b"GET /quit HTTP/1.1\r\nHost: t\r\n\r\n")
bye = response()
print("answers", "ok" if ok and bye == b"bye" and buf == b"" else "WRONG")
EOF
client=$!
while [[ ! -e $WORK/gate.sent ]] && kill -0 $client 2>/dev/null; do sleep 0.05; done
migrate $job vnode1
migrate $job vnode2
rm -f "$WORK/gate"
wait $client || fail "the client of the calls in flight: $(cat "$WORK/inflight.out")"
wait $job
rc=$?
echo "  $(cat "$WORK/inflight.out"); $(tail -1 "$WORK/srv.out")"
grep -q "answers ok" "$WORK/inflight.out" || fail "the calls in flight: $(cat "$WORK/inflight.out")"
grep -q "quit, 1 gated calls" "$WORK/srv.out" || fail "the gated call ran other than once: $(cat "$WORK/srv.out")"
[[ $rc == 0 ]] || fail "http_server exited with $rc: $(grep -v 'not calibrated' "$WORK/srv.err" | head -5)"

# 3. Debian's threaded server (Debian's python3 when there is another first
# on the PATH).
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3 || true)
if [[ -n $py ]]; then
  echo "python3 -m http.server (ThreadingHTTPServer): vnode1, home, vnode2"
  mkdir -p "$WORK/www"
  for i in $(seq 0 19); do head -c $(( (i * 7919) % 200000 + 1 )) /dev/urandom > "$WORK/www/f$i"; done
  "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$py" -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/www" \
    < /dev/null > "$WORK/py.out" 2> "$WORK/py.err" &
  job=$!
  while ! grep -q "port [0-9]" "$WORK/py.out" 2>/dev/null && kill -0 $job 2>/dev/null; do sleep 0.05; done
  port=$(grep -o 'port [0-9]*' "$WORK/py.out" | head -1 | cut -d' ' -f2)
  python3 - "$port" "$WORK/www" "$WORK/pyprog" "$WORK/pystop" > "$WORK/pyload.out" 2>&1 <<'EOF' &
import os, sys, threading, urllib.request
port, www, progress, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
files = sorted(os.listdir(www))
want = {f: open(os.path.join(www, f), "rb").read() for f in files}
done, errors, lock = 0, [], threading.Lock()
def client(k):
    global done
    i = k
    while not os.path.exists(stop):
        f = files[i % len(files)]
        i += 7
        try:
            got = urllib.request.urlopen(f"http://127.0.0.1:{port}/{f}").read()
            ok = got == want[f]
        except Exception as e:
            ok, got = False, repr(e).encode()
        with lock:
            if not ok:
                errors.append(f"{f}: {got[:80]!r}")
            done += 1
            if done % 50 == 0:
                with open(progress + ".tmp", "w") as p:
                    p.write(str(done))
                os.replace(progress + ".tmp", progress)
threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(f"requests {done} errors {len(errors)}")
for e in errors[:5]: print("error:", e)
sys.exit(1 if errors else 0)
EOF
  pyload=$!
  wait_more "$WORK/pyprog" 200 $pyload
  for node in vnode1 home vnode2; do
    migrate $job $node || break
    wait_more "$WORK/pyprog" 200 $pyload
  done
  touch "$WORK/pystop"
  wait $pyload || fail "fetching from python3 -m http.server: $(cat "$WORK/pyload.out")"
  echo "  $(head -1 "$WORK/pyload.out")"
  kill -TERM $job 2>/dev/null
  wait $job
else
  echo "skip: python3 is not installed (python3 -m http.server)"
fi

# 3b. Four threads blocked in accept on one listener (a thread-pool server
# of blocking calls, Python's socket.accept): moved while they wait, each
# client in between answered (a thread interrupted inside accept on the
# real listener retries through the agent after the restore; one woken for
# a client another thread took goes back to waiting with its signals let
# through, so the next move is not refused).
echo "4 threads in a blocking accept: vnode1, vnode2, home, a client after each"
rm -f "$WORK/pool.port"
"$BIN/mosixrun" --vcluster 3 --migrate off -np 1 python3 -u -c '
import os, socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
def worker():
    while True:
        c, a = s.accept()
        c.sendall(b"ok " + c.recv(100) + b" from " + a[0].encode())
        c.close()
for _ in range(4): threading.Thread(target=worker, daemon=True).start()
threading.Event().wait()' "$WORK/pool.port" < /dev/null > "$WORK/pool.out" 2> "$WORK/pool.err" &
job=$!
wait_file "$WORK/pool.port" $job
port=$(cat "$WORK/pool.port")
ask() {
  python3 -c 'import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); c.sendall(sys.argv[2].encode()); print(c.recv(100).decode())' "$port" "$1"
}
for node in vnode1 vnode2 home; do
  migrate $job $node || break
  got=$(ask "$node")
  [[ $got == "ok $node from 127.0.0.1" ]] || fail "a client after the move to $node got '$got'"
done
echo "  answered after each move"
kill -TERM $job
wait $job

# 4. Not carried: a netlink socket.
if command -v python3 > /dev/null; then
  echo "a netlink socket: refused"
  "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
print("holding", flush=True)
sys.stdin.read()
print("done", flush=True)' < <(while [[ ! -e $WORK/nl.go ]]; do sleep 0.05; done) > "$WORK/nl.out" 2> "$WORK/nl.err" &
  job=$!
  while ! grep -q holding "$WORK/nl.out" 2>/dev/null && kill -0 $job 2>/dev/null; do sleep 0.05; done
  if out=$("$BIN/mosixctl" migrate 0 vnode1 --job $job 2>&1); then
    fail "a guest with a netlink socket was moved: $out"
  else
    echo "  $out"
    grep -q "fd [0-9]* is a socket of family 16" <<<"$out" || fail "the refusal does not name the netlink socket: $out"
  fi
  touch "$WORK/nl.go"
  wait $job || fail "the refused guest did not run on: $(cat "$WORK/nl.err")"
  grep -q done "$WORK/nl.out" || fail "the refused guest did not finish: $(cat "$WORK/nl.out")"
fi

# 5. Not carried: a statically linked program (no agent can be loaded in it).
if printf '#include <unistd.h>\n#include <stdio.h>\nint main(void){puts("up");fflush(stdout);for(;;)pause();}\n' |
    cc -static -x c -o "$WORK/static_sleep" - 2> /dev/null; then
  echo "a statically linked program: refused"
  "$BIN/mosixrun" --vcluster 3 --migrate off -np 1 "$WORK/static_sleep" < /dev/null > "$WORK/st.out" 2> "$WORK/st.err" &
  job=$!
  while ! grep -q up "$WORK/st.out" 2> /dev/null && kill -0 $job 2> /dev/null; do sleep 0.05; done
  if out=$("$BIN/mosixctl" migrate 0 vnode1 --job $job 2>&1); then
    fail "a statically linked guest was moved: $out"
  else
    echo "  $out"
    grep -q "is statically linked" <<<"$out" || fail "the refusal does not say it is statically linked: $out"
  fi
  kill -TERM $job
  wait $job
else
  echo "skip: no static C toolchain (cc -static)"
fi

if (( failures > 0 )); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
