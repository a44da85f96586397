// This host's membership in the cluster: one lease, kept alive, and everything other hosts need
// to reach this host's endpoints published on it.
//
// Owns: the lease, /vxnet/members/<hostId>, and the PeerRecords under /vxnet/peers/ of this
// host's endpoints; also the daemon's view of whether the store answers (`state`).
// Why shaped so:
// - Endpoint records (/vxnet/endpoints/) are durable: they hold the allocation (IP, MAC) and must
//   outlive a crash so a restarted daemon can adopt its containers. What other hosts program into
//   their datapath must instead vanish when this host dies, so it is a separate record on the
//   lease: when keep-alives stop (kill -9, host gone), etcd deletes them after the TTL and every
//   other host's peer table withdraws them.
// - The published records are a mirror of this host's endpoint records: one watch on
//   /vxnet/endpoints/ (events, or a resync snapshot after compaction/reconnect) marks keys dirty
//   and one serialised applier puts or deletes the mirror, diffing against what it published, up
//   to 100 records per transaction (a restart re-publishes 1000 endpoints in 10 writes). A
//   restarted daemon re-puts the same values on its new lease: other hosts see no change at all,
//   so their traffic is never disturbed, and the old lease expires with nothing left on it.
// - A lease lost while the store was away (ERR_LEASE_NOT_FOUND) is replaced and everything is
//   re-published; failed writes stay dirty and are retried on the next beat.

import type { Logger } from 'pino';
import { isVxError } from '../errors.js';
import type { Lease, Op, Store, Watcher, WatchMessage } from '../store/store.js';
import {
  ENDPOINTS,
  type EndpointRecord,
  type MemberRecord,
  memberKey,
  PEERS,
  type PeerRecord,
} from './records.js';

export interface MembershipOptions {
  store: Store;
  hostId: string;
  /** This host's tunnel endpoint, published in its records. */
  advertise?: string;
  /**
   * Seconds within which other hosts drop this host's endpoints once it stops renewing
   * (`--host-ttl`). The lease gets one second less: etcd checks expiry every 500 ms and the delete
   * still has to reach the other hosts' datapaths. Keep-alives every lease TTL / 3.
   */
  ttlSeconds: number;
  log: Logger;
}

export interface StoreState {
  status: 'available' | 'unavailable';
  /** When the status last changed (ISO time). */
  since: string;
  /** The last failure's code and message, while unavailable. */
  error?: string;
}

export const DEFAULT_HOST_TTL = 10;
/** Records per transaction (etcd allows 128 operations in one by default). */
const BATCH = 100;

interface Published {
  text: string;
  lease: number;
}

export class Membership {
  private readonly o: MembershipOptions;
  /** This host's endpoint records by peer key. */
  private readonly local = new Map<string, EndpointRecord>();
  private readonly published = new Map<string, Published>();
  private readonly dirty = new Set<string>();
  private lease?: Lease;
  private watcher?: Watcher;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private scheduled = false;
  private beating = false;
  private closed = false;
  private current: StoreState = { status: 'available', since: new Date().toISOString() };

  constructor(o: MembershipOptions) {
    this.o = o;
  }

  get state(): StoreState {
    return this.current;
  }

  get leaseTtl(): number {
    return Math.max(1, this.o.ttlSeconds - 1);
  }

  get leaseId(): number | undefined {
    return this.lease?.id;
  }

