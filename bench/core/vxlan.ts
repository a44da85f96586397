// bench vxlan: the datapath's batch pipeline (assembly/datapath.ts) next to the plain-TS reference
// (test/ref/datapath-ref.ts), packets per second on one core, no I/O.
//
// Method: one VNI with 10,000 static FDB entries spread over 16 IPv4 peers, learning on (so decap
// also looks the inner source MAC up), ARP proxy on. A batch of 64 Ethernet frames of 128 bytes,
// each to a random known MAC (unicast: FDB lookup, VXLAN header pushed in place), sits in WASM
// memory with HEADROOM in front. One timed call is one batch:
//   encap        reset the 64 descriptors (ptr, len, source port) from JS, then encap;
//   decap        reset the 64 descriptors to the datagrams (ptr - 8, len + 8), then decap;
//   encap+decap  encap then decap of the same descriptors: after encap DESC_ADDR is the peer's
//                sockaddr, which decap takes as the source address, and decap moves DESC_PTR/LEN
//                and DESC_ARG back to what encap needs, so the loop needs no reset.
// `wasm` crosses into WASM once per batch (twice for encap+decap); `ts` runs the reference's
// encap/decap over the same memory and descriptors. Both get the same JS-side resets. rate() runs
// each for ~250 ms after a warm-up, 5 runs, median; the figure is packets (not batches) per second,
// a packet counted once in encap+decap. Before timing, both are run on the same batch and their
// verdicts, pointers and bytes compared, so a fast wrong answer cannot be reported.
import {
  DESC_ADDR,
  DESC_ARG,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  VERDICT_LOCAL,
  VERDICT_SEND,
} from '../../assembly/constants.js';
import { Datapath } from '../../src/wasm/datapath.js';
import { core } from '../../src/wasm/module.js';
import { RefDatapath } from '../../test/ref/datapath-ref.js';
import { rate, record } from '../lib.js';

export const BATCH = 64;
const FRAME = 128;
const ENTRIES = 10_000;
const PEERS = 16;
const VNI = 4242;
const SLOT = 128 + 256; // HEADROOM + frame + tailroom, 64-aligned

export interface Setup {
  dp: Datapath;
  ref: RefDatapath;
  port: number;
  descs: number;
  frames: number[];
  /** Resets descriptor i of `descs` to frame i (as read from the local port). */
  resetEncap(descs: number): void;
  /** Resets descriptor i to the datagram of frame i (VXLAN header in front), source peer kept. */
  resetDecap(descs: number): void;
}

