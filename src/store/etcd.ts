// The etcd store: the Store interface on a real etcd v3 cluster, for multi-host vxnet.
//
// Owns: mapping Store calls onto etcd's KV/Watch/Lease RPCs (through the `etcd3` client's RPC
// layer, not its high-level helpers), the `etcd://H:P[,H:P...]` URL syntax of Docker 1.9's
// `--cluster-store`, and turning every failure into a VxError with a stable code.
// Why shaped so:
// - The Store interface already is etcd's (revisions, txns, prefix watches, leases), so calls map
//   one to one; a compare `absent` is etcd's `version == 0`.
// - Availability is bounded: every unary call carries a deadline, the client's own retry policy
//   and circuit breaker are replaced (a breaker would keep failing for 5 s after etcd returns),
//   and gRPC reconnects quickly. A dead etcd gives ERR_STORE_UNAVAILABLE within
//   `requestTimeoutMs`; the next call after it returns succeeds.
// - Each watch owns one gRPC watch stream and tracks the next revision itself. When events may
//   have been missed - the stream broke (etcd restarted, network) or etcd says the revision was
//   compacted - it lists the prefix, emits `resync` with that snapshot, and watches again from
//   the snapshot's revision + 1, retrying with backoff while etcd is away; any call of the store
//   that succeeds ends the waits at once (etcd is back: resync now, not after the backoff). The
//   watcher diffs the snapshot against what it holds, so nothing stale survives a gap.
// - Lease ids are chosen here (random, below 2^53) so they fit the interface's `number`; etcd's
//   own ids are full 64-bit. Keep-alives share one LeaseKeepAlive stream per store.

import { randomBytes } from 'node:crypto';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  type IKeyValue,
  type IOptions,
  type IWatchResponse,
  isRecoverableError,
} from 'etcd3';
import { isVxError, VxError } from '../errors.js';
import {
  checkKey,
  checkTtl,
  checkTxn,
  type KeyValue,
  type Lease,
  type ListResult,
  type Op,
  type Store,
  type Txn,
  type TxnResult,
  type WatchEvent,
  type Watcher,
  type WatchMessage,
  type WatchOptions,
} from './store.js';

export interface EtcdTls {
  /** PEM of the CA that signed etcd's server certificate. */
  ca: Buffer | string;
  /** PEM client certificate and key, when etcd requires client certificates. */
  cert?: Buffer | string;
  key?: Buffer | string;
}

export interface EtcdStoreOptions {
  /** Client URLs: `http://H:P`, `https://H:P` or `H:P`. */
  endpoints: string[];
  tls?: EtcdTls;
  /** Prepended to every key (the path of an `etcd://H:P/path` URL); invisible to callers. */
  keyPrefix?: string;
  /** Deadline of each unary call and of opening a watch (default 2000 ms). */
  requestTimeoutMs?: number;
  /** Longest wait between reconnect attempts of a broken watch (default 2000 ms). */
  maxRetryMs?: number;
  /**
   * Check that etcd answers before returning (default true: an unreachable etcd fails the open
   * with ERR_STORE_UNAVAILABLE). false: return at once; calls fail with ERR_STORE_UNAVAILABLE
   * until etcd answers (the daemon starts while etcd is down).
   */
  probe?: boolean;
}

export interface EtcdStore extends Store {
  readonly endpoints: string[];
  /** Compacts etcd's history up to `revision` (tests force watch resyncs with it). */
  compact(revision: number): Promise<void>;
}

export interface ClusterStoreUrl {
  endpoints: string[];
  keyPrefix: string;
}

const DEFAULT_PORT = 2379;
const HOSTPORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;

/**
 * Parses Docker 1.9's `--cluster-store` value: `etcd://H:P[,H:P...][/prefix]` (port default 2379).
 * With `tls`, endpoints are https.
 */
