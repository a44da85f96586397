// Cluster keys of encrypted overlays: generated once for the cluster, shared through the store,
// rotated so that no packet is ever sent under a key some host cannot open.
//
// Owns the key ring record and this host's acknowledgement (store keys below), the rotation
// schedule, and the derivation of per-pair ESP SAs from a cluster key. It does not touch the
// datapath: `apply` (a hook the daemon passes) gets the ring every time it changes and programs
// the ESP SAs (src/crypto/esp.ts).
//
// Store keys (docs/API.md):
//   /vxnet/keys/ring          KeyRingRecord: up to KEEP_KEYS keys (oldest first), `primary` (the key
//                             every host sends with) and `pending` (installed for receiving only)
//   /vxnet/keys/acks/<host>   AckRecord: the key ids this host has installed for receiving
// The secrets live only there (etcd can be TLS + client certs, src/store/etcd.ts), in WASM memory
// once expanded, and in an optional local file of mode 0600 (read back only by a start whose
// store does not answer: restoreFromFile). They are never logged: logs carry key ids.
//
// Rotation (any host, or `vxnet keys rotate`; by schedule every 12 h by default):
//   1. add: a new random key N joins the ring as `pending` (compare-and-swap on the ring's
//      revision, so two hosts racing add one key); the oldest key is dropped so KEEP_KEYS remain.
//      The dropped key is two rotations old: nobody has sent with it since the previous switch.
//   2. install: every host, watching the ring, installs all ring keys for receiving (`apply`),
//      removes the dropped one, and then writes its ack listing the installed ids.
//   3. switch: when the ack of every live host (/vxnet/members/, the membership leases) lists N,
//      whichever host sees it first swaps `primary` to N (compare-and-swap again). Every host then
//      sends with N; the previous primary stays installed for packets still in flight.
// So a key is used for sending only after every live host can open it, and a host that is slow
// or stuck holds the switch back (`status()` names it) rather than losing traffic.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';

export { type DerivedSa, deriveSa } from '../crypto/esp-sas.js';

import { VxError } from '../errors.js';
import type { Store, Watcher, WatchMessage } from '../store/store.js';
import { MEMBERS } from './records.js';

export const KEYS_PREFIX = '/vxnet/keys/';
export const KEY_RING = '/vxnet/keys/ring';
export const ACKS = '/vxnet/keys/acks/';
export const ackKey = (hostId: string) => ACKS + hostId;
/** Keys kept in the ring (Docker keeps 3). */
export const KEEP_KEYS = 3;
export const DEFAULT_ROTATE_INTERVAL_MS = 12 * 3600 * 1000;
/** AES-128, as Docker's encrypted overlay. */
export const CLUSTER_KEY_BYTES = 16;

export interface ClusterKeyRecord {
  id: number;
  /** base64 of CLUSTER_KEY_BYTES random bytes. */
  secret: string;
  /** ISO time the key was generated. */
  created: string;
}

export interface KeyRingRecord {
  keys: ClusterKeyRecord[];
  primary: number;
  pending: number | null;
}

export interface AckRecord {
  host: string;
  keys: number[];
  at: string;
}

/** What `apply` receives: every key to install for receiving, and the one to send with. */
export interface AppliedKeys {
  keys: { id: number; secret: Buffer }[];
  primary: number;
  pending: number | null;
}

/** The ring without secrets (what the API and CLI show). */
export interface KeyStatus {
  keys: { id: number; created: string }[];
  primary: number;
  pending: number | null;
  /** With a pending key: the live hosts that have not installed it yet. */
  waitingFor: string[];
}

export interface KeyManagerOptions {
  store: Store;
  hostId: string;
  log: Logger;
  /** Programs the datapath; called serialised, after every ring change. */
  apply: (keys: AppliedKeys) => void | Promise<void>;
  /** The hosts that must install a key before it is used (default: the members under /vxnet/members/). */
  hosts?: () => Promise<string[]>;
  /** Rotate when the primary key is older than this (ms); 0 = never by schedule. Default 12 h. */
  rotateEveryMs?: number;
  /** A local copy of the ring (mode 0600), e.g. <state-dir>/keys.json. */
  keyFile?: string;
  /** Wait before retrying a failed step (store unavailable) or re-checking a pending rotation, ms. Default 1000. */
  retryMs?: number;
  now?: () => number;
}

