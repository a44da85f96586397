// `vxnet daemon`: one per host. Opens the store, reconciles the kernel with it, then serves the
// API on a Unix socket until SIGTERM.
//
// Owns: startup order and shutdown. Startup: state dir and host id -> store -> tunnel endpoint
// (--cluster-advertise IP or interface) -> VXLAN ports -> underlay MTU -> reconcile (before the
// socket exists, so no request sees a half-recovered host) -> membership (lease, this host's
// endpoints published for the others) -> peer table -> socket (mode 0600: the API can create
// namespaces, so only root may talk to it).
// A store that is unavailable at start (etcd down) does not stop the daemon: the socket opens,
// /info says StoreStatus "unavailable", calls that need the store answer ERR_STORE_UNAVAILABLE,
// and the store-backed steps (reconcile onwards) run in the background from where they failed
// until the store answers; then the daemon adopts its containers and joins as on a normal start.
// Meanwhile the VXLAN ports of the networks whose sandbox is still here are made again from
// what the datapath last had (datapath-cache.ts) and the cluster keys from the key file (keys.ts),
// so overlay traffic goes on, encrypted networks' encrypted.
// Shutdown: stop accepting, let queued mutations finish, close the ports and the store, remove the
// socket. Kernel state stays: containers keep running and a restart adopts them.
// The store and the ports are injected (`store`, `ports`): issue 6's `--cluster-store etcd://`
// swaps only the Store; `--vxlan-port` picks the VXLAN ports: vxnet's TAP datapath (default) or the
// kernel's vxlan device (the reference implementation, kept to cross-check the datapath against).
//
// Running inside a simulated host: `nsenter --net=/run/netns/HOST vxnet daemon ...`. Only the
// network namespace changes, so the namespaces the daemon creates are mounted in the machine's
// /run/netns where tests and other daemons see them (`ip netns exec` would give it a private mount
// namespace). Names carry the host id, so daemons of several simulated hosts never collide.

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { type Logger, pino } from 'pino';
import { isVxError, VxError } from '../errors.js';
import { parseIp } from '../ipam/cidr.js';
import { ipJson } from '../kernel/exec.js';
import { detectUnderlayMtu } from '../kernel/link.js';
import { netnsExists } from '../kernel/netns.js';
import { openEmbeddedStore } from '../store/embedded.js';
import type { Store } from '../store/store.js';
import type { EspEncap } from '../vtep/engine.js';
import { createApi } from './api.js';
import { DatapathCache } from './datapath-cache.js';
import { Engine } from './engine.js';
import { KernelVxlanPorts } from './kernel-vxlan.js';
import { KeyManager } from './keys.js';
import { DEFAULT_HOST_TTL, Membership } from './membership.js';
import { Names } from './names.js';
import { PeerTable } from './peers.js';
import { GATEWAY_IP, GATEWAY_SUBNET } from './plumbing.js';
import type { OverlayPorts } from './ports.js';
import { emptyReport, type ReconcileReport, reconcile } from './reconcile.js';
import { TapPorts } from './tap-ports.js';

export const DEFAULT_SOCKET = '/run/vxnet/vxnet.sock';
export const DEFAULT_STATE_DIR = '/var/lib/vxnet';

/**
 * VXLAN port implementations by `--vxlan-port` name: `tap` is vxnet's own datapath (the product),
 * `kernel` the Linux vxlan device, the reference it is cross-checked against.
 */
export const PORT_KINDS: Record<string, (o: PortContext) => OverlayPorts> = {
  kernel: (o) => new KernelVxlanPorts({ hostNetns: o.hostNetns, local: o.advertise }),
  tap: (o) =>
    new TapPorts({
      hostNetns: o.hostNetns,
      local: o.advertise,
      ...(o.espEncap !== undefined ? { espEncap: o.espEncap } : {}),
      ...(o.cryptoWorkers ? { cryptoWorkers: o.cryptoWorkers } : {}),
      ...(o.log ? { onWarning: (msg, detail) => o.log!.warn(detail, msg) } : {}),
    }),
};

/** The `--vxlan-port` used when none is given. */
export const DEFAULT_PORT_KIND = 'tap';

/** What a VXLAN port implementation is told when the daemon makes it. */
export interface PortContext {
  /** This host's tunnel endpoint address (`--cluster-advertise`), when given. */
  advertise?: string;
  hostNetns?: string;
  stateDir: string;
  /** `--esp-encap`: encrypted networks' ESP as IP protocol 50 ('ip', default) or in UDP ('udp'). */
  espEncap?: EspEncap;
  /** `--crypto-workers`: helper threads for big ESP seal batches (default 0). */
  cryptoWorkers?: number;
  log?: Logger;
}

