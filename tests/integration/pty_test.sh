#!/usr/bin/env bash
# mosixrun --pty (issue 15, docs/mosixrun.md --pty): rank 0 gets a terminal
# of its own, so an interactive shell under mosixrun has job control as on
# a terminal of its own. A session typed by tests/integration/lib/pty_session.py
# (a job, Ctrl-Z, jobs, fg, Ctrl-C, $?, exit; each key after what the
# terminal must show first) reads exactly as under plain bash, on one node
# and on a virtual cluster; mosixrun's terminal is as it was afterwards;
# the copy with the terminal does not move; its terminal follows the size of
# mosixrun's.
BIN=$(cd "$1" && pwd)
source "$(dirname "$0")/lib/common.sh"
command -v python3 > /dev/null || { echo "python3 is missing: skipped"; exit 77; }
session="python3 $(dirname "$0")/lib/pty_session.py"

plain=$($session bash --norc -i) || fail "plain bash: $plain"
check_contains "plain bash: the session ran" "status 130" "$plain"
for nodes in "" "--vcluster 3"; do
  # The shell that starts mosixrun notes the terminal's settings before and after.
  # shellcheck disable=SC2086
  got=$($session sh -c 'stty -g > "$0.before"; "$@"; s=$?; stty -g > "$0.after"; exit $s' "$TMP/stty" \
    "$BIN/mosixrun" --pty $nodes -np 1 bash --norc -i)
  check_eq "--pty ${nodes:-(one node)}: the session reads as under plain bash" "$plain" "$got"
  check_eq "--pty ${nodes:-(one node)}: mosixrun's terminal restored" "$(cat "$TMP/stty.before")" "$(cat "$TMP/stty.after")"
done
# A copy with a terminal of its own stays on its node: the terminal cannot follow it.
got=$(python3 - "$BIN" <<'PY'
import os, pty, select, subprocess, sys
bin_dir = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.closerange(3, 4096)
    os.execv(bin_dir + "/mosixrun", ["mosixrun", "--pty", "--vcluster", "2", "-np", "1", "sh", "-c", "echo READY; read line"])
seen = b""
for _ in range(2400):  # until it says READY, however slow the machine
    if b"READY" in seen:
        break
    if select.select([fd], [], [], 0.25)[0]:
        seen += os.read(fd, 4096)
moved = subprocess.run([bin_dir + "/mosixctl", "migrate", "0", "vnode1", "--job", str(pid)], capture_output=True, text=True)
print(moved.returncode, moved.stderr.strip())
os.write(fd, b"done\n")
os.waitpid(pid, 0)
PY
)
check_contains "--pty: rank 0 does not move" "cannot move: its terminal (--pty) stays on its node" "$got"

# Rank 0's terminal starts at mosixrun's terminal's size and follows it when
# it changes (SIGWINCH): the program reads each size it is told of. Python
# writes print()'s pieces one by one to a terminal, and a handler may run
# between them: the handler writes with os.write, and the terminal is
# resized only once the first line is whole.
got=$(python3 - "$BIN" <<'PY'
import fcntl, os, pty, select, struct, sys, termios
bin_dir = sys.argv[1]
program = ("import os, signal, sys; "
           "signal.signal(signal.SIGWINCH, lambda *a: os.write(1, b'now %d %d\\n' % tuple(os.get_terminal_size(0)))); "
           "print('first', *os.get_terminal_size(0), flush=True); sys.stdin.readline()")
pid, fd = pty.fork()
if pid == 0:
    os.closerange(3, 4096)
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.execv(bin_dir + "/mosixrun", ["mosixrun", "--pty", "--vcluster", "2", "-np", "1", "python3", "-c", program])
seen = b""
def expect(text):
    global seen
    for _ in range(2400):
        if text in seen:
            return
        if select.select([fd], [], [], 0.25)[0]:
            seen += os.read(fd, 4096)
expect(b"first 100 30\r")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
expect(b"now 120 40")
os.write(fd, b"\n")
os.waitpid(pid, 0)
print(" ".join(line for line in seen.decode().replace("\r", "").split("\n") if line.startswith(("first", "now"))))
PY
)
check_eq "--pty: the terminal's size at start, and after a resize" "first 100 30 now 120 40" "$got"
finish