export class KeyManager {
  readonly #o: KeyManagerOptions;
  #watcher: Watcher | undefined;
  #ring: KeyRingRecord | undefined;
  #acks = new Map<string, AckRecord>();
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #waiters: { id: number; resolve: () => void; fail: (e: Error) => void }[] = [];
  #appliedText = '';
  #pendingPoll: NodeJS.Timeout | undefined;
  #ackedText = '';

  constructor(o: KeyManagerOptions) {
    const every = o.rotateEveryMs ?? DEFAULT_ROTATE_INTERVAL_MS;
    if (!Number.isInteger(every) || every < 0) {
      throw new VxError(
        'ERR_INVALID_ARG',
        `options.rotateEveryMs must be a non-negative integer, got ${every}`,
      );
    }
    this.#o = { ...o, rotateEveryMs: every };
  }

  /** Creates the ring if the cluster has none, watches it, installs the keys and acknowledges. */
  async start(): Promise<void> {
    const { store } = this.#o;
    const first = newKey(1, this.#now());
    await store.txn({
      compare: [{ key: KEY_RING, absent: true }],
      success: [
        { type: 'put', key: KEY_RING, value: JSON.stringify({ keys: [first], primary: 1, pending: null }) },
      ],
    });
    const listed = await store.list(KEYS_PREFIX);
    this.#load(listed.kvs);
    this.#watcher = await store.watch(KEYS_PREFIX, (m) => this.#onWatch(m), {
      fromRevision: listed.revision + 1,
    });
    this.#kick();
    await this.#chain;
  }

  /**
   * The store is away at the start: installs the ring of the key file (what this host last
   * applied) so encrypted ports restored from local state keep forwarding, encrypted, until
   * start() takes over (it does not apply the same ring again). False without a readable file:
   * nothing is installed and encrypted ports send nothing (never cleartext).
   */
  async restoreFromFile(): Promise<boolean> {
    const f = this.#o.keyFile;
    if (!f) return false;
    let ring: KeyRingRecord;
    try {
      ring = parseRing(readFileSync(f, 'utf8'));
    } catch (err) {
      const e = err as VxError & NodeJS.ErrnoException;
      this.#o.log.warn({ err: { code: e.code, message: e.message } }, 'no cluster keys in the key file');
      return false;
    }
    const run = this.#chain.then(async () => {
      if (this.#appliedText !== '' || this.#closed) return false; // start() was first
      await this.#o.apply(toApplied(ring));
      this.#appliedText = appliedText(ring);
      this.#o.log.info(
        { keys: ring.keys.map((k) => k.id), primary: ring.primary, pending: ring.pending },
        'keys applied from the key file (cluster store unavailable)',
      );
      return true;
    });
    this.#chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Starts a rotation (step 1) and resolves once the new key is the primary everywhere it matters
   * (step 3 done), or rejects with ERR_ROTATION_TIMEOUT naming the hosts that have not installed it.
   */
  async rotate(opts: { timeoutMs?: number } = {}): Promise<{ id: number }> {
    const id = await this.#addPending();
    await this.#waitPrimary(id, opts.timeoutMs ?? 30_000);
    return { id };
  }

  /** The ring without secrets, and who a pending rotation waits for. */
  async status(): Promise<KeyStatus> {
    const ring = this.#ring;
    if (!ring) throw new VxError('ERR_KEYS_NOT_READY', 'the key manager has not started');
    const waitingFor = ring.pending === null ? [] : await this.#missingAcks(ring.pending);
    return {
      keys: ring.keys.map((k) => ({ id: k.id, created: k.created })),
      primary: ring.primary,
      pending: ring.pending,
      waitingFor,
    };
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#pendingPoll) clearTimeout(this.#pendingPoll);
    for (const w of this.#waiters.splice(0))
      w.fail(new VxError('ERR_KEYS_CLOSED', 'the key manager was closed'));
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  async #addPending(): Promise<number> {
    const { store } = this.#o;
    for (let attempt = 0; attempt < 10; attempt++) {
      const kv = await store.get(KEY_RING);
      if (!kv) throw new VxError('ERR_KEYS_NOT_READY', 'the cluster has no key ring yet');
      const ring = parseRing(kv.value);
      if (ring.pending !== null) return ring.pending; // a rotation is under way: join it
      const id = Math.max(...ring.keys.map((k) => k.id)) + 1;
      const next: KeyRingRecord = {
        keys: [...ring.keys.slice(-(KEEP_KEYS - 1)), newKey(id, this.#now())],
        primary: ring.primary,
        pending: id,
      };
      const r = await store.txn({
        compare: [{ key: KEY_RING, modRevision: kv.modRevision }],
        success: [{ type: 'put', key: KEY_RING, value: JSON.stringify(next) }],
      });
      if (r.succeeded) {
        this.#o.log.info(
          { key: id, retired: ring.keys.slice(0, -(KEEP_KEYS - 1)).map((k) => k.id) },
          'key rotation started',
        );
        return id;
      }
    }
    throw new VxError('ERR_STORE_CONFLICT', 'the key ring kept changing under the rotation');
  }

  #waitPrimary(id: number, timeoutMs: number): Promise<void> {
    if (this.#ring && this.#ring.primary >= id) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        id,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
        fail: (e: Error) => {
          clearTimeout(t);
          reject(e);
        },
      };
      const t = setTimeout(async () => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        const missing = await this.#missingAcks(id).catch(() => [] as string[]);
        reject(
          new VxError(
            'ERR_ROTATION_TIMEOUT',
            `key ${id} is not in use after ${timeoutMs} ms: waiting for host(s) ${missing.join(', ') || '(none)'} to install it`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  #load(kvs: { key: string; value: string }[]): void {
    for (const kv of kvs) this.#put(kv.key, kv.value);
  }

  #put(key: string, value: string): void {
    if (key === KEY_RING) {
      this.#ring = parseRing(value);
    } else if (key.startsWith(ACKS)) {
      try {
        this.#acks.set(key.slice(ACKS.length), JSON.parse(value) as AckRecord);
      } catch {
        this.#acks.delete(key.slice(ACKS.length));
      }
    }
  }

  #onWatch(m: WatchMessage): void {
    if (this.#closed) return;
    if (m.kind === 'resync') {
      this.#acks.clear();
      this.#load(m.kvs);
    } else {
      for (const e of m.events) {
        if (e.type === 'put') this.#put(e.kv.key, e.kv.value);
        else if (e.kv.key.startsWith(ACKS)) this.#acks.delete(e.kv.key.slice(ACKS.length));
      }
    }
    this.#kick();
  }

  /** Queues one pass of the serialised applier. */
  #kick(): void {
    this.#chain = this.#chain
      .then(() => this.#step())
      .catch((err) => {
        this.#o.log.warn(
          { err: { code: (err as VxError).code, message: (err as Error).message } },
          'key manager step failed; retrying',
        );
        // E.g. the store is away: try again later even if no watch event comes.
        if (!this.#closed) setTimeout(() => this.#kick(), this.#o.retryMs ?? 1000).unref();
      });
  }

  /** Applies the ring if it changed, acknowledges, completes a pending switch, resolves waiters, schedules. */
  async #step(): Promise<void> {
    const ring = this.#ring;
    if (!ring || this.#closed) return;
    const ids = ring.keys.map((k) => k.id);
    const text = appliedText(ring);
    if (text !== this.#appliedText) {
      await this.#o.apply(toApplied(ring));
      this.#appliedText = text;
      this.#writeKeyFile(ring);
      this.#o.log.info({ keys: ids, primary: ring.primary, pending: ring.pending }, 'keys applied');
    }
    if (text !== this.#ackedText) {
      // Separate from applying: a failed put (store away) is retried on the next pass.
      const ack: AckRecord = { host: this.#o.hostId, keys: ids, at: new Date(this.#now()).toISOString() };
      await this.#o.store.put(ackKey(this.#o.hostId), JSON.stringify(ack));
      this.#ackedText = text;
    }
    if (ring.pending !== null) {
      if ((await this.#missingAcks(ring.pending)).length === 0) await this.#switch(ring);
      // Hosts can also leave (membership lease gone) without any event under /vxnet/keys/: look
      // again while the rotation is pending.
      else if (!this.#pendingPoll) {
        this.#pendingPoll = setTimeout(() => {
          this.#pendingPoll = undefined;
          if (!this.#closed) this.#kick();
        }, this.#o.retryMs ?? 1000);
        this.#pendingPoll.unref();
      }
    }
    for (const w of this.#waiters.filter((x) => ring.primary >= x.id)) {
      this.#waiters = this.#waiters.filter((x) => x !== w);
      w.resolve();
    }
    this.#schedule(ring);
  }

  async #switch(ring: KeyRingRecord): Promise<void> {
    const kv = await this.#o.store.get(KEY_RING);
    if (!kv || kv.value !== JSON.stringify(ring)) return; // changed meanwhile: the watch brings it
    const next: KeyRingRecord = { ...ring, primary: ring.pending as number, pending: null };
    const r = await this.#o.store.txn({
      compare: [{ key: KEY_RING, modRevision: kv.modRevision }],
      success: [{ type: 'put', key: KEY_RING, value: JSON.stringify(next) }],
    });
    if (r.succeeded)
      this.#o.log.info({ primary: next.primary }, 'every host has the new key: switched to it');
  }

  async #missingAcks(id: number): Promise<string[]> {
    const hosts = this.#o.hosts ? await this.#o.hosts() : await this.#members();
    const all = new Set([...hosts, this.#o.hostId]);
    return [...all].filter((h) => !this.#acks.get(h)?.keys.includes(id)).sort();
  }

  async #members(): Promise<string[]> {
    const r = await this.#o.store.list(MEMBERS);
    return r.kvs.map((kv) => kv.key.slice(MEMBERS.length));
  }

  #schedule(ring: KeyRingRecord): void {
    const every = this.#o.rotateEveryMs as number;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (every === 0 || this.#closed || ring.pending !== null) return;
    const primary = ring.keys.find((k) => k.id === ring.primary);
    const due = (primary ? Date.parse(primary.created) : 0) + every;
    // A little jitter so the hosts of a cluster do not all race for the same compare-and-swap.
    const wait = Math.max(0, due - this.#now()) + Math.floor(Math.random() * Math.min(1000, every / 10));
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        const r = this.#ring;
        if (!r || r.pending !== null || r.primary !== ring.primary) return;
        this.#addPending().catch((err) =>
          this.#o.log.warn(
            { err: { code: err.code, message: err.message } },
            'scheduled key rotation failed',
          ),
        );
      },
      Math.min(wait, 0x7fffffff),
    );
    this.#timer.unref();
  }

  #writeKeyFile(ring: KeyRingRecord): void {
    const f = this.#o.keyFile;
    if (!f) return;
    writeFileSync(f, JSON.stringify(ring), { mode: 0o600 });
    chmodSync(f, 0o600); // writeFileSync's mode only applies when it creates the file
  }
}

