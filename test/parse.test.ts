// Property tests of the WASM parser (assembly/parse.ts) against a plain-TypeScript reference parser
// written from the same rules (PARSE_* in assembly/constants.ts): random bytes, every truncation of
// valid frames of each type, and lying length fields. Out-of-bounds is checked two ways: each frame
// sits right between guard bytes and is parsed twice with different guard contents (a read outside
// [p, p+len) would make the two records differ), and the frame, the guards and the memory around
// the records must be unchanged afterwards (no write outside the record).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as C from '../assembly/constants.js';
import { PacketCore, type ParsedFrame, parseError } from '../src/wasm/packet.js';

const BATCH = 64;
const SLOT = 512;
const GUARD = 64;
const MAXLEN = SLOT - 2 * GUARD;

/** xorshift32, seeded (seeds are printed on failure). */
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

// ---- The reference parser: obviously correct, slow, throws on any read outside the frame --------

function refParse(b: Uint8Array): ParsedFrame {
  const at = (i: number): number => {
    if (i < 0 || i >= b.length) throw new Error(`reference read out of bounds at ${i}`);
    return b[i]!;
  };
  const be = (i: number) => (at(i) << 8) | at(i + 1);
  const r: ParsedFrame = {
    status: 0,
    flags: 0,
    ethertype: 0,
    vlan: 0,
    vlanOuter: 0,
    l3Offset: 0,
    l3Length: 0,
    l4Proto: 0,
    l4Offset: 0,
    payloadOffset: 0,
    payloadLength: 0,
    srcPort: 0,
    dstPort: 0,
    arpOp: 0,
    fragOffset: 0,
  };
  const len = b.length;
  const stop = (status: number) => {
    r.status = status;
    return r;
  };
  if (len < 14) return stop(C.DROP_TRUNCATED);
  r.flags = C.PARSE_F_ETH;
  let et = be(12);
  let off = 14;
  for (let tags = 0; tags < 2 && (et === 0x8100 || et === 0x88a8); tags++) {
    r.ethertype = et;
    if (off + 4 > len) return stop(C.DROP_TRUNCATED);
    if (tags === 1) {
      r.vlanOuter = r.vlan;
      r.flags |= C.PARSE_F_QINQ;
    }
    r.vlan = be(off) & 0xfff;
    r.flags |= C.PARSE_F_VLAN;
    et = be(off + 2);
    off += 4;
  }
  r.ethertype = et;
  r.l3Offset = off;
  const l4 = (start: number, l4len: number, proto: number, firstFrag: boolean): ParsedFrame => {
    r.l4Offset = start;
    if (proto === 17) {
      if (l4len < 8) return stop(C.DROP_TRUNCATED);
      let plen = l4len - 8;
      if (!firstFrag) {
        const ulen = be(start + 4);
        if (ulen < 8) return stop(C.DROP_MALFORMED);
        if (ulen > l4len) return stop(C.DROP_TRUNCATED);
        plen = ulen - 8;
      }
      Object.assign(r, { srcPort: be(start), dstPort: be(start + 2), payloadOffset: start + 8 });
      r.payloadLength = plen;
      r.flags |= C.PARSE_F_UDP;
      return r;
    }
    if (proto === 6) {
      if (l4len < 20) return stop(C.DROP_TRUNCATED);
      const doff = (at(start + 12) >> 4) * 4;
      if (doff < 20) return stop(C.DROP_MALFORMED);
      if (doff > l4len) return stop(C.DROP_TRUNCATED);
      Object.assign(r, { srcPort: be(start), dstPort: be(start + 2), payloadOffset: start + doff });
      r.payloadLength = l4len - doff;
      r.flags |= C.PARSE_F_TCP;
      return r;
    }
    r.flags |= C.PARSE_F_L4_OTHER;
    return r;
  };
  const rem = len - off;
  if (et === 0x0800) {
    if (rem < 20) return stop(C.DROP_TRUNCATED);
    const v = at(off) >> 4;
    const ihl = (at(off) & 15) * 4;
    const tot = be(off + 2);
    if (v !== 4 || ihl < 20 || tot < ihl) return stop(C.DROP_MALFORMED);
    if (tot > rem) return stop(C.DROP_TRUNCATED);
    r.flags |= C.PARSE_F_IPV4;
    r.l3Length = tot;
    r.l4Proto = at(off + 9);
    const fw = be(off + 6);
    if (fw & 0x3fff) {
      r.flags |= C.PARSE_F_FRAG;
      r.fragOffset = (fw & 0x1fff) * 8;
      if (r.fragOffset) return r;
    }
    return l4(off + ihl, tot - ihl, r.l4Proto, (fw & 0x2000) !== 0);
  }
  if (et === 0x86dd) {
    if (rem < 40) return stop(C.DROP_TRUNCATED);
    if (at(off) >> 4 !== 6) return stop(C.DROP_MALFORMED);
    const tot = be(off + 4) + 40;
    if (tot > rem) return stop(C.DROP_TRUNCATED);
    r.flags |= C.PARSE_F_IPV6;
    r.l3Length = tot;
    const end = off + tot;
    let nh = at(off + 6);
    let p = off + 40;
    let more = false;
    for (let i = 0; i <= 8; i++) {
      if (![0, 43, 44, 51, 60].includes(nh)) {
        r.l4Proto = nh;
        return l4(p, end - p, nh, more);
      }
      if (i === 8) break;
      if (p + 8 > end) return stop(C.DROP_TRUNCATED);
      r.flags |= C.PARSE_F_IPV6_EXT;
      const hlen = nh === 44 ? 8 : nh === 51 ? (at(p + 1) + 2) * 4 : (at(p + 1) + 1) * 8;
      if (p + hlen > end) return stop(C.DROP_TRUNCATED);
      if (nh === 44) {
        const fw = be(p + 2);
        more = (fw & 1) === 1;
        if (fw & 0xfff8 || more) {
          r.flags |= C.PARSE_F_FRAG;
          r.fragOffset = fw & 0xfff8;
        }
        if (fw & 0xfff8) {
          r.l4Proto = at(p);
          return r;
        }
      }
      nh = at(p);
      p += hlen;
    }
    return stop(C.DROP_MALFORMED);
  }
  if (et === 0x0806) {
    if (rem < 8) return stop(C.DROP_TRUNCATED);
    if (be(off) !== 1 || be(off + 2) !== 0x0800 || at(off + 4) !== 6 || at(off + 5) !== 4) {
      return stop(C.DROP_MALFORMED);
    }
    if (rem < 28) return stop(C.DROP_TRUNCATED);
    r.l3Length = 28;
    r.arpOp = be(off + 6);
    r.flags |= C.PARSE_F_ARP;
    return r;
  }
  return r;
}

