// UdpBind on loopback: recvmmsg/sendmmsg batches straight from WASM memory, checked against
// node:dgram sockets (an independent implementation) on the other end.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DESC_ADDR, DESC_AUX, DESC_LEN, DESC_PTR } from '../assembly/constants.js';
import { PacketBatch } from '../src/io/batch.js';
import { MemView } from '../src/io/memview.js';
import { readSockaddr, writeSockaddr } from '../src/io/sockaddr.js';
import { expandGro, UdpBind } from '../src/io/udp.js';
import { core } from '../src/wasm/module.js';

interface Rx {
  data: Buffer;
  address: string;
  port: number;
  aux: number;
}

/** recvBatch until `want` datagrams arrived (1 s at most); returns them with their sources. */
async function recvAll(
  u: UdpBind,
  batch: PacketBatch,
  want: number,
): Promise<{ got: Rx[]; calls: number[] }> {
  const got: Rx[] = [];
  const calls: number[] = [];
  for (let t = 0; t < 100 && got.length < want; t++) {
    const n = u.recvBatch(batch);
    if (n === 0) {
      await sleep(10);
      continue;
    }
    calls.push(n);
    const dv = core().dv();
    for (let i = 0; i < n; i++) {
      const d = batch.desc(i);
      const p = dv.getUint32(d + DESC_PTR, true);
      const src = readSockaddr(core().u8(), dv.getUint32(d + DESC_ADDR, true));
      got.push({
        data: Buffer.from(
          core()
            .u8()
            .slice(p, p + dv.getUint32(d + DESC_LEN, true)),
        ),
        address: src.address,
        port: src.port,
        aux: dv.getUint32(d + DESC_AUX, true),
      });
    }
  }
  return { got, calls };
}

/** Describes `payloads` in batch slots, all to `dst` (an address in memory), with optional GSO size. */
function fill(batch: PacketBatch, payloads: Buffer[], dst: number, seg = 0): void {
  const dv = core().dv();
  payloads.forEach((pl, i) => {
    core().u8().set(pl, batch.frame(i));
    dv.setUint32(batch.desc(i) + DESC_PTR, batch.frame(i), true);
    dv.setUint32(batch.desc(i) + DESC_LEN, pl.length, true);
    dv.setUint32(batch.desc(i) + DESC_ADDR, dst, true);
    dv.setUint32(batch.desc(i) + DESC_AUX, seg, true);
  });
}

