// ckpt_node.js [STEPS]: a node event loop a checkpoint must carry: timers
// (setTimeout), setImmediate, and a SIGUSR2 handler (libuv's signal pipe and
// epoll). Each step is a timer callback doing some arithmetic; every tenth
// of the run the program sends itself SIGUSR2, waits until the handler has
// run, and prints a line. The test's gate ($CKPT_GATE, see
// tests/integration/lib/ckpt_rounds.sh) holds it after each line, so a
// checkpoint lands while the loop waits in epoll_wait. Deterministic output;
// the last line is "RESULT ckpt_node <hex16> OK".
'use strict';
const fs = require('fs');

const steps = Number(process.argv[2] || process.env.CKPT_STEPS || 400);
const gate = process.env.CKPT_GATE || '';
let lines = 0, usr2 = 0, h = 0, n = 0;
process.on('SIGUSR2', () => { usr2 += 1; });

function passGate(k, then) {
  let size = k;
  try { if (gate) size = fs.statSync(gate).size; } catch (e) { size = k; }
  if (size >= k) then(); else setTimeout(() => passGate(k, then), 1);
}

function print(text, then) {
  fs.writeSync(1, text + '\n');
  lines += 1;
  passGate(lines, then);
}

function waitSignal(want, then) {
  if (usr2 >= want) then(); else setImmediate(() => waitSignal(want, then));
}

function step() {
  n += 1;
  for (let i = 0; i < 3000; i++) h = (Math.imul(h, 31) + i + n) >>> 0;
  if (n % Math.max(1, Math.floor(steps / 10)) !== 0 && n !== steps) return setTimeout(step, 1);
  const want = usr2 + 1;
  process.kill(process.pid, 'SIGUSR2');
  waitSignal(want, () => {
    if (n < steps) return print(`step ${n} ${h} usr2=${usr2}`, () => setTimeout(step, 1));
    print(`RESULT ckpt_node ${h.toString(16).padStart(16, '0')} OK`, () => {});
  });
}

print(`ckpt_node start steps=${steps}`, () => setTimeout(step, 1));