export function parseClusterStore(url: string, options: { tls?: boolean } = {}): ClusterStoreUrl {
  const bad = (why: string) =>
    new VxError('ERR_BAD_CLUSTER_STORE', `cluster store "${String(url)}": ${why} (want etcd://H:P[,H:P...])`);
  if (typeof url !== 'string') throw bad('not a string');
  const m = /^etcd:\/\/([^/]*)(\/.*)?$/.exec(url);
  if (!m) throw bad('only the etcd:// scheme is supported');
  const scheme = options.tls ? 'https' : 'http';
  const endpoints = m[1]!.split(',').map((hp) => {
    const h = HOSTPORT.exec(hp);
    if (!h) throw bad(`"${hp}" is not a host[:port]`);
    const port = h[2] === undefined ? DEFAULT_PORT : Number(h[2]);
    if (port < 1 || port > 65535) throw bad(`port ${port} out of range`);
    return `${scheme}://${h[1]}:${port}`;
  });
  const path = (m[2] ?? '').replace(/^\/+/, '');
  return { endpoints, keyPrefix: path && !path.endsWith('/') ? `${path}/` : path };
}

export async function openEtcdStore(options: EtcdStoreOptions): Promise<EtcdStore> {
  const store = new EtcdKv(options);
  if (options.probe === false) return store;
  try {
    await store.list('\0probe');
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

// ---- errors -----------------------------------------------------------------------------------

const UNAVAILABLE_TEXT = /no leader|leader changed|request timed out|timed out|too many requests|closed/i;

function mapError(e: unknown, what: string): VxError {
  if (isVxError(e)) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof EtcdLeaseInvalidError || /lease not found/.test(msg))
    return new VxError('ERR_LEASE_NOT_FOUND', `${what}: ${msg}`, { cause: e });
  if (/duplicate key given in txn request/.test(msg))
    return new VxError('ERR_STORE_BAD_TXN', `${what}: a key appears twice in one transaction`, { cause: e });
  // Stream errors reach us as raw gRPC errors: 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED.
  const grpcCode = (e as { code?: unknown } | undefined)?.code;
  if (
    (e instanceof Error && isRecoverableError(e)) ||
    grpcCode === 14 ||
    grpcCode === 4 ||
    UNAVAILABLE_TEXT.test(msg)
  )
    return new VxError('ERR_STORE_UNAVAILABLE', `${what}: etcd is unavailable (${msg})`, { cause: e });
  return new VxError('ERR_STORE_ETCD', `${what}: etcd refused the request: ${msg}`, { cause: e });
}

function unavailable(what: string, why: string): VxError {
  return new VxError('ERR_STORE_UNAVAILABLE', `${what}: etcd is unavailable (${why})`);
}

/** Rejects with ERR_STORE_UNAVAILABLE when `p` takes longer than `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailable(what, `no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// A policy object with etcd3's `execute` shape that runs the call once: retries are decided here
// (only for calls that never reached a server), and no circuit breaker holds calls back. It must
// be async: etcd3 reports stream errors through `execute(() => { throw e }).catch(...)`.
const once = {
  execute: async <T>(fn: (ctx: { signal: AbortSignal }) => Promise<T>) =>
    fn({ signal: new AbortController().signal }),
};

// ---- the store ----------------------------------------------------------------------------------

interface Stream<Req, Res> {
  write(req: Req): boolean;
  on(ev: 'data', fn: (res: Res) => void): unknown;
  on(ev: 'error' | 'end', fn: (e?: unknown) => void): unknown;
  cancel(): void;
}

class EtcdKv implements EtcdStore {
  readonly endpoints: string[];
  readonly client: Etcd3;
  readonly timeoutMs: number;
  readonly maxRetryMs: number;
  private readonly prefix: Buffer;
  private closed = false;
  private readonly watches = new Set<EtcdWatch>();
  private keepAlives: KeepAliveStream | undefined;
  /** Backoff waits of broken watches, ended early by the next call that succeeds. */
  private readonly napping = new Set<() => void>();

  constructor(options: EtcdStoreOptions) {
    if (!Array.isArray(options?.endpoints) || options.endpoints.length === 0)
      throw new VxError('ERR_BAD_CLUSTER_STORE', 'options.endpoints must list at least one etcd client URL');
    const tls = options.tls;
    this.endpoints = options.endpoints.map((e) => {
      if (typeof e !== 'string' || !/^(https?:\/\/)?[^/]+$/.test(e))
        throw new VxError('ERR_BAD_CLUSTER_STORE', `endpoint "${String(e)}" is not [http(s)://]host:port`);
      return /^https?:\/\//.test(e) ? e : `${tls ? 'https' : 'http'}://${e}`;
    });
    this.timeoutMs = positive(options.requestTimeoutMs, 2000, 'options.requestTimeoutMs');
    this.maxRetryMs = positive(options.maxRetryMs, 2000, 'options.maxRetryMs');
    this.prefix = Buffer.from(options.keyPrefix ?? '');
    const buf = (x: Buffer | string | undefined) => (x === undefined ? undefined : Buffer.from(x));
    const etcdOptions: IOptions = {
      hosts: this.endpoints,
      ...(tls
        ? {
            credentials: {
              rootCertificate: buf(tls.ca)!,
              privateKey: buf(tls.key),
              certChain: buf(tls.cert),
            },
          }
        : {}),
      grpcOptions: {
        // A private subchannel pool and short reconnect backoff: after etcd returns, the next
        // call connects at once instead of waiting out a shared channel's backoff.
        'grpc.use_local_subchannel_pool': 1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        'grpc.keepalive_time_ms': 10000,
        'grpc.keepalive_timeout_ms': 5000,
        'grpc.max_receive_message_length': 64 << 20,
      },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      faultHandling: {
        host: () => once as never,
        global: this.retryUnreached() as never,
      },
    };
    this.client = new Etcd3(etcdOptions);
  }

  // ---- key mapping: the optional key prefix is added on the way in, removed on the way out ----
  k(key: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(key)]);
  }
  rangeEnd(prefix: string): Buffer {
    const start = this.k(prefix);
    if (start.length === 0) return Buffer.from([0]);
    const end = Buffer.from(start);
    for (let i = end.length - 1; i >= 0; i--) {
      if (end[i]! < 0xff) {
        end[i]!++;
        return end.subarray(0, i + 1);
      }
    }
    return Buffer.from([0]);
  }
  kv(x: IKeyValue): KeyValue {
    return {
      key: x.key.subarray(this.prefix.length).toString(),
      value: x.value.toString(),
      createRevision: Number(x.create_revision),
      modRevision: Number(x.mod_revision),
      version: Number(x.version),
      lease: Number(x.lease),
    };
  }

  /** Runs an RPC with the closed check and error mapping. */
  async rpc<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new VxError('ERR_STORE_CLOSED', 'the store is closed');
    try {
      // The deadline bounds the call itself; `within` also bounds time spent before it is sent.
      const r = await within(fn(), this.timeoutMs + 500, what);
      this.wake();
      return r;
    } catch (e) {
      throw mapError(e, what);
    }
  }

  /** Waits `ms`, or less: until a call of this store succeeds (etcd answers again) or it closes. */
  nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.napping.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.napping.add(done);
    });
  }

  private wake(): void {
    if (this.napping.size === 0) return;
    for (const done of [...this.napping]) done();
  }

  get(key: string): Promise<KeyValue | undefined> {
    checkKey(key);
    return this.rpc(`get "${key}"`, async () => {
      const r = await this.client.kv.range({ key: this.k(key) });
      return r.kvs.length ? this.kv(r.kvs[0]!) : undefined;
    });
  }

  list(prefix: string): Promise<ListResult> {
    if (typeof prefix !== 'string') throw new VxError('ERR_STORE_BAD_KEY', 'prefix must be a string');
    return this.rpc(`list "${prefix}"`, async () => {
      const start = this.k(prefix);
      const r = await this.client.kv.range({
        key: start.length ? start : Buffer.from([0]),
        range_end: this.rangeEnd(prefix),
      });
      return { revision: Number(r.header.revision), kvs: r.kvs.map((x) => this.kv(x)) };
    });
  }

  put(key: string, value: string, options: { lease?: number } = {}): Promise<TxnResult> {
    return this.txn({ compare: [], success: [{ type: 'put', key, value, lease: options.lease ?? 0 }] });
  }

  delete(key: string): Promise<TxnResult> {
    return this.txn({ compare: [], success: [{ type: 'delete', key }] });
  }

  txn(txn: Txn): Promise<TxnResult> {
    checkTxn(txn);
    checkDistinct(txn.success);
    checkDistinct(txn.failure ?? []);
    const compare = txn.compare.map((c) => {
      const key = this.k(c.key);
      if ('absent' in c) return { key, target: 'Version' as const, result: 'Equal' as const, version: '0' };
      if ('value' in c)
        return { key, target: 'Value' as const, result: 'Equal' as const, value: Buffer.from(c.value) };
      return { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: String(c.modRevision) };
    });
    const ops = (list: Op[]) =>
      list.map((op) => {
        if (op.type === 'put')
          return {
            request_put: { key: this.k(op.key), value: Buffer.from(op.value), lease: String(op.lease ?? 0) },
          };
        if (op.type === 'delete') return { request_delete_range: { key: this.k(op.key) } };
        return { request_delete_range: { key: this.k(op.prefix), range_end: this.rangeEnd(op.prefix) } };
      });
    const first = txn.success[0] ?? txn.compare[0];
    const what = first ? `txn on "${'key' in first ? first.key : first.prefix}"` : 'txn';
    return this.rpc(what, async () => {
      const r = await this.client.kv.txn({
        compare,
        success: ops(txn.success),
        failure: ops(txn.failure ?? []),
      });
      return { succeeded: r.succeeded, revision: Number(r.header.revision) };
    });
  }

  async watch(
    prefix: string,
    onMessage: (msg: WatchMessage) => void,
    options: WatchOptions = {},
  ): Promise<Watcher> {
    if (typeof prefix !== 'string') throw new VxError('ERR_STORE_BAD_KEY', 'prefix must be a string');
    const from = options.fromRevision;
    if (from !== undefined && (!Number.isSafeInteger(from) || from < 1))
      throw new VxError('ERR_STORE_BAD_KEY', 'options.fromRevision must be a positive integer');
    if (this.closed) throw new VxError('ERR_STORE_CLOSED', 'the store is closed');
    const w = new EtcdWatch(this, prefix, onMessage, () => this.watches.delete(w));
    this.watches.add(w);
    try {
      await w.open(from);
    } catch (e) {
      w.close();
      throw mapError(e, `watch "${prefix}"`);
    }
    return w;
  }

  async grantLease(options: { ttlSeconds: number }): Promise<Lease> {
    const ttl = checkTtl(options?.ttlSeconds);
    for (let tries = 0; ; tries++) {
      const id = randomLeaseId();
      try {
        const r = await this.rpc(`grant a lease of ${ttl} s`, () =>
          this.client.leaseClient.leaseGrant({ ID: String(id), TTL: String(ttl) }),
        );
        return this.leaseHandle(id, Number(r.TTL));
      } catch (e) {
        // A random 53-bit id colliding with a live lease is rare; draw again.
        if (!(isVxError(e, 'ERR_STORE_ETCD') && /lease already exists/.test(e.message)) || tries > 3) throw e;
      }
    }
  }

  private leaseHandle(id: number, ttl: number): Lease {
    return {
      id,
      ttl,
      keepAlive: () => this.keepAlive(id),
      revoke: async () => {
        try {
          await this.rpc(`revoke lease ${id}`, () => this.client.leaseClient.leaseRevoke({ ID: String(id) }));
        } catch (e) {
          if (!isVxError(e, 'ERR_LEASE_NOT_FOUND')) throw e;
        }
      },
    };
  }

  private async keepAlive(id: number): Promise<void> {
    if (this.closed) throw new VxError('ERR_STORE_CLOSED', 'the store is closed');
    if (!this.keepAlives || this.keepAlives.broken) {
      this.keepAlives = new KeepAliveStream(this);
    }
    let ttl: number;
    try {
      ttl = await this.keepAlives.refresh(id);
    } catch (e) {
      throw mapError(e, `keep lease ${id} alive`);
    }
    if (ttl <= 0) throw new VxError('ERR_LEASE_NOT_FOUND', `lease ${id} not found (expired or revoked)`);
  }

  async compact(revision: number): Promise<void> {
    await this.rpc(`compact to ${revision}`, () =>
      this.client.kv.compact({ revision: String(revision), physical: true }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches]) w.close();
    this.wake();
    this.keepAlives?.close();
    this.client.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The global policy: retry on another endpoint only when the call never reached a server. */
  private retryUnreached() {
    return {
      execute: async <T>(fn: (ctx: { signal: AbortSignal }) => Promise<T>): Promise<T> => {
        for (let i = 0; ; i++) {
          try {
            return await fn({ signal: new AbortController().signal });
          } catch (e) {
            const unreached = e instanceof Error && e.constructor.name === 'GRPCUnavailableError';
            if (!unreached || i + 1 >= this.endpoints.length) throw e;
          }
        }
      },
    };
  }
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1)
    throw new VxError('ERR_INVALID_ARG', `${name} must be a positive integer`);
  return v;
}