/**
 * What the datapath was given, to tell a ring that changed: ids, primary, pending, and a digest of
 * the secrets (a ring from the key file may carry the same ids as a store's new ring, e.g. after
 * the cluster store was rebuilt).
 */
function appliedText(ring: KeyRingRecord): string {
  const digest = createHash('sha256');
  for (const k of ring.keys) digest.update(`${k.id}:${k.secret};`);
  return JSON.stringify([ring.keys.map((k) => k.id), ring.primary, ring.pending, digest.digest('hex')]);
}

function toApplied(ring: KeyRingRecord): AppliedKeys {
  return {
    keys: ring.keys.map((k) => ({ id: k.id, secret: Buffer.from(k.secret, 'base64') })),
    primary: ring.primary,
    pending: ring.pending,
  };
}

function newKey(id: number, now: number): ClusterKeyRecord {
  return {
    id,
    secret: randomBytes(CLUSTER_KEY_BYTES).toString('base64'),
    created: new Date(now).toISOString(),
  };
}

export function parseRing(text: string): KeyRingRecord {
  let r: KeyRingRecord;
  try {
    r = JSON.parse(text) as KeyRingRecord;
  } catch (cause) {
    throw new VxError('ERR_BAD_KEY_RING', `${KEY_RING} is not JSON`, { cause });
  }
  if (!Array.isArray(r?.keys) || r.keys.length === 0 || !r.keys.some((k) => k.id === r.primary)) {
    throw new VxError('ERR_BAD_KEY_RING', `${KEY_RING} has no keys or no primary key`);
  }
  return r;
}
