// The lifecycle of networks and containers on this host: the daemon's core, below the HTTP API.
//
// Owns: turning requests into store transactions and kernel plumbing, in an order that a
// `kill -9` at any instant leaves recoverable (reconcile.ts finishes or undoes it on start):
//   create: validate -> one transaction (records + IPAM + VNI, all or nothing) -> plumbing ->
//           state update. A record in state 'creating' is never acknowledged, so reconcile removes it.
//   remove: state 'removing' -> kernel objects -> records deleted -> addresses released (an
//           address whose owner record is gone is swept on start).
// Mutations of different containers run at the same time (locks.ts): one per container, the
// network's sandbox and the gateway bridge shared while endpoints are plumbed into them and
// exclusive to remove them (after re-checking under the lock that nothing of this host uses them),
// the first endpoint's build of a sandbox shared by the concurrent ones (plumbing.ts), reconcile
// and shutdown exclusive over everything (`serial`). Cross-host safety comes from the store's
// transactions: addresses, names and the network's state are compares in the create's one
// transaction, so concurrency inside a daemon adds no new way to collide.
// A `run` costs 3 store transactions and 1 read (the network and its subnet are read once and
// then trusted until a compare fails; the addresses this daemon handed out are remembered).

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { espOverhead } from '../crypto/esp.js';
import { isVxError, VxError } from '../errors.js';
import { overlaps, parseCidr } from '../ipam/cidr.js';
import { Ipam } from '../ipam/pool.js';
import { VniAllocator } from '../ipam/vni.js';
import { checkMtu } from '../kernel/link.js';
import { deleteNetns, listNetns, netnsExists, netnsPids } from '../kernel/netns.js';
import { type Plan, retryCas, type Store, transact } from '../store/store.js';
import { Locks } from './locks.js';
import { GATEWAY_SUBNET, gatewayHostIf, Plumbing } from './plumbing.js';
import type { OverlayPorts } from './ports.js';
import { isAlive, killProcess, spawnInContainer } from './procs.js';
import {
  CONTAINERS,
  type ContainerRecord,
  containerKey,
  type EndpointRecord,
  endpointKey,
  endpointsOf,
  hostPrefix,
  IPAM_PREFIX,
  NETWORKS,
  type NetworkRecord,
  networkKey,
  VNI_PREFIX,
} from './records.js';

export interface EngineOptions {
  store: Store;
  ports: OverlayPorts;
  hostId: string;
  stateDir: string;
  log: Logger;
  /** The overlay MTU when a network has no mtu option: the detected underlay MTU - 50. */
  overlayMtu: number;
  /** The namespace that is this host (default: the daemon's own); see Plumbing. */
  hostNetns?: string;
  /** This host's tunnel endpoint (underlay address), published in its endpoint records. */
  advertise?: string;
}

export interface NetworkSpec {
  name: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  internal?: boolean;
  attachable?: boolean;
  encrypted?: boolean;
  mtu?: number;
  vni?: number;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

export interface JoinSpec {
  ip?: string;
  aliases?: string[];
}

export interface RunSpec extends JoinSpec {
  name: string;
  network: string;
  cmd: string[];
}

export interface ConnectSpec extends JoinSpec {
  network: string;
  /** A container's name, or (with `netns` absent) the name of a namespace made elsewhere. */
  container: string;
  /** Attach this namespace (made elsewhere) as a new container named `container`. */
  netns?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new VxError(
      'ERR_BAD_NAME',
      `${what} "${String(name)}" must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit`,
    );
  }
  return name;
}

/** Phase timer for the logs: t('phase') records ms since the previous mark; t.done() the record. */
function phases(): ((name: string) => void) & { done(): Record<string, number> } {
  const out: Record<string, number> = {};
  let last = performance.now();
  const t0 = last;
  const mark = (name: string) => {
    const now = performance.now();
    out[name] = Math.round(now - last);
    last = now;
  };
  return Object.assign(mark, {
    done: () => ({ ...out, total: Math.round(performance.now() - t0) }),
  });
}

const newId = () => randomBytes(32).toString('hex');

