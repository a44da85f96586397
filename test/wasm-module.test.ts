import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { core, instantiate } from '../src/wasm/module.js';

test('vx_alloc returns distinct, 64-byte aligned, zeroed regions', () => {
  const c = core();
  const a = c.alloc(100);
  const b = c.alloc(100);
  assert.equal(a % 64, 0);
  assert.equal(b % 64, 0);
  assert.ok(b >= a + 100);
  assert.ok(
    c
      .u8()
      .subarray(a, a + 100)
      .every((x) => x === 0),
  );
});

test('vx_alloc does not write a fresh region: a 64 MB table is not resident until used', () => {
  const c = core();
  const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
  c.alloc(1 << 20); // grows memory once, so the measured allocation's own growth is the only change
  const before = rssKb();
  const p = c.alloc(64 << 20);
  const grown = rssKb() - before;
  assert.ok(grown < 16 << 10, `RSS grew by ${grown} kB for an untouched 64 MB region`);
  const u8 = c.u8();
  for (let o = 0; o < 64 << 20; o += 1 << 20) assert.equal(u8[p + o], 0);
});

test('a second instance on the same shared memory sees the same bytes', () => {
  const c = core();
  const p = c.alloc(16);
  c.u8()[p] = 0xab;
  const other = instantiate(c.memory);
  assert.equal(other.u8()[p], 0xab);
});

test('a worker thread shares the memory without copying', async () => {
  const c = core();
  const p = c.alloc(16);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    new Uint8Array(workerData.memory.buffer)[workerData.p] = 0x5a;
    parentPort.postMessage('ok');`;
  const w = new Worker(code, { eval: true, workerData: { memory: c.memory, p } });
  await new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  assert.equal(c.u8()[p], 0x5a);
});
