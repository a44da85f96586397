// The in-memory seams behave like the kernel ones: same descriptors, GSO split, oversize drops,
// and they can be driven by the same poller (two fake hosts forward frames TAP -> UDP -> TAP).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DESC_ADDR, DESC_AUX, DESC_LEN, DESC_PTR, VNET_HDR_LEN } from '../assembly/constants.js';
import { PacketBatch } from '../src/io/batch.js';
import { FakeTap, FakeUnderlay } from '../src/io/fake.js';
import { EventLoopDriver, type Pump } from '../src/io/poller.js';
import type { TapSeam, UdpSeam } from '../src/io/seams.js';
import { readSockaddr, writeSockaddr } from '../src/io/sockaddr.js';
import { core } from '../src/wasm/module.js';

const desc = (b: PacketBatch, i: number, f: number) =>
  core()
    .dv()
    .getUint32(b.desc(i) + f, true);

/** TAP -> UDP (to `peer`) and UDP -> TAP pumps of a copy forwarder over any seams. */
function pumps(tap: TapSeam, udp: UdpSeam, peer: number): Pump[] {
  const a = new PacketBatch({ capacity: 4 });
  const b = new PacketBatch({ capacity: 4 });
  for (let i = 0; i < 4; i++)
    core()
      .dv()
      .setUint32(a.desc(i) + DESC_ADDR, peer, true);
  return [
    { fd: tap.fd, pump: () => udp.sendBatch(a.descs, tap.readBatch(a)) },
    { fd: udp.fd, pump: () => tap.writeBatch(b.descs, udp.recvBatch(b)) },
  ];
}

test('two fake hosts forward frames both ways through the poller', async (t) => {
  const net = new FakeUnderlay();
  const [ta, tb] = [new FakeTap(), new FakeTap()];
  const ua = net.bind('192.0.2.1', 4789);
  const ub = net.bind('192.0.2.2', 4789);
  const [pa, pb] = [core().alloc(32), core().alloc(32)];
  writeSockaddr(core().u8(), pa, '192.0.2.2', 4789);
  writeSockaddr(core().u8(), pb, '192.0.2.1', 4789);
  const drv = new EventLoopDriver([...pumps(ta, ua, pa), ...pumps(tb, ub, pb)]);
  t.after(async () => {
    await drv.stop();
    for (const s of [ta, tb, ua, ub]) s.close();
  });
  drv.start();
  const frames = Array.from({ length: 10 }, (_, i) => new Uint8Array(60 + i).fill(i + 1));
  ta.inject(...frames);
  tb.inject(new Uint8Array(64).fill(0xee));
  for (let i = 0; i < 100 && (tb.written.length < 10 || ta.written.length < 1); i++) await sleep(5);
  assert.deepEqual(tb.written, frames);
  assert.deepEqual(ta.written, [new Uint8Array(64).fill(0xee)]);
  assert.equal(net.unroutable, 0);
});

