// The Piscina worker for EspHelpers (src/crypto/esp-split.ts): instantiates the WASM module on the
// shared memory once, then its one task loops on Atomics.wait running the GCM slices of staged
// ESP seal batches the I/O thread posts, until told to stop.
import { workerData } from 'node:worker_threads';
import { instantiate } from '../wasm/module.js';
import { type EspSplitHandle, espHelperLoop } from './esp-split.js';

const wasm = instantiate((workerData as { memory: WebAssembly.Memory }).memory);

export default function run(task: { handle: EspSplitHandle; index: number }): number {
  return espHelperLoop(wasm, task.handle, task.index);
}