// ---- Valid frames of each type, built by hand --------------------------------------------------

function hex(s: string): number[] {
  return (s.match(/../g) ?? []).map((x) => Number.parseInt(x, 16));
}
const ETH = (type: number) => [...hex('020000000002020000000001'), type >> 8, type & 0xff];
/** An 802.1Q tag as it follows a TPID: TCI (the VLAN id), then the next ethertype. */
const TAG = (next: number, vid: number) => [vid >> 8, vid & 0xff, next >> 8, next & 0xff];
function ipv4(proto: number, l4: number[], opts: { ihl?: number; frag?: number } = {}): number[] {
  const ihl = opts.ihl ?? 5;
  const tot = ihl * 4 + l4.length;
  const frag = opts.frag ?? 0x4000;
  const h = [0x40 | ihl, 0, tot >> 8, tot & 0xff, 0, 1, frag >> 8, frag & 0xff, 64, proto, 0, 0];
  return [...h, 10, 0, 0, 1, 10, 0, 0, 2, ...new Array(ihl * 4 - 20).fill(1), ...l4];
}
function ipv6(nh: number, rest: number[]): number[] {
  const src = [0xfd, ...new Array(14).fill(0), 1];
  const dst = [0xfd, ...new Array(14).fill(0), 2];
  return [0x60, 0, 0, 0, rest.length >> 8, rest.length & 0xff, nh, 64, ...src, ...dst, ...rest];
}
const udp = (sp: number, dp: number, data: number[]) => {
  const n = 8 + data.length;
  return [sp >> 8, sp & 0xff, dp >> 8, dp & 0xff, n >> 8, n & 0xff, 0, 0, ...data];
};
const tcp = (sp: number, dp: number, doff: number, data: number[]) => [
  sp >> 8,
  sp & 0xff,
  dp >> 8,
  dp & 0xff,
  ...new Array(8).fill(0),
  doff << 4,
  0x18,
  0xff,
  0xff,
  0,
  0,
  0,
  0,
  ...new Array(doff * 4 - 20).fill(1),
  ...data,
];
const arp = hex('0001080006040001020000000001 0a000001 000000000000 0a000002'.replace(/ /g, ''));
const DATA = [1, 2, 3, 4, 5, 6, 7];

