// Named shared/exclusive locks for the engine's mutations inside one daemon.
//
// Owns: granting a key to many shared holders or one exclusive holder, first come first served
// (a waiting exclusive request holds back later shared ones, so it is never starved). The engine
// uses them so that different containers are made, started and removed at the same time while
// what must not interleave still does not:
//   'engine'      shared by every mutation; exclusive for reconcile and shutdown (drain)
//   'ct:<name>'   exclusive: one operation per container at a time
//   'net:<id>'    shared while an endpoint is plumbed into the network's sandbox; exclusive to
//                 remove the sandbox (after re-checking that no endpoint of this host uses it)
//   'gw'          the gateway bridge, the same way
// Order (no deadlock): 'engine', then 'ct:' keys (sorted), then at most one 'net:' key, then 'gw'.
// Cross-host safety is not here: it comes from the store's transactions.

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

interface State {
  readers: number;
  writer: boolean;
  queue: Waiter[];
}

export class Locks {
  private readonly keys = new Map<string, State>();

  /** Runs `fn` holding `key` (shared or exclusive); releases it however `fn` ends. */
  async with<T>(key: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(key, exclusive);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Holds every key of `keys` exclusively (taken in sorted order), then runs `fn`. */
  async withAll<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const releases: (() => void)[] = [];
    try {
      for (const k of sorted) releases.push(await this.acquire(k, true));
      return await fn();
    } finally {
      for (const r of releases.reverse()) r();
    }
  }

  /** True while anyone holds or waits for `key`. */
  busy(key: string): boolean {
    return this.keys.has(key);
  }

  acquire(key: string, exclusive: boolean): Promise<() => void> {
    let s = this.keys.get(key);
    if (!s) {
      s = { readers: 0, writer: false, queue: [] };
      this.keys.set(key, s);
    }
    const st = s;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (exclusive) st.writer = false;
      else st.readers--;
      this.wake(key, st);
    };
    if (st.queue.length === 0 && !st.writer && (!exclusive || st.readers === 0)) {
      if (exclusive) st.writer = true;
      else st.readers++;
      return Promise.resolve(release);
    }
    return new Promise((resolve) => {
      st.queue.push({
        exclusive,
        grant: () => {
          if (exclusive) st.writer = true;
          else st.readers++;
          resolve(release);
        },
      });
    });
  }

  private wake(key: string, s: State): void {
    while (s.queue.length > 0 && !s.writer) {
      const head = s.queue[0]!;
      if (head.exclusive && s.readers > 0) break;
      s.queue.shift();
      head.grant();
      if (head.exclusive) break;
    }
    if (!s.writer && s.readers === 0 && s.queue.length === 0) this.keys.delete(key);
  }
}
