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
//   least 2 MiB cut into one task per worker (1 MiB tasks: ~96% of a thread's efficiency per core,
//   see src/crypto/pool.ts), 2 batches in flight so workers never wait for the main thread; the
//   main thread only submits and (for open) restores ciphertexts.
// - `node-crypto` (baseline): createCipheriv/createDecipheriv + setAAD + update + final + tag per
//   message, the way a per-packet Node user must call it (OpenSSL with AES-NI underneath).
// Method: the machine is shared (other jobs run on its 2 cores), so the impls of one (case, size)
// are measured interleaved: 7 rounds, each timing every impl for about 120 ms (after one warm-up
// round), and each impl's median round is kept. Single-thread impls also report, on stderr, their
// rate per CPU-second of this thread and the cycles per byte that implies at the CPU's clock
// (/proc/cpuinfo): that figure does not depend on how much of the machine other jobs take.
// Compare ratios within one run, not absolute figures across runs.
//
// The WASM build in use (relaxed-SIMD or plain, src/wasm/module.ts) is noted on stderr.
// Usage: npm run bench:crypto [-- --json] [-- --only 64,1400] [-- --no-pool]
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { GcmBatch } from '../src/crypto/batch.js';
import { GcmKey, openBatch, sealBatch } from '../src/crypto/gcm.js';
import { GcmPool } from '../src/crypto/pool.js';
import { wasmBuild } from '../src/wasm/module.js';
import { median, note, record, report } from './lib.js';

const SIZES = [64, 512, 1400, 9000];
const CASES = [
  { bench: 'aes-128-gcm-seal', keyLen: 16, op: 'seal' },
  { bench: 'aes-128-gcm-open', keyLen: 16, op: 'open' },
  { bench: 'aes-256-gcm-seal', keyLen: 32, op: 'seal' },
] as const;
const AAD_LEN = 8;
const TAG_LEN = 16;
const BATCH = 64;
const POOL_BATCH_BYTES = 2 << 20;
const POOL_IN_FLIGHT = 2;
const RUN_MS = 120;
const ROUNDS = 7;

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

/** One timed run: calls `fn` (worth `bytes`) for about RUN_MS; returns wall and CPU-time rates. */
function timeSync(fn: () => void, bytes: number): { wall: number; cpu: number } {
  let calls = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(RUN_MS * 1e6);
  let t = t0;
  while (t < end) {
    fn();
    calls++;
    t = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(c0);
  const done = calls * bytes;
  return { wall: done / (Number(t - t0) / 1e9) / 1e6, cpu: done / ((cpu.user + cpu.system) / 1e6) / 1e6 };
}

function wasmRunner(op: 'seal' | 'open', key: GcmKey, size: number): () => void {
  const { batch, snap } = makeBatch(key, BATCH, size);
  return op === 'seal'
    ? () => sealBatch(key, batch.descs, BATCH)
    : () => {
        batch.restore(snap);
        if (openBatch(key, batch.descs, BATCH) !== 0) throw new Error('open failed');
      };
}

async function poolRunner(pool: GcmPool, op: 'seal' | 'open', key: GcmKey, size: number) {
  const slots = Math.max(BATCH, Math.ceil(POOL_BATCH_BYTES / size));
  const batches = Array.from({ length: POOL_IN_FLIGHT }, () => makeBatch(key, slots, size));
  const submit = (b: { batch: GcmBatch; snap: number }) => {
    if (op === 'open') b.batch.restore(b.snap);
    return op === 'seal'
      ? pool.sealBatch(key, b.batch.descs, slots)
      : pool.openBatch(key, b.batch.descs, slots);
  };
  /** One timed run of about RUN_MS with POOL_IN_FLIGHT batches kept in flight; MB/s. */
  return async (): Promise<number> => {
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
    return done / (Number(process.hrtime.bigint() - t0) / 1e9) / 1e6;
  };
}

function nodeRunner(op: 'seal' | 'open', keyLen: number, size: number): () => void {
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
  return op === 'seal'
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

note(`WASM build: ${wasmBuild()} (VXNET_WASM_RELAXED=0 selects the plain one)`);
const threads = availableParallelism();
const pool = withPool ? new GcmPool({ threads }) : undefined;
const hz = cpuHz();
try {
  for (const c of CASES) {
    const key = GcmKey.create(crypto.randomBytes(c.keyLen));
    for (const size of sizes) {
      note(`bench:crypto ${c.bench} ${size} B ...`);
      const wasm = wasmRunner(c.op, key, size);
      const node = nodeRunner(c.op, c.keyLen, size);
      const inPool = pool ? await poolRunner(pool, c.op, key, size) : undefined;
      const r = { wasm: [] as number[], wasmCpu: [] as number[], pool: [] as number[], node: [] as number[] };
      const nodeCpu: number[] = [];
      for (let round = 0; round <= ROUNDS; round++) {
        const w = timeSync(wasm, BATCH * size);
        const p = inPool ? await inPool() : 0;
        const n = timeSync(node, BATCH * size);
        if (round === 0) continue; // warm-up
        r.wasm.push(w.wall);
        r.wasmCpu.push(w.cpu);
        r.pool.push(p);
        r.node.push(n.wall);
        nodeCpu.push(n.cpu);
      }
      record({ bench: c.bench, case: String(size), impl: 'wasm', value: median(r.wasm), unit: 'MB/s' });
      if (inPool)
        record({
          bench: c.bench,
          case: String(size),
          impl: 'wasm-pool',
          value: median(r.pool),
          unit: 'MB/s',
        });
      record({
        bench: c.bench,
        case: String(size),
        impl: 'node-crypto',
        value: median(r.node),
        unit: 'MB/s',
      });
      const cpuW = median(r.wasmCpu);
      const cpuN = median(nodeCpu);
      note(
        `  per CPU-second: wasm ${cpuW.toFixed(0)} MB/s` +
          (hz ? ` (${(hz / (cpuW * 1e6)).toFixed(1)} cycles/byte at ${(hz / 1e9).toFixed(2)} GHz)` : '') +
          `, node-crypto ${cpuN.toFixed(0)} MB/s, ratio ${(cpuW / cpuN).toFixed(2)}x`,
      );
    }
  }
} finally {
  await pool?.close();
}
report();
