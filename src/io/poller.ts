// Readiness for the kernel seams' fds, without the libuv threadpool doing the I/O.
//
// Owns: one epoll set and the loop that calls a Pump when its fd is readable. A Pump is the unit
// the datapath wires: `pump()` moves at most one batch (e.g. TAP readBatch -> encap -> UDP
// sendBatch) and returns how many packets it moved; the driver calls it again until it returns 0
// (the fd is drained: the seams read until EAGAIN) or a fairness budget is spent, then waits again.
// Two drivers run the same pumps:
// - `runBlocking` for a dedicated I/O worker thread: it blocks in epoll_wait through a plain
//   koffi call (a worker may block; the main event loop stays free). A Waker (eventfd) in the set
//   lets another thread stop it. This is the default: see bench/io.ts for the figures.
// - `EventLoopDriver` for the main thread: epoll_wait runs as a koffi async call (one libuv pool
//   thread parked in it, never more), and the pumps run on the event loop when it returns. The
//   reads themselves are synchronous and non-blocking, so the pool never holds a TAP read.
// epoll is level-triggered, so a pump stopped by the budget is simply called again next round.
import { VxError } from '../errors.js';
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_EVENT_DATA,
  EPOLL_EVENT_SIZE,
  EPOLLIN,
  errno,
  sys,
  sysError,
} from './libc.js';

export interface Pump {
  /** The fd whose readability means "call pump()". */
  readonly fd: number;
  /** Moves at most one batch; returns the number of packets moved (0 when there was nothing). */
  pump(): number;
}

export interface DriverOptions {
  /** Batches a pump may move per wake-up before the others get a turn (default 8). */
  budget?: number;
  /** EventLoopDriver: called when a pump throws (the driver has stopped). Default: rethrow. */
  onError?: (err: unknown) => void;
}

/** An epoll set over some fds, each tagged with its index. */
export class EpollSet {
  readonly epfd: number;
  readonly events: Buffer;
  readonly max: number;
  private closed = false;

  constructor(fds: number[]) {
    this.epfd = sys.epollCreate1(0o2000000);
    if (this.epfd < 0) throw sysError('ERR_POLLER', 'epoll_create1');
    this.max = Math.max(1, fds.length);
    this.events = Buffer.alloc(this.max * EPOLL_EVENT_SIZE);
    for (let i = 0; i < fds.length; i++) this.add(fds[i]!, i);
  }

  add(fd: number, tag: number): void {
    const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeUInt32LE(tag, EPOLL_EVENT_DATA);
    if (sys.epollCtl(this.epfd, EPOLL_CTL_ADD, fd, ev) < 0)
      throw sysError('ERR_POLLER', `epoll_ctl ADD fd ${fd}`);
  }

  remove(fd: number): void {
    sys.epollCtl(this.epfd, EPOLL_CTL_DEL, fd, null);
  }

  /** Tag of ready event i after a wait. */
  tag(i: number): number {
    return this.events.readUInt32LE(i * EPOLL_EVENT_SIZE + EPOLL_EVENT_DATA);
  }

  /** Blocks up to `timeoutMs` (-1: forever); returns the number of ready fds (0 on timeout/EINTR). */
  wait(timeoutMs: number): number {
    const n = sys.epollWaitBuf(this.epfd, this.events, this.max, timeoutMs);
    if (n < 0) {
      if (errno() === EINTR) return 0;
      throw sysError('ERR_POLLER', 'epoll_wait');
    }
    return n;
  }

  /** The same wait as a koffi async call on the libuv pool; `cb(n)` runs on the event loop. */
  waitAsync(timeoutMs: number, cb: (err: unknown, n: number) => void): void {
    sys.epollWaitBuf.async(this.epfd, this.events, this.max, timeoutMs, cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    sys.close(this.epfd);
  }
}

/** An eventfd another thread writes to, to wake a thread blocked in epoll_wait. */
export class Waker {
  readonly fd: number;
  constructor(fd?: number) {
    if (fd !== undefined) {
      this.fd = fd;
      return;
    }
    this.fd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.fd < 0) throw sysError('ERR_POLLER', 'eventfd');
  }

  /** Wakes the waiter (callable from any thread that knows the fd number). */
  wake(): void {
    const one = Buffer.alloc(8);
    one.writeUInt32LE(1, 0);
    sys.writeBuf(this.fd, one, 8);
  }

  /** Clears pending wake-ups. */
  drain(): void {
    const b = Buffer.alloc(8);
    sys.readBuf(this.fd, b, 8);
  }

