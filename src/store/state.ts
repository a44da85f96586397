// The store's state machine: keys with revisions, leases, and how a transaction changes them.
//
// Owns: the data and the pure rules (etcd v3's). It knows nothing of files, timers or watchers,
// so the same code runs the memory store and replays the embedded store's log: a write is first
// *planned* into a list of mutations (puts and deletes of existing keys) at one revision, and
// that list is what gets journalled and applied — replay applies the very same list.

import { VxError } from '../errors.js';
import type { Compare, KeyValue, Op, Txn, WatchEvent } from './store.js';

/** A planned change: put key=value (attached to lease, 0 = none), or delete an existing key. */
export type Mutation = ['p', string, string, number] | ['d', string];

export interface LeaseState {
  ttl: number;
  keys: Set<string>;
}

export interface SnapshotData {
  revision: number;
  nextLeaseId: number;
  kvs: KeyValue[];
  leases: [number, number][];
}

export class KvState {
  readonly kvs = new Map<string, KeyValue>();
  readonly leases = new Map<number, LeaseState>();
  revision = 0;
  nextLeaseId = 1;

  holds(c: Compare): boolean {
    const kv = this.kvs.get(c.key);
    if ('absent' in c) return kv === undefined;
    if ('value' in c) return kv !== undefined && kv.value === c.value;
    return (kv?.modRevision ?? 0) === c.modRevision;
  }

  /** Decides a transaction and turns its chosen branch into mutations; throws on invalid ops. */
  plan(txn: Txn): { succeeded: boolean; mutations: Mutation[] } {
    const succeeded = txn.compare.every((c) => this.holds(c));
    const ops = succeeded ? txn.success : (txn.failure ?? []);
    return { succeeded, mutations: this.planOps(ops) };
  }

  private planOps(ops: Op[]): Mutation[] {
    const touched = new Set<string>();
    const out: Mutation[] = [];
    const touch = (key: string) => {
      if (touched.has(key))
        throw new VxError('ERR_STORE_BAD_TXN', `key "${key}" appears twice in one transaction`);
      touched.add(key);
    };
    for (const op of ops) {
      if (op.type === 'put') {
        touch(op.key);
        const lease = op.lease ?? 0;
        if (lease !== 0 && !this.leases.has(lease))
          throw new VxError('ERR_LEASE_NOT_FOUND', `lease ${lease} not found`);
        out.push(['p', op.key, op.value, lease]);
      } else if (op.type === 'delete') {
        touch(op.key);
        if (this.kvs.has(op.key)) out.push(['d', op.key]);
      } else {
        for (const key of this.keysWithPrefix(op.prefix)) {
          touch(key);
          out.push(['d', key]);
        }
      }
    }
    return out;
  }

  /** Applies planned mutations at revision + 1 (when there are any) and returns the events. */
  apply(mutations: Mutation[]): WatchEvent[] {
    if (mutations.length === 0) return [];
    const rev = this.revision + 1;
    this.revision = rev;
    return mutations.map((m) =>
      m[0] === 'p' ? this.putAt(rev, m[1], m[2], m[3]) : this.deleteAt(rev, m[1]),
    );
  }

  private putAt(rev: number, key: string, value: string, lease: number): WatchEvent {
    const prev = this.kvs.get(key);
    const kv: KeyValue = {
      key,
      value,
      createRevision: prev?.createRevision ?? rev,
      modRevision: rev,
      version: (prev?.version ?? 0) + 1,
      lease,
    };
    if (prev?.lease) this.leases.get(prev.lease)?.keys.delete(key);
    if (lease) this.leases.get(lease)?.keys.add(key);
    this.kvs.set(key, kv);
    return prev ? { type: 'put', kv, prevKv: prev } : { type: 'put', kv };
  }

  private deleteAt(rev: number, key: string): WatchEvent {
    const prev = this.kvs.get(key)!;
    if (prev.lease) this.leases.get(prev.lease)?.keys.delete(key);
    this.kvs.delete(key);
    const kv: KeyValue = { key, value: '', createRevision: 0, modRevision: rev, version: 0, lease: 0 };
    return { type: 'delete', kv, prevKv: prev };
  }

  keysWithPrefix(prefix: string): string[] {
    const keys: string[] = [];
    for (const k of this.kvs.keys()) if (k.startsWith(prefix)) keys.push(k);
    return keys.sort();
  }

  list(prefix: string): KeyValue[] {
    return this.keysWithPrefix(prefix).map((k) => this.kvs.get(k)!);
  }

  grantLease(id: number, ttl: number): void {
    this.leases.set(id, { ttl, keys: new Set() });
    if (id >= this.nextLeaseId) this.nextLeaseId = id + 1;
  }

  /** The mutations revoking a lease implies: delete every key attached to it. */
  planRevoke(id: number): Mutation[] {
    const lease = this.leases.get(id);
    return lease ? [...lease.keys].sort().map((k): Mutation => ['d', k]) : [];
  }

  dropLease(id: number): void {
    this.leases.delete(id);
  }

  snapshot(): SnapshotData {
    return {
      revision: this.revision,
      nextLeaseId: this.nextLeaseId,
      kvs: this.list(''),
      leases: [...this.leases].map(([id, l]): [number, number] => [id, l.ttl]),
    };
  }

  static fromSnapshot(s: SnapshotData): KvState {
    const st = new KvState();
    st.revision = s.revision;
    st.nextLeaseId = s.nextLeaseId;
    for (const [id, ttl] of s.leases) st.grantLease(id, ttl);
    for (const kv of s.kvs) {
      st.kvs.set(kv.key, kv);
      if (kv.lease) st.leases.get(kv.lease)?.keys.add(kv.key);
    }
    return st;
  }
}
