// RawSender: hand-built IPv4/IPv6 + UDP packets in WASM memory go out exactly as built (source
// port, checksum) and are received by an ordinary node:dgram socket on loopback. Needs root.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DESC_ADDR, DESC_AUX, DESC_LEN, DESC_PTR } from '../assembly/constants.js';
import { PacketBatch } from '../src/io/batch.js';
import { RawSender } from '../src/io/raw.js';
import { parseIPv6, writeSockaddr } from '../src/io/sockaddr.js';
import { core } from '../src/wasm/module.js';

const root = process.getuid?.() === 0;

/** RFC 1071 one's-complement sum over `b` (the slow, obvious reference). */
function sum(b: Uint8Array, init = 0): number {
  let s = init;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function udp(sport: number, dport: number, payload: Uint8Array, pseudo: number): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint16(4, u.length);
  u.set(payload, 8);
  const c = ~sum(u, pseudo + 17 + u.length) & 0xffff;
  dv.setUint16(6, c === 0 ? 0xffff : c);
  return u;
}

function ipv4udp(sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const src = [127, 0, 0, 1];
  const p = new Uint8Array(20 + 8 + payload.length);
  p.set([0x45, 0, p.length >> 8, p.length & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0, ...src, ...src]);
  const c = ~sum(p.subarray(0, 20)) & 0xffff;
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p.set(udp(sport, dport, payload, sum(p.subarray(12, 20))), 20);
  return p;
}

function ipv6udp(sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const lo = parseIPv6('::1');
  const p = new Uint8Array(40 + 8 + payload.length);
  const l4 = 8 + payload.length;
  p.set([0x60, 0, 0, 0, l4 >> 8, l4 & 0xff, 17, 64]);
  p.set(lo, 8);
  p.set(lo, 24);
  p.set(udp(sport, dport, payload, sum(p.subarray(8, 40))), 40);
  return p;
}

function put(batch: PacketBatch, pkts: Uint8Array[], dst: number): void {
  const dv = core().dv();
  pkts.forEach((p, i) => {
    core().u8().set(p, batch.frame(i));
    dv.setUint32(batch.desc(i) + DESC_PTR, batch.frame(i), true);
    dv.setUint32(batch.desc(i) + DESC_LEN, p.length, true);
    dv.setUint32(batch.desc(i) + DESC_ADDR, dst, true);
    dv.setUint32(batch.desc(i) + DESC_AUX, 1000, true); // ignored: no GSO on a raw socket
  });
}

for (const family of [4, 6] as const) {
  test(`IPv${family}: a batch of hand-built datagrams arrives with the source ports and payloads as built`, {
    skip: !root,
  }, async (t) => {
    const lo = family === 4 ? '127.0.0.1' : '::1';
    const raw = RawSender.open({ family });
    const rx = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    t.after(() => {
      raw.close();
      rx.close();
    });
    rx.bind(0, lo);
    await once(rx, 'listening');
    const port = rx.address().port;
    const got: string[] = [];
    rx.on('message', (m, info) => got.push(`${info.port}:${m}`));
    const build = family === 4 ? ipv4udp : ipv6udp;
    const pkts = [0, 1, 2, 3, 4].map((i) => build(40000 + i, port, new TextEncoder().encode(`raw-${i}`)));
    const bad = build(40009, port, new TextEncoder().encode('bad-csum'));
    bad[bad.length - 1]! ^= 0xff; // payload changed after the checksum: the kernel must drop it
    const dst = core().alloc(32);
    writeSockaddr(core().u8(), dst, lo, 0);
    const batch = new PacketBatch({ capacity: 8 });
    put(batch, [...pkts, bad], dst);
    assert.equal(raw.sendBatch(batch.descs, 6), 6);
    for (let i = 0; i < 100 && got.length < 5; i++) await sleep(10);
    await sleep(30);
    assert.deepEqual(
      got.sort(),
      [0, 1, 2, 3, 4].map((i) => `${40000 + i}:raw-${i}`),
    );
  });
}
