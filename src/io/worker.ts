// The dedicated I/O thread: where the datapath's pumps run by default.
//
// Owns: starting a worker thread on the shared WebAssembly.Memory, the stop protocol (a shared
// stop flag plus a Waker, because the worker sits in epoll_wait and never sees postMessage while
// it runs), and the worker-side entry `serveIo`. Why a worker: bench/io.ts measured the blocking
// loop in a worker at least as fast as the same pumps on the main event loop, and it keeps the
// main loop (control plane, etcd, CLI) out of the packet path and the libuv pool free.
// The worker script calls `serveIo(makePumps)`; `makePumps` attaches the seams from their
// handles (TapDevice.attach, UdpBind.attach, PacketBatch.attach), instantiates the WASM core on
// the memory if it runs the pipeline, and returns its pumps. Nothing is allocated in the worker.
import { once } from 'node:events';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { VxError } from '../errors.js';
import { type Pump, runBlocking, Waker } from './poller.js';

export interface IoWorkerOptions<T> {
  /** The worker script (it calls `serveIo`). A .ts file is loaded through tsx (development). */
  file: URL;
  /** Structured-cloneable data for `makePumps` (seam handles, table addresses, ...). */
  data: T;
  /** The shared memory the seams' batches live in. */
  memory: WebAssembly.Memory;
}

interface Envelope<T> {
  data: T;
  memory: WebAssembly.Memory;
  stop: Int32Array;
  wakerFd: number;
}

export class IoWorker {
  private stopped: Promise<number> | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly stopFlag: Int32Array,
    private readonly waker: Waker,
    private readonly done: Promise<number>,
  ) {}

  /** Starts the worker and resolves once its pumps are built and it is about to wait. */
  static async start<T>(opts: IoWorkerOptions<T>): Promise<IoWorker> {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const waker = new Waker();
    const env: Envelope<T> = { data: opts.data, memory: opts.memory, stop, wakerFd: waker.fd };
    const worker = spawn(opts.file, env);
    const done = new Promise<number>((resolve, reject) => {
      worker.on('message', (m: { moved?: number }) => {
        if (typeof m?.moved === 'number') resolve(m.moved);
      });
      worker.once('error', (e) =>
        reject(new VxError('ERR_IO_WORKER', `I/O worker failed: ${e.message}`, { cause: e })),
      );
      worker.once('exit', (code) =>
        reject(new VxError('ERR_IO_WORKER', `I/O worker exited with code ${code}`)),
      );
    });
    done.catch(() => {}); // observed through `finished`/`stop()`; never an unhandled rejection
    try {
      await Promise.race([once(worker, 'message'), done]);
    } catch (e) {
      await worker.terminate();
      waker.close();
      throw e;
    }
    return new IoWorker(worker, stop, waker, done);
  }

  /** Resolves with the packets moved if the worker fails or stops; rejects with ERR_IO_WORKER on failure. */
  get finished(): Promise<number> {
    return this.done;
  }

  /** Stops the loop and the thread; resolves with the number of packets the pumps moved. Idempotent. */
  stop(): Promise<number> {
    this.stopped ??= (async () => {
      Atomics.store(this.stopFlag, 0, 1);
      this.waker.wake();
      try {
        return await this.done;
      } finally {
        await this.worker.terminate();
        this.waker.close();
      }
    })();
    return this.stopped;
  }
}

function spawn<T>(file: URL, env: Envelope<T>): Worker {
  if (!file.pathname.endsWith('.ts')) return new Worker(file, { workerData: env });
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(file.href)}); })`;
  return new Worker(code, { eval: true, workerData: env });
}

/**
 * Worker side: builds the pumps from the data the main thread passed, signals ready, and runs
 * them in a blocking epoll loop until IoWorker.stop(). Call it once at the top of the worker script.
 */
export function serveIo<T>(makePumps: (data: T, memory: WebAssembly.Memory) => Pump[]): void {
  if (isMainThread || !parentPort) throw new VxError('ERR_IO_WORKER', 'serveIo must run in a worker thread');
  const env = workerData as Envelope<T>;
  const pumps = makePumps(env.data, env.memory);
  parentPort.postMessage('ready');
  const moved = runBlocking(pumps, { stop: env.stop, waker: new Waker(env.wakerFd) });
  parentPort.postMessage({ moved });
}
