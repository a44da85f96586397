// The two drivers of src/io/poller.ts: EventLoopDriver on the main thread (pumps run when epoll
// reports readiness; the libuv pool stays usable) and runBlocking in a worker thread (stopped by a
// Waker from the main thread, through IoWorker).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PacketBatch } from '../src/io/batch.js';
import { EventLoopDriver } from '../src/io/poller.js';
import { UdpBind } from '../src/io/udp.js';
import { IoWorker } from '../src/io/worker.js';
import { core } from '../src/wasm/module.js';

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

test('IoWorker runs pumps in a blocking loop, takes control messages, emits events, stops', async (t) => {
  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  const s = dgram.createSocket('udp4');
  const batch = new PacketBatch({ capacity: 16 });
  t.after(() => {
    u.close();
    s.close();
  });
  const file = new URL('./fixtures/io-udp-worker.ts', import.meta.url);
  const w = await IoWorker.start({
    file,
    memory: core().memory,
    data: { udp: u.handle(), batch: batch.handle() },
  });
  for (let i = 0; i < 30; i++) s.send('x', u.localAddress().port, '127.0.0.1');
  await sleep(100);
  assert.equal(await w.stop(), 30);
  assert.equal(await w.stop(), 30, 'stop is idempotent');
  await assert.rejects(
    IoWorker.start({
      file,
      memory: core().memory,
      data: { udp: u.handle(), batch: batch.handle(), fail: true },
    }),
    { code: 'ERR_IO_WORKER' },
  );
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
