// The tunnel's TAP offloads in WASM (assembly/offload.ts) against a plain-TypeScript reference:
// tso_split_batch cuts random TSO frames (IPv4 and IPv6, random MSS, payload and TCP options)
// into segments whose every byte, length, sequence number, flag and checksum the reference
// predicts; gro_batch merges those segments back into the original frame (virtio_net_hdr for
// TSO, partial checksum) and refuses to merge a segment with a bad checksum, a gap or another flow.
// No root needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DESC_ARG,
  DESC_AUX,
  DESC_AUX2,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  HEADROOM,
  VERDICT_LOCAL,
  VNET_HDR_LEN,
} from '../assembly/constants.js';
import { core } from '../src/wasm/module.js';

interface Exports {
  tso_split_batch(
    d: number,
    n: number,
    o: number,
    oc: number,
    h: number,
    hc: number,
    s: number,
    r: number,
  ): number;
  gro_batch(d: number, n: number, o: number, lists: number, vh: number): number;
}

const wasm = core();
const x = wasm.exports as unknown as Exports;
const SLOT = 256;
const FRAME = 70000;
const frameBuf = wasm.alloc(HEADROOM + FRAME + 64) + HEADROOM;
const inDesc = wasm.alloc(DESC_SIZE * 4);
const segs = wasm.alloc(DESC_SIZE * 1024);
const hdrs = wasm.alloc(SLOT * 1024);
const res = wasm.alloc(8);
const flat = wasm.alloc(1024 * 1600);
const groOut = wasm.alloc(DESC_SIZE * 1024);
const groLists = wasm.alloc(24 * 1024);
const vhdrs = wasm.alloc(16 * 1024);

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

