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
import {
  isMainThread,
  MessageChannel,
  type MessagePort,
  parentPort,
  receiveMessageOnPort,
  Worker,
  workerData,
} from 'node:worker_threads';
import { VxError } from '../errors.js';
import { type Pump, runBlocking, Waker } from './poller.js';

/** What a worker script's factory returns: its pumps, and optionally control and timer hooks. */
export interface IoService {
  pumps: Pump[];
  /** A message the main thread sent with IoWorker.post(), applied between packet batches. */
  onControl?: (msg: unknown) => void;
  /** Periodic work on the I/O thread (ageing, draining events), every `tickMs` (default 1000). */
  onTick?: () => void;
  tickMs?: number;
  /** Busy-poll after traffic (runBlocking's spinUs; default 0: bench/io.ts found it hurts on 2 shared cores). */
  spinUs?: number;
}

/** Handed to the factory: `emit` sends a message to the main thread's `onEvent`. */
export interface IoContext {
  memory: WebAssembly.Memory;
  emit(msg: unknown): void;
}

export interface IoWorkerOptions<T> {
  /** The worker script (it calls `serveIo`). A .ts file is loaded through tsx (development). */
  file: URL;
  /** Structured-cloneable data for `makePumps` (seam handles, table addresses, ...). */
  data: T;
  /** The shared memory the seams' batches live in. */
  memory: WebAssembly.Memory;
  /** Receives what the worker's service passes to `emit` (events: L2/L3 misses, learned peers). */
  onEvent?: (msg: unknown) => void;
}

interface Envelope<T> {
  data: T;
  memory: WebAssembly.Memory;
  stop: Int32Array;
  wakerFd: number;
  control: MessagePort;
}

export class IoWorker {
  private stopped: Promise<number> | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly stopFlag: Int32Array,
    private readonly waker: Waker,
    private readonly done: Promise<number>,
    private readonly control: MessagePort,
  ) {}

  /**
   * Sends a control message to the worker's `onControl` and wakes it from epoll_wait; it is
   * applied before the next packet batch. Messages arrive in order.
   */
  post(msg: unknown): void {
    this.control.postMessage(msg);
    this.waker.wake();
  }

  /** Starts the worker and resolves once its pumps are built and it is about to wait. */
  static async start<T>(opts: IoWorkerOptions<T>): Promise<IoWorker> {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const waker = new Waker();
    const { port1, port2 } = new MessageChannel();
    const env: Envelope<T> = {
      data: opts.data,
      memory: opts.memory,
      stop,
      wakerFd: waker.fd,
      control: port2,
    };
    const worker = spawn(opts.file, env, [port2]);
    const done = new Promise<number>((resolve, reject) => {
      worker.on('message', (m: { moved?: number; event?: unknown }) => {
        if (typeof m?.moved === 'number') resolve(m.moved);
        else if (m && typeof m === 'object' && 'event' in m) opts.onEvent?.(m.event);
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
      port1.close();
      throw e;
    }
    return new IoWorker(worker, stop, waker, done, port1);
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
        this.control.close();
      }
    })();
    return this.stopped;
  }
}

/**
 * The I/O thread's own V8 heap: it allocates almost nothing per packet (batches live in the WASM
 * memory), so a young generation of ~1 MB semi-spaces instead of V8's default of up to 16 MB each
 * keeps ~20 MB of not-yet-collected garbage out of the daemon's RSS.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 3 };

function spawn<T>(file: URL, env: Envelope<T>, transferList: MessagePort[]): Worker {
  const o = { workerData: env, transferList, resourceLimits: WORKER_LIMITS };
  if (!file.pathname.endsWith('.ts')) return new Worker(file, o);
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(file.href)}); })`;
  return new Worker(code, { ...o, eval: true });
}

/**
 * Worker side: builds the service (pumps and hooks) from the data the main thread passed, signals
 * ready, and runs it in a blocking epoll loop until IoWorker.stop(). Control messages are read
 * synchronously (receiveMessageOnPort) when the waker fires, since this thread's event loop does
 * not run meanwhile. Call it once at the top of the worker script.
 */
export function serveIo<T>(make: (data: T, ctx: IoContext) => IoService | Pump[]): void {
  const port = parentPort;
  if (isMainThread || !port) throw new VxError('ERR_IO_WORKER', 'serveIo must run in a worker thread');
  const env = workerData as Envelope<T>;
  const made = make(env.data, { memory: env.memory, emit: (event) => port.postMessage({ event }) });
  const svc: IoService = Array.isArray(made) ? { pumps: made } : made;
  const onWake = () => {
    for (let m = receiveMessageOnPort(env.control); m; m = receiveMessageOnPort(env.control)) {
      svc.onControl?.(m.message);
    }
  };
  port.postMessage('ready');
  const moved = runBlocking(svc.pumps, {
    stop: env.stop,
    waker: new Waker(env.wakerFd),
    onWake,
    spinUs: svc.spinUs ?? 0,
    ...(svc.onTick ? { onTick: svc.onTick, tickMs: svc.tickMs ?? 1000 } : {}),
  });
  port.postMessage({ moved });
}
