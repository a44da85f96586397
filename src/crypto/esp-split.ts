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
//
// A helper that dies (its thread exits or its task throws) must not hang the I/O thread: the main
// thread, told by Piscina, raises the helper's `dead` word and wakes the joiner. The joiner then
// seals the slice itself if the helper never took it (state still WORK), and later batches are
// split only among live helpers (or sealed inline). A helper that died holding a slice (BUSY) may
// have sealed part of it in place: sealing again under the same IV would XOR the keystream back
// out and put plaintext on the wire, so that whole batch is dropped instead (counted as lost).
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import {
  DESC_ARG,
  DESC_LEN,
  DESC_SIZE,
  DESC_VERDICT,
  DROP_NO_SA,
  ESP_CHUNK,
  GCM_SCRATCH_SIZE,
  VERDICT_DROP,
} from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import type { WasmCore } from '../wasm/module.js';
import type { Esp, EspSealOptions } from './esp.js';

/**
 * Control words per helper (Int32): state, lo, hi, slices run (written by the helper), dead
 * (written by the main thread), slices sealed inline for it and batches lost to it (both written
 * by the I/O thread).
 */
const CTL_WORDS = 8;
const W_SLICES = 3;
const W_DEAD = 4;
const W_INLINE = 5;
const W_LOST = 6;
const IDLE = 0;
const WORK = 1;
const DONE = 2;
const STOP = 3;
/** The helper took the slice (WORK -> BUSY) and is sealing it in place. */
const BUSY = 4;
/** Longest wait between looks at a helper's `dead` word (the main thread also wakes the joiner). */
const JOIN_CHECK_MS = 250;

/** What the helpers did, summed (EspHelpers.stats). */
export interface EspHelperStats {
  /** Slices the helpers sealed. */
  slices: number;
  /** Helpers that died (thread exit or a throw); their work went back to the I/O thread. */
  failed: number;
  /** Slices a dead helper had been given that the I/O thread sealed itself. */
  inline: number;
  /** Batches dropped because a helper died in the middle of sealing its slice. */
  lost: number;
}

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

  /** Indexes of the helpers not known dead. */
  #live(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#h.scratch.length; i++) {
      if (Atomics.load(this.#ctl, i * CTL_WORDS + W_DEAD) === 0) out.push(i);
    }
    return out;
  }

  seal(descs: number, n: number, opts: EspSealOptions = {}): number {
    if (n < 2 || n > ESP_CHUNK || this.#bytes(descs, n) < this.#h.minBytes) {
      return this.#esp.seal(descs, n, opts);
    }
    const live = this.#live();
    if (live.length === 0) return this.#esp.seal(descs, n, opts);
    const staged = this.#esp.sealStaged(descs, n, opts);
    const parts = Math.min(live.length + 1, staged);
    const per = Math.ceil(staged / Math.max(1, parts));
    const c = this.#ctl;
    const posted: number[] = [];
    for (let k = 1; k < parts; k++) {
      const lo = k * per;
      const hi = Math.min(staged, lo + per);
      if (lo >= hi) break;
      const b = live[k - 1]! * CTL_WORDS;
      c[b + 1] = lo;
      c[b + 2] = hi;
      Atomics.store(c, b, WORK);
      Atomics.notify(c, b);
      posted.push(b);
    }
    this.#x.esp_gcm_staged(this.#h.ectx, 0, Math.min(per, staged), 0);
    let lost = false;
    for (const b of posted) if (!this.#join(b)) lost = true;
    if (lost) dropAll(this.#esp, descs, n);
    return lost ? 0 : staged;
  }

  /**
   * Waits for the helper at control block `b` to finish its slice. A dead helper's slice is sealed
   * here if it was never taken; returns false if it died holding it (the batch must be dropped).
   */
  #join(b: number): boolean {
    const c = this.#ctl;
    for (;;) {
      const s = Atomics.load(c, b);
      if (s === DONE) {
        c[b] = IDLE;
        return true;
      }
      if (Atomics.load(c, b + W_DEAD) !== 0) {
        c[b] = IDLE;
        if (s === WORK) {
          this.#x.esp_gcm_staged(this.#h.ectx, c[b + 1]!, c[b + 2]!, 0);
          c[b + W_INLINE] = (c[b + W_INLINE]! + 1) | 0;
          return true;
        }
        c[b + W_LOST] = (c[b + W_LOST]! + 1) | 0;
        return false;
      }
      Atomics.wait(c, b, s, JOIN_CHECK_MS);
    }
  }
}