const VALID: Array<[string, number[]]> = [
  ['ipv4/udp', [...ETH(0x0800), ...ipv4(17, udp(1234, 4789, DATA))]],
  ['ipv4(options)/tcp(options)', [...ETH(0x0800), ...ipv4(6, tcp(40000, 80, 8, DATA), { ihl: 7 })]],
  ['vlan/ipv4/tcp', [...ETH(0x8100), ...TAG(0x0800, 100), ...ipv4(6, tcp(1, 2, 5, DATA))]],
  [
    'qinq/ipv4/udp',
    [...ETH(0x88a8), ...TAG(0x8100, 300), ...TAG(0x0800, 42), ...ipv4(17, udp(53, 53, DATA))],
  ],
  ['ipv4 first fragment/udp', [...ETH(0x0800), ...ipv4(17, udp(9, 9, DATA), { frag: 0x2000 })]],
  ['ipv4 later fragment', [...ETH(0x0800), ...ipv4(17, DATA, { frag: 0x2010 })]],
  ['ipv4/icmp', [...ETH(0x0800), ...ipv4(1, [8, 0, 0, 0, ...DATA])]],
  ['ipv6/udp', [...ETH(0x86dd), ...ipv6(17, udp(5353, 5353, DATA))]],
  ['vlan/ipv6/tcp', [...ETH(0x8100), ...TAG(0x86dd, 7), ...ipv6(6, tcp(22, 5000, 6, DATA))]],
  [
    'ipv6/hbh/dstopts/tcp',
    [
      ...ETH(0x86dd),
      ...ipv6(0, [60, 0, 1, 4, 0, 0, 0, 0, 6, 1, ...new Array(14).fill(0), ...tcp(1, 2, 5, DATA)]),
    ],
  ],
  ['ipv6/frag(first)/udp', [...ETH(0x86dd), ...ipv6(44, [17, 0, 0, 1, 0, 0, 0, 9, ...udp(1, 2, DATA)])]],
  ['ipv6/frag(later)', [...ETH(0x86dd), ...ipv6(44, [17, 0, 0x05, 0x08, 0, 0, 0, 9, ...DATA])]],
  ['ipv6/ah/udp', [...ETH(0x86dd), ...ipv6(51, [17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...udp(1, 2, DATA)])]],
  ['arp', [...ETH(0x0806), ...arp]],
  ['vlan/arp', [...ETH(0x8100), ...TAG(0x0806, 5), ...arp]],
  ['unknown ethertype', [...ETH(0x88cc), ...DATA]],
];

// ---- Running a batch between guards -----------------------------------------------------------

const pc = new PacketCore({ capacity: BATCH });
const descs = pc.wasm.alloc(BATCH * C.DESC_SIZE);
const slots = pc.wasm.alloc(BATCH * SLOT + GUARD);
const RECS_GUARD = 256;
// The records sit inside pc; check the bytes after them stay untouched.
const after = pc.records + BATCH * C.PARSE_SIZE;

/** Parses `frames` twice with different guard bytes; returns the records, asserting no OOB access. */
function parseGuarded(frames: Uint8Array[], r: () => number, label: string): ParsedFrame[] {
  assert.ok(frames.length <= BATCH);
  const runs: ParsedFrame[][] = [];
  for (let run = 0; run < 2; run++) {
    const u8 = pc.wasm.u8();
    const dv = pc.wasm.dv();
    // Each frame ends exactly where its slot's trailing guard begins.
    for (let i = 0; i < BATCH; i++) {
      const s = slots + i * SLOT;
      for (let k = 0; k < SLOT; k++) u8[s + k] = run === 0 ? r() & 0xff : ~u8[s + k]! & 0xff;
    }
    frames.forEach((f, i) => {
      const p = slots + i * SLOT + GUARD + MAXLEN - f.length;
      // The second run keeps the frame bytes and flips every byte around them.
      u8.set(f, p);
      dv.setUint32(descs + i * C.DESC_SIZE + C.DESC_PTR, p, true);
      dv.setUint32(descs + i * C.DESC_SIZE + C.DESC_LEN, f.length, true);
    });
    const snapshot = u8.slice(slots, slots + BATCH * SLOT + GUARD);
    const tail = u8.slice(after, after + RECS_GUARD);
    const ok = pc.parse(descs, frames.length);
    const now = pc.wasm.u8();
    assert.deepEqual(
      now.subarray(slots, slots + BATCH * SLOT + GUARD),
      snapshot,
      `${label}: frame bytes written`,
    );
    assert.deepEqual(now.subarray(after, after + RECS_GUARD), tail, `${label}: wrote past the records`);
    const recs = frames.map((_, i) => pc.record(i));
    assert.equal(ok, recs.filter((x) => x.status === C.PARSE_OK).length, label);
    runs.push(recs);
  }
  assert.deepEqual(runs[1], runs[0], `${label}: result depends on bytes outside the frame`);
  return runs[0]!;
}