function randomLeaseId(): number {
  return Number(randomBytes(8).readBigUInt64BE() >> 11n) || 1;
}

/** etcd rejects a txn that touches one key twice; say so before sending, with the key's name. */
function checkDistinct(ops: Op[]): void {
  const seen = new Set<string>();
  for (const op of ops) {
    if (op.type === 'deletePrefix') continue;
    if (seen.has(op.key))
      throw new VxError('ERR_STORE_BAD_TXN', `key "${op.key}" appears twice in one transaction`);
    seen.add(op.key);
  }
}

// ---- watches ------------------------------------------------------------------------------------

type WatchStream = Stream<object, IWatchResponse>;

/** Longest wait for etcd to replay a watch's past revisions before `watch()` resolves. */
const CATCH_UP_MS = 400;

class EtcdWatch implements Watcher {
  private stream: WatchStream | undefined;
  private closed = false;
  /** The next revision to deliver; 0 until the first watch is created with "from now". */
  private next = 0;
  private retryMs = 100;
  private resyncing = false;

  constructor(
    private readonly store: EtcdKv,
    private readonly prefix: string,
    private readonly onMessage: (msg: WatchMessage) => void,
    private readonly onClose: () => void,
  ) {}

  async open(from: number | undefined): Promise<void> {
    this.next = from ?? 0;
    await this.connect();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.drop();
    this.onClose();
  }

