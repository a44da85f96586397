// Loads vxnet's WASM core once per thread and owns its linear memory.
//
// The module imports one shared WebAssembly.Memory. The main thread creates it; a worker thread
// receives it (a shared memory crosses postMessage without a copy) and instantiates the same
// compiled module on it, so packets never move between threads. Typed views over the memory are
// re-created whenever `memory.buffer` changes (after growth); callers go through `u8()`/`dv()`
// and never keep a view across a call that may grow memory.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { VxError } from '../errors.js';
import { packageRoot } from '../paths.js';

/** Pages of 64 KiB: initial and maximum size of the shared memory (must match asconfig.json). */
export const INITIAL_PAGES = 64;
export const MAXIMUM_PAGES = 16384;

/** The raw exports of build/vxnet.wasm. Each feature module narrows this to what it calls. */
export type WasmExports = Record<string, unknown> & {
  vx_alloc(size: number): number;
};

export interface WasmCore {
  readonly memory: WebAssembly.Memory;
  readonly exports: WasmExports;
  /** A byte view of the whole memory, valid until the memory grows. */
  u8(): Uint8Array;
  /** A DataView of the whole memory, valid until the memory grows. */
  dv(): DataView;
  /** Allocates a long-lived, zero-filled, 64-byte aligned region; throws ERR_WASM_OOM. */
  alloc(size: number): number;
}

let compiled: WebAssembly.Module | undefined;
let compiledBuild: 'relaxed' | 'plain' | 'debug' = 'plain';
let mainCore: WasmCore | undefined;

/** The path of the release build; `VXNET_WASM=debug` selects the debug build. */
export function wasmPath(): string {
  const name = process.env.VXNET_WASM === 'debug' ? 'vxnet.debug.wasm' : 'vxnet.wasm';
  return join(packageRoot(), 'build', name);
}

/**
 * The relaxed-SIMD build (build/vxnet.relaxed.wasm) when this V8 runs it: the same code, except
 * that AES-GCM's byte lookups use i8x16.relaxed_swizzle, whose indices there are all 0..15 (same
 * result as i8x16.swizzle, one pshufb instead of three instructions on x86: ~15-20% less crypto
 * CPU). Relaxed SIMD (WASM 3.0) is on by default from V8 11.4 (Node 22); Node 20's V8 has it
 * behind --experimental-wasm-relaxed-simd, set here (process-wide, so workers see it too) before
 * the first compile. VXNET_WASM_RELAXED=0 or VXNET_WASM=debug keeps the plain build.
 */
function relaxedBytes(): Buffer | undefined {
  if (process.env.VXNET_WASM === 'debug' || process.env.VXNET_WASM_RELAXED === '0') return undefined;
  const path = join(packageRoot(), 'build', 'vxnet.relaxed.wasm');
  let bytes: Buffer;
  try {
    // A relaxed build older than the plain one is stale (built from older sources): not used.
    if (statSync(path).mtimeMs < statSync(wasmPath()).mtimeMs) return undefined;
    bytes = readFileSync(path);
  } catch {
    return undefined;
  }
  if (WebAssembly.validate(new Uint8Array(bytes))) return bytes;
  setFlagsFromString('--experimental-wasm-relaxed-simd');
  return WebAssembly.validate(new Uint8Array(bytes)) ? bytes : undefined;
}

/** The compiled module, compiled once per thread. */
export function wasmModule(): WebAssembly.Module {
  if (!compiled) {
    let bytes: Buffer;
    try {
      const relaxed = relaxedBytes();
      compiledBuild = relaxed ? 'relaxed' : process.env.VXNET_WASM === 'debug' ? 'debug' : 'plain';
      bytes = relaxed ?? readFileSync(wasmPath());
    } catch (cause) {
      throw new VxError('ERR_WASM_MISSING', `cannot read ${wasmPath()}: run "npm run build:wasm"`, { cause });
    }
    compiled = new WebAssembly.Module(new Uint8Array(bytes));
  }
  return compiled;
}

/** Which build this thread compiled (after the first `wasmModule()`): for benchmark notes. */
export function wasmBuild(): 'relaxed' | 'plain' | 'debug' {
  wasmModule();
  return compiledBuild;
}

/** Instantiates the module on `memory` (a new shared memory when omitted). */
export function instantiate(memory?: WebAssembly.Memory): WasmCore {
  const mem =
    memory ?? new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAXIMUM_PAGES, shared: true });
  const instance = new WebAssembly.Instance(wasmModule(), {
    env: {
      memory: mem,
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new VxError('ERR_WASM_ABORT', `WASM abort at ${line}:${col}`);
      },
    },
  });
  const exports = instance.exports as unknown as WasmExports;
  (exports._initialize as (() => void) | undefined)?.();
  let buf: ArrayBufferLike = new ArrayBuffer(0);
  let u8v: Uint8Array = new Uint8Array(buf);
  let dvv: DataView = new DataView(buf);
  const refresh = () => {
    if (mem.buffer !== buf) {
      buf = mem.buffer;
      u8v = new Uint8Array(buf);
      dvv = new DataView(buf);
    }
  };
  return {
    memory: mem,
    exports,
    u8() {
      refresh();
      return u8v;
    },
    dv() {
      refresh();
      return dvv;
    },
    alloc(size: number) {
      if (!Number.isInteger(size) || size <= 0) {
        throw new VxError('ERR_INVALID_ARG', `alloc size must be a positive integer, got ${size}`);
      }
      let p: number;
      try {
        p = exports.vx_alloc(size) >>> 0;
      } catch (cause) {
        throw new VxError('ERR_WASM_OOM', `cannot allocate ${size} bytes of WASM memory`, { cause });
      }
      if (p === 0) throw new VxError('ERR_WASM_OOM', `cannot allocate ${size} bytes of WASM memory`);
      return p;
    },
  };
}

/** The main thread's instance, created on first use. Workers call `instantiate(sharedMemory)`. */
export function core(): WasmCore {
  mainCore ??= instantiate();
  return mainCore;
}
