// Fork-join ESP sealing across threads: the I/O thread stages a seal batch (sequence numbers, IV
// counters, headers, padding: all per-SA state, assigned on the one writer thread), then hands
// contiguous slices of the staged GCM descriptors to helper threads and runs the first slice
// itself, joining on Atomics.wait. No message per packet or per batch: one shared Int32 control
// block per helper in WASM memory (state, lo, hi), woken with Atomics.notify.
//
// The helpers are Piscina workers (EspHelpers, started on the main thread): each runs ONE
// long-lived task that loops on Atomics.wait until told to stop, so the pool owns the threads'
// lifecycle while no task message is ever sent per batch. Opening stays on the I/O thread: its
// anti-replay window is per-SA state updated after authentication.
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { DESC_LEN, DESC_SIZE, ESP_CHUNK, GCM_SCRATCH_SIZE } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import type { WasmCore } from '../wasm/module.js';
import type { Esp, EspSealOptions } from './esp.js';

/** Control words per helper (Int32): state, lo, hi, slices run (written by the helper). */
const CTL_WORDS = 4;
const IDLE = 0;
const WORK = 1;
const DONE = 2;
const STOP = 3;

/**
 * Default smallest seal batch, in payload bytes, split across the helpers. bench/esp.ts
 * `wasm-split1`: 64 x 64-byte batches (4 KiB) lost ~30% to the hand-off; 64 x 1400 (88 KiB) broke
 * even on a loaded 2-core host. 32 KiB is a guess between those, to be re-measured on a quiet one.
 */
export const DEFAULT_SPLIT_MIN_BYTES = 32 * 1024;

/** What the I/O thread and the helpers share (structured-cloneable). */
export interface EspSplitHandle {
  /** The ESP context (Esp.ctx). */
  ectx: number;
  /** Control blocks: CTL_WORDS Int32 per helper. */
  ctl: number;
  /** GCM scratch per helper (GCM_SCRATCH_SIZE each). */
  scratch: number[];
  /** Smallest batch (sum of DESC_LEN) split across threads. */
  minBytes: number;
}

interface StagedExports {
  esp_gcm_staged(ectx: number, lo: number, hi: number, scratch: number): void;
}

/** Allocates the control blocks and scratch for `helpers` threads (main thread, before the I/O worker starts). */
export function espSplitRegions(
  wasm: WasmCore,
  esp: Esp,
  helpers: number,
  minBytes = DEFAULT_SPLIT_MIN_BYTES,
): EspSplitHandle {
  if (!Number.isInteger(helpers) || helpers < 1 || helpers > 64) {
    throw new VxError('ERR_INVALID_ARG', `crypto workers must be an integer in 0..64, got ${helpers}`);
  }
  const ctl = wasm.alloc(helpers * CTL_WORDS * 4);
  new Int32Array(wasm.memory.buffer, ctl, helpers * CTL_WORDS).fill(IDLE);
  const scratch: number[] = [];
  for (let i = 0; i < helpers; i++) scratch.push(wasm.alloc(GCM_SCRATCH_SIZE));
  return { ectx: esp.ctx, ctl, scratch, minBytes };
}

/** The I/O thread's side: seal() like Esp.seal, split across the helpers when the batch is big. */
export class EspSplitSealer {
  readonly #esp: Esp;
  readonly #h: EspSplitHandle;
  readonly #x: StagedExports;
  readonly #ctl: Int32Array;

  constructor(esp: Esp, h: EspSplitHandle) {
    this.#esp = esp;
    this.#h = h;
    this.#x = esp.core.exports as unknown as StagedExports;
    this.#ctl = new Int32Array(esp.core.memory.buffer, h.ctl, h.scratch.length * CTL_WORDS);
  }

  #bytes(descs: number, n: number): number {
    const u32 = new Uint32Array(this.#esp.core.memory.buffer);
    let total = 0;
    for (let i = 0; i < n; i++) total += u32[(descs + i * DESC_SIZE + DESC_LEN) >>> 2]!;
    return total;
  }