  private drop(): void {
    const s = this.stream;
    this.stream = undefined;
    try {
      s?.cancel();
    } catch {
      // Already gone.
    }
  }

  /** Opens a stream and a watch from `next`; resolves once etcd has created it. */
  private async connect(): Promise<void> {
    const what = `watch "${this.prefix}"`;
    const opening = this.store.client.watchClient.watch() as unknown as Promise<WatchStream>;
    const stream = await within(opening, this.store.timeoutMs, what).catch((e) => {
      // Opened too late: close it when it comes, so no stream is left behind.
      opening.then((s) => s.cancel()).catch(() => undefined);
      throw e;
    });
    if (this.closed) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    await within(
      new Promise<void>((resolve, reject) => {
        let created = false;
        let catchUpTo = 0;
        let catchUpTimer: NodeJS.Timeout | undefined;
        stream.on('data', (res) => {
          if (stream !== this.stream) return;
          if (res.created && !created) {
            created = true;
            if (res.canceled && Number(res.compact_revision) === 0) {
              reject(mapError(new Error(res.cancel_reason || 'watch refused'), what));
              return;
            }
            const current = Number(res.header.revision);
            if (this.next === 0) this.next = current + 1;
            if (this.next > current) resolve();
            else {
              // Watching from the past: etcd replays it from a sync loop that runs every 100 ms.
              // Wait (bounded) for the replay, so callers see history before new events.
              catchUpTo = current;
              catchUpTimer = setTimeout(resolve, Math.min(CATCH_UP_MS, this.store.timeoutMs / 2));
            }
          }
          this.receive(res);
          if (catchUpTo && (this.next > catchUpTo || stream !== this.stream)) {
            catchUpTo = 0;
            clearTimeout(catchUpTimer);
            resolve();
          }
        });
        const broken = (e?: unknown) => {
          if (!created) reject(mapError(e ?? new Error('watch stream ended'), what));
          if (stream === this.stream) this.lost();
        };
        stream.on('error', broken);
        stream.on('end', broken);
        stream.write({
          create_request: {
            key: this.store.k(this.prefix).length ? this.store.k(this.prefix) : Buffer.from([0]),
            range_end: this.store.rangeEnd(this.prefix),
            start_revision: this.next === 0 ? undefined : String(this.next),
            prev_kv: true,
          },
        });
      }),
      this.store.timeoutMs,
      what,
    ).catch((e) => {
      if (stream === this.stream) this.drop();
      throw e;
    });
  }