/** Marks every descriptor of a seal batch dropped (DROP_NO_SA): none of it may be sent. */
function dropAll(esp: Esp, descs: number, n: number): void {
  const u32 = new Uint32Array(esp.core.memory.buffer);
  for (let i = 0; i < n; i++) {
    const d = (descs + i * DESC_SIZE) >>> 2;
    u32[d + (DESC_VERDICT >> 2)] = VERDICT_DROP;
    u32[d + (DESC_ARG >> 2)] = DROP_NO_SA;
  }
}

/**
 * Fault injection for tests (VXNET_FAULT_ESP_HELPER=exit-busy:N): the helper's thread exits after
 * taking its (N+1)-th slice, before sealing it, as a crash in the middle of a slice would.
 */
function faultAfter(): number {
  const m = /^exit-busy:(\d+)$/.exec(process.env.VXNET_FAULT_ESP_HELPER ?? '');
  return m ? Number(m[1]) : -1;
}

/** A helper thread's loop (the Piscina task): runs posted slices until told to stop. */
export function espHelperLoop(wasm: WasmCore, h: EspSplitHandle, index: number): number {
  const c = new Int32Array(wasm.memory.buffer, h.ctl, h.scratch.length * CTL_WORDS);
  const x = wasm.exports as unknown as StagedExports;
  const b = index * CTL_WORDS;
  const fault = faultAfter();
  let runs = 0;
  for (;;) {
    let s = Atomics.load(c, b);
    while (s !== WORK && s !== STOP) {
      Atomics.wait(c, b, s);
      s = Atomics.load(c, b);
    }
    if (s === STOP) return runs;
    if (Atomics.compareExchange(c, b, WORK, BUSY) !== WORK) continue;
    if (runs === fault) process.exit(70);
    x.esp_gcm_staged(h.ectx, c[b + 1], c[b + 2], h.scratch[index]);
    runs++;
    c[b + W_SLICES] = (c[b + W_SLICES] + 1) | 0;
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
  readonly #tasks: Promise<unknown>[];
  readonly count: number;
  #closing = false;

  /** `onFailure` is told when a helper dies (its work then falls back to the I/O thread). */
  constructor(wasm: WasmCore, h: EspSplitHandle, onFailure?: (index: number, error: Error) => void) {
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
    for (let i = 0; i < this.count; i++) {
      const task = this.#pool.run({ handle: h, index: i });
      const died = (e: unknown) => {
        if (this.#closing) return;
        const b = i * CTL_WORDS;
        Atomics.store(this.#ctl, b + W_DEAD, 1);
        Atomics.notify(this.#ctl, b);
        const err = e instanceof Error ? e : new Error(`helper task ended: ${String(e)}`);
        onFailure?.(i, err);
      };
      this.#tasks.push(task.then(died, died));
    }
  }

  /** Slices the helpers ran so far (each: part of one split seal batch). */
  slices(): number {
    return this.stats().slices;
  }

  stats(): EspHelperStats {
    const out = { slices: 0, failed: 0, inline: 0, lost: 0 };
    for (let i = 0; i < this.count; i++) {
      const b = i * CTL_WORDS;
      out.slices += this.#ctl[b + W_SLICES]! >>> 0;
      out.failed += this.#ctl[b + W_DEAD]! !== 0 ? 1 : 0;
      out.inline += this.#ctl[b + W_INLINE]! >>> 0;
      out.lost += this.#ctl[b + W_LOST]! >>> 0;
    }
    return out;
  }

  /** Tells every helper to stop once idle and closes the pool. */
  async close(): Promise<void> {
    this.#closing = true;
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