export interface DaemonOptions {
  stateDir?: string;
  socket?: string;
  /** Stable id of this host (default: made once and kept in the state dir). */
  hostId?: string;
  /** The cluster store (default: the embedded store in `<stateDir>/store`). */
  store?: Store;
  storeKind?: string;
  ports?: OverlayPorts;
  /** `PORT_KINDS` name of the VXLAN port implementation, when `ports` is not given (default tap). */
  portKind?: string;
  /** Lease TTL of this host's membership, seconds (default 10): how long a dead host's peers stay. */
  hostTtl?: number;
  log?: Logger;
  logLevel?: string;
  /** Seconds between liveness checks of adopted container processes (default 1). */
  pollSeconds?: number;
  /**
   * This host's tunnel endpoint, published with its endpoints (`--cluster-advertise`): an IPv4
   * address or an interface holding one, optionally with Docker's `:PORT` (ignored).
   */
  advertise?: string;
  /**
   * The namespace that is this host, when it is not the daemon's own: lets tests run several
   * daemons in one process, one per simulated host. The CLI never sets it.
   */
  hostNetns?: string;
  /** Resolvers for names that are not containers' (IPv4[:port]; default this host's resolv.conf). */
  dnsUpstreams?: string[];
  /** Rotate the cluster keys when the primary is older than this, ms (default 12 h; 0 = only on demand). */
  keyRotateMs?: number;
  /** Encrypted networks' ESP: IP protocol 50 ('ip', default) or in UDP 4500 ('udp'); same on every host. */
  espEncap?: EspEncap;
  /** Crypto helper threads for big ESP seal batches on the TAP ports (default 0). */
  cryptoWorkers?: number;
}

export interface RunningDaemon {
  engine: Engine;
  peers: PeerTable;
  membership: Membership;
  keys: KeyManager;
  socket: string;
  /** What the start's reconcile did (empty until it ran: it waits for the store). */
  readonly reconciled: ReconcileReport;
  /** Resolves once the store-backed part of the start is done (at once when the store answered). */
  joined: Promise<void>;
  close(): Promise<void>;
}

const HOST_ID = /^[a-z0-9]{1,16}$/;

/** The host id: given (and then kept for later starts), else the one kept in the state dir, else new. */
function hostIdOf(stateDir: string, given?: string): string {
  if (given !== undefined && !HOST_ID.test(given))
    throw new VxError('ERR_BAD_NAME', `--host-id "${given}" must be 1-16 of [a-z0-9]`);
  const file = join(stateDir, 'host-id');
  if (given === undefined && existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (HOST_ID.test(id)) return id;
  }
  const id = given ?? randomBytes(4).toString('hex');
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/** The underlay MTU: of the device holding the advertised address, else of the default route. */
async function underlayMtu(host: { netns?: string }, advertise?: string) {
  if (advertise === undefined) return detectUnderlayMtu(host);
  const rows = await ipJson<{ ifname: string; addr_info?: { local: string }[] }>(['-4', 'addr', 'show'], {
    ...host,
    action: 'list addresses',
  });
  const dev = rows.find((r) => r.addr_info?.some((a) => a.local === advertise))?.ifname;
  if (dev === undefined)
    throw new VxError('ERR_BAD_OPTION', `--cluster-advertise ${advertise} is not an address of this host`);
  return detectUnderlayMtu({ ...host, device: dev });
}

/** `--cluster-advertise IP|IFACE[:PORT]` -> the IPv4 address (an interface's first one). */
export async function resolveAdvertise(value: string, host: { netns?: string }): Promise<string> {
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(value);
  const what = m?.[1] ?? '';
  if (/^[0-9.]+$/.test(what)) {
    parseIp(what, '--cluster-advertise');
    return what;
  }
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(what))
    throw new VxError(
      'ERR_BAD_OPTION',
      `--cluster-advertise "${value}" is not an IPv4 address or an interface`,
    );
  const rows = await ipJson<{ addr_info?: { local: string; family?: string }[] }>(
    ['-4', 'addr', 'show', 'dev', what],
    { ...host, action: `read the addresses of "${what}"` },
  ).catch(() => []);
  const ipv4 = rows[0]?.addr_info?.find((a) => a.family === undefined || a.family === 'inet')?.local;
  if (ipv4 === undefined)
    throw new VxError(
      'ERR_BAD_OPTION',
      `--cluster-advertise "${value}": no interface "${what}" with an IPv4 address`,
    );
  return ipv4;
}

/** Fails with ERR_DAEMON_RUNNING when a daemon answers on `path`; removes a dead socket file. */
async function claimSocket(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new VxError('ERR_DAEMON_RUNNING', `a daemon already listens on ${path}`);
  unlinkSync(path);
}