  private receive(res: IWatchResponse): void {
    if (Number(res.compact_revision) > 0 || res.canceled) {
      // The revisions we asked for are compacted away (or etcd dropped the watch): snapshot.
      this.lost({ now: true });
      return;
    }
    let batch: WatchEvent[] = [];
    let rev = 0;
    const flush = () => {
      if (batch.length) this.deliver({ kind: 'events', revision: rev, events: batch });
      batch = [];
    };
    for (const ev of res.events ?? []) {
      const r = Number(ev.kv.mod_revision);
      if (r < this.next) continue;
      if (r !== rev) flush();
      rev = r;
      const e: WatchEvent = {
        type: ev.type === 'Delete' ? 'delete' : 'put',
        kv: this.store.kv(ev.kv),
      };
      if (ev.prev_kv) e.prevKv = this.store.kv(ev.prev_kv);
      batch.push(e);
    }
    flush();
    if (rev) this.next = rev + 1;
  }

  private deliver(msg: WatchMessage): void {
    if (this.closed) return;
    try {
      this.onMessage(msg);
    } catch {
      // A watcher's bug must not break the watch.
    }
  }

  /** The stream broke or events were lost: resync from a snapshot, retrying while etcd is away. */
  private lost(options: { now?: boolean } = {}): void {
    this.drop();
    if (this.closed || this.resyncing) return;
    this.resyncing = true;
    const delay = options.now ? 0 : this.retryMs;
    setTimeout(() => void this.resync(), delay);
  }

