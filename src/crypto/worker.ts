// The Piscina worker for GcmPool: runs AES-GCM batches on the main thread's shared memory.
//
// The memory arrives once, in workerData, when the thread starts; this thread instantiates the
// same WASM module on it (a worker instance never allocates: key contexts, descriptors and packets
// all live in regions the main thread carved out). Each task is a small object naming a key context
// and a slice of a descriptor array, plus a scratch region the pool lent to this task; the result is the count of failed messages, and per-message
// statuses are already in the descriptors in shared memory.
import { workerData } from 'node:worker_threads';
import { instantiate } from '../wasm/module.js';
import { type GcmExports, gcmExports } from './gcm.js';

export interface GcmTask {
  op: 'seal' | 'open';
  ctx: number;
  descs: number;
  n: number;
  /** GCM_SCRATCH_SIZE bytes that only this task uses while it runs. */
  scratch: number;
}

const ex: GcmExports = gcmExports(instantiate((workerData as { memory: WebAssembly.Memory }).memory));

export default function run(task: GcmTask): number {
  return task.op === 'seal'
    ? ex.gcm_seal_batch(task.ctx, task.descs, task.n, task.scratch)
    : ex.gcm_open_batch(task.ctx, task.descs, task.n, task.scratch);
}