/** How often each status and flag came up, so a test can show it reached the deep paths. */
const seen = new Map<string, number>();
function tally(x: ParsedFrame): void {
  const keys = [`status:${x.status}`];
  for (const [name, bit] of Object.entries(C)) {
    if (name.startsWith('PARSE_F_') && x.flags & (bit as number)) keys.push(name);
  }
  for (const k of keys) seen.set(k, (seen.get(k) ?? 0) + 1);
}

function checkAgainstRef(frames: Uint8Array[], r: () => number, label: string): void {
  const got = parseGuarded(frames, r, label);
  got.forEach(tally);
  frames.forEach((f, i) => {
    const want = refParse(f);
    if (JSON.stringify(got[i]) !== JSON.stringify(want)) {
      assert.deepEqual(got[i], want, `${label} #${i}: ${Buffer.from(f).toString('hex')}`);
    }
  });
}

const SEED = Date.now() >>> 0;

test('valid frames of each type parse like the reference, and to what was built', () => {
  const r = rng(SEED);
  const frames = VALID.map(([, b]) => Uint8Array.from(b));
  checkAgainstRef(frames, r, `valid (seed ${SEED})`);
  const got = parseGuarded(frames, r, 'valid');
  for (const [i, [name]] of VALID.entries()) assert.equal(got[i]!.status, C.PARSE_OK, name);
  assert.equal(got[0]!.dstPort, 4789);
  assert.equal(got[1]!.payloadLength, DATA.length);
  assert.equal(got[3]!.vlanOuter, 300);
  assert.equal(got[3]!.vlan, 42);
  assert.equal(got[9]!.l4Offset, 14 + 40 + 8 + 16);
  assert.equal(got[11]!.fragOffset, 0x508 & 0xfff8);
});

test('every truncation of every valid frame matches the reference', () => {
  const r = rng(SEED + 1);
  const all: Uint8Array[] = [];
  for (const [, b] of VALID) for (let k = 0; k <= b.length; k++) all.push(Uint8Array.from(b.slice(0, k)));
  for (let i = 0; i < all.length; i += BATCH)
    checkAgainstRef(all.slice(i, i + BATCH), r, `truncations (seed ${SEED})`);
  // A strict prefix never parses as deep as the whole frame.
  const trunc = all.filter((f) => f.length < 14);
  assert.ok(trunc.every((f) => refParse(f).status === C.DROP_TRUNCATED));
});

test('lying length and size fields match the reference', () => {
  const r = rng(SEED + 2);
  // Byte positions that hold lengths or sizes, per frame: IPv4 IHL/total length, IPv6 payload
  // length and extension lengths, UDP length, TCP data offset, ARP sizes, VLAN TPIDs.
  const batch: Uint8Array[] = [];
  for (let iter = 0; iter < 200; iter++) {
    for (const [, b] of VALID) {
      const f = Uint8Array.from(b);
      const fields = Math.min(f.length, 90);
      const hits = 1 + (r() % 3);
      for (let h = 0; h < hits; h++) {
        const at = 12 + (r() % (fields - 12));
        f[at] = r() % 4 === 0 ? f[at]! ^ (1 << (r() % 8)) : r() & 0xff;
      }
      // Sometimes also cut the frame short.
      const cut = r() % 4 === 0 ? r() % (f.length + 1) : f.length;
      batch.push(f.subarray(0, cut));
      if (batch.length === BATCH) checkAgainstRef(batch.splice(0), r, `lying fields (seed ${SEED})`);
    }
  }
  if (batch.length) checkAgainstRef(batch, r, `lying fields (seed ${SEED})`);
});

/**
 * A random frame steered towards deep paths: random bytes, then plausible ethertypes, 0-2 tags,
 * IP versions, protocols, header lengths and length fields near (but often not at) the truth.
 */