  private async resync(): Promise<void> {
    while (!this.closed && !this.store.isClosed) {
      try {
        const snap = await this.store.list(this.prefix);
        if (this.closed) break;
        this.deliver({ kind: 'resync', revision: snap.revision, kvs: snap.kvs });
        this.next = snap.revision + 1;
        await this.connect();
        this.retryMs = 100;
        // The new stream may already be gone (compacted again, broken): go round once more.
        if (this.stream) break;
      } catch {
        await this.store.nap(this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, this.store.maxRetryMs);
      }
    }
    this.resyncing = false;
  }
}

// ---- lease keep-alives ------------------------------------------------------------------------------

interface KeepAliveRes {
  ID: string;
  TTL: string;
}

/** One LeaseKeepAlive stream shared by all leases of a store; answers come back in order per id. */
class KeepAliveStream {
  broken = false;
  private stream: Promise<Stream<object, KeepAliveRes>>;
  private readonly waiting = new Map<string, ((ttl: number | Error) => void)[]>();

  constructor(private readonly store: EtcdKv) {
    this.stream = within(
      store.client.leaseClient.leaseKeepAlive() as unknown as Promise<Stream<object, KeepAliveRes>>,
      store.timeoutMs,
      'lease keep-alive',
    ).then((s) => {
      s.on('data', (res) => {
        const q = this.waiting.get(String(res.ID));
        q?.shift()?.(Number(res.TTL));
        if (q && q.length === 0) this.waiting.delete(String(res.ID));
      });
      const fail = (e?: unknown) =>
        this.fail(mapError(e ?? new Error('keep-alive stream ended'), 'lease keep-alive'));
      s.on('error', fail);
      s.on('end', fail);
      return s;
    });
    this.stream.catch((e) => this.fail(mapError(e, 'lease keep-alive')));
  }

  async refresh(id: number): Promise<number> {
    const s = await this.stream;
    const answer = new Promise<number>((resolve, reject) => {
      const key = String(id);
      const q = this.waiting.get(key) ?? [];
      q.push((r) => (r instanceof Error ? reject(r) : resolve(r)));
      this.waiting.set(key, q);
    });
    s.write({ ID: String(id) });
    return within(answer, this.store.timeoutMs, `keep lease ${id} alive`).catch((e) => {
      // A lost answer leaves the per-id queue out of step: start a fresh stream next time.
      this.fail(e);
      throw e;
    });
  }

  private fail(e: Error): void {
    this.broken = true;
    for (const q of this.waiting.values()) for (const w of q) w(e);
    this.waiting.clear();
    this.close();
  }

  close(): void {
    this.broken = true;
    this.stream.then((s) => s.cancel()).catch(() => undefined);
  }
}
