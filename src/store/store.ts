// The cluster store interface: a small key-value store with revisions, shaped like etcd v3.
//
// Owns: the types every store implementation (memory, embedded, etcd) shares and the validation
// of what callers hand in. Why this shape: the daemon needs compare-and-swap transactions
// (allocators), prefix watches that can say "you missed events, here is a snapshot" (the peer
// table), and leases (host membership). etcd v3 offers exactly that, so the etcd implementation
// is a thin adapter and the embedded one reproduces its semantics on one host:
// - one global revision, bumped once per write transaction that changes something;
// - each key carries createRevision, modRevision and version (etcd's meanings);
// - a watch delivers events in revision order, or a `resync` with a full snapshot of the prefix
//   when the events it asked for are no longer available (compaction, reconnect, restart).

import { VxError } from '../errors.js';

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** Number of puts since creation (1 after the first). */
  version: number;
  /** Lease id the key is attached to; 0 when none. */
  lease: number;
}

/** A condition on one key; all of a transaction's compares must hold for `success` to run. */
export type Compare =
  | { key: string; modRevision: number }
  | { key: string; value: string }
  | { key: string; absent: true };

export type Op =
  | { type: 'put'; key: string; value: string; lease?: number }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string };

export interface Txn {
  compare: Compare[];
  success: Op[];
  failure?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  /** The store's revision after the transaction (unchanged when nothing was written). */
  revision: number;
}

export interface ListResult {
  /** The revision the listing was taken at: watch from `revision + 1` to miss nothing. */
  revision: number;
  kvs: KeyValue[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For a delete: the key with value '' and modRevision = the deleting revision. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

/**
 * What a watcher receives. `events`: changes in revision order. `resync`: the events since the
 * requested revision are gone; `kvs` is the whole prefix at `revision`, to diff against what the
 * watcher holds. Events after a resync continue from `revision + 1`.
 */
export type WatchMessage =
  | { kind: 'events'; revision: number; events: WatchEvent[] }
  | { kind: 'resync'; revision: number; kvs: KeyValue[] };

export interface WatchOptions {
  /** First revision to deliver; default: the next revision (only future changes). */
  fromRevision?: number;
}

export interface Watcher {
  close(): void;
}

export interface Lease {
  readonly id: number;
  readonly ttl: number;
  /** Restarts the lease's TTL. Fails with ERR_LEASE_NOT_FOUND once it has expired. */
  keepAlive(): Promise<void>;
  /** Deletes the lease and every key attached to it. Can run twice. */
  revoke(): Promise<void>;
}

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  list(prefix: string): Promise<ListResult>;
  put(key: string, value: string, options?: { lease?: number }): Promise<TxnResult>;
  delete(key: string): Promise<TxnResult>;
  txn(txn: Txn): Promise<TxnResult>;
  watch(prefix: string, onMessage: (msg: WatchMessage) => void, options?: WatchOptions): Promise<Watcher>;
  grantLease(options: { ttlSeconds: number }): Promise<Lease>;
  close(): Promise<void>;
}

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1 << 20;

export function checkKey(key: unknown, what = 'key'): string {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new VxError(
      'ERR_STORE_BAD_KEY',
      `${what} must be a non-empty string of at most ${MAX_KEY_BYTES} bytes`,
    );
  }
  return key;
}

export function checkValue(value: unknown): string {
  if (typeof value !== 'string' || Buffer.byteLength(value) > MAX_VALUE_BYTES) {
    throw new VxError('ERR_STORE_BAD_VALUE', `value must be a string of at most ${MAX_VALUE_BYTES} bytes`);
  }
  return value;
}

export function checkTxn(txn: Txn): void {
  if (!txn || !Array.isArray(txn.compare) || !Array.isArray(txn.success)) {
    throw new VxError('ERR_STORE_BAD_TXN', 'txn needs compare[] and success[]');
  }
  for (const c of txn.compare) checkCompare(c);
  for (const op of [...txn.success, ...(txn.failure ?? [])]) checkOp(op);
}

function checkCompare(c: Compare): void {
  checkKey(c?.key, 'compare.key');
  const n = ['modRevision', 'value', 'absent'].filter((k) => k in c).length;
  if (n !== 1)
    throw new VxError(
      'ERR_STORE_BAD_TXN',
      `compare on "${c.key}" needs exactly one of modRevision, value, absent`,
    );
}

function checkOp(op: Op): void {
  if (op?.type === 'put') {
    checkKey(op.key);
    checkValue(op.value);
  } else if (op?.type === 'delete') checkKey(op.key);
  else if (op?.type === 'deletePrefix') checkKey(op.prefix, 'prefix');
  else throw new VxError('ERR_STORE_BAD_TXN', `unknown op type "${(op as { type?: string })?.type}"`);
}

export function checkTtl(ttlSeconds: unknown): number {
  if (
    typeof ttlSeconds !== 'number' ||
    !Number.isInteger(ttlSeconds) ||
    ttlSeconds < 1 ||
    ttlSeconds > 86400
  ) {
    throw new VxError('ERR_STORE_BAD_TTL', 'options.ttlSeconds must be an integer from 1 to 86400');
  }
  return ttlSeconds;
}

/** Retries `attempt` while it returns undefined (a lost compare-and-swap race), up to `tries` times. */
export async function retryCas<T>(
  attempt: () => Promise<T | undefined>,
  options: { tries?: number; what: string },
) {
  const tries = options.tries ?? 64;
  for (let i = 0; i < tries; i++) {
    const r = await attempt();
    if (r !== undefined) return r;
  }
  throw new VxError('ERR_STORE_CONFLICT', `${options.what}: gave up after ${tries} conflicting transactions`);
}

/** A transaction's worth of compares and ops that yields `value` when it commits. */
export interface Plan<T> {
  value: T;
  compare: Compare[];
  success: Op[];
}

/**
 * Builds a plan and commits it, rebuilding after a lost race. Plans from several allocators can
 * be merged into one plan (concatenate compares and ops), so a network's subnet, VNI and record
 * are written all or nothing.
 */
export function transact<T>(
  store: Store,
  build: () => Promise<Plan<T>>,
  options: { tries?: number; what: string },
) {
  return retryCas(async () => {
    const plan = await build();
    const r = await store.txn({ compare: plan.compare, success: plan.success });
    return r.succeeded ? { value: plan.value } : undefined;
  }, options).then((r) => r.value);
}
