#!/bin/bash
# A threaded web server moves while it serves: Python's http.server
# (ThreadingHTTPServer) runs under mosixrun on a virtual cluster of 3 nodes
# while a client fetches files from it without a pause; the script moves the
# server to vnode1, back home, and to vnode2 with mosixctl migrate, and
# prints how many requests were served around each move. The server's
# sockets stay open on the node it started on (docs/forwarded_sockets.md):
# the client never notices. Usage:
#   run.sh [BIN]   BIN: where mosixrun and mosixctl are (default: on PATH)
set -euo pipefail
bin=${1:-$(dirname "$(command -v mosixrun)")}
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3)
work=$(mktemp -d "${TMPDIR:-/tmp}/mosix-server-example.XXXXXX")
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/www"
for i in 1 2 3 4 5; do seq 1 $((i * 2000)) > "$work/www/page$i.txt"; done

# The server: its first line says its port.
"$bin/mosixrun" --vcluster 3 -np 1 "$py" -u -m http.server 0 --bind 127.0.0.1 --directory "$work/www" \
  < /dev/null > "$work/server.out" 2> "$work/server.log" &
server=$!
until grep -q "port [0-9]" "$work/server.out" 2> /dev/null; do sleep 0.1; done
port=$(grep -o 'port [0-9]*' "$work/server.out" | head -1 | cut -d' ' -f2)
echo "server on 127.0.0.1:$port (mosixrun job $server)"

# The client: 4 threads fetch pages and compare them with the files; it
# writes how many it got to served.txt as it goes.
"$py" - "$port" "$work/www" "$work/served.txt" "$work/stop" > "$work/client.out" <<'EOF' &
import os, sys, threading, urllib.request
port, www, served, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
pages = {f: open(os.path.join(www, f), "rb").read() for f in sorted(os.listdir(www))}
count, wrong, lock = 0, 0, threading.Lock()
def fetch(k):
    global count, wrong
    names = list(pages)
    while not os.path.exists(stop):
        name = names[k % len(names)]
        k += 1
        ok = urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}").read() == pages[name]
        with lock:
            count += 1
            wrong += not ok
            with open(served + ".tmp", "w") as f:
                f.write(str(count))
            os.replace(served + ".tmp", served)
threads = [threading.Thread(target=fetch, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(f"client: {count} pages fetched, {wrong} wrong")
EOF
client=$!
served() { cat "$work/served.txt" 2> /dev/null || echo 0; }
# wait_served N: until the client has N more pages.
wait_served() { local want=$(( $(served) + $1 )); while (( $(served) < want )); do sleep 0.1; done; }

wait_served 100
for node in vnode1 home vnode2; do
  echo "served so far: $(served); moving the server to $node"
  "$bin/mosixctl" migrate 0 "$node" --job "$server"
  wait_served 100
done
echo "served so far: $(served)"
touch "$work/stop"
wait $client
cat "$work/client.out"
kill -INT $server
wait $server || true
