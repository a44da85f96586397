// bench fdb: FDB lookups per second at 1,000 / 100,000 / 1,000,000 entries, the WASM table
// (assembly/fdb.ts, linear probing over 16-byte slots) next to a plain-TS Map keyed like it
// (Map<VNI, Map<MAC as a 48-bit number, peer>>).
//
// Method: a table filled to exactly N entries (16 VNIs, random locally administered MACs, 64
// peers), created with fdbCapacity N (so at 1M: 2M slots, 32 MiB). A pool of 1,048,576 lookup keys (16 MiB, larger than the caches),
// each a present (VNI, MAC) drawn at random, lives in WASM memory as 16-byte records (VNI u32,
// MAC 6 bytes, result u32). One timed call looks up the next 64 records of the pool:
// `fdb_lookup_batch` for `wasm` (one crossing per 64 lookups, peer written into each record);
// for `ts` a loop over the same 64 records that reads VNI and MAC from the same memory and does
// the two Map gets. Walking the pool makes the keys random over the table, so at 1M entries most
// lookups miss the CPU caches, as a real FDB's would. rate() runs ~250 ms after a warm-up, 5 runs,
// median; figure = lookups per second. Both are checked to find every key before timing.
import { FDBREC_MAC, FDBREC_SIZE, FDBREC_STATUS, FDBREC_VNI } from '../../assembly/constants.js';
import { Datapath } from '../../src/wasm/datapath.js';
import { core } from '../../src/wasm/module.js';
import { note, rate, record } from '../lib.js';

const SIZES = [1000, 100_000, 1_000_000];
const BATCH = 64;
const POOL = 1 << 20;
const VNIS = 16;

function xorshift(seed: number) {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

export function run(): void {
  const c = core();
  const lookupBatch = c.exports.fdb_lookup_batch as (ctx: number, recs: number, n: number) => number;
  const pool = c.alloc(POOL * FDBREC_SIZE);
  for (const n of SIZES) {
    note(`  fdb: filling ${n} entries`);
    const dp = Datapath.create({ fdbCapacity: n, maxPeers: 64, maxVnis: 1, neighCapacity: 1 });
    for (let p = 0; p < 64; p++) dp.addPeer({ address: `192.0.2.${p + 1}` });
    const rnd = xorshift(0x9e3779b9 ^ n);
    const keys: { vni: number; mac: Uint8Array; peer: number }[] = [];
    const ts = new Map<number, Map<number, number>>();
    for (let i = 0; i < n; i++) {
      const vni = 100 + (rnd() % VNIS);
      const a = rnd();
      const b = rnd();
      // Unique by construction: i in the low bytes.
      const mac = Uint8Array.from([
        0x02 | (a & 0xfc),
        (b >>> 8) & 0xff,
        i >>> 24,
        (i >>> 16) & 0xff,
        (i >>> 8) & 0xff,
        i & 0xff,
      ]);
      const peer = a % 64;
      keys.push({ vni, mac, peer });
      let m = ts.get(vni);
      if (!m) {
        m = new Map();
        ts.set(vni, m);
      }
      m.set(macNum(mac, 0), peer);
    }
    for (let at = 0; at < n; at += 65536) dp.addFdb(keys.slice(at, at + 65536));
    const u8 = c.u8();
    const dv = c.dv();
    for (let i = 0; i < POOL; i++) {
      const k = keys[rnd() % n]!;
      const r = pool + i * FDBREC_SIZE;
      dv.setUint32(r + FDBREC_VNI, k.vni, true);
      u8.set(k.mac, r + FDBREC_MAC);
      dv.setUint32(r + FDBREC_STATUS, 0, true);
    }
    // Check: both find every pooled key, with the same peer.
    for (let at = 0; at < POOL; at += BATCH) {
      if (lookupBatch(dp.ctx, pool + at * FDBREC_SIZE, BATCH) !== BATCH)
        throw new Error('fdb bench: wasm miss');
    }
    for (let i = 0; i < POOL; i++) {
      const r = pool + i * FDBREC_SIZE;
      const want = ts.get(dv.getUint32(r + FDBREC_VNI, true))?.get(macNum(u8, r + FDBREC_MAC));
      if (want !== dv.getUint32(r + FDBREC_STATUS, true)) throw new Error('fdb bench: wasm and Map disagree');
    }
    let at = 0;
    const opts = { ms: 250, runs: 5 };
    const wasm = rate(
      () => {
        lookupBatch(dp.ctx, pool + at * FDBREC_SIZE, BATCH);
        at = (at + BATCH) & (POOL - 1);
      },
      BATCH,
      opts,
    );
    let sink = 0;
    const tsRate = rate(
      () => {
        for (let i = 0; i < BATCH; i++) {
          const r = pool + (at + i) * FDBREC_SIZE;
          sink += ts.get(dv.getUint32(r + FDBREC_VNI, true))?.get(macNum(u8, r + FDBREC_MAC)) ?? -1;
        }
        at = (at + BATCH) & (POOL - 1);
      },
      BATCH,
      opts,
    );
    if (sink === 0.5) throw new Error('unreachable');
    record({ bench: 'fdb', case: String(n), impl: 'wasm', value: wasm / 1e6, unit: 'Mlookups/s' });
    record({ bench: 'fdb', case: String(n), impl: 'ts', value: tsRate / 1e6, unit: 'Mlookups/s' });
  }
}

function macNum(u8: Uint8Array, p: number): number {
  return (
    u8[p]! +
    u8[p + 1]! * 0x100 +
    u8[p + 2]! * 0x10000 +
    u8[p + 3]! * 0x1000000 +
    (u8[p + 4]! + u8[p + 5]! * 0x100) * 0x100000000
  );
}