async function dgramSocket(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket(type);
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

for (const [type, lo] of [
  ['udp4', '127.0.0.1'],
  ['udp6', '::1'],
] as const) {
  test(`${type}: one recvBatch takes many datagrams, each with its own source`, async (t) => {
    const u = UdpBind.open({ address: lo, port: 0, batch: 64 });
    const a = await dgramSocket(type, lo);
    const b = await dgramSocket(type, lo);
    t.after(() => {
      u.close();
      a.close();
      b.close();
    });
    const port = u.localAddress().port;
    assert.equal(u.localAddress().address, lo);
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      const s = i % 2 ? b : a;
      sends.push(new Promise((r) => s.send(Buffer.from(`msg-${i}`), port, lo, r)));
    }
    await Promise.all(sends);
    await sleep(20);
    const { got, calls } = await recvAll(u, new PacketBatch({ capacity: 64 }), 40);
    assert.equal(got.length, 40);
    assert.equal(calls[0], 40, 'all waiting datagrams in one call');
    for (let i = 0; i < 40; i++) {
      const r = got.find((g) => g.data.toString() === `msg-${i}`)!;
      assert.ok(r, `msg-${i} received`);
      assert.equal(r.address, lo);
      assert.equal(r.port, (i % 2 ? b : a).address().port);
    }
    assert.equal(u.recvBatch(new PacketBatch({ capacity: 4 })), 0, 'empty socket: 0, no blocking');
  });

  test(`${type}: sendBatch sends a batch of different sizes to the sockaddrs in DESC_ADDR`, async (t) => {
    const u = UdpBind.open({ address: lo, port: 0 });
    const r1 = await dgramSocket(type, lo);
    const r2 = await dgramSocket(type, lo);
    t.after(() => {
      u.close();
      r1.close();
      r2.close();
    });
    const got: string[] = [];
    for (const r of [r1, r2]) {
      r.on('message', (m, info) => {
        assert.equal(info.port, u.localAddress().port);
        got.push(`${r === r1 ? 1 : 2}:${m.toString()}`);
      });
    }
    const d1 = core().alloc(32);
    const d2 = core().alloc(32);
    writeSockaddr(core().u8(), d1, lo, r1.address().port);
    writeSockaddr(core().u8(), d2, lo, r2.address().port);
    const batch = new PacketBatch({ capacity: 100 });
    const pls = Array.from({ length: 100 }, (_, i) => Buffer.from(`p${i}-${'x'.repeat(i * 10)}`));
    fill(batch, pls, d1);
    for (let i = 1; i < 100; i += 2)
      core()
        .dv()
        .setUint32(batch.desc(i) + DESC_ADDR, d2, true);
    assert.equal(u.sendBatch(batch.descs, 100), 100);
    for (let t2 = 0; t2 < 100 && got.length < 100; t2++) await sleep(10);
    assert.equal(got.length, 100);
    for (let i = 0; i < 100; i++) assert.ok(got.includes(`${i % 2 ? 2 : 1}:${pls[i]}`));
    assert.equal(u.stats.txDatagrams, 100);
  });

  test(`${type}: UDP GSO splits a buffer into DESC_AUX-sized datagrams; a GRO socket gets it whole`, async (t) => {
    const u = UdpBind.open({ address: lo, port: 0 });
    const plain = await dgramSocket(type, lo);
    const gro = UdpBind.open({ address: lo, port: 0, gro: true });
    t.after(() => {
      u.close();
      plain.close();
      gro.close();
    });
    const sizes: number[] = [];
    plain.on('message', (m) => sizes.push(m.length));
    const big = Buffer.alloc(5 * 1200 + 345);
    for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
    const batch = new PacketBatch({ capacity: 2, frameCapacity: 65536 });
    const dst = core().alloc(32);
    writeSockaddr(core().u8(), dst, lo, plain.address().port);
    fill(batch, [big], dst, 1200);
    assert.equal(u.sendBatch(batch.descs, 1), 1);
    for (let t2 = 0; t2 < 100 && sizes.length < 6; t2++) await sleep(10);
    assert.deepEqual(sizes, [1200, 1200, 1200, 1200, 1200, 345]);

    writeSockaddr(core().u8(), dst, lo, gro.localAddress().port);
    assert.equal(u.sendBatch(batch.descs, 1), 1);
    const { got } = await recvAll(gro, new PacketBatch({ capacity: 4, frameCapacity: 65536 }), 1);
    const total = got.reduce((s, g) => s + g.data.length, 0);
    assert.equal(total, big.length);
    assert.ok(
      got.every((g) => g.aux === 1200 || g.data.length <= 1200),
      'coalesced datagrams carry their segment size',
    );
    assert.ok(Buffer.concat(got.map((g) => g.data)).equals(big));
  });
}

test('datagrams larger than a slot are dropped and counted, the rest delivered', async (t) => {
  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  const s = await dgramSocket('udp4', '127.0.0.1');
  t.after(() => {
    u.close();
    s.close();
  });
  const port = u.localAddress().port;
  for (const len of [100, 3000, 200])
    await new Promise((r) => s.send(Buffer.alloc(len, 1), port, '127.0.0.1', r));
  await sleep(20);
  const { got } = await recvAll(u, new PacketBatch({ capacity: 8, frameCapacity: 2048 }), 2);
  assert.deepEqual(
    got.map((g) => g.data.length),
    [100, 200],
  );
  assert.equal(u.stats.rxTruncated, 1);
});