export async function startDaemon(o: DaemonOptions = {}): Promise<RunningDaemon> {
  const stateDir = o.stateDir ?? DEFAULT_STATE_DIR;
  const socket = o.socket ?? DEFAULT_SOCKET;
  mkdirSync(join(stateDir, 'containers'), { recursive: true, mode: 0o700 });
  const hostId = hostIdOf(stateDir, o.hostId);
  const log = (o.log ?? pino({ level: o.logLevel ?? 'info' })).child({ host: hostId });
  const hostTtl = o.hostTtl ?? DEFAULT_HOST_TTL;
  if (!Number.isInteger(hostTtl) || hostTtl < 1 || hostTtl > 3600)
    throw new VxError('ERR_BAD_OPTION', '--host-ttl must be an integer number of seconds from 1 to 3600');
  const host = o.hostNetns === undefined ? {} : { netns: o.hostNetns };
  const advertise = o.advertise === undefined ? undefined : await resolveAdvertise(o.advertise, host);
  const makePorts = PORT_KINDS[o.portKind ?? DEFAULT_PORT_KIND];
  if (!o.ports && !makePorts)
    throw new VxError(
      'ERR_BAD_OPTION',
      `--vxlan-port "${o.portKind}" is not one of ${Object.keys(PORT_KINDS).join(', ')}`,
    );
  const store = o.store ?? (await openEmbeddedStore({ dir: join(stateDir, 'store') }));
  const ports =
    o.ports ??
    makePorts!({
      advertise,
      hostNetns: o.hostNetns,
      stateDir,
      espEncap: o.espEncap,
      cryptoWorkers: o.cryptoWorkers,
      log,
    });
  const mtu = await underlayMtu(host, advertise);
  log.info({ stateDir, socket, ports: ports.kind, underlayMtu: mtu.underlay, via: mtu.device }, 'starting');
  const engine = new Engine({
    store,
    ports,
    hostId,
    stateDir,
    log,
    overlayMtu: mtu.overlay,
    hostNetns: o.hostNetns,
    advertise,
  });
  const names = new Names({ engine, store, log, upstreams: o.dnsUpstreams });
  engine.beforeStart = (ct) => names.attach(ct);
  engine.beforeRemove = (ct) => names.detach(ct);
  const membership = new Membership({ store, hostId, advertise, ttlSeconds: hostTtl, log });
  const keys = new KeyManager({
    store,
    hostId,
    log,
    rotateEveryMs: o.keyRotateMs,
    keyFile: join(stateDir, 'keys.json'),
    apply: (k) => ports.applyKeys?.(k),
  });
  const cache = new DatapathCache(join(stateDir, 'datapath.json'), log);
  const peers = new PeerTable({
    store,
    ports,
    hostId,
    log,
    localPort: async (id) => {
      const net = await engine.networkById(id);
      const ref = net && engine.plumbing.portRef(net);
      if (!net || !ref || !netnsExists(ref.sandbox)) {
        cache.drop(id);
        return undefined;
      }
      cache.spec({ ...ref, bridge: 'br0', mtu: engine.mtuOf(net), encrypted: net.encrypted });
      return ref;
    },
    onApplied: (ref, table) => cache.applied(ref, table),
  });
  engine.onSandbox = (id) => peers.touch(id);
  let reconciled: ReconcileReport = emptyReport();
  const joining = new StoreJoin(log, membership, [
    async () => {
      if (!(await engine.gwIpam.getSubnet(GATEWAY_SUBNET)))
        await engine.gwIpam.requestSubnet({
          owner: 'gateway-bridge',
          subnet: GATEWAY_SUBNET,
          gateway: GATEWAY_IP,
        });
    },
    async () => {
      reconciled = await engine.serial(() => reconcile(engine));
    },
    () => names.start(),
    () => membership.start(),
    () => keys.start(),
    () => peers.start(),
  ]);
  const poll = setInterval(
    () => {
      if (!joining.done) return;
      engine.pollAdopted().catch((e) => log.error({ err: e }, 'liveness poll failed'));
    },
    (o.pollSeconds ?? 1) * 1000,
  );
  poll.unref();
  try {
    // A store that is down at start is not fatal: the API answers (saying so) and the rest of
    // the start runs when the store returns. Any other failure is.
    if (!(await joining.first())) {
      // Forward on what the datapath had until the store answers (the reconcile then redoes it);
      // encrypted networks with the keys this host last had (without them they send nothing).
      const keysRestored = await keys.restoreFromFile();
      const restored = await cache.restore(ports);
      log.warn(
        { restored, keysRestored },
        'cluster store unavailable: serving the API; joining when it returns',
      );
    }
    await claimSocket(socket);
  } catch (e) {
    clearInterval(poll);
    void joining.stop();
    await names.close().catch(() => undefined);
    membership.close();
    keys.close();
    peers.close();
    await ports.close().catch(() => undefined);
    throw e;
  }
  const api = createApi({
    engine,
    storeKind: o.store ? (o.storeKind ?? 'custom') : 'embedded',
    underlayMtu: mtu.underlay,
    membership,
    hostTtl,
    advertise,
    keys,
  });
  const server = createServer((req, res) => (joining.done ? api(req, res) : whileJoining(api, req, res)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, resolve);
  });
  chmodSync(socket, 0o600);
  log.info({ socket, joined: joining.done, reconciled }, 'listening');
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await joining.stop();
      cache.flush();
      await shutdown({ server, poll, engine, peers, membership, keys, names, ports, store, socket, log });
    })();
    return closing;
  };
  return {
    engine,
    socket,
    get reconciled() {
      return reconciled;
    },
    joined: joining.joined,
    peers,
    membership,
    keys,
    close,
  };
}

