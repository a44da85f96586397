// The two drivers of src/io/poller.ts: EventLoopDriver on the main thread (pumps run when epoll
// reports readiness; the libuv pool stays usable) and runBlocking in a worker thread (stopped by a
// Waker from the main thread).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { PacketBatch } from '../src/io/batch.js';
import { EventLoopDriver } from '../src/io/poller.js';
import { UdpBind } from '../src/io/udp.js';

test('EventLoopDriver calls the pump until drained, keeps the pool free, stops cleanly', async (t) => {
  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  const s = dgram.createSocket('udp4');
  t.after(() => {
    u.close();
    s.close();
  });
  const batch = new PacketBatch({ capacity: 8 });
  let got = 0;
  let calls = 0;
  const drv = new EventLoopDriver(
    [
      {
        fd: u.fd,
        pump() {
          calls++;
          const n = u.recvBatch(batch);
          got += n;
          return n;
        },
      },
    ],
    { budget: 100 },
  );
  drv.start();
  for (let i = 0; i < 50; i++) s.send('x', u.localAddress().port, '127.0.0.1');
  for (let i = 0; i < 100 && got < 50; i++) await sleep(10);
  assert.equal(got, 50);
  assert.ok(calls > 50 / 8, 'more than one pump call per wake-up when the socket holds more than a batch');
  // Only one pool thread is parked in epoll_wait: four concurrent fs reads still complete.
  await Promise.all([1, 2, 3, 4].map(() => readFile(new URL(import.meta.url))));
  await drv.stop();
  await drv.stop();
  s.send('late', u.localAddress().port, '127.0.0.1');
  await sleep(30);
  assert.equal(got, 50, 'no pump call after stop');
  assert.throws(() => new EventLoopDriver([], { budget: 0 }), { code: 'ERR_INVALID_ARG' });
});

test('runBlocking in a worker drives pumps and returns when woken with the stop flag set', async (t) => {
  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  const s = dgram.createSocket('udp4');
  const batch = new PacketBatch({ capacity: 16 });
  t.after(() => {
    u.close();
    s.close();
  });
  const { Waker } = await import('../src/io/poller.js');
  const waker = new Waker();
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const api = import.meta.resolve('tsx/esm/api');
  const mods = ['../src/io/poller.ts', '../src/io/udp.ts', '../src/io/batch.ts'].map(
    (m) => new URL(m, import.meta.url).href,
  );
  const code = `
    const { workerData: d, parentPort } = require('node:worker_threads');
    import(${JSON.stringify(api)}).then(async ({ register }) => {
      register();
      const [{ runBlocking, Waker }, { UdpBind }, { PacketBatch }] = await Promise.all(
        ${JSON.stringify(mods)}.map((m) => import(m)));
      const u = UdpBind.attach(d.udp, d.memory);
      const b = PacketBatch.attach(d.batch, d.memory);
      parentPort.postMessage('ready');
      const moved = runBlocking([{ fd: u.fd, pump: () => u.recvBatch(b) }], { stop: d.stop, waker: new Waker(d.wakerFd) });
      parentPort.postMessage(moved);
    });`;
  const { core } = await import('../src/wasm/module.js');
  const w = new Worker(code, {
    eval: true,
    workerData: { memory: core().memory, udp: u.handle(), batch: batch.handle(), stop, wakerFd: waker.fd },
  });
  t.after(() => w.terminate());
  await once(w, 'message');
  for (let i = 0; i < 30; i++) s.send('x', u.localAddress().port, '127.0.0.1');
  await sleep(100);
  Atomics.store(stop, 0, 1);
  waker.wake();
  const [moved] = await once(w, 'message');
  assert.equal(moved, 30);
  waker.close();
});

test('EventLoopDriver: a pump that throws stops the driver and reaches onError', async (t) => {
  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  const s = dgram.createSocket('udp4');
  t.after(() => {
    u.close();
    s.close();
  });
  const boom = new Error('boom');
  let calls = 0;
  const failed = new Promise<unknown>((resolve) => {
    const drv = new EventLoopDriver(
      [
        {
          fd: u.fd,
          pump() {
            calls++;
            throw boom;
          },
        },
      ],
      { onError: resolve },
    );
    drv.start();
  });
  s.send('x', u.localAddress().port, '127.0.0.1');
  assert.equal(await failed, boom);
  s.send('y', u.localAddress().port, '127.0.0.1');
  await sleep(30);
  assert.equal(calls, 1);
});