function randomFrame(r: () => number): Uint8Array {
  const len = r() % 200;
  const f = new Uint8Array(len);
  for (let k = 0; k < len; k++) f[k] = r() & 0xff;
  if (len < 14 || r() % 5 === 0) return f;
  const dv = new DataView(f.buffer);
  const set16 = (at: number, v: number) => at + 2 <= len && dv.setUint16(at, v & 0xffff);
  const near = (v: number) => (r() % 3 === 0 ? r() & 0xffff : v + (r() % 9) - 4);
  const l3types = [0x0800, 0x0800, 0x86dd, 0x86dd, 0x0806, 0x1234];
  let at = 12;
  for (let tags = r() % 4 === 0 ? 0 : r() % 3; tags > 0; tags--, at += 4)
    set16(at, [0x8100, 0x88a8][r() % 2]!);
  const et = l3types[r() % l3types.length]!;
  set16(at, et);
  const l3 = at + 2;
  const rem = len - l3;
  if (rem <= 0) return f;
  let l4 = -1;
  let l4len = 0;
  let proto = 0;
  if (et === 0x0800) {
    const ihl = r() % 4 === 0 ? r() % 16 : 5 + (r() % 3);
    f[l3] = (r() % 8 === 0 ? r() % 16 : 4) * 16 + ihl;
    set16(l3 + 2, near(rem));
    set16(l3 + 6, [0, 0x4000, 0x2000, 0x2010, r()][r() % 5]!);
    proto = [6, 17, 17, 6, 1][r() % 5]!;
    if (l3 + 9 < len) f[l3 + 9] = proto;
    l4 = l3 + ihl * 4;
    l4len = rem - ihl * 4;
  } else if (et === 0x86dd) {
    f[l3] = r() % 8 === 0 ? r() & 0xff : 0x60;
    set16(l3 + 4, near(rem - 40));
    proto = [6, 17, 17, 6, 0, 44, 60, 51][r() % 8]!;
    if (l3 + 6 < len) f[l3 + 6] = proto;
    l4 = l3 + 40;
    l4len = rem - 40;
    if (proto === 0 || proto === 60 || proto === 44 || proto === 51) {
      if (l4 + 1 < len) [f[l4], f[l4 + 1]] = [[6, 17][r() % 2]!, r() % 3];
      if (proto === 44 && l4 + 3 < len) f[l4 + 3] = r() % 2;
      proto = f[l4] ?? 0;
      const hlen = proto === 51 ? ((f[l4 + 1] ?? 0) + 2) * 4 : ((f[l4 + 1] ?? 0) + 1) * 8;
      l4 += hlen;
      l4len -= hlen;
    }
  } else if (et === 0x0806 && r() % 2) {
    if (l3 + 6 <= len) f.set([0, 1, 8, 0, 6, 4], l3);
  }
  if (l4 > 0 && l4len > 0) {
    if (proto === 17) set16(l4 + 4, near(l4len));
    if (proto === 6 && l4 + 12 < len) f[l4 + 12] = (r() % 4 === 0 ? r() % 16 : 5 + (r() % 3)) << 4;
  }
  return f;
}

test('random frames match the reference', () => {
  const r = rng(SEED + 3);
  seen.clear();
  for (let round = 0; round < 150; round++) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < BATCH; i++) frames.push(randomFrame(r));
    checkAgainstRef(frames, r, `random (seed ${SEED})`);
  }
  // The random input reached every header kind and every outcome.
  if (process.env.VXNET_TEST_VERBOSE) console.log([...seen]);
  const want = [
    'PARSE_F_VLAN',
    'PARSE_F_QINQ',
    'PARSE_F_IPV4',
    'PARSE_F_IPV6',
    'PARSE_F_IPV6_EXT',
    'PARSE_F_FRAG',
  ];
  const outcomes = [`status:${C.PARSE_OK}`, `status:${C.DROP_TRUNCATED}`, `status:${C.DROP_MALFORMED}`];
  for (const k of [...want, 'PARSE_F_UDP', 'PARSE_F_TCP', 'PARSE_F_ARP', ...outcomes]) {
    assert.ok((seen.get(k) ?? 0) > 0, `never reached ${k}: ${JSON.stringify([...seen])}`);
  }
});

test('parse statuses map to stable error codes', () => {
  assert.equal(parseError(C.PARSE_OK), undefined);
  assert.equal(parseError(C.DROP_TRUNCATED)?.code, 'ERR_PACKET_TRUNCATED');
  assert.equal(parseError(C.DROP_MALFORMED)?.code, 'ERR_PACKET_MALFORMED');
  assert.equal(parseError(99)?.code, 'ERR_PACKET_STATUS');
  assert.throws(() => pc.parse(descs, BATCH + 1), { code: 'ERR_INVALID_ARG' });
});
