// bench checksum: the Internet checksum (RFC 1071) of whole packets, WASM SIMD next to plain TS.
//
// Method: 64 packets of each size (64, 512, 1400, 9000 bytes) of random bytes sit in WASM linear
// memory, one per 64-byte aligned slot, described by a descriptor batch. One timed call is one batch:
// `csum_batch(descs, 64)` for `wasm` (one JS->WASM crossing per 64 packets, checksum written to
// DESC_AUX), and for `ts` a loop over the same 64 packets with the plain reference (big-endian
// 16-bit words summed into a JS number, folded once at the end) reading the same memory through a
// Uint8Array. `rate()` runs each for ~200 ms after a warm-up run, 5 runs, and keeps the median;
// the figure is payload bytes checksummed per second (GB/s = 1e9 B/s). The two results are
// cross-checked once before timing so a fast wrong answer cannot be reported.
import { DESC_AUX, DESC_LEN, DESC_PTR, DESC_SIZE } from '../../assembly/constants.js';
import { core } from '../../src/wasm/module.js';
import { rate, record } from '../lib.js';

const SIZES = [64, 512, 1400, 9000];
const BATCH = 64;

/** The plain-TS reference: returns the checksum as the two wire bytes read big-endian. */
function tsChecksum(b: Uint8Array, p: number, len: number): number {
  let s = 0;
  const end = p + (len & ~1);
  for (let i = p; i < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (len & 1) s += b[p + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

export function run(): void {
  const c = core();
  const csumBatch = c.exports.csum_batch as (descs: number, n: number) => void;
  for (const size of SIZES) {
    const slot = (size + 63) & ~63;
    const descs = c.alloc(BATCH * DESC_SIZE);
    const data = c.alloc(BATCH * slot);
    const u8 = c.u8();
    const dv = c.dv();
    let x = 0x9e3779b9;
    for (let i = 0; i < BATCH * slot; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      u8[data + i] = x & 0xff;
    }
    for (let i = 0; i < BATCH; i++) {
      dv.setUint32(descs + i * DESC_SIZE + DESC_PTR, data + i * slot, true);
      dv.setUint32(descs + i * DESC_SIZE + DESC_LEN, size, true);
    }
    csumBatch(descs, BATCH);
    for (let i = 0; i < BATCH; i++) {
      const w = c.dv().getUint16(descs + i * DESC_SIZE + DESC_AUX, false);
      if (w !== tsChecksum(c.u8(), data + i * slot, size)) throw new Error(`checksum mismatch at ${size} B`);
    }
    const bytes = BATCH * size;
    const opts = { ms: 200, runs: 5 };
    const wasm = rate(() => csumBatch(descs, BATCH), bytes, opts);
    let sink = 0;
    const view = c.u8();
    const ts = rate(
      () => {
        for (let i = 0; i < BATCH; i++) sink ^= tsChecksum(view, data + i * slot, size);
      },
      bytes,
      opts,
    );
    if (sink === -1) throw new Error('unreachable');
    record({ bench: 'checksum', case: String(size), impl: 'wasm', value: wasm / 1e9, unit: 'GB/s' });
    record({ bench: 'checksum', case: String(size), impl: 'ts', value: ts / 1e9, unit: 'GB/s' });
  }
}