async function shutdown(x: {
  server: Server;
  poll: NodeJS.Timeout;
  engine: Engine;
  peers: PeerTable;
  membership: Membership;
  keys: KeyManager;
  names: Names;
  ports: OverlayPorts;
  store: Store;
  socket: string;
  log: Logger;
}): Promise<void> {
  x.log.info('shutting down');
  clearInterval(x.poll);
  const closed = new Promise<void>((resolve) => x.server.close(() => resolve()));
  x.server.closeIdleConnections();
  await x.engine.drain();
  await x.names.close();
  x.membership.close();
  x.keys.close();
  x.peers.close();
  await x.peers.idle();
  x.server.closeAllConnections();
  await closed;
  await x.ports.close();
  await x.store.close();
  try {
    unlinkSync(x.socket);
  } catch {
    // Already gone.
  }
  x.log.info('stopped');
}

/** Calls that need nothing of the store: they answer while the start waits for it. */
const WITHOUT_STORE = /^(\/v[0-9.]+)?\/(_ping|version|info|fdb|peers|stats)(\?|$)/;

/** Before the store-backed start is done, only calls that need nothing of it are served. */
function whileJoining(api: ReturnType<typeof createApi>, req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' && WITHOUT_STORE.test(req.url ?? '')) {
    api(req, res);
    return;
  }
  req.resume();
  res.writeHead(503, { 'content-type': 'application/json' });
  res.end(
    `${JSON.stringify({
      message:
        'the cluster store is unavailable: this daemon has not finished starting (it joins when the store returns)',
      code: 'ERR_STORE_UNAVAILABLE',
    })}\n`,
  );
}

/**
 * The store-backed steps of the start (gateway subnet, reconcile, names, membership, keys, peer
 * table), run in order. The first attempt runs inline; when the store is unavailable the rest is
 * retried in the background from the step that failed, with backoff, until it is all done. Each
 * step can run again after failing part way.
 */
class StoreJoin {
  done = false;
  readonly joined: Promise<void>;
  private next = 0;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  private running: Promise<unknown> = Promise.resolve();
  private resolve!: () => void;

  constructor(
    private readonly log: Logger,
    private readonly membership: Membership,
    private readonly steps: (() => Promise<void>)[],
  ) {
    this.joined = new Promise((r) => {
      this.resolve = r;
    });
  }

  /** True when all steps ran; false when the store is unavailable (the rest retries); throws otherwise. */
  async first(): Promise<boolean> {
    try {
      await this.run();
      return true;
    } catch (e) {
      if (!isVxError(e, 'ERR_STORE_UNAVAILABLE')) throw e;
      this.membership.noteFailure(e);
      this.later(250);
      return false;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.running.catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (this.next < this.steps.length && !this.stopped) {
      await this.steps[this.next]!();
      this.next++;
    }
    if (this.next === this.steps.length) {
      this.done = true;
      this.resolve();
    }
  }

  private later(ms: number): void {
    if (this.stopped) return;
    this.retry = setTimeout(() => {
      const attempt = this.run();
      this.running = attempt;
      attempt.then(
        () => {
          if (this.done) this.log.info('cluster store available: start finished (reconciled, joined)');
        },
        (e) => {
          if (isVxError(e, 'ERR_STORE_UNAVAILABLE')) this.membership.noteFailure(e);
          else this.log.error({ err: e }, 'start could not finish; retrying');
          this.later(Math.min(ms * 2, 2000));
        },
      );
    }, ms);
    this.retry.unref();
  }
}