test('bind errors and bad options have stable codes', (t) => {
  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  t.after(() => u.close());
  const { port } = u.localAddress();
  // No SO_REUSEADDR: a second endpoint on the same data-path port is an error, not a silent share.
  assert.throws(() => UdpBind.open({ address: '127.0.0.1', port, batch: 1 }), {
    code: 'ERR_UDP_BIND',
    message: /EADDRINUSE/,
  });
  assert.throws(() => UdpBind.open({ address: 'nope' }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => UdpBind.open({ port: 70000 }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => UdpBind.open({ batch: 0 }), { code: 'ERR_INVALID_ARG' });
  const gro = UdpBind.open({ address: '127.0.0.1', port: 0, gro: true });
  t.after(() => gro.close());
  assert.throws(() => gro.recvBatch(new PacketBatch({ capacity: 1, frameCapacity: 2048 })), {
    code: 'ERR_INVALID_ARG',
  });
});

test('sendGather: headers built apart from their payload leave as GSO segments [header_i | payload_i]', async (t) => {
  const u = UdpBind.open({ address: '127.0.0.1', port: 0 });
  const r = await dgramSocket('udp4', '127.0.0.1');
  t.after(() => {
    u.close();
    r.close();
  });
  const got: Buffer[] = [];
  r.on('message', (m) => got.push(m));
  const dst = core().alloc(32);
  writeSockaddr(core().u8(), dst, '127.0.0.1', r.address().port);
  // Payload of 3 x 100 + 40 bytes in one place, 4 headers of 8 bytes in another.
  const payload = core().alloc(340);
  const headers = core().alloc(32);
  const u8 = core().u8();
  for (let i = 0; i < 340; i++) u8[payload + i] = i & 0xff;
  for (let i = 0; i < 32; i++) u8[headers + i] = 0xa0 + (i >> 3);
  const list = core().alloc(8 * 8);
  const dv = core().dv();
  for (let s = 0; s < 4; s++) {
    dv.setUint32(list + s * 16, headers + s * 8, true);
    dv.setUint32(list + s * 16 + 4, 8, true);
    dv.setUint32(list + s * 16 + 8, payload + s * 100, true);
    dv.setUint32(list + s * 16 + 12, s < 3 ? 100 : 40, true);
  }
  const descs = new PacketBatch({ capacity: 2 });
  dv.setUint32(descs.desc(0) + DESC_PTR, list, true);
  dv.setUint32(descs.desc(0) + DESC_LEN, 8, true);
  dv.setUint32(descs.desc(0) + DESC_ADDR, dst, true);
  dv.setUint32(descs.desc(0) + DESC_AUX, 108, true);
  // A second message in the same call, without GSO: one pair, one datagram.
  dv.setUint32(descs.desc(1) + DESC_PTR, list, true);
  dv.setUint32(descs.desc(1) + DESC_LEN, 1, true);
  dv.setUint32(descs.desc(1) + DESC_ADDR, dst, true);
  dv.setUint32(descs.desc(1) + DESC_AUX, 0, true);
  assert.equal(u.sendGather(descs.descs, 2), 2);
  for (let i = 0; i < 100 && got.length < 5; i++) await sleep(10);
  assert.equal(got.length, 5);
  for (let s = 0; s < 4; s++) {
    const want = Buffer.concat([
      Buffer.alloc(8, 0xa0 + s),
      Buffer.from(u8.slice(payload + s * 100, payload + s * 100 + (s < 3 ? 100 : 40))),
    ]);
    assert.ok(
      got.some((g) => g.equals(want)),
      `segment ${s}`,
    );
  }
  assert.ok(got.some((g) => g.equals(Buffer.alloc(8, 0xa0))));
});

test('expandGro turns GRO-coalesced buffers into one descriptor per datagram', () => {
  const inb = new PacketBatch({ capacity: 3 });
  const out = new PacketBatch({ capacity: 16 });
  const dv = core().dv();
  const set = (i: number, ptr: number, len: number, addr: number, aux: number) => {
    dv.setUint32(inb.desc(i) + DESC_PTR, ptr, true);
    dv.setUint32(inb.desc(i) + DESC_LEN, len, true);
    dv.setUint32(inb.desc(i) + DESC_ADDR, addr, true);
    dv.setUint32(inb.desc(i) + DESC_AUX, aux, true);
  };
  set(0, 1000, 250, 7, 100); // 100 + 100 + 50
  set(1, 5000, 60, 8, 0); // not coalesced
  set(2, 9000, 200, 9, 100); // exactly 2 segments
  const view = new MemView(core().memory);
  const get = (i: number) =>
    [DESC_PTR, DESC_LEN, DESC_ADDR, DESC_AUX].map((f) => dv.getUint32(out.desc(i) + f, true));
  assert.equal(expandGro(view, inb.descs, 3, out.descs, 16), 6);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(get), [
    [1000, 100, 7, 0],
    [1100, 100, 7, 0],
    [1200, 50, 7, 0],
    [5000, 60, 8, 0],
    [9000, 100, 9, 0],
    [9100, 100, 9, 0],
  ]);
  assert.equal(expandGro(view, inb.descs, 3, out.descs, 4), 4, 'stops at the output capacity');
});