test('fake UDP: sources, GSO split, oversize drop; fake TAP: vnet header before DESC_PTR', () => {
  const net = new FakeUnderlay();
  const tx = net.bind('2001:db8::1', 1000);
  const rx = net.bind('2001:db8::2', 4789);
  assert.throws(() => net.bind('2001:db8::2', 4789), { code: 'ERR_UDP_BIND' });
  const out = new PacketBatch({ capacity: 2, frameCapacity: 8192 });
  const dst = core().alloc(32);
  writeSockaddr(core().u8(), dst, '2001:db8::2', 4789);
  const dv = core().dv();
  dv.setUint32(out.desc(0) + DESC_PTR, out.frame(0), true);
  dv.setUint32(out.desc(0) + DESC_LEN, 5 * 1200 + 345, true);
  dv.setUint32(out.desc(0) + DESC_ADDR, dst, true);
  dv.setUint32(out.desc(0) + DESC_AUX, 1200, true);
  assert.equal(tx.sendBatch(out.descs, 1), 1);
  rx.deliver(new Uint8Array(3000), { address: '198.51.100.7', port: 9 });
  const inb = new PacketBatch({ capacity: 8, frameCapacity: 2048 });
  const n = rx.recvBatch(inb);
  assert.equal(n, 6);
  assert.deepEqual(
    Array.from({ length: n }, (_, i) => desc(inb, i, DESC_LEN)),
    [1200, 1200, 1200, 1200, 1200, 345],
  );
  assert.equal(desc(inb, 0, DESC_PTR), inb.frame(0));
  assert.deepEqual(readSockaddr(core().u8(), desc(inb, 0, DESC_ADDR)), {
    family: 6,
    address: '2001:db8::1',
    port: 1000,
  });
  assert.equal(rx.stats.rxTruncated, 1);
  assert.equal(rx.recvBatch(inb), 0);

  const tap = new FakeTap({ vnetHdr: true });
  const f = new Uint8Array(VNET_HDR_LEN + 60).map((_, i) => i);
  tap.inject(f);
  assert.equal(tap.readBatch(inb), 1);
  assert.equal(desc(inb, 0, DESC_LEN), 60);
  const p = desc(inb, 0, DESC_PTR);
  assert.deepEqual(
    core()
      .u8()
      .slice(p - VNET_HDR_LEN, p + 60),
    f,
  );
  assert.equal(tap.writeBatch(inb.descs, 1), 1);
  assert.deepEqual(tap.written[0], f);
  for (const s of [tx, rx, tap]) s.close();
});

test('fake UDP sendGather concatenates the pairs and splits by DESC_AUX like the kernel', () => {
  const net = new FakeUnderlay();
  const tx = net.bind('192.0.2.1', 1);
  const rx = net.bind('192.0.2.2', 2);
  const dst = core().alloc(32);
  writeSockaddr(core().u8(), dst, '192.0.2.2', 2);
  const a = core().alloc(16);
  const b = core().alloc(16);
  core()
    .u8()
    .fill(1, a, a + 4);
  core()
    .u8()
    .fill(2, b, b + 6);
  const list = core().alloc(32);
  const dv = core().dv();
  [a, 4, b, 6, a, 4, b, 3].forEach((v, i) => {
    dv.setUint32(list + 4 * i, v, true);
  });
  const out = new PacketBatch({ capacity: 1 });
  dv.setUint32(out.desc(0) + DESC_PTR, list, true);
  dv.setUint32(out.desc(0) + DESC_LEN, 4, true);
  dv.setUint32(out.desc(0) + DESC_ADDR, dst, true);
  dv.setUint32(out.desc(0) + DESC_AUX, 10, true);
  assert.equal(tx.sendGather(out.descs, 1), 1);
  const inb = new PacketBatch({ capacity: 4 });
  assert.equal(rx.recvBatch(inb), 2);
  const seg = (i: number) => [
    ...core()
      .u8()
      .slice(desc(inb, i, DESC_PTR), desc(inb, i, DESC_PTR) + desc(inb, i, DESC_LEN)),
  ];
  assert.deepEqual(seg(0), [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
  assert.deepEqual(seg(1), [1, 1, 1, 1, 2, 2, 2]);
  tx.close();
  rx.close();
});

test('fake TAP writeGather records the concatenated pieces as one frame', () => {
  const tap = new FakeTap();
  const a = core().alloc(16);
  const list = core().alloc(16);
  core().u8().set([1, 2, 3, 4, 5, 6], a);
  const dv = core().dv();
  [a + 4, 2, a, 3].forEach((v, i) => {
    dv.setUint32(list + 4 * i, v, true);
  });
  const out = new PacketBatch({ capacity: 1 });
  dv.setUint32(out.desc(0) + DESC_PTR, list, true);
  dv.setUint32(out.desc(0) + DESC_LEN, 2, true);
  assert.equal(tap.writeGather(out.descs, 1), 1);
  assert.deepEqual(tap.written, [Uint8Array.from([5, 6, 1, 2, 3])]);
  tap.close();
});