/** Crash-test hook: VXNET_CRASH_AT=<point> makes the daemon kill -9 itself there. */
function crashPoint(point: string): void {
  if (process.env.VXNET_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

export class Engine {
  readonly store: Store;
  readonly ports: OverlayPorts;
  readonly hostId: string;
  readonly stateDir: string;
  readonly log: Logger;
  readonly overlayMtu: number;
  readonly advertise?: string;
  readonly ipam: Ipam;
  readonly gwIpam: Ipam;
  readonly vnis: VniAllocator;
  readonly plumbing: Plumbing;
  /** The networks as last read from the store: the datapath views use them while it is away. */
  knownNetworks: NetworkRecord[] = [];
  /** Told when a sandbox is (re)built here, so it gets its remote endpoints (peers.ts). */
  onSandbox?: (networkId: string) => void;
  /** Told before a container's command starts, and before it is removed (names.ts: its DNS). */
  beforeStart?: (ct: ContainerRecord) => Promise<void>;
  beforeRemove?: (ct: ContainerRecord) => Promise<void>;
  readonly locks = new Locks();
  /** Networks by name with the modRevision they were read at: trusted until a compare fails. */
  private readonly netRevs = new Map<string, { net: NetworkRecord; modRevision: number }>();
  /** Running containers adopted at start (no exit event from them): polled for liveness. */
  private readonly adopted = new Map<string, ContainerRecord>();
  /** Containers just created by this daemon and not touched since, as written (start reads none). */
  private readonly justCreated = new Map<string, { ct: ContainerRecord; modRevision: number }>();
  private stopped = false;
  private readonly waiters = new Map<string, Set<(code: number | null) => void>>();

  constructor(o: EngineOptions) {
    this.store = o.store;
    this.ports = o.ports;
    this.hostId = o.hostId;
    this.stateDir = o.stateDir;
    this.log = o.log;
    this.overlayMtu = o.overlayMtu;
    this.advertise = o.advertise;
    this.ipam = new Ipam({ store: o.store, prefix: IPAM_PREFIX });
    this.gwIpam = new Ipam({
      store: o.store,
      prefix: `${hostPrefix(o.hostId)}gw/`,
      defaultPool: GATEWAY_SUBNET,
      defaultPrefix: 16,
    });
    this.vnis = new VniAllocator({ store: o.store, prefix: VNI_PREFIX });
    this.plumbing = new Plumbing({ hostId: o.hostId, ports: o.ports, hostNetns: o.hostNetns });
  }

  /** Runs `fn` alone: after every mutation started before it, before any started after it. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.locks.with('engine', true, fn);
  }

  /** Runs a mutation holding the containers' locks (`ct:<name>` keys), next to other mutations. */
  private op<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    return this.locks.with('engine', false, () => this.locks.withAll(keys, fn));
  }

  /** Resolves once every queued mutation has finished; later exits are left to the next start. */
  async drain(): Promise<void> {
    await this.serial(async () => {
      this.stopped = true;
    });
  }

  /** The network's MTU: its own, or the overlay's; an encrypted one leaves room for its ports' ESP. */
  mtuOf(net: NetworkRecord): number {
    const esp = this.ports.espOverhead ?? espOverhead({ udpEncap: true });
    return net.mtu ?? this.overlayMtu - (net.encrypted ? esp : 0);
  }

  // --- networks -------------------------------------------------------------------------------

  async listNetworks(): Promise<NetworkRecord[]> {
    const { kvs } = await this.store.list(NETWORKS);
    this.netRevs.clear();
    for (const kv of kvs) {
      const net = JSON.parse(kv.value) as NetworkRecord;
      this.netRevs.set(net.name, { net, modRevision: kv.modRevision });
    }
    this.knownNetworks = [...this.netRevs.values()]
      .map((x) => x.net)
      .sort((a, b) => a.name.localeCompare(b.name));
    return this.knownNetworks;
  }

  /**
   * A network by id, from a fresh listing. Fresh on purpose: the peer table's applier looks its
   * networks up here, and while the store does not answer the lookup must fail so the applier
   * keeps the last table it applied (a cached answer let it apply changes half-seen during a
   * partition: cluster test). Listing per applied change costs an RPC; a cheaper way needs that
   * guarantee kept.
   */
  async networkById(id: string): Promise<NetworkRecord | undefined> {
    return (await this.listNetworks()).find((n) => n.id === id);
  }

  /** findNetwork, answered from the last listing when it knows the name (the create's compare checks it). */
  private async networkRev(ref: string): Promise<{ net: NetworkRecord; modRevision: number }> {
    const known = this.netRevs.get(ref);
    if (known && known.net.state === 'active') return known;
    const net = await this.findNetwork(ref);
    return this.netRevs.get(net.name) ?? { net, modRevision: 0 };
  }

  /** By name, full id, or unique id prefix (as docker). */
  async findNetwork(ref: string): Promise<NetworkRecord> {
    if (typeof ref !== 'string' || ref === '')
      throw new VxError('ERR_NETWORK_NOT_FOUND', 'network name is empty');
    const all = await this.listNetworks();
    const byName = all.find((n) => n.name === ref);
    if (byName) return byName;
    const byId = all.filter((n) => n.id.startsWith(ref));
    if (byId.length === 1) return byId[0]!;
    if (byId.length > 1)
      throw new VxError(
        'ERR_NETWORK_AMBIGUOUS',
        `network id prefix "${ref}" matches ${byId.length} networks`,
      );
    throw new VxError('ERR_NETWORK_NOT_FOUND', `network "${ref}" not found`);
  }

  createNetwork(spec: NetworkSpec): Promise<NetworkRecord> {
    checkName(spec.name, 'network name');
    if (spec.mtu !== undefined) checkMtu(spec.mtu);
    if (spec.subnet !== undefined && overlaps(parseCidr(spec.subnet), parseCidr(GATEWAY_SUBNET))) {
      // Containers would have the same range on eth0 and on eth1 (the gateway bridge).
      throw new VxError(
        'ERR_SUBNET_OVERLAP',
        `subnet ${spec.subnet} overlaps the gateway bridge's ${GATEWAY_SUBNET}`,
      );
    }
    const id = newId();
    return this.op([], () =>
      transact(
        this.store,
        async () => {
          const key = networkKey(spec.name);
          if (await this.store.get(key))
            throw new VxError('ERR_NAME_IN_USE', `network "${spec.name}" already exists`);
          const sp = await this.ipam.planSubnet({
            owner: id,
            subnet: spec.subnet,
            gateway: spec.gateway,
            ipRange: spec.ipRange,
          });
          const vp = await this.vnis.plan({ owner: id, vni: spec.vni });
          const rec: NetworkRecord = {
            id,
            name: spec.name,
            driver: 'overlay',
            vni: vp.value,
            subnet: sp.value.subnet,
            gateway: sp.value.gateway,
            internal: spec.internal ?? false,
            attachable: spec.attachable ?? false,
            encrypted: spec.encrypted ?? false,
            labels: spec.labels ?? {},
            options: spec.options ?? {},
            created: new Date().toISOString(),
            state: 'active',
          };
          if (sp.value.ipRange) rec.ipRange = sp.value.ipRange;
          if (spec.mtu !== undefined) rec.mtu = spec.mtu;
          return {
            value: rec,
            compare: [...sp.compare, ...vp.compare, { key, absent: true as const }],
            success: [
              ...sp.success,
              ...vp.success,
              { type: 'put' as const, key, value: JSON.stringify(rec) },
            ],
          };
        },
        { what: `create network "${spec.name}"` },
      ).then((rec) => {
        this.log.info({ network: rec.name, id: rec.id, vni: rec.vni, subnet: rec.subnet }, 'network created');
        return rec;
      }),
    );
  }

  async endpointsOf(networkId: string): Promise<EndpointRecord[]> {
    const { kvs } = await this.store.list(endpointsOf(networkId));
    return kvs.map((kv) => JSON.parse(kv.value) as EndpointRecord);
  }

  /** Refused while any host has an endpoint on it (ERR_NETWORK_IN_USE). */
  removeNetwork(ref: string): Promise<void> {
    return this.op([], async () => {
      const net = await this.findNetwork(ref);
      const key = networkKey(net.name);
      const kv = await this.store.get(key);
      if (!kv) throw new VxError('ERR_NETWORK_NOT_FOUND', `network "${ref}" not found`);
      // Marking it bumps its revision, so an endpoint create that read it before fails its compare.
      const marked = { ...net, state: 'deleting' };
      const r = await this.store.txn({
        compare: [{ key, modRevision: kv.modRevision }],
        success: [{ type: 'put', key, value: JSON.stringify(marked) }],
      });
      if (!r.succeeded)
        throw new VxError('ERR_STORE_CONFLICT', `network "${net.name}" changed meanwhile; try again`);
      const eps = await this.endpointsOf(net.id);
      if (eps.length > 0) {
        await this.store.put(key, JSON.stringify({ ...net, state: 'active' }));
        const names = eps.map((e) => e.container).join(', ');
        throw new VxError('ERR_NETWORK_IN_USE', `network "${net.name}" has active endpoints (${names})`);
      }
      crashPoint('network-rm:marked');
      this.netRevs.delete(net.name);
      await this.finishNetworkRemoval(net);
      this.log.info({ network: net.name, id: net.id }, 'network removed');
    });
  }

  /** Releases a network marked 'deleting' with no endpoints; can run again after a crash. */
  async finishNetworkRemoval(net: NetworkRecord): Promise<void> {
    await this.locks.with(`net:${net.id}`, true, () =>
      this.plumbing.removeSandbox(this.plumbing.portRef(net)),
    );
    await this.ipam.releaseSubnet(net.subnet);
    await this.store.txn({
      compare: [{ key: `${VNI_PREFIX}${net.vni}`, value: net.id }],
      success: [{ type: 'delete', key: `${VNI_PREFIX}${net.vni}` }],
    });
    const kv = await this.store.get(networkKey(net.name));
    if (kv && (JSON.parse(kv.value) as NetworkRecord).id === net.id) {
      await this.store.txn({
        compare: [{ key: kv.key, modRevision: kv.modRevision }],
        success: [{ type: 'delete', key: kv.key }],
      });
    }
  }

  // --- containers -----------------------------------------------------------------------------

  async listContainers(options: { allHosts?: boolean } = {}): Promise<ContainerRecord[]> {
    const { kvs } = await this.store.list(CONTAINERS);
    return kvs
      .map((kv) => JSON.parse(kv.value) as ContainerRecord)
      .filter((c) => options.allHosts || c.host === this.hostId)
      .sort((a, b) => a.created.localeCompare(b.created));
  }

  async findContainer(ref: string): Promise<ContainerRecord> {
    if (typeof ref === 'string' && ref !== '') {
      const kv = await this.store.get(containerKey(ref));
      const all = kv
        ? [JSON.parse(kv.value) as ContainerRecord]
        : (await this.listContainers()).filter((c) => c.id.startsWith(ref));
      const ct = all.length === 1 ? all[0]! : undefined;
      if (ct && ct.host !== this.hostId)
        throw new VxError('ERR_CONTAINER_NOT_FOUND', `container "${ref}" is on another host (${ct.host})`);
      if (ct) return ct;
    }
    throw new VxError('ERR_CONTAINER_NOT_FOUND', `container "${ref}" not found`);
  }

  async containerEndpoints(ct: ContainerRecord): Promise<EndpointRecord[]> {
    const out: EndpointRecord[] = [];
    for (const [netId, epId] of Object.entries(ct.endpoints)) {
      const kv = await this.store.get(endpointKey(netId, epId));
      if (kv) out.push(JSON.parse(kv.value) as EndpointRecord);
    }
    return out;
  }

  /** `run` part one: records, addresses and plumbing; the container is 'created', not started. */
  createContainer(spec: RunSpec): Promise<ContainerRecord> {
    checkName(spec.name, 'container name');
    checkCmd(spec.cmd);
    const aliases = checkAliases(spec.aliases);
    const t = phases();
    return this.op([`ct:${spec.name}`], async () => {
      t('lock');
      const net = await this.networkRev(spec.network);
      const id = newId();
      const ct: ContainerRecord = {
        id,
        name: spec.name,
        host: this.hostId,
        netns: this.plumbing.containerNetns(id),
        external: false,
        cmd: spec.cmd,
        state: 'creating',
        created: new Date().toISOString(),
        endpoints: {},
      };
      const joined = await this.join(ct, { isNew: true, net, ip: spec.ip, aliases, ifname: 'eth0' });
      const { ct: made, ep } = joined;
      const mtu = this.mtuOf(joined.net);
      t('join');
      crashPoint('run:recorded');
      await this.plumbOrUndo(made, async () => {
        // plumbNew's batch brings lo up.
        await this.plumbing.ensureContainerNetns(made, { loopbackUp: false });
        t('netns');
        crashPoint('run:netns');
        let fast = false;
        try {
          // Only a sandbox built now needs its remote table sent (peers.ts): re-sending it on every
          // endpoint would re-read and diff the whole FDB for each `run`.
          const built = await this.shared(joined.net.id, !!made.gateway, () =>
            this.plumbing.plumbNew(made, ep, joined.net, mtu),
          );
          if (built) this.onSandbox?.(joined.net.id);
          fast = true;
        } catch (e) {
          this.log.warn({ err: e, container: made.name }, 'batched plumbing failed; ensuring step by step');
        }
        if (!fast) await this.plumbContainer(made);
        t('plumb');
        crashPoint('run:plumbed');
      });
      const w = await this.updateContainerRev(made.name, (c) => ({ ...c, state: 'created' }), {
        ct: made,
        modRevision: joined.revision,
      });
      const created = w.ct;
      // `run` starts it next: the start needs no read.
      this.justCreated.set(created.name, w);
      t('update');
      this.log.info(
        { container: created.name, id: created.id, network: joined.net.name },
        'container created',
      );
      this.log.debug({ container: created.name, ms: t.done() }, 'create timing');
      return created;
    });
  }

  /** Runs kernel work on a network's sandbox (and the gateway bridge) holding them shared. */
  private shared<T>(networkId: string, gateway: boolean, fn: () => Promise<T>): Promise<T> {
    return this.locks.with(`net:${networkId}`, false, () =>
      gateway ? this.locks.with('gw', false, fn) : fn(),
    );
  }

  /**
   * Runs `fn` on this host's container `ref` (name, id or id prefix) holding its lock, with the
   * record as read under the lock and its modRevision.
   */
  private async withContainer<T>(
    ref: string,
    fn: (ct: ContainerRecord, modRevision: number) => Promise<T>,
  ): Promise<T> {
    const own = (ct: ContainerRecord) => {
      if (ct.host !== this.hostId)
        throw new VxError('ERR_CONTAINER_NOT_FOUND', `container "${ref}" is on another host (${ct.host})`);
      return ct;
    };
    if (typeof ref === 'string' && NAME.test(ref)) {
      // Most calls name the container: lock the name, read it once.
      const r = await this.op([`ct:${ref}`], async () => {
        const mine = this.justCreated.get(ref);
        this.justCreated.delete(ref);
        if (mine) return { v: await fn(mine.ct, mine.modRevision) };
        const kv = await this.store.get(containerKey(ref));
        if (!kv) return undefined;
        return { v: await fn(own(JSON.parse(kv.value) as ContainerRecord), kv.modRevision) };
      });
      if (r) return r.v;
    }
    const found = await this.findContainer(ref);
    return this.op([`ct:${found.name}`], async () => {
      this.justCreated.delete(found.name);
      const kv = await this.store.get(containerKey(found.name));
      const ct = kv && (JSON.parse(kv.value) as ContainerRecord);
      if (!ct || ct.id !== found.id)
        throw new VxError('ERR_CONTAINER_NOT_FOUND', `container "${ref}" not found`);
      return fn(own(ct), kv!.modRevision);
    });
  }

  /** `run` part two: starts the command inside the container's namespace. */
  startContainer(ref: string): Promise<ContainerRecord> {
    const t = phases();
    return this.withContainer(ref, async (ct, modRevision) => {
      t('find');
      if (ct.state === 'running') return ct;
      if (ct.external || ct.cmd.length === 0)
        throw new VxError(
          'ERR_CONTAINER_STATE',
          `container "${ct.name}" has no command (attached namespace)`,
        );
      await this.beforeStart?.(ct);
      t('dns');
      const p = await spawnInContainer({ netns: ct.netns, cmd: ct.cmd, logFile: this.logFile(ct) });
      t('spawn');
      crashPoint('run:spawned');
      const running = await this.updateContainer(
        ct.name,
        (c) => ({ ...c, state: 'running', pid: p.pid, pidStart: p.start, exitCode: undefined }),
        { ct, modRevision },
      );
      t('update');
      // No exit to hear (the spawn helper died): poll it like an adopted container.
      p.exited.then((code) => (code === undefined ? this.adopt(running) : this.onExit(running, code)));
      this.log.info({ container: ct.name, pid: p.pid, cmd: ct.cmd }, 'container started');
      this.log.debug({ container: ct.name, ms: t.done() }, 'start timing');
      return running;
    });
  }

  logFile(ct: ContainerRecord): string {
    return join(this.stateDir, 'containers', `${ct.id}.log`);
  }

  /** Removes the output files of containers that no longer exist (a crash before their removal). */
  async sweepLogs(): Promise<number> {
    const ids = new Set((await this.listContainers()).map((c) => `${c.id}.log`));
    const dir = join(this.stateDir, 'containers');
    let n = 0;
    for (const f of readdirSync(dir)) {
      if (ids.has(f) || !f.endsWith('.log')) continue;
      rmSync(join(dir, f), { force: true });
      n++;
    }
    return n;
  }

  logs(ct: ContainerRecord): string {
    try {
      return readFileSync(this.logFile(ct), 'utf8');
    } catch {
      return '';
    }
  }

  /** Resolves with the exit code once the container is not running (null: exited while the daemon was down). */
  async wait(ref: string): Promise<number | null> {
    const ct = await this.findContainer(ref);
    if (ct.state !== 'running') return ct.exitCode ?? null;
    return new Promise((resolve) => {
      const set = this.waiters.get(ct.id) ?? new Set();
      set.add(resolve);
      this.waiters.set(ct.id, set);
    });
  }

  /** Records an exit (from the child's exit event, or the liveness poll for adopted processes). */
  onExit(ct: ContainerRecord, code: number | null): Promise<void> {
    return this.op([`ct:${ct.name}`], async () => {
      // After shutdown the store is closed; the next start's reconcile records the exit.
      if (this.stopped) return;
      this.adopted.delete(ct.name);
      const kv = await this.store.get(containerKey(ct.name));
      const cur = kv && (JSON.parse(kv.value) as ContainerRecord);
      if (cur && cur.id === ct.id && cur.state === 'running' && cur.pid === ct.pid) {
        const exited = (c: ContainerRecord) => ({ ...c, state: 'exited' as const, exitCode: code });
        await this.updateContainer(ct.name, exited, { ct: cur, modRevision: kv!.modRevision });
        this.log.info({ container: ct.name, exitCode: code }, 'container exited');
      }
      for (const w of this.waiters.get(ct.id) ?? []) w(code);
      this.waiters.delete(ct.id);
    }).catch((e) => this.log.error({ err: e, container: ct.name }, 'could not record exit'));
  }

  /** Adopted running containers whose process is gone become 'exited' (exit code unknown). */
  async pollAdopted(): Promise<void> {
    for (const ct of [...this.adopted.values()]) {
      if (ct.pid !== undefined && !isAlive(ct.pid, ct.pidStart ?? 0, ct.netns)) await this.onExit(ct, null);
    }
  }

  /** Watches a running container whose process this daemon did not start (reconcile adopted it). */
  adopt(ct: ContainerRecord): void {
    if (ct.state === 'running' && ct.pid !== undefined) this.adopted.set(ct.name, ct);
  }

  /** `attach` / `network connect`: a container (or a namespace made elsewhere) joins a network. */
  connect(spec: ConnectSpec): Promise<EndpointRecord> {
    const aliases = checkAliases(spec.aliases);
    return this.op([`ct:${checkName(spec.container, 'container name')}`], async () => {
      this.justCreated.delete(spec.container);
      const netRev = await this.networkRev(spec.network);
      const net = netRev.net;
      let ct: ContainerRecord;
      let isNew = false;
      const kv = await this.store.get(containerKey(checkName(spec.container, 'container name')));
      if (kv) {
        ct = await this.findContainer(spec.container);
        if (spec.netns !== undefined && spec.netns !== ct.netns)
          throw new VxError('ERR_NAME_IN_USE', `container name "${spec.container}" is in use`);
        if (ct.endpoints[net.id])
          throw new VxError(
            'ERR_ENDPOINT_EXISTS',
            `container "${ct.name}" is already on network "${net.name}"`,
          );
      } else {
        const netns = spec.netns ?? spec.container;
        if (!netnsExists(netns))
          throw new VxError('ERR_CONTAINER_NOT_FOUND', `no container or namespace named "${netns}"`);
        if (this.plumbing.ownsNetns(netns))
          throw new VxError(
            'ERR_BAD_NAME',
            `namespace "${netns}" is vxnet's own; attach its container by name`,
          );
        const id = newId();
        ct = {
          id,
          name: spec.container,
          host: this.hostId,
          netns,
          external: true,
          cmd: [],
          state: 'creating',
          created: new Date().toISOString(),
          endpoints: {},
        };
        isNew = true;
      }
      const taken = await this.plumbing.linkNames(ct.netns);
      const ifname = freeIfname(taken, ct.external ? [] : ['eth1']);
      const j = await this.join(ct, { isNew, net: netRev, ip: spec.ip, aliases, ifname, taken });
      const { ct: joined, ep } = j;
      await this.plumbOrUndo(joined, () => this.plumbContainer(joined), isNew ? undefined : ep);
      if (isNew)
        await this.updateContainer(joined.name, (c) => ({ ...c, state: 'created' }), {
          ct: joined,
          modRevision: j.revision,
        });
      this.log.info({ container: joined.name, network: net.name, ip: ep.ip }, 'endpoint attached');
      return ep;
    });
  }

  /** `detach` / `network disconnect`. A namespace made elsewhere is forgotten with its last network. */
  disconnect(spec: { network: string; container: string }): Promise<void> {
    return this.withContainer(spec.container, async (ct) => {
      const net = await this.findNetwork(spec.network);
      const epId = ct.endpoints[net.id];
      if (!epId)
        throw new VxError('ERR_ENDPOINT_NOT_FOUND', `container "${ct.name}" is not on network "${net.name}"`);
      if (ct.external && Object.keys(ct.endpoints).length === 1) return this.teardown(ct);
      const eps = await this.containerEndpoints(ct);
      const ep = eps.find((e) => e.id === epId)!;
      await this.plumbing.removeEndpoint(ct, ep);
      const rest = eps.filter((e) => e.id !== epId);
      const needsGw = await this.needsGateway(rest);
      const endpoints = { ...ct.endpoints };
      delete endpoints[net.id];
      const kv = (await this.store.get(containerKey(ct.name)))!;
      const next: ContainerRecord = { ...ct, endpoints, gateway: needsGw ? ct.gateway : undefined };
      await this.store.txn({
        compare: [{ key: kv.key, modRevision: kv.modRevision }],
        success: [
          { type: 'put', key: kv.key, value: JSON.stringify(next) },
          { type: 'delete', key: endpointKey(net.id, epId) },
        ],
      });
      await this.ipam.releaseIp(ep.subnet, ep.ip);
      if (ct.gateway && !needsGw) {
        await this.plumbing.removeGatewayLink(ct);
        await this.gwIpam.releaseIp(GATEWAY_SUBNET, ct.gateway.ip);
      }
      await this.collect({ networks: [net.id], gateway: !!ct.gateway && !needsGw });
      this.log.info({ container: ct.name, network: net.name }, 'endpoint detached');
    });
  }

  /** `rm`: refused while running unless `force`. */
  removeContainer(ref: string, options: { force?: boolean } = {}): Promise<void> {
    return this.withContainer(ref, async (ct) => {
      if (
        ct.state === 'running' &&
        !options.force &&
        ct.pid !== undefined &&
        isAlive(ct.pid, ct.pidStart ?? 0, ct.netns)
      )
        throw new VxError(
          'ERR_CONTAINER_RUNNING',
          `container "${ct.name}" is running; stop it or use --force`,
        );
      await this.teardown(ct);
      this.log.info({ container: ct.name }, 'container removed');
    });
  }

  /**
   * Removes a container completely: processes, kernel objects, records, addresses, and the
   * network sandboxes and gateway bridge nothing uses any more. Can run again after a crash.
   */
  async teardown(ct: ContainerRecord): Promise<void> {
    const kv = await this.store.get(containerKey(ct.name));
    if (kv && (JSON.parse(kv.value) as ContainerRecord).id === ct.id && ct.state !== 'removing')
      await this.store.put(kv.key, JSON.stringify({ ...ct, state: 'removing' }));
    const eps = await this.containerEndpoints(ct);
    await this.beforeRemove?.(ct);
    if (ct.pid !== undefined) killProcess(ct.pid, ct.pidStart ?? 0);
    if (ct.external) {
      for (const ep of eps) await this.plumbing.removeEndpoint(ct, ep);
      await this.plumbing.removeGatewayLink(ct);
    } else {
      await this.plumbing.removeGatewayLink(ct);
      for (const ep of eps) await this.plumbing.removeEndpoint(ct, ep);
      await deleteNetns(ct.netns, { killProcesses: true });
    }
    const ops = Object.entries(ct.endpoints).map(([n, e]) => ({
      type: 'delete' as const,
      key: endpointKey(n, e),
    }));
    const cur = await this.store.get(containerKey(ct.name));
    if (cur && (JSON.parse(cur.value) as ContainerRecord).id === ct.id)
      ops.push({ type: 'delete', key: cur.key });
    if (ops.length > 0) await this.store.txn({ compare: [], success: ops });
    rmSync(this.logFile(ct), { force: true });
    this.adopted.delete(ct.name);
    this.justCreated.delete(ct.name);
    for (const ep of eps) {
      await this.releaseIfOwner(IPAM_PREFIX, ep.subnet, ep.ip, ep.id);
      this.ipam.forgetIp(ep.subnet, ep.ip);
    }
    if (ct.gateway) {
      await this.releaseIfOwner(`${hostPrefix(this.hostId)}gw/`, GATEWAY_SUBNET, ct.gateway.ip, ct.id);
      this.gwIpam.forgetIp(GATEWAY_SUBNET, ct.gateway.ip);
    }
    await this.collect({ networks: Object.keys(ct.endpoints), gateway: !!ct.gateway });
  }

  /** Frees an address only while `owner` holds it (Ipam's documented key layout). */
  async releaseIfOwner(prefix: string, subnet: string, ip: string, owner: string): Promise<void> {
    const key = `${prefix}ips/${subnet.replace('/', '-')}/${ip}`;
    await this.store.txn({ compare: [{ key, value: owner }], success: [{ type: 'delete', key }] });
  }

  /**
   * Removes sandboxes of networks with no endpoint of this host, and the gateway bridge when no
   * container of this host has eth1: of every network (reconcile), or only of `networks` and the
   * bridge when `gateway` (a container just left them). Each is re-checked holding its lock
   * exclusively: a concurrent create records its endpoint (and eth1's address) before it takes
   * the lock shared to plumb, so it is either seen here or finds the sandbox gone and rebuilds it.
   */
  async collect(only?: { networks: string[]; gateway: boolean }): Promise<void> {
    if (!only) {
      const local = await this.listContainers();
      const inUse = new Set(local.flatMap((c) => Object.keys(c.endpoints)));
      const namespaces = new Set(await listNetns());
      for (const net of await this.listNetworks()) {
        const ref = this.plumbing.portRef(net);
        if (!inUse.has(net.id) && namespaces.has(ref.sandbox))
          await this.locks.with(`net:${net.id}`, true, () => this.plumbing.removeSandbox(ref));
      }
      if (!local.some((c) => c.gateway))
        await this.locks.with('gw', true, () => this.plumbing.removeGateway());
      return;
    }
    for (const id of only.networks) {
      const net =
        this.knownNetworks.find((n) => n.id === id) ?? (await this.listNetworks()).find((n) => n.id === id);
      if (!net) continue; // Removed meanwhile: its removal took the sandbox.
      const ref = this.plumbing.portRef(net);
      await this.locks.with(`net:${id}`, true, async () => {
        if (!netnsExists(ref.sandbox)) return;
        const eps = await this.endpointsOf(id);
        if (!eps.some((e) => e.host === this.hostId)) await this.plumbing.removeSandbox(ref);
      });
    }
    if (only.gateway)
      await this.locks.with('gw', true, async () => {
        if ((await this.gwIpam.listIps(GATEWAY_SUBNET)).length === 0) await this.plumbing.removeGateway();
      });
  }

  /** The container's kernel objects, from its records (idempotent). */
  async plumbContainer(ct: ContainerRecord): Promise<void> {
    await this.plumbing.ensureContainerNetns(ct);
    const nets = await this.listNetworks();
    for (const ep of await this.containerEndpoints(ct)) {
      const net = nets.find((n) => n.id === ep.networkId);
      if (!net) throw new VxError('ERR_NETWORK_NOT_FOUND', `network ${ep.network} of "${ct.name}" is gone`);
      await this.shared(net.id, false, () => this.plumbing.ensureEndpoint(ct, ep, net, this.mtuOf(net)));
      this.onSandbox?.(net.id);
    }
    if (ct.gateway) await this.locks.with('gw', false, () => this.plumbing.ensureGatewayLink(ct));
  }

  /** Runs plumbing; on failure undoes the container (new) or the one endpoint (existing), then rethrows. */
  private async plumbOrUndo(ct: ContainerRecord, plumb: () => Promise<void>, ep?: EndpointRecord) {
    try {
      await plumb();
    } catch (e) {
      this.log.error({ err: e, container: ct.name }, 'plumbing failed; undoing');
      try {
        if (ep) {
          await this.plumbing.removeEndpoint(ct, ep);
          const prev = await this.findContainer(ct.name);
          const endpoints = { ...prev.endpoints };
          delete endpoints[ep.networkId];
          await this.store.txn({
            compare: [],
            success: [
              { type: 'put', key: containerKey(ct.name), value: JSON.stringify({ ...prev, endpoints }) },
              { type: 'delete', key: endpointKey(ep.networkId, ep.id) },
            ],
          });
          await this.releaseIfOwner(IPAM_PREFIX, ep.subnet, ep.ip, ep.id);
          this.ipam.forgetIp(ep.subnet, ep.ip);
          await this.collect({ networks: [ep.networkId], gateway: false });
        } else await this.teardown(ct);
      } catch (undo) {
        this.log.error({ err: undo, container: ct.name }, 'undo failed; reconcile will finish it');
      }
      throw e;
    }
  }

  private async needsGateway(eps: EndpointRecord[]): Promise<boolean> {
    const nets = await this.listNetworks();
    return eps.some((e) => nets.find((n) => n.id === e.networkId)?.internal === false);
  }

  /**
   * One transaction: the endpoint record, its address, the container record (new, or updated
   * with the endpoint), and eth1's gateway address when the container gets its first
   * non-internal network. Validation (--ip, names) fails before anything is written.
   */
  private async join(
    ct: ContainerRecord,
    o: {
      isNew: boolean;
      net: { net: NetworkRecord; modRevision: number };
      ip?: string;
      aliases: string[];
      ifname: string;
      taken?: Set<string>;
    },
  ): Promise<{ ct: ContainerRecord; ep: EndpointRecord; net: NetworkRecord; revision: number }> {
    const name = o.net.net.name;
    if (o.net.net.encrypted && !this.ports.encrypts) {
      throw new VxError(
        'ERR_ENCRYPTION_UNSUPPORTED',
        `network "${name}" is encrypted and this host's VXLAN ports (${this.ports.kind}) do not encrypt: run the daemon with --vxlan-port tap`,
      );
    }
    const epId = newId();
    const ckey = containerKey(ct.name);
    const nkey = networkKey(name);
    // Only an active network may be trusted: one marked 'deleting' has had its endpoints counted.
    let known: { net: NetworkRecord; modRevision: number } | undefined =
      o.net.modRevision > 0 && o.net.net.state === 'active' ? o.net : undefined;
    for (let attempt = 0; attempt < 64; attempt++) {
      // The first try trusts what this daemon knows (the network as last read, the subnet's
      // addresses it has seen, a new name free); the compares check all of it. A lost race
      // re-reads everything.
      let net: NetworkRecord;
      let netRev: number;
      if (known) {
        ({ net, modRevision: netRev } = known);
        known = undefined;
      } else {
        const netKv = await this.store.get(nkey);
        const cur = netKv && (JSON.parse(netKv.value) as NetworkRecord);
        if (!cur || cur.id !== o.net.net.id || cur.state !== 'active') {
          if (this.netRevs.get(name)?.net.id === o.net.net.id) this.netRevs.delete(name);
          throw new VxError('ERR_NETWORK_NOT_FOUND', `network "${name}" not found (being removed?)`);
        }
        this.netRevs.set(name, { net: cur, modRevision: netKv!.modRevision });
        net = cur;
        netRev = netKv!.modRevision;
      }
      let base = ct;
      let ctRev = 0;
      if (!o.isNew || attempt > 0) {
        const ctKv = await this.store.get(ckey);
        if (o.isNew && ctKv)
          throw new VxError('ERR_NAME_IN_USE', `container name "${ct.name}" is already in use`);
        if (!o.isNew) {
          if (!ctKv) throw new VxError('ERR_CONTAINER_NOT_FOUND', `container "${ct.name}" not found`);
          base = JSON.parse(ctKv.value) as ContainerRecord;
          ctRev = ctKv.modRevision;
        }
      }
      const stale = attempt > 0;
      let ipPlan: Plan<{ ip: string; address: string; mac: string }>;
      try {
        ipPlan =
          o.ip === undefined
            ? await this.ipam.planIpCached(net.subnet, { owner: epId, stale })
            : await this.ipam.planIp(net.subnet, { owner: epId, ip: o.ip });
      } catch (e) {
        // The network trusted from the last listing was removed meanwhile: read it (not found).
        if (attempt === 0 && isVxError(e, 'ERR_SUBNET_NOT_FOUND')) continue;
        throw e;
      }
      let gwPlan: Plan<{ ip: string; address: string }> | undefined;
      if (!net.internal && !base.gateway)
        gwPlan = await this.gwIpam.planIpCached(GATEWAY_SUBNET, { owner: base.id, stale });
      const ep: EndpointRecord = {
        id: epId,
        networkId: net.id,
        network: net.name,
        containerId: base.id,
        container: base.name,
        host: this.hostId,
        subnet: net.subnet,
        ip: ipPlan.value.ip,
        address: ipPlan.value.address,
        mac: ipPlan.value.mac,
        ifname: o.ifname,
        aliases: o.aliases,
      };
      if (this.advertise !== undefined) ep.vtep = this.advertise;
      const next: ContainerRecord = { ...base, endpoints: { ...base.endpoints, [net.id]: epId } };
      if (gwPlan) {
        const ifname = base.external ? freeIfname(new Set([...(o.taken ?? []), o.ifname]), []) : 'eth1';
        next.gateway = {
          ifname,
          ip: gwPlan.value.ip,
          address: gwPlan.value.address,
          hostIf: gatewayHostIf(base.id),
        };
      }
      const r = await this.store.txn({
        compare: [
          { key: nkey, modRevision: netRev },
          o.isNew ? { key: ckey, absent: true as const } : { key: ckey, modRevision: ctRev },
          ...ipPlan.compare,
          ...(gwPlan?.compare ?? []),
        ],
        success: [
          { type: 'put' as const, key: ckey, value: JSON.stringify(next) },
          { type: 'put' as const, key: endpointKey(net.id, epId), value: JSON.stringify(ep) },
          ...ipPlan.success,
          ...(gwPlan?.success ?? []),
        ],
      });
      if (r.succeeded) return { ct: next, ep, net, revision: r.revision };
      this.ipam.forgetIp(net.subnet, ep.ip);
      if (gwPlan) this.gwIpam.forgetIp(GATEWAY_SUBNET, gwPlan.value.ip);
    }
    throw new VxError(
      'ERR_STORE_CONFLICT',
      `attach "${ct.name}" to "${name}": gave up after 64 conflicting transactions`,
    );
  }

  /**
   * Changes a container's record by compare-and-swap. `known`: the record as the caller read (or
   * wrote) it last and its modRevision, to skip the read; a lost race re-reads.
   */
  async updateContainer(
    name: string,
    change: (c: ContainerRecord) => ContainerRecord,
    known?: { ct: ContainerRecord; modRevision: number },
  ): Promise<ContainerRecord> {
    return (await this.updateContainerRev(name, change, known)).ct;
  }

  /** updateContainer, also resolving the revision it was written at. */
  private async updateContainerRev(
    name: string,
    change: (c: ContainerRecord) => ContainerRecord,
    known?: { ct: ContainerRecord; modRevision: number },
  ): Promise<{ ct: ContainerRecord; modRevision: number }> {
    const key = containerKey(name);
    let first = known;
    const r = await retryCas(
      async () => {
        let cur: ContainerRecord;
        let rev: number;
        if (first) {
          cur = first.ct;
          rev = first.modRevision;
          first = undefined;
        } else {
          const kv = await this.store.get(key);
          if (!kv) throw new VxError('ERR_CONTAINER_NOT_FOUND', `container "${name}" not found`);
          cur = JSON.parse(kv.value) as ContainerRecord;
          rev = kv.modRevision;
        }
        const next = change(cur);
        const t = await this.store.txn({
          compare: [{ key, modRevision: rev }],
          success: [{ type: 'put', key, value: JSON.stringify(next) }],
        });
        return t.succeeded ? { ct: next, modRevision: t.revision } : undefined;
      },
      { what: `update container "${name}"` },
    );
    return r;
  }

  /** Processes in an owned container's namespace that are not its recorded process (a crash mid-start). */
  async strayPids(ct: ContainerRecord): Promise<number[]> {
    if (ct.external || !netnsExists(ct.netns)) return [];
    const alive =
      ct.state === 'running' && ct.pid !== undefined && isAlive(ct.pid, ct.pidStart ?? 0, ct.netns);
    return alive ? [] : netnsPids(ct.netns);
  }
}

function freeIfname(taken: Set<string>, reserved: string[]): string {
  for (let i = 0; ; i++) {
    const name = `eth${i}`;
    if (!taken.has(name) && !reserved.includes(name)) return name;
  }
}

function checkCmd(cmd: unknown): void {
  if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((a) => typeof a === 'string') || cmd[0] === '')
    throw new VxError('ERR_BAD_COMMAND', 'the command (after --) must be a non-empty list of strings');
}

function checkAliases(aliases: unknown): string[] {
  if (aliases === undefined) return [];
  if (!Array.isArray(aliases)) throw new VxError('ERR_BAD_NAME', '--alias must be a list of names');
  return aliases.map((a) => checkName(a, 'alias'));
}
