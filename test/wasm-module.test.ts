import assert from 'node:assert/strict';
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
