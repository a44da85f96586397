// GcmPool: AES-GCM batches spread over worker threads (Piscina) on the SAME shared memory.
//
// A worker round trip costs about 90 us (FACTS.md), mostly waking a thread, so the pool only pays
// it for big batches: a batch is cut into at most `threads` contiguous slices of at least
// `minTaskBytes` text bytes each, one task per slice; a batch too small for two slices runs inline
// on the calling thread (a resolved promise, no round trip). Tasks are {op, ctx, descs, n,
// scratch}: a key context, a slice of a descriptor array and a scratch region lent by the main
// thread for the task's duration (so no two running tasks share one), never packet bytes; each
// worker instantiated the module on the shared memory once, at start (workerData). Results
// (per-descriptor statuses) are in shared memory when the promise resolves.
//
// The default minTaskBytes (512 KiB) was chosen by measurement on the 2-core machine (1400-byte
// messages, 2 batches in flight, throughput per CPU-second of the pool vs one thread; see
// bench:crypto): tasks of 88 KiB kept 66-72% of a thread's efficiency, 256 KiB 81%, 512 KiB
// 87-90%, 1 MiB 96%. Below that the ~90 us round trip (FACTS.md) and the main thread's share of
// each task dominate. So one worker task carries at least ~1.5 ms of work; a data path hands the
// pool what it has accumulated over several receive batches, not one recvmmsg batch.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { GCM_SCRATCH_SIZE, GCMD_SIZE, GCMD_TEXT_LEN } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core, type WasmCore } from '../wasm/module.js';
import { checkBatch, type GcmKey, openBatch, sealBatch } from './gcm.js';
import type { GcmTask } from './worker.js';

export interface GcmPoolOptions {
  /** Worker threads (default: all cores). */
  threads?: number;
  /** Smallest slice of a batch worth a worker round trip, in text bytes (default 512 KiB). */
  minTaskBytes?: number;
  /** The WASM instance whose memory the workers share (default: the main core). */
  core?: WasmCore;
}

export const DEFAULT_MIN_TASK_BYTES = 512 * 1024;

/** The worker entry next to this file: worker.ts under tsx (src/), worker.js when built (dist/). */
function workerFile(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./worker${ext}`, import.meta.url));
}

export class GcmPool {
  readonly threads: number;
  readonly minTaskBytes: number;
  readonly core: WasmCore;
  #piscina: Piscina<GcmTask, number> | undefined;
  /** Scratch regions not lent to a running task (grows to the most tasks ever in flight). */
  #freeScratch: number[] = [];

  constructor(opts: GcmPoolOptions = {}) {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) {
      throw new VxError('ERR_INVALID_ARG', `options.threads must be a positive integer, got ${threads}`);
    }
    const minTaskBytes = opts.minTaskBytes ?? DEFAULT_MIN_TASK_BYTES;
    if (!Number.isInteger(minTaskBytes) || minTaskBytes < 0) {
      throw new VxError(
        'ERR_INVALID_ARG',
        `options.minTaskBytes must be a non-negative integer, got ${minTaskBytes}`,
      );
    }
    this.threads = threads;
    this.minTaskBytes = minTaskBytes;
    this.core = opts.core ?? core();
    this.#piscina = new Piscina<GcmTask, number>({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
      workerData: { memory: this.core.memory },
    });
  }

  /** Seals the batch (see sealBatch); resolves to the number of failed messages. */
  sealBatch(key: GcmKey, descs: number, n: number): Promise<number> {
    return this.#run('seal', key, descs, n);
  }

  /** Opens the batch (see openBatch); resolves to the number of failed messages. */
  openBatch(key: GcmKey, descs: number, n: number): Promise<number> {
    return this.#run('open', key, descs, n);
  }

  async close(): Promise<void> {
    const p = this.#piscina;
    this.#piscina = undefined;
    await p?.destroy();
  }

  async #run(op: 'seal' | 'open', key: GcmKey, descs: number, n: number): Promise<number> {
    const piscina = this.#piscina;
    if (!piscina) throw new VxError('ERR_POOL_CLOSED', 'the GCM pool is closed');
    if (key.core.memory !== this.core.memory) {
      throw new VxError('ERR_INVALID_ARG', 'the key lives in another WASM memory than the pool');
    }
    checkBatch(key, descs, n);
    const slices = this.#slice(descs, n);
    if (slices.length <= 1) return op === 'seal' ? sealBatch(key, descs, n) : openBatch(key, descs, n);
    const results = await Promise.all(
      slices.map(async ([start, count]) => {
        const scratch = this.#freeScratch.pop() ?? this.core.alloc(GCM_SCRATCH_SIZE);
        try {
          return await piscina.run({ op, ctx: key.ctx, descs: descs + start * GCMD_SIZE, n: count, scratch });
        } catch (cause) {
          throw new VxError('ERR_OUT_OF_BOUNDS', 'a GCM descriptor points outside WASM memory', { cause });
        } finally {
          this.#freeScratch.push(scratch);
        }
      }),
    );
    return results.reduce((a, b) => a + b, 0);
  }

  /** Cuts [0, n) into at most `threads` contiguous slices of about equal text bytes. */
  #slice(descs: number, n: number): Array<[number, number]> {
    const dv = this.core.dv();
    let total = 0;
    for (let i = 0; i < n; i++) total += dv.getUint32(descs + i * GCMD_SIZE + GCMD_TEXT_LEN, true);
    const k = Math.min(this.threads, n, Math.max(1, Math.floor(total / Math.max(1, this.minTaskBytes))));
    if (k <= 1) return [[0, n]];
    const slices: Array<[number, number]> = [];
    const per = total / k;
    let start = 0;
    let acc = 0;
    for (let i = 0; i < n && slices.length < k - 1; i++) {
      acc += dv.getUint32(descs + i * GCMD_SIZE + GCMD_TEXT_LEN, true);
      if (acc >= per * (slices.length + 1)) {
        slices.push([start, i + 1 - start]);
        start = i + 1;
      }
    }
    if (start < n) slices.push([start, n - start]);
    return slices;
  }
}