/** RFC 1071, byte by byte. */
function sum16(b: Uint8Array, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function pseudo(ip: Uint8Array, v6: boolean, l4len: number): number {
  const addrs = v6 ? ip.subarray(8, 40) : ip.subarray(12, 20);
  return sum16(addrs, 6 + l4len);
}

/** A TCP frame: Ethernet, IPv4 (id) or IPv6, TCP with `opt` option bytes, payload. */
function tcpFrame(v6: boolean, opt: number, payload: Uint8Array, seq: number, flags: number): Uint8Array {
  const ipLen = v6 ? 40 : 20;
  const thl = 20 + opt;
  const f = new Uint8Array(14 + ipLen + thl + payload.length);
  const dv = new DataView(f.buffer);
  f.set([2, 0x42, 10, 77, 0, 2, 2, 0x42, 10, 77, 0, 1], 0);
  dv.setUint16(12, v6 ? 0x86dd : 0x0800);
  const ip = 14;
  if (v6) {
    dv.setUint32(ip, 0x60012345);
    dv.setUint16(ip + 4, thl + payload.length);
    f[ip + 6] = 6;
    f[ip + 7] = 64;
    f.set([0xfd, 0x77, ...new Array(13).fill(0), 1], ip + 8);
    f.set([0xfd, 0x77, ...new Array(13).fill(0), 2], ip + 24);
  } else {
    f[ip] = 0x45;
    dv.setUint16(ip + 2, 20 + thl + payload.length);
    dv.setUint16(ip + 4, 0x1234);
    dv.setUint16(ip + 6, 0x4000);
    f[ip + 8] = 64;
    f[ip + 9] = 6;
    f.set([10, 77, 0, 1, 10, 77, 0, 2], ip + 12);
    dv.setUint16(ip + 10, ~sum16(f.subarray(ip, ip + 20)) & 0xffff);
  }
  const t = ip + ipLen;
  dv.setUint16(t, 40000);
  dv.setUint16(t + 2, 5201);
  dv.setUint32(t + 4, seq >>> 0);
  dv.setUint32(t + 8, 0xabcdef01);
  f[t + 12] = (thl / 4) << 4;
  f[t + 13] = flags;
  dv.setUint16(t + 14, 500);
  for (let i = 0; i < opt; i++) f[t + 20 + i] = i % 4 === 0 ? 1 : 8; // NOPs and junk kinds: bytes only
  f.set(payload, t + thl);
  const l4 = f.subarray(t);
  dv.setUint16(t + 16, ~sum16(l4, pseudo(f.subarray(ip), v6, l4.length)) & 0xffff);
  return f;
}

/** What a vnet-hdr TAP hands out for `frame` sent with TSO: GSO fields, partial checksum. */
function writeTso(frame: Uint8Array, v6: boolean, mss: number): void {
  const u8 = wasm.u8();
  const dv = wasm.dv();
  u8.set(frame, frameBuf);
  const ipLen = v6 ? 40 : 20;
  const t = 14 + ipLen;
  const hl = t + (frame[t + 12]! >> 4) * 4;
  const h = frameBuf - VNET_HDR_LEN;
  u8.fill(0, h, frameBuf);
  u8[h] = 1; // NEEDS_CSUM
  u8[h + 1] = v6 ? 4 : 1;
  dv.setUint16(h + 2, hl, true);
  dv.setUint16(h + 4, mss, true);
  dv.setUint16(h + 6, t, true);
  dv.setUint16(h + 8, 16, true);
  // The TCP checksum field holds the pseudo-header sum only (CHECKSUM_PARTIAL).
  const l4len = frame.length - t;
  dv.setUint16(frameBuf + t + 16, pseudo(frame.subarray(14), v6, l4len));
  dv.setUint32(inDesc + DESC_PTR, frameBuf, true);
  dv.setUint32(inDesc + DESC_LEN, frame.length, true);
}

/** The split output as contiguous segments (headers + payload), like a receiver sees them. */
function splitSegments(k: number): Uint8Array[] {
  const u8 = wasm.u8();
  const dv = wasm.dv();
  const out: Uint8Array[] = [];
  for (let i = 0; i < k; i++) {
    const d = segs + i * DESC_SIZE;
    const ptr = dv.getUint32(d + DESC_PTR, true);
    const len = dv.getUint32(d + DESC_LEN, true);
    const plen = dv.getUint32(d + DESC_AUX, true);
    const pay = dv.getUint32(d + DESC_AUX2, true);
    const s = new Uint8Array(len);
    s.set(u8.subarray(ptr, ptr + len - plen));
    s.set(u8.subarray(pay, pay + plen), len - plen);
    out.push(s);
  }
  return out;
}

/** Runs gro_batch over `frames` (as decap leaves them: LOCAL, port 0); returns the TAP writes. */
function gro(frames: Uint8Array[]): { vnet: Uint8Array; frame: Uint8Array; segs: number }[] {
  const u8 = wasm.u8();
  const dv = wasm.dv();
  let at = flat;
  frames.forEach((f, i) => {
    u8.set(f, at);
    const d = segs + i * DESC_SIZE;
    dv.setUint32(d + DESC_PTR, at, true);
    dv.setUint32(d + DESC_LEN, f.length, true);
    dv.setUint32(d + DESC_VERDICT, VERDICT_LOCAL, true);
    dv.setUint32(d + DESC_ARG, 0, true);
    at += 1600;
  });
  const k = x.gro_batch(segs, frames.length, groOut, groLists, vhdrs);
  const out = [];
  for (let i = 0; i < k; i++) {
    const o = groOut + i * DESC_SIZE;
    const list = dv.getUint32(o + DESC_PTR, true);
    const pairs = dv.getUint32(o + DESC_LEN, true);
    const parts: Uint8Array[] = [];
    for (let j = 0; j < pairs; j++) {
      const p = dv.getUint32(list + 8 * j, true);
      parts.push(u8.slice(p, p + dv.getUint32(list + 8 * j + 4, true)));
    }
    const frame = new Uint8Array(parts.slice(1).reduce((a, p) => a + p.length, 0));
    let w = 0;
    for (const p of parts.slice(1)) {
      frame.set(p, w);
      w += p.length;
    }
    out.push({ vnet: parts[0]!, frame, segs: dv.getUint32(o + DESC_AUX, true) });
  }
  return out;
}

test('TSO frames split into segments the reference predicts, and GRO merges them back', () => {
  const r = rng(0x7507);
  for (let round = 0; round < 40; round++) {
    const v6 = round % 2 === 1;
    const opt = [0, 12, 20, 40][r(4)]!;
    const mss = 536 + r(1400 - 536);
    const payload = Uint8Array.from({ length: 1 + r(65000 - 80) }, () => r(256));
    const seq = r(0xffffffff);
    const flags = 0x10 | (r(2) ? 0x08 : 0) | (r(2) ? 0x80 : 0); // ACK, maybe PSH and CWR
    const frame = tcpFrame(v6, opt, payload, seq, flags);
    writeTso(frame, v6, mss);
    const k = x.tso_split_batch(inDesc, 1, segs, 1024, hdrs, 1024, SLOT, res);
    const nseg = Math.ceil(payload.length / mss);
    const what = `round ${round} (v6 ${v6}, mss ${mss}, payload ${payload.length}, opt ${opt})`;
    assert.equal(k, nseg, what);
    assert.equal(wasm.dv().getUint32(res, true), 1, 'one frame consumed');
    const out = splitSegments(k);
    const ipLen = v6 ? 40 : 20;
    const t = 14 + ipLen;
    const hl = t + 20 + opt;
    out.forEach((s, i) => {
      const plen = Math.min(mss, payload.length - i * mss);
      // The reference: the original headers with the per-segment fields rewritten.
      const dv = new DataView(s.buffer);
      assert.equal(s.length, hl + plen, `${what} seg ${i} length`);
      assert.deepEqual(s.subarray(hl), payload.subarray(i * mss, i * mss + plen), `${what} seg ${i} payload`);
      assert.deepEqual(s.subarray(0, 14), frame.subarray(0, 14));
      if (v6) assert.equal(dv.getUint16(18), 20 + opt + plen, 'IPv6 payload length');
      else {
        assert.equal(dv.getUint16(16), 20 + 20 + opt + plen, 'IPv4 total length');
        assert.equal(dv.getUint16(18), (0x1234 + i) & 0xffff, 'IPv4 id');
        assert.equal(sum16(s.subarray(14, 34)), 0xffff, 'IPv4 header checksum');
      }
      assert.equal(dv.getUint32(t + 4), (seq + i * mss) >>> 0, 'sequence number');
      const last = i === nseg - 1;
      let want = flags;
      if (!last) want &= ~0x09;
      if (i > 0) want &= ~0x80;
      assert.equal(s[t + 13], want, `${what} seg ${i} flags`);
      assert.deepEqual(s.subarray(t + 20, hl), frame.subarray(t + 20, hl), 'options');
      const l4 = s.subarray(t);
      assert.equal(sum16(l4, pseudo(s.subarray(14), v6, l4.length)), 0xffff, `${what} seg ${i} TCP checksum`);
    });
    // Back together: TSO frames of up to 64 segments; a CWR segment stands alone (as in Linux GRO).
    const merged = gro(out);
    const want: number[] = [];
    let left = nseg;
    if (flags & 0x80) {
      want.push(1);
      left--;
    }
    for (; left > 0; left -= Math.min(left, 64)) want.push(Math.min(left, 64));
    assert.deepEqual(
      merged.map((m) => m.segs),
      want,
      what,
    );
    let off = 0;
    for (const m of merged) {
      const n = m.frame.length - hl;
      assert.deepEqual(m.frame.subarray(hl), payload.subarray(off, off + n), `${what} merged payload`);
      const mdv = new DataView(m.vnet.buffer, m.vnet.byteOffset);
      const mframe = new DataView(m.frame.buffer);
      assert.equal(mframe.getUint32(t + 4), (seq + off) >>> 0);
      off += n;
      if (m.segs === 1) {
        assert.deepEqual([...m.vnet], new Array(VNET_HDR_LEN).fill(0));
        continue;
      }
      assert.equal(m.vnet[0], 1, 'NEEDS_CSUM');
      assert.equal(m.vnet[1], v6 ? 4 : 1, 'GSO type');
      assert.equal(mdv.getUint16(2, true), hl, 'hdr_len');
      assert.equal(mdv.getUint16(4, true), mss, 'gso_size');
      assert.equal(mdv.getUint16(6, true), t, 'csum_start');
      assert.equal(mdv.getUint16(8, true), 16, 'csum_offset');
      if (!v6) assert.equal(sum16(m.frame.subarray(14, 34)), 0xffff, 'merged IPv4 header checksum');
      const l4len = m.frame.length - t;
      assert.equal(mframe.getUint16(t + 16), pseudo(m.frame.subarray(14), v6, l4len), 'partial checksum');
    }
    assert.equal(off, payload.length);
  }
});

test('a frame without GSO gets its partial checksum completed and keeps its place', () => {
  const payload = Uint8Array.from({ length: 777 }, (_, i) => (i * 7) & 0xff);
  const frame = tcpFrame(false, 12, payload, 1000, 0x18);
  writeTso(frame, false, 1400);
  wasm.u8()[frameBuf - VNET_HDR_LEN + 1] = 0; // no GSO, NEEDS_CSUM stays
  const k = x.tso_split_batch(inDesc, 1, segs, 1024, hdrs, 1024, SLOT, res);
  assert.equal(k, 1);
  const dv = wasm.dv();
  assert.equal(dv.getUint32(segs + DESC_PTR, true), frameBuf);
  assert.equal(dv.getUint32(segs + DESC_AUX, true), 0);
  const s = wasm.u8().slice(frameBuf, frameBuf + frame.length);
  assert.deepEqual(s, frame, 'the completed frame is the one with a full checksum');
});

test('GRO does not merge across a bad checksum, a sequence gap or another flow', () => {
  const payload = Uint8Array.from({ length: 1000 * 6 }, (_, i) => i & 0xff);
  const seg = (i: number, port = 40000, seqOff = 0) => {
    const f = tcpFrame(false, 0, payload.subarray(i * 1000, i * 1000 + 1000), 5000 + i * 1000 + seqOff, 0x10);
    if (port !== 40000) {
      const dv = new DataView(f.buffer);
      dv.setUint16(34, port);
      dv.setUint16(50, 0);
      dv.setUint16(50, ~sum16(f.subarray(34), pseudo(f.subarray(14), false, f.length - 34)) & 0xffff);
    }
    return f;
  };
  const bad = seg(2);
  bad[100]! ^= 1;
  const writes = gro([seg(0), seg(1), bad, seg(3), seg(4, 40001), seg(5, 40000, 7)]);
  assert.deepEqual(
    writes.map((w) => w.segs),
    [2, 1, 1, 1, 1],
    'merged 0+1; the corrupt one, the next, another flow and a gap stand alone',
  );
  assert.equal(writes[1]!.frame[100], bad[100], 'the corrupt segment is passed on as it came');
});
