// npm run bench:crypto — AES-GCM seal/open: vxnet's WASM next to node:crypto, per ../shared/BENCH.md.
//
// Benches aes-128-gcm-seal, aes-128-gcm-open and aes-256-gcm-seal at 64, 512, 1400 and 9000 bytes
// of plaintext per message, each with an 8-byte AAD (ESP's SPI + sequence) and a 16-byte tag, unit
// MB/s of plaintext. Impls:
// - `wasm`: one thread, the batch API: one `sealBatch`/`openBatch` call per 64 messages already in
//   WASM memory (the shape a data path has after recvmmsg). Open must start from ciphertext each
//   time, so every open batch is preceded by one memcpy restoring the ciphertexts (included in the
//   time; about 1% of it).
// - `wasm-pool`: GcmPool (Piscina, one worker per core) on the same shared memory, batches of at
//   least 1 MiB cut into one task per worker, 3 batches in flight so workers never wait for the
//   main thread; the main thread only submits and (for open) restores ciphertexts.
// - `node-crypto` (baseline): createCipheriv/createDecipheriv + setAAD + update + final + tag per
//   message, the way a per-packet Node user must call it (OpenSSL with AES-NI underneath).
// Method: each (case, size, impl) runs about 250 ms per run, 1 warm-up run + 3 timed runs, and the
// median is kept (bench/lib.ts rate(); the pool uses the same policy with its own async loop).
// The machine is shared, so compare ratios within one run, not absolute figures across runs.
//
// Usage: npm run bench:crypto [-- --json] [-- --only 64,1400] [-- --no-pool]
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { GcmBatch } from '../src/crypto/batch.js';
import { GcmKey, openBatch, sealBatch } from '../src/crypto/gcm.js';
import { GcmPool } from '../src/crypto/pool.js';
import { median, note, rate, record, report } from './lib.js';

const SIZES = [64, 512, 1400, 9000];
const CASES = [
  { bench: 'aes-128-gcm-seal', keyLen: 16, op: 'seal' },
  { bench: 'aes-128-gcm-open', keyLen: 16, op: 'open' },
  { bench: 'aes-256-gcm-seal', keyLen: 32, op: 'seal' },
] as const;
const AAD_LEN = 8;
const TAG_LEN = 16;
const BATCH = 64;
const POOL_BATCH_BYTES = 1 << 20;
const POOL_IN_FLIGHT = 3;
const RUN_MS = 250;
const RUNS = 3;

const onlyIdx = process.argv.indexOf('--only');
const sizes = onlyIdx > 0 ? process.argv[onlyIdx + 1]!.split(',').map(Number) : SIZES;
const withPool = !process.argv.includes('--no-pool');

/** A batch of `slots` random messages of `size` bytes, sealed once so open has valid inputs. */
function makeBatch(key: GcmKey, slots: number, size: number): { batch: GcmBatch; snap: number } {
  const batch = new GcmBatch({ slots, maxText: size, maxAad: AAD_LEN });
  for (let i = 0; i < slots; i++) {
    batch.set(i, {
      nonce: crypto.randomBytes(12),
      aad: crypto.randomBytes(AAD_LEN),
      text: crypto.randomBytes(size),
      tagLength: TAG_LEN,
    });
  }
  sealBatch(key, batch.descs, slots);
  return { batch, snap: batch.snapshot() };
}

function benchWasm(op: 'seal' | 'open', key: GcmKey, size: number): number {
  const { batch, snap } = makeBatch(key, BATCH, size);
  const fn =
    op === 'seal'
      ? () => sealBatch(key, batch.descs, BATCH)
      : () => {
          batch.restore(snap);
          if (openBatch(key, batch.descs, BATCH) !== 0) throw new Error('open failed');
        };
  return rate(fn, BATCH * size, { ms: RUN_MS, runs: RUNS }) / 1e6;
}

async function benchPool(pool: GcmPool, op: 'seal' | 'open', key: GcmKey, size: number): Promise<number> {
  const slots = Math.max(BATCH, Math.ceil(POOL_BATCH_BYTES / size));
  const batches = Array.from({ length: POOL_IN_FLIGHT }, () => makeBatch(key, slots, size));
  const submit = (b: { batch: GcmBatch; snap: number }) => {
    if (op === 'open') b.batch.restore(b.snap);
    return op === 'seal'
      ? pool.sealBatch(key, b.batch.descs, slots)
      : pool.openBatch(key, b.batch.descs, slots);
  };
  const once = async (): Promise<number> => {
    let done = 0;
    const t0 = process.hrtime.bigint();
    const end = t0 + BigInt(RUN_MS * 1e6);
    const lane = async (b: { batch: GcmBatch; snap: number }) => {
      while (process.hrtime.bigint() < end) {
        if ((await submit(b)) !== 0) throw new Error(`${op} failed in the pool`);
        done += slots * size;
      }
    };
    await Promise.all(batches.map(lane));
    return done / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  await once();
  const xs: number[] = [];
  for (let r = 0; r < RUNS; r++) xs.push(await once());
  return median(xs) / 1e6;
}

function benchNode(op: 'seal' | 'open', keyLen: number, size: number): number {
  const alg = keyLen === 16 ? 'aes-128-gcm' : 'aes-256-gcm';
  const key = crypto.randomBytes(keyLen);
  const msgs = Array.from({ length: BATCH }, () => {
    const nonce = crypto.randomBytes(12);
    const aad = crypto.randomBytes(AAD_LEN);
    const pt = crypto.randomBytes(size);
    const c = crypto.createCipheriv(alg, key, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(pt), c.final()]);
    return { nonce, aad, pt, ct, tag: c.getAuthTag() };
  });
  const fn =
    op === 'seal'
      ? () => {
          for (const m of msgs) {
            const c = crypto.createCipheriv(alg, key, m.nonce);
            c.setAAD(m.aad);
            c.update(m.pt);
            c.final();
            c.getAuthTag();
          }
        }
      : () => {
          for (const m of msgs) {
            const d = crypto.createDecipheriv(alg, key, m.nonce);
            d.setAAD(m.aad);
            d.setAuthTag(m.tag);
            d.update(m.ct);
            d.final();
          }
        };
  return rate(fn, BATCH * size, { ms: RUN_MS, runs: RUNS }) / 1e6;
}

/** The CPU clock, for cycles per byte in the notes (stderr only). */
function cpuHz(): number | undefined {
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Number(m[1]) * 1e6 : undefined;
  } catch {
    return undefined;
  }
}

const threads = availableParallelism();
const pool = withPool ? new GcmPool({ threads }) : undefined;
const hz = cpuHz();
try {
  for (const c of CASES) {
    const key = GcmKey.create(crypto.randomBytes(c.keyLen));
    for (const size of sizes) {
      note(`bench:crypto ${c.bench} ${size} B ...`);
      const wasm = benchWasm(c.op, key, size);
      record({ bench: c.bench, case: String(size), impl: 'wasm', value: wasm, unit: 'MB/s' });
      if (pool) {
        const v = await benchPool(pool, c.op, key, size);
        record({ bench: c.bench, case: String(size), impl: 'wasm-pool', value: v, unit: 'MB/s' });
      }
      const base = benchNode(c.op, c.keyLen, size);
      record({ bench: c.bench, case: String(size), impl: 'node-crypto', value: base, unit: 'MB/s' });
      if (hz) note(`  wasm ${(hz / (wasm * 1e6)).toFixed(1)} cycles/byte at ${(hz / 1e9).toFixed(2)} GHz`);
    }
  }
} finally {
  await pool?.close();
}
report();
