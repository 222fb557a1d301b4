#!/usr/bin/env python3
"""Drives an interactive shell on a terminal, as a user at a keyboard would.

    pty_session.py COMMAND...

Runs COMMAND on a new pseudo-terminal and types a job-control session into
it: a foreground job, Ctrl-Z, jobs, fg, Ctrl-C, the shell's $?, exit. Each
key waits for what the terminal must show before it (a handshake, never a
pause): the job says STARTED once it runs and CONTINUED when it is continued.
Prints the transcript without carriage returns, then "end STATUS".
Gives up (exit 1, transcript so far) when an expected text never comes.
"""
import os
import pty
import select
import sys

JOB = ("python3 -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); "
       "signal.signal(signal.SIGCONT, lambda *a: print(\"CON\" \"TINUED\", flush=True)); "
       "print(\"STAR\" \"TED\", flush=True); [time.sleep(60) for _ in iter(int, 1)]'")
PROMPT = b"READY> "

env = dict(os.environ, PS1=PROMPT.decode(), TERM="dumb", HISTFILE="/dev/null")
pid, fd = pty.fork()
if pid == 0:
    os.execvpe(sys.argv[1], sys.argv[1:], env)

seen = b""
at = 0  # what the steps have matched so far


def expect(text):
    """Reads until `text` appears after the last match."""
    global seen, at
    for _ in range(2400):  # many tries, no claim on speed: 2400 waits of at most 0.25 s
        found = seen.find(text, at)
        if found >= 0:
            at = found + len(text)
            return
        ready, _, _ = select.select([fd], [], [], 0.25)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                break
            seen += data.replace(b"\r", b"")  # mosixrun's terminal adds its own to rank 0's
    sys.stdout.write(seen.decode(errors="replace"))
    sys.stdout.write("\nnever saw %r\n" % text)
    sys.exit(1)


def type_keys(keys):
    os.write(fd, keys)


expect(PROMPT)
type_keys(b"tty > /dev/null && echo 'on a terminal'\n")
expect(PROMPT)
type_keys(JOB.encode() + b"\n")
expect(b"STARTED\n")
type_keys(b"\x1a")  # Ctrl-Z
expect(b"Stopped")
expect(PROMPT)
type_keys(b"jobs\n")
expect(PROMPT)
type_keys(b"fg\n")
expect(b"CONTINUED\n")
type_keys(b"\x03")  # Ctrl-C
expect(PROMPT)
type_keys(b"echo \"status $?\"\n")
expect(PROMPT)
type_keys(b"exit\n")
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    seen += data.replace(b"\r", b"")
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.stdout.write("\nend %d\n" % os.waitstatus_to_exitcode(status))