function xorshift(seed: number) {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const mac = (i: number) => Uint8Array.from([0x02, 0x42, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff, 0x01]);

/** The datapath, its reference with the same tables, and one batch of frames. */
export function setup(): Setup {
  const c = core();
  const dp = Datapath.create({ fdbCapacity: ENTRIES * 2, maxPeers: 64, maxVnis: 4, learning: true });
  const ref = new RefDatapath({
    fdbCapacity: ENTRIES * 2,
    maxPeers: 64,
    maxVnis: 4,
    learning: true,
    sockaddrOf: (p) => dp.peerSockaddr(p),
    floodListOf: (p) => dp.floodListAddress(p),
  });
  const port = dp.addPort(VNI);
  ref.addPort(VNI);
  for (let i = 0; i < PEERS; i++) {
    const p = dp.addPeer({ address: `192.0.2.${i + 1}` });
    ref.addPeer(c.u8(), dp.peerSockaddr(p));
  }
  const entries = Array.from({ length: ENTRIES }, (_, i) => ({ vni: VNI, mac: mac(i), peer: i % PEERS }));
  dp.addFdb(entries);
  for (const e of entries) ref.fdbAdd(VNI, macNumber(e.mac), e.peer, 0);
  const descs = c.alloc(BATCH * DESC_SIZE);
  const slots = c.alloc(BATCH * SLOT);
  const rnd = xorshift(0x1234567);
  const frames: number[] = [];
  const u8 = c.u8();
  for (let i = 0; i < BATCH; i++) {
    const f = slots + i * SLOT + 128;
    frames.push(f);
    for (let k = 0; k < FRAME; k++) u8[f + k] = rnd() & 0xff;
    // The destination and the source are both known MACs, and the source is on the peer the
    // destination maps to, so decap's learning finds its static entry and changes nothing.
    const dst = rnd() % ENTRIES;
    const src = (dst + PEERS * (1 + (rnd() % 100))) % ENTRIES;
    u8.set(mac(dst), f);
    u8.set(mac(src), f + 6);
    u8.set([0x08, 0x00], f + 12);
  }
  const dv = c.dv();
  const resetEncap = (d: number) => {
    for (let i = 0; i < BATCH; i++) {
      const at = d + i * DESC_SIZE;
      dv.setUint32(at + DESC_PTR, frames[i]!, true);
      dv.setUint32(at + DESC_LEN, FRAME, true);
      dv.setUint32(at + DESC_ARG, port, true);
    }
  };
  const resetDecap = (d: number) => {
    for (let i = 0; i < BATCH; i++) {
      const at = d + i * DESC_SIZE;
      dv.setUint32(at + DESC_PTR, frames[i]! - 8, true);
      dv.setUint32(at + DESC_LEN, FRAME + 8, true);
    }
  };
  resetEncap(descs);
  return { dp, ref, port, descs, frames, resetEncap, resetDecap };
}

function macNumber(b: Uint8Array): number {
  let v = 0;
  for (let i = 5; i >= 0; i--) v = v * 256 + b[i]!;
  return v;
}

/** Runs both implementations on the batch and throws if they disagree. */
function crossCheck(s: Setup): void {
  const c = core();
  const u8 = c.u8();
  const dv = c.dv();
  const other = c.alloc(BATCH * DESC_SIZE);
  s.resetEncap(s.descs);
  s.dp.encap({ descs: s.descs }, BATCH, 1);
  const wasmBytes = s.frames.map((f) => u8.slice(f - 8, f + FRAME));
  s.resetEncap(other);
  // Restore the frames the encap above left with a header in the headroom (same bytes anyway).
  s.ref.encap(u8, dv, other, BATCH, 1);
  for (let i = 0; i < BATCH; i++) {
    for (const off of [DESC_PTR, DESC_LEN, DESC_VERDICT, DESC_ARG, DESC_ADDR]) {
      const a = dv.getUint32(s.descs + i * DESC_SIZE + off, true);
      const b = dv.getUint32(other + i * DESC_SIZE + off, true);
      if (a !== b) throw new Error(`vxlan bench: encap disagrees at desc ${i} field ${off}: ${a} vs ${b}`);
    }
    if (dv.getUint32(s.descs + i * DESC_SIZE + DESC_VERDICT, true) !== VERDICT_SEND)
      throw new Error('not SEND');
    if (Buffer.compare(wasmBytes[i]!, u8.subarray(s.frames[i]! - 8, s.frames[i]! + FRAME)) !== 0) {
      throw new Error(`vxlan bench: encap bytes differ at ${i}`);
    }
  }
  s.dp.decap({ descs: s.descs }, BATCH, 1);
  s.ref.decap(u8, dv, other, BATCH, 1);
  for (let i = 0; i < BATCH; i++) {
    for (const off of [DESC_PTR, DESC_LEN, DESC_VERDICT, DESC_ARG]) {
      const a = dv.getUint32(s.descs + i * DESC_SIZE + off, true);
      const b = dv.getUint32(other + i * DESC_SIZE + off, true);
      if (a !== b) throw new Error(`vxlan bench: decap disagrees at desc ${i} field ${off}`);
    }
    if (dv.getUint32(s.descs + i * DESC_SIZE + DESC_VERDICT, true) !== VERDICT_LOCAL)
      throw new Error('not LOCAL');
  }
}

export function run(): void {
  const s = setup();
  crossCheck(s);
  const c = core();
  const u8 = c.u8();
  const dv = c.dv();
  const batch = { descs: s.descs };
  const opts = { ms: 250, runs: 5 };
  const results: [string, string, number][] = [];
  // encap
  results.push([
    'encap',
    'wasm',
    rate(
      () => {
        s.resetEncap(s.descs);
        s.dp.encap(batch, BATCH, 1);
      },
      BATCH,
      opts,
    ),
  ]);
  results.push([
    'encap',
    'ts',
    rate(
      () => {
        s.resetEncap(s.descs);
        s.ref.encap(u8, dv, s.descs, BATCH, 1);
      },
      BATCH,
      opts,
    ),
  ]);
  // decap: the descriptors' DESC_ADDR still holds each frame's peer sockaddr from the last encap.
  s.resetEncap(s.descs);
  s.dp.encap(batch, BATCH, 1);
  results.push([
    'decap',
    'wasm',
    rate(
      () => {
        s.resetDecap(s.descs);
        s.dp.decap(batch, BATCH, 1);
      },
      BATCH,
      opts,
    ),
  ]);
  results.push([
    'decap',
    'ts',
    rate(
      () => {
        s.resetDecap(s.descs);
        s.ref.decap(u8, dv, s.descs, BATCH, 1);
      },
      BATCH,
      opts,
    ),
  ]);
  s.resetEncap(s.descs);
  results.push([
    'encap+decap',
    'wasm',
    rate(
      () => {
        s.dp.encap(batch, BATCH, 1);
        s.dp.decap(batch, BATCH, 1);
      },
      BATCH,
      opts,
    ),
  ]);
  s.resetEncap(s.descs);
  results.push([
    'encap+decap',
    'ts',
    rate(
      () => {
        s.ref.encap(u8, dv, s.descs, BATCH, 1);
        s.ref.decap(u8, dv, s.descs, BATCH, 1);
      },
      BATCH,
      opts,
    ),
  ]);
  for (const [kase, impl, pps] of results)
    record({ bench: 'vxlan', case: kase, impl, value: pps / 1e6, unit: 'Mpps' });
}