  close(): void {
    sys.close(this.fd);
  }
}

function runPump(p: Pump, budget: number): number {
  let moved = 0;
  for (let i = 0; i < budget; i++) {
    const n = p.pump();
    if (n === 0) break;
    moved += n;
  }
  return moved;
}

export interface BlockingOptions extends DriverOptions {
  /** Set [0] to non-zero (Atomics.store), then wake `waker`, to make runBlocking return. */
  stop: Int32Array;
  waker: Waker;
  /** Called on this thread each time `waker` fires (e.g. to apply queued control-plane updates). */
  onWake?: () => void;
  /** Called at least every `tickMs` (default: never), e.g. for FDB ageing and draining events. */
  onTick?: () => void;
  tickMs?: number;
  /**
   * Busy-poll for this many microseconds after the last packet before sleeping in epoll_wait
   * (default 0). Saves the thread wake-up (tens of us) for a reply that follows a request, at the
   * price of a busy core while traffic flows.
   */
  spinUs?: number;
}

/**
 * Runs `pumps` on this thread until `stop[0]` becomes non-zero and `waker` is woken. Blocks the
 * thread: call it from a worker. Returns the number of packets moved.
 */
export function runBlocking(pumps: Pump[], opts: BlockingOptions): number {
  const budget = opts.budget ?? 8;
  const tickMs = opts.onTick ? (opts.tickMs ?? 1000) : -1;
  const set = new EpollSet([...pumps.map((p) => p.fd), opts.waker.fd]);
  let moved = 0;
  let nextTick = tickMs >= 0 ? Date.now() + tickMs : Infinity;
  const spinMs = (opts.spinUs ?? 0) / 1000;
  let lastWork = -Infinity;
  try {
    while (Atomics.load(opts.stop, 0) === 0) {
      const spinning = spinMs > 0 && performance.now() - lastWork < spinMs;
      const n = set.wait(spinning ? 0 : tickMs >= 0 ? Math.max(0, nextTick - Date.now()) : -1);
      for (let i = 0; i < n; i++) {
        const tag = set.tag(i);
        if (tag === pumps.length) {
          opts.waker.drain();
          opts.onWake?.();
        } else {
          const m = runPump(pumps[tag]!, budget);
          moved += m;
          if (m > 0 && spinMs > 0) lastWork = performance.now();
        }
      }
      if (tickMs >= 0 && Date.now() >= nextTick) {
        nextTick = Date.now() + tickMs;
        opts.onTick!();
      }
    }
  } finally {
    set.close();
  }
  return moved;
}

/** Drives pumps on the main event loop, with epoll_wait parked on one libuv pool thread. */
export class EventLoopDriver {
  private readonly set: EpollSet;
  private readonly budget: number;
  private running = false;
  private waiting = false;
  private readonly waker = new Waker();
  private onIdle: (() => void) | undefined;
  private readonly onError: (err: unknown) => void;
  moved = 0;

  constructor(
    private readonly pumps: Pump[],
    opts: DriverOptions = {},
  ) {
    const budget = opts.budget ?? 8;
    if (!Number.isInteger(budget) || budget < 1) {
      throw new VxError('ERR_INVALID_ARG', `options.budget must be a positive integer, got ${budget}`);
    }
    this.budget = budget;
    this.onError =
      opts.onError ??
      ((err) => {
        throw err;
      });
    this.set = new EpollSet([...pumps.map((p) => p.fd), this.waker.fd]);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm();
  }

  private arm(): void {
    if (!this.running) return;
    this.waiting = true;
    this.set.waitAsync(-1, (err, n) => {
      this.waiting = false;
      if (err || !this.running) return this.finish();
      try {
        for (let i = 0; i < n; i++) {
          const tag = this.set.tag(i);
          if (tag === this.pumps.length) this.waker.drain();
          else this.moved += runPump(this.pumps[tag]!, this.budget);
        }
      } catch (e) {
        this.running = false;
        this.finish();
        return this.onError(e);
      }
      this.arm();
    });
  }

  private finish(): void {
    if (this.waiting) return;
    this.set.close();
    this.waker.close();
    this.onIdle?.();
  }

  /** Stops driving; resolves once the pool thread has left epoll_wait and the fds are released. */
  stop(): Promise<void> {
    if (!this.running) return Promise.resolve();
    this.running = false;
    return new Promise((resolve) => {
      this.onIdle = resolve;
      this.waker.wake();
    });
  }
}
