// Container names on the overlay: the embedded DNS resolver (src/dns/server.ts) of this host's
// containers, answering from the store's endpoint records of every host.
//
// Owns: one watch on /vxnet/endpoints/ (the names and aliases of every container, on every host,
// with the network each endpoint is on) and the resolver's attachment to each container vxnet
// runs here: 127.0.0.11 inside its namespace and /etc/netns/<ns>/resolv.conf, which `ip netns
// exec` (procs.ts) mounts over /etc/resolv.conf for the container's processes.
// Why shaped so:
// - Scoping is by network, as Docker's: a container sees the names of containers that share a
//   network with it. The asker's networks are read from the same table at each query, so
//   connect/disconnect change what it sees without touching its attachment.
// - The table follows the store by events, and a resync (compaction, reconnect) replaces it
//   whole. A name the table does not know yet (a container made on another host a moment ago,
//   whose event is still in flight) is looked up in the store before the answer is NXDOMAIN.
// - Only containers of live hosts resolve: a host whose membership lease lapsed (membership.ts:
//   its daemon or the host died) has its peers withdrawn from every datapath, so its names go too.
// - Namespaces made elsewhere (`attach`) keep their own resolver: vxnet does not take over a
//   foreign namespace's /etc/resolv.conf or port 53.
// - Unknown names with a dot go to the host's resolvers (its /etc/resolv.conf, or the daemon's
//   `dnsUpstreams`), from the container's namespace, as Docker's resolver does.

import { readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type Asker, createResolver, type DnsResolver, RESOLVER_IP } from '../dns/server.js';
import { netnsExists } from '../kernel/netns.js';
import type { Store, Watcher, WatchMessage } from '../store/store.js';
import type { Engine } from './engine.js';
import { type ContainerRecord, ENDPOINTS, type EndpointRecord, endpointsOf, MEMBERS } from './records.js';

export interface NamesOptions {
  engine: Engine;
  store: Store;
  log: Logger;
  /** Resolvers for names that are not containers' (IPv4[:port]); default the host's resolv.conf. */
  upstreams?: string[];
}

export class Names {
  private readonly o: NamesOptions;
  private readonly endpoints = new Map<string, EndpointRecord>();
  /** Networks of a container known from its record until the table has its endpoints. */
  private readonly seeds = new Map<string, string[]>();
  /** Hosts with a live membership (their lease in the store); others' containers do not resolve. */
  private readonly members = new Set<string>();
  private readonly resolver: DnsResolver;
  private watcher?: Watcher;
  private memberWatcher?: Watcher;
  private prepared = false;

  constructor(o: NamesOptions) {
    this.o = o;
    this.resolver = createResolver({
      upstreams: o.upstreams,
      lookup: (asker, name) => this.lookup(asker, name),
      reverse: (asker, ip) => this.reverse(asker, ip),
    });
  }

  /** Loads the table, watches it, and attaches to this host's containers (a restart re-attaches). */
  async start(): Promise<void> {
    // Can run again after failing part way (the store went away during a start).
    if (!this.prepared) this.resolver.prepare();
    this.prepared = true;
    this.watcher?.close();
    this.memberWatcher?.close();
    const { revision, kvs } = await this.o.store.list(ENDPOINTS);
    this.endpoints.clear();
    for (const kv of kvs) this.endpoints.set(kv.key, JSON.parse(kv.value) as EndpointRecord);
    this.watcher = await this.o.store.watch(ENDPOINTS, (m) => this.onMessage(m), {
      fromRevision: revision + 1,
    });
    const live = await this.o.store.list(MEMBERS);
    this.members.clear();
    for (const kv of live.kvs) this.members.add(kv.key.slice(MEMBERS.length));
    this.memberWatcher = await this.o.store.watch(MEMBERS, (m) => this.onMembers(m), {
      fromRevision: live.revision + 1,
    });
    const cts = await this.o.engine.listContainers();
    for (const ct of cts) if (ct.state !== 'creating' && ct.state !== 'removing') await this.attach(ct);
    this.sweep(new Set(cts.map((c) => c.netns)));
  }

  /** resolv.conf files of this host's containers that are gone (removed while the daemon was down). */
  private sweep(known: Set<string>): void {
    let dirs: string[] = [];
    try {
      dirs = readdirSync(ETC_NETNS);
    } catch {
      return;
    }
    for (const ns of dirs)
      if (this.o.engine.plumbing.ownsNetns(ns) && !known.has(ns) && !netnsExists(ns)) removeResolvConf(ns);
  }