  async start(): Promise<void> {
    await this.grant();
    const [eps, pubs] = [await this.o.store.list(ENDPOINTS), await this.o.store.list(PEERS)];
    for (const kv of pubs.kvs) {
      if ((JSON.parse(kv.value) as PeerRecord).host !== this.o.hostId) continue;
      this.published.set(kv.key, { text: kv.value, lease: kv.lease });
      this.dirty.add(kv.key);
    }
    for (const kv of eps.kvs) this.note(kv.key, kv.value);
    this.watcher?.close();
    this.watcher = await this.o.store.watch(ENDPOINTS, (m) => this.onMessage(m), {
      fromRevision: eps.revision + 1,
    });
    this.schedule();
    await this.idle();
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.beat(), (this.leaseTtl * 1000) / 3);
    this.timer.unref();
    this.setState('available');
  }

  /** Resolves when every change seen so far has been applied (or failed and stays dirty). */
  async idle(): Promise<void> {
    while (this.scheduled) await this.running;
    await this.running;
  }

  /** Called by whoever saw the store fail (the API), so `state` turns at once, not at the next beat. */
  noteFailure(e: unknown): void {
    if (isVxError(e, 'ERR_STORE_UNAVAILABLE')) this.setState('unavailable', e);
  }

  /** Stops renewing. The lease is left to expire: a restart within the TTL re-adopts it all. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.watcher?.close();
  }

  private async grant(): Promise<void> {
    const lease = await this.o.store.grantLease({ ttlSeconds: this.leaseTtl });
    const rec: MemberRecord = { host: this.o.hostId, ttl: lease.ttl, since: new Date().toISOString() };
    if (this.o.advertise !== undefined) rec.vtep = this.o.advertise;
    await this.o.store.put(memberKey(this.o.hostId), JSON.stringify(rec), { lease: lease.id });
    this.lease = lease;
    // Everything published on an earlier lease moves to this one.
    for (const key of [...this.local.keys(), ...this.published.keys()]) this.dirty.add(key);
    this.o.log.info({ lease: lease.id, ttl: lease.ttl }, 'joined the cluster');
  }

  /** One keep-alive; a lost lease is replaced, failures only change `state`. */
  private async beat(): Promise<void> {
    if (this.beating || this.closed) return;
    this.beating = true;
    try {
      try {
        if (this.lease) await this.lease.keepAlive();
        else await this.grant();
      } catch (e) {
        if (!isVxError(e, 'ERR_LEASE_NOT_FOUND')) throw e;
        this.o.log.warn({ lease: this.lease?.id }, 'lease lost; joining again');
        this.lease = undefined;
        await this.grant();
      }
      this.setState('available');
      if (this.dirty.size > 0) this.schedule();
    } catch (e) {
      this.setState('unavailable', e);
    } finally {
      this.beating = false;
    }
  }

  private setState(status: StoreState['status'], e?: unknown): void {
    const error =
      e === undefined ? undefined : `${(e as { code?: string }).code ?? 'ERR'}: ${(e as Error).message}`;
    if (status !== this.current.status) {
      if (status === 'unavailable') this.o.log.warn({ error }, 'cluster store unavailable');
      else this.o.log.info('cluster store available again');
      this.current = { status, since: new Date().toISOString() };
    }
    if (error !== undefined) this.current.error = error;
    else delete this.current.error;
  }

  private note(endpointKey: string, value: string | undefined): void {
    const key = PEERS + endpointKey.slice(ENDPOINTS.length);
    const ep = value === undefined ? undefined : (JSON.parse(value) as EndpointRecord);
    if (ep?.host === this.o.hostId) this.local.set(key, ep);
    else this.local.delete(key);
    this.dirty.add(key);
  }

  private onMessage(m: WatchMessage): void {
    if (m.kind === 'resync') {
      for (const key of [...this.local.keys(), ...this.published.keys()]) this.dirty.add(key);
      this.local.clear();
      for (const kv of m.kvs) this.note(kv.key, kv.value);
    } else {
      for (const e of m.events) this.note(e.kv.key, e.type === 'delete' ? undefined : e.kv.value);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    this.running = this.running.then(() => this.apply());
  }

  private async apply(): Promise<void> {
    this.scheduled = false;
    const keys = [...this.dirty];
    this.dirty.clear();
    for (let i = 0; i < keys.length; i += BATCH) {
      try {
        await this.applyBatch(keys.slice(i, i + BATCH));
      } catch (e) {
        for (const k of keys.slice(i)) this.dirty.add(k);
        if (isVxError(e, 'ERR_LEASE_NOT_FOUND')) {
          this.lease = undefined;
          void this.beat();
        } else this.setState('unavailable', e);
        this.o.log.warn({ err: e }, 'could not publish endpoints; retrying');
        return;
      }
    }
  }

  /** One transaction for a batch of keys: puts of what changed, deletes of what went. */
  private async applyBatch(keys: string[]): Promise<void> {
    const lease = this.lease;
    const ops: Op[] = [];
    const done: (() => void)[] = [];
    for (const key of keys) {
      const ep = this.local.get(key);
      const have = this.published.get(key);
      if (ep === undefined) {
        if (have === undefined) continue;
        ops.push({ type: 'delete', key });
        done.push(() => this.published.delete(key));
        continue;
      }
      if (!lease) {
        this.dirty.add(key);
        continue;
      }
      const rec: PeerRecord = {
        host: ep.host,
        networkId: ep.networkId,
        endpointId: ep.id,
        ip: ep.ip,
        mac: ep.mac,
      };
      const vtep = this.o.advertise ?? ep.vtep;
      if (vtep !== undefined) rec.vtep = vtep;
      const text = JSON.stringify(rec);
      if (have?.text === text && have.lease === lease.id) continue;
      ops.push({ type: 'put', key, value: text, lease: lease.id });
      done.push(() => this.published.set(key, { text, lease: lease.id }));
    }
    if (ops.length === 0) return;
    await this.o.store.txn({ compare: [], success: ops });
    for (const f of done) f();
  }
}