  seal(descs: number, n: number, opts: EspSealOptions = {}): number {
    if (n < 2 || n > ESP_CHUNK || this.#bytes(descs, n) < this.#h.minBytes) {
      return this.#esp.seal(descs, n, opts);
    }
    const staged = this.#esp.sealStaged(descs, n, opts);
    const helpers = this.#h.scratch.length;
    const parts = Math.min(helpers + 1, staged);
    const per = Math.ceil(staged / Math.max(1, parts));
    const c = this.#ctl;
    let posted = 0;
    for (let k = 1; k < parts; k++) {
      const lo = k * per;
      const hi = Math.min(staged, lo + per);
      if (lo >= hi) break;
      const b = (k - 1) * CTL_WORDS;
      c[b + 1] = lo;
      c[b + 2] = hi;
      Atomics.store(c, b, WORK);
      Atomics.notify(c, b);
      posted++;
    }
    this.#x.esp_gcm_staged(this.#h.ectx, 0, Math.min(per, staged), 0);
    for (let k = 0; k < posted; k++) {
      const b = k * CTL_WORDS;
      while (Atomics.load(c, b) !== DONE) Atomics.wait(c, b, WORK);
      c[b] = IDLE;
    }
    return staged;
  }
}

/** A helper thread's loop (the Piscina task): runs posted slices until told to stop. */
export function espHelperLoop(wasm: WasmCore, h: EspSplitHandle, index: number): number {
  const c = new Int32Array(wasm.memory.buffer, h.ctl, h.scratch.length * CTL_WORDS);
  const x = wasm.exports as unknown as StagedExports;
  const b = index * CTL_WORDS;
  let runs = 0;
  for (;;) {
    let s = Atomics.load(c, b);
    while (s !== WORK && s !== STOP) {
      Atomics.wait(c, b, s);
      s = Atomics.load(c, b);
    }
    if (s === STOP) return runs;
    x.esp_gcm_staged(h.ectx, c[b + 1], c[b + 2], h.scratch[index]);
    runs++;
    c[b + 3] = (c[b + 3] + 1) | 0;
    Atomics.store(c, b, DONE);
    Atomics.notify(c, b);
  }
}

function helperFile(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./esp-helper${ext}`, import.meta.url));
}

/** The helper threads (main thread): a Piscina pool, one long-lived looping task per thread. */
export class EspHelpers {
  readonly #pool: Piscina;
  readonly #ctl: Int32Array;
  readonly #tasks: Promise<number>[];
  readonly count: number;

  constructor(wasm: WasmCore, h: EspSplitHandle) {
    this.count = h.scratch.length;
    this.#ctl = new Int32Array(wasm.memory.buffer, h.ctl, this.count * CTL_WORDS);
    this.#pool = new Piscina({
      filename: helperFile(),
      minThreads: this.count,
      maxThreads: this.count,
      idleTimeout: 60_000,
      workerData: { memory: wasm.memory },
    });
    this.#tasks = [];
    for (let i = 0; i < this.count; i++) this.#tasks.push(this.#pool.run({ handle: h, index: i }));
  }

  /** Slices the helpers ran so far (each: part of one split seal batch). */
  slices(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += this.#ctl[i * CTL_WORDS + 3] >>> 0;
    return n;
  }

  /** Tells every helper to stop once idle and closes the pool. */
  async close(): Promise<void> {
    for (let i = 0; i < this.count; i++) {
      const b = i * CTL_WORDS;
      // Only after the I/O thread stopped: a helper is IDLE or DONE here, never mid-slice.
      Atomics.store(this.#ctl, b, STOP);
      Atomics.notify(this.#ctl, b);
    }
    await Promise.allSettled(this.#tasks);
    await this.#pool.destroy();
  }
}
