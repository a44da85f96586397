// The peer table: endpoints on other hosts, from the store, applied to this host's VXLAN ports.
//
// Owns: one watch on /vxnet/peers/ (the (IP, MAC, tunnel endpoint) records every host publishes
// on its lease, membership.ts) and one serialised applier. The watch keeps a map of every record
// (events patch it; a `resync` -- after compaction or a reconnect -- replaces it wholesale, so
// nothing stale survives); each change marks its network dirty, and the applier hands each dirty
// network's whole remote table (records whose host is not this one and that carry a tunnel
// endpoint) to `OverlayPorts.setRemotes`, which diffs against what it programmed.
// Whole tables per network, not per-endpoint calls, so a missed or reordered event can never
// leave a wrong entry behind: the last applied table is always the store's view. A host that
// dies stops renewing its lease, etcd deletes its records, and the delete events withdraw them.
// While the store is away nothing changes here: the datapath keeps forwarding on the last table.
// Networks without a sandbox here are skipped; when a sandbox appears, `touch(network)` makes
// the applier send its table (the sandbox's first endpoint also arrives as an event). A table
// that could not be applied (the store did not answer) stays dirty and is retried.

import type { Logger } from 'pino';
import type { Store, Watcher, WatchMessage } from '../store/store.js';
import type { OverlayPorts, PortRef, RemoteEndpoint } from './ports.js';
import { PEERS, type PeerRecord } from './records.js';

export interface PeerTableOptions {
  store: Store;
  ports: OverlayPorts;
  hostId: string;
  log: Logger;
  /** The port reference of a network id, or undefined when it has no sandbox on this host. */
  localPort(networkId: string): Promise<PortRef | undefined>;
  /** Told each table once the port holds it (the daemon keeps it for a start without the store). */
  onApplied?(ref: PortRef, table: RemoteEndpoint[]): void;
}

export class PeerTable {
  private readonly o: PeerTableOptions;
  private readonly endpoints = new Map<string, PeerRecord>();
  private retry?: NodeJS.Timeout;
  private closed = false;
  private readonly dirty = new Set<string>();
  private readonly applied = new Map<string, string>();
  private watcher?: Watcher;
  private running: Promise<void> = Promise.resolve();
  private scheduled = false;

  constructor(o: PeerTableOptions) {
    this.o = o;
  }

  async start(): Promise<void> {
    const { revision, kvs } = await this.o.store.list(PEERS);
    for (const kv of kvs) this.endpoints.set(kv.key, JSON.parse(kv.value) as PeerRecord);
    for (const ep of this.endpoints.values()) this.dirty.add(ep.networkId);
    this.watcher?.close();
    this.watcher = await this.o.store.watch(PEERS, (m) => this.onMessage(m), {
      fromRevision: revision + 1,
    });
    this.schedule();
    await this.idle();
  }

  /** Re-sends the network's table (its sandbox was just made here). */
  touch(networkId: string): void {
    this.applied.delete(networkId);
    this.dirty.add(networkId);
    this.schedule();
  }

  /** Resolves when every change seen so far has been applied. */
  async idle(): Promise<void> {
    while (this.scheduled) await this.running;
    await this.running;
  }

  /** Remote endpoints of a network as the table holds them. */
  remotes(networkId: string): RemoteEndpoint[] {
    const out: RemoteEndpoint[] = [];
    for (const ep of this.endpoints.values()) {
      if (ep.networkId !== networkId || ep.host === this.o.hostId || ep.vtep === undefined) continue;
      out.push({ ip: ep.ip, mac: ep.mac, vtep: ep.vtep });
    }
    return out.sort((a, b) => a.ip.localeCompare(b.ip));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.watcher?.close();
  }

  private onMessage(m: WatchMessage): void {
    if (m.kind === 'resync') {
      for (const ep of this.endpoints.values()) this.dirty.add(ep.networkId);
      this.endpoints.clear();
      for (const kv of m.kvs) this.endpoints.set(kv.key, JSON.parse(kv.value) as PeerRecord);
      for (const ep of this.endpoints.values()) this.dirty.add(ep.networkId);
    } else {
      for (const e of m.events) {
        const prev = this.endpoints.get(e.kv.key);
        if (prev) this.dirty.add(prev.networkId);
        if (e.type === 'delete') this.endpoints.delete(e.kv.key);
        else {
          const ep = JSON.parse(e.kv.value) as PeerRecord;
          this.endpoints.set(e.kv.key, ep);
          this.dirty.add(ep.networkId);
        }
      }
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.running = this.running.then(() => this.apply());
  }

  private async apply(): Promise<void> {
    this.scheduled = false;
    const networks = [...this.dirty];
    this.dirty.clear();
    for (const id of networks) {
      const table = this.remotes(id);
      const text = JSON.stringify(table);
      try {
        const ref = await this.o.localPort(id);
        if (!ref) {
          this.applied.delete(id);
          continue;
        }
        if (this.applied.get(id) === text) continue;
        await this.o.ports.setRemotes(ref, table);
        this.applied.set(id, text);
        this.o.onApplied?.(ref, table);
        this.o.log.debug({ network: id, remotes: table.length }, 'remote endpoints applied');
      } catch (e) {
        this.o.log.error({ err: e, network: id }, 'could not apply remote endpoints; retrying');
        this.dirty.add(id);
      }
    }
    if (this.dirty.size > 0 && !this.closed && !this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.schedule();
      }, 500);
      this.retry.unref();
    }
  }
}