  /** Answers inside the container's namespace (idempotent); a failure is logged, not fatal. */
  async attach(ct: ContainerRecord): Promise<void> {
    if (ct.external || !netnsExists(ct.netns)) return;
    this.seeds.set(ct.id, Object.keys(ct.endpoints));
    const id = ct.id;
    const networksOf = (x: string) => this.networksOf(x);
    const asker: Asker = {
      id: ct.name,
      get networks() {
        return networksOf(id);
      },
    };
    try {
      await this.resolver.attachResolver({ netns: ct.netns, asker });
    } catch (e) {
      this.o.log.warn({ err: e, container: ct.name }, 'no embedded DNS in the container');
    }
  }

  /** Stops answering there and removes its resolv.conf (also one left by a daemon killed earlier). */
  async detach(ct: ContainerRecord): Promise<void> {
    this.seeds.delete(ct.id);
    await this.resolver.detach(ct.netns);
    if (!ct.external) removeResolvConf(ct.netns);
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.memberWatcher?.close();
    await this.resolver.close();
  }

  /** The network ids a container is on, as the store says. */
  networksOf(containerId: string): string[] {
    const out = new Set<string>();
    for (const ep of this.endpoints.values()) if (ep.containerId === containerId) out.add(ep.networkId);
    if (out.size > 0) this.seeds.delete(containerId);
    return out.size > 0 ? [...out] : (this.seeds.get(containerId) ?? []);
  }

  private async lookup(asker: Asker, name: string): Promise<string[]> {
    const nets = asker.networks;
    const match = (ep: EndpointRecord) =>
      nets.includes(ep.networkId) &&
      this.alive(ep.host) &&
      (ep.container.toLowerCase() === name || ep.aliases.some((a) => a.toLowerCase() === name));
    const found = [...this.endpoints.values()].filter(match).map((ep) => ep.ip);
    if (found.length > 0 || name.includes('.')) return unique(found);
    // Not in the table: maybe its event has not arrived yet.
    const fresh: string[] = [];
    for (const net of nets) {
      const { kvs } = await this.o.store.list(endpointsOf(net)).catch(() => ({ kvs: [] }));
      for (const kv of kvs) {
        const ep = JSON.parse(kv.value) as EndpointRecord;
        if (match(ep)) fresh.push(ep.ip);
      }
    }
    return unique(fresh);
  }

  private reverse(asker: Asker, ip: string): string[] {
    const nets = asker.networks;
    return unique(
      [...this.endpoints.values()]
        .filter((ep) => ep.ip === ip && nets.includes(ep.networkId) && this.alive(ep.host))
        .map((ep) => ep.container),
    );
  }

  private alive(host: string): boolean {
    return host === this.o.engine.hostId || this.members.has(host);
  }

  private onMembers(m: WatchMessage): void {
    if (m.kind === 'resync') {
      this.members.clear();
      for (const kv of m.kvs) this.members.add(kv.key.slice(MEMBERS.length));
      return;
    }
    for (const e of m.events) {
      const host = e.kv.key.slice(MEMBERS.length);
      if (e.type === 'delete') this.members.delete(host);
      else this.members.add(host);
    }
  }

  private onMessage(m: WatchMessage): void {
    if (m.kind === 'resync') {
      this.endpoints.clear();
      for (const kv of m.kvs) this.endpoints.set(kv.key, JSON.parse(kv.value) as EndpointRecord);
      return;
    }
    for (const e of m.events) {
      if (e.type === 'delete') this.endpoints.delete(e.kv.key);
      else this.endpoints.set(e.kv.key, JSON.parse(e.kv.value) as EndpointRecord);
    }
  }
}

const ETC_NETNS = '/etc/netns';

/** Removes /etc/netns/NS/resolv.conf when it is the resolver's, and the directory when empty. */
function removeResolvConf(ns: string): void {
  const file = join(ETC_NETNS, ns, 'resolv.conf');
  try {
    if (readFileSync(file, 'utf8').includes(`nameserver ${RESOLVER_IP}`)) rmSync(file, { force: true });
    rmdirSync(join(ETC_NETNS, ns));
  } catch {
    // Not there, not ours, or the directory holds other files.
  }
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}
