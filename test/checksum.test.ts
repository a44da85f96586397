// The WASM Internet checksum against a plain-TypeScript reference (RFC 1071, byte by byte): every
// length 0..9001 with random data at a random alignment, the RFC 1624 incremental update against a
// full recompute, and UDP/TCP pseudo-header checksums on random IPv4/IPv6 packets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CSUM_V_IP_OK,
  CSUM_V_L4_BAD,
  CSUM_V_L4_NONE,
  CSUM_V_L4_OK,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
} from '../assembly/constants.js';
import { PacketCore } from '../src/wasm/packet.js';

const MAX = 9001;
const BATCH = 64;
const SLOT = MAX + 64;

/** xorshift32: reproducible random bytes (the seed is printed on failure). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** RFC 1071 reference: big-endian 16-bit words, odd byte padded, folded, complemented. */
function refChecksum(b: Uint8Array, from: number, len: number, init = 0): number {
  let s = init;
  let i = 0;
  for (; i + 1 < len; i += 2) s += (b[from + i]! << 8) | b[from + i + 1]!;
  if (len & 1) s += b[from + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

const pc = new PacketCore({ capacity: BATCH });
const descs = pc.wasm.alloc(BATCH * DESC_SIZE);
const slots = pc.wasm.alloc(BATCH * SLOT);

test('checksum matches the reference for every length 0..9001 at random alignments', () => {
  const seed = Date.now() >>> 0;
  const r = rng(seed);
  const offsets = new Array<number>(BATCH);
  for (let start = 0; start <= MAX; start += BATCH) {
    const n = Math.min(BATCH, MAX + 1 - start);
    const u8 = pc.wasm.u8();
    const dv = pc.wasm.dv();
    for (let i = 0; i < n; i++) {
      const len = start + i;
      const off = r() % 61; // any alignment, including odd
      const p = slots + i * SLOT + off;
      for (let k = 0; k < len; k++) u8[p + k] = r() & 0xff;
      offsets[i] = p;
      dv.setUint32(descs + i * DESC_SIZE + DESC_PTR, p, true);
      dv.setUint32(descs + i * DESC_SIZE + DESC_LEN, len, true);
    }
    pc.checksum(descs, n);
    for (let i = 0; i < n; i++) {
      const want = refChecksum(pc.wasm.u8(), offsets[i]!, start + i);
      const got = pc.checksumOf(descs, i);
      if (got !== want)
        assert.fail(`length ${start + i} at ${offsets[i]! % 64} (seed ${seed}): ${got} != ${want}`);
    }
  }
});

test('all-0xff and all-zero inputs at the lane-overflow edges', () => {
  const u8 = pc.wasm.u8();
  const dv = pc.wasm.dv();
  const lens = [0, 1, 2, 63, 64, 65, 4096, 8191, 9000, 9001];
  for (const fill of [0x00, 0xff]) {
    lens.forEach((len, i) => {
      const p = slots + i * SLOT + 1;
      u8.fill(fill, p, p + len);
      dv.setUint32(descs + i * DESC_SIZE + DESC_PTR, p, true);
      dv.setUint32(descs + i * DESC_SIZE + DESC_LEN, len, true);
    });
    pc.checksum(descs, lens.length);
    lens.forEach((len, i) => {
      assert.equal(
        pc.checksumOf(descs, i),
        refChecksum(u8, slots + i * SLOT + 1, len),
        `fill ${fill} len ${len}`,
      );
    });
  }
});

test('extreme words across several SIMD blocks (more than 2 x 8191 x 64 bytes)', () => {
  // 0x0000 and 0xffff words are the extremes of the biased signed lanes; a long buffer of each
  // crosses the block boundary where lanes are folded.
  const len = 3 * 8191 * 64 + 77;
  const p = pc.wasm.alloc(len + 16) + 3;
  const dv = pc.wasm.dv();
  for (const [name, fill] of [
    ['zeros', () => 0x00],
    ['ones', () => 0xff],
    ['alternating', (i: number) => (i & 2 ? 0xff : 0x00)],
    ['ramp', (i: number) => (i * 7) & 0xff],
  ] as const) {
    const u8 = pc.wasm.u8();
    for (let i = 0; i < len; i++) u8[p + i] = fill(i);
    for (const n of [len, 8191 * 64, 8191 * 64 + 1, 2 * 8191 * 64 - 2]) {
      dv.setUint32(descs + DESC_PTR, p, true);
      dv.setUint32(descs + DESC_LEN, n, true);
      pc.checksum(descs, 1);
      assert.equal(pc.checksumOf(descs, 0), refChecksum(pc.wasm.u8(), p, n), `${name}, ${n} bytes`);
    }
  }
});

test('RFC 1624 incremental update equals a full recompute', () => {
  const seed = (Date.now() ^ 0x5bd1e995) >>> 0;
  const r = rng(seed);
  const p = slots;
  for (let iter = 0; iter < 2000; iter++) {
    const u8 = pc.wasm.u8();
    const dv = pc.wasm.dv();
    const len = 20 + 2 * (r() % 30);
    for (let k = 0; k < len; k++) u8[p + k] = r() & 0xff;
    dv.setUint16(p + 10, 0, true);
    const check = refChecksum(u8, p, len); // big-endian value
    dv.setUint16(p + 10, check, false);
    const wide = r() & 1;
    const at = wide ? 4 * (r() % (len >> 2)) : 2 * (r() % (len >> 1));
    if (at >= 8 && at < 12) continue; // the checksum field itself is not covered data
    const oldV = wide ? dv.getUint32(p + at, true) : dv.getUint16(p + at, true);
    const newV = r() & (wide ? 0xffffffff : 0xffff);
    if (wide) dv.setUint32(p + at, newV, true);
    else dv.setUint16(p + at, newV, true);
    const stored = dv.getUint16(p + 10, true);
    const upd = wide ? pc.replace32(stored, oldV, newV) : pc.replace16(stored, oldV, newV);
    dv.setUint16(p + 10, 0, true);
    const full = refChecksum(pc.wasm.u8(), p, len);
    // In memory order: swap the reference's big-endian value. 0x0000 and 0xffff are both zero.
    const want = ((full & 0xff) << 8) | (full >> 8);
    const norm = (x: number) => (x === 0xffff ? 0 : x);
    assert.equal(norm(upd), norm(want), `seed ${seed} iter ${iter}: word at ${at}`);
  }
});

/** A random IPv4 or IPv6 UDP/TCP packet in an Ethernet frame, checksums filled in by the reference. */
function randomL4Frame(r: () => number, v6: boolean, udp: boolean, zeroUdp: boolean): Uint8Array {
  const plen = r() % 1500;
  const l4h = udp ? 8 : 20;
  const l3h = v6 ? 40 : 20;
  const f = new Uint8Array(14 + l3h + l4h + plen);
  for (let i = 0; i < f.length; i++) f[i] = r() & 0xff;
  const dv = new DataView(f.buffer);
  dv.setUint16(12, v6 ? 0x86dd : 0x0800);
  const l4len = l4h + plen;
  const proto = udp ? 17 : 6;
  let pseudo = 0;
  if (v6) {
    f[14] = 0x60;
    dv.setUint16(18, l4len);
    f[20] = proto;
    for (let i = 22; i < 54; i += 2) pseudo += dv.getUint16(i);
  } else {
    f[14] = 0x45;
    dv.setUint16(16, 20 + l4len);
    dv.setUint16(20, 0); // not a fragment
    f[23] = proto;
    dv.setUint16(24, 0);
    dv.setUint16(24, refChecksum(f, 14, 20));
    for (let i = 26; i < 34; i += 2) pseudo += dv.getUint16(i);
  }
  pseudo += proto + l4len;
  const l4 = 14 + l3h;
  if (udp) dv.setUint16(l4 + 4, l4len);
  else f[l4 + 12] = 0x50;
  const field = l4 + (udp ? 6 : 16);
  dv.setUint16(field, 0);
  let c = refChecksum(f, l4, l4len, pseudo);
  if (udp && c === 0) c = 0xffff;
  dv.setUint16(field, udp && zeroUdp && !v6 ? 0 : c);
  return f;
}

test('UDP/TCP checksums with IPv4 and IPv6 pseudo-headers verify, and a flipped bit fails', () => {
  const seed = (Date.now() ^ 0x1234567) >>> 0;
  const r = rng(seed);
  for (let round = 0; round < 8; round++) {
    const frames: Uint8Array[] = [];
    const flips: number[] = [];
    for (let i = 0; i < BATCH; i++) {
      const f = randomL4Frame(r, (i & 1) === 1, (i & 2) === 2, (i & 12) === 12);
      // Flip a bit of the payload or, when there is none, of the source port (not a length field).
      const l4 = 14 + ((i & 1) === 1 ? 40 : 20);
      const l4h = (i & 2) === 2 ? 8 : 20;
      const payload = f.length - l4 - l4h;
      const flip = i % 3 === 0 ? (payload > 0 ? l4 + l4h + (r() % payload) : l4) : -1;
      frames.push(f);
      flips.push(flip);
    }
    const u8 = pc.wasm.u8();
    const dv = pc.wasm.dv();
    frames.forEach((f, i) => {
      const p = slots + i * SLOT + (i % 7);
      u8.set(f, p);
      if (flips[i]! >= 0) u8[p + flips[i]!]! ^= 1 << (r() % 8);
      dv.setUint32(descs + i * DESC_SIZE + DESC_PTR, p, true);
      dv.setUint32(descs + i * DESC_SIZE + DESC_LEN, f.length, true);
    });
    assert.equal(pc.parse(descs, BATCH), BATCH, `seed ${seed}: every frame parses`);
    pc.verifyChecksums(descs, BATCH);
    frames.forEach((_, i) => {
      const bits = pc.checksumBits(descs, i);
      const v6 = (i & 1) === 1;
      const udp = (i & 2) === 2;
      const zero = udp && !v6 && (i & 12) === 12;
      const msg = `seed ${seed} frame ${i} (${v6 ? 'v6' : 'v4'} ${udp ? 'udp' : 'tcp'}) bits ${bits}`;
      if (!v6) assert.ok(bits & CSUM_V_IP_OK, msg);
      if (zero) assert.equal(bits & (CSUM_V_L4_NONE | CSUM_V_L4_OK | CSUM_V_L4_BAD), CSUM_V_L4_NONE, msg);
      else if (flips[i]! >= 0) assert.ok(bits & CSUM_V_L4_BAD, msg);
      else assert.ok(bits & CSUM_V_L4_OK, msg);
    });
  }
});
