"""ckpt_asyncio.py [STEPS]: a Python asyncio loop a checkpoint must carry:
asyncio.sleep timers, a task, and a SIGUSR2 handler added with
loop.add_signal_handler (a socketpair wake-up descriptor under epoll). Each
step sleeps 1 ms and does some arithmetic; every tenth of the run the program
sends itself SIGUSR2, waits until the handler has run, and prints a line. The
test's gate ($CKPT_GATE, tests/integration/lib/ckpt_rounds.sh) holds it after
each line (polled with asyncio.sleep, so a checkpoint lands in the loop's
epoll_wait). Deterministic output; the last line is
"RESULT ckpt_asyncio <hex16> OK"."""
import asyncio
import os
import signal
import sys


async def main():
    steps = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CKPT_STEPS") or 400)
    gate = os.environ.get("CKPT_GATE", "")
    loop = asyncio.get_running_loop()
    usr2 = asyncio.Event()
    count = [0]

    def on_usr2():
        count[0] += 1
        usr2.set()

    loop.add_signal_handler(signal.SIGUSR2, on_usr2)
    lines = [0]

    async def say(text):
        os.write(1, (text + "\n").encode())
        lines[0] += 1
        while gate:
            try:
                if os.stat(gate).st_size >= lines[0]:
                    break
            except FileNotFoundError:
                break
            await asyncio.sleep(0.001)

    await say(f"ckpt_asyncio start steps={steps}")
    h = 0
    tenth = max(1, steps // 10)
    for n in range(1, steps + 1):
        await asyncio.sleep(0.001)
        for i in range(3000):
            h = (h * 31 + i + n) & 0xFFFFFFFF
        if n % tenth == 0 or n == steps:
            usr2.clear()
            os.kill(os.getpid(), signal.SIGUSR2)
            await usr2.wait()
            if n < steps:
                await say(f"step {n} {h} usr2={count[0]}")
    await say(f"RESULT ckpt_asyncio {h:016x} OK")


asyncio.run(main())
