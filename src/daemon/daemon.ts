// `vxnet daemon`: one per host. Opens the store, reconciles the kernel with it, then serves the
// API on a Unix socket until SIGTERM.
//
// Owns: startup order and shutdown. Startup: state dir and host id -> store -> tunnel endpoint
// (--cluster-advertise IP or interface) -> VXLAN ports -> underlay MTU -> reconcile (before the
// socket exists, so no request sees a half-recovered host) -> membership (lease, this host's
// endpoints published for the others) -> peer table -> socket (mode 0600: the API can create
// namespaces, so only root may talk to it).
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
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { type Logger, pino } from 'pino';
import { VxError } from '../errors.js';
import { parseIp } from '../ipam/cidr.js';
import { ipJson } from '../kernel/exec.js';
import { detectUnderlayMtu } from '../kernel/link.js';
import { netnsExists } from '../kernel/netns.js';
import { openEmbeddedStore } from '../store/embedded.js';
import type { Store } from '../store/store.js';
import type { EspEncap } from '../vtep/engine.js';
import { createApi } from './api.js';
import { Engine } from './engine.js';
import { KernelVxlanPorts } from './kernel-vxlan.js';
import { KeyManager } from './keys.js';
import { DEFAULT_HOST_TTL, Membership } from './membership.js';
import { Names } from './names.js';
import { PeerTable } from './peers.js';
import { GATEWAY_IP, GATEWAY_SUBNET } from './plumbing.js';
import type { OverlayPorts } from './ports.js';
import { type ReconcileReport, reconcile } from './reconcile.js';
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
}

export interface RunningDaemon {
  engine: Engine;
  peers: PeerTable;
  membership: Membership;
  keys: KeyManager;
  socket: string;
  reconciled: ReconcileReport;
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
    o.ports ?? makePorts!({ advertise, hostNetns: o.hostNetns, stateDir, espEncap: o.espEncap, log });
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
  if (!(await engine.gwIpam.getSubnet(GATEWAY_SUBNET)))
    await engine.gwIpam.requestSubnet({
      owner: 'gateway-bridge',
      subnet: GATEWAY_SUBNET,
      gateway: GATEWAY_IP,
    });
  const reconciled = await engine.serial(() => reconcile(engine));
  const names = new Names({ engine, store, log, upstreams: o.dnsUpstreams });
  await names.start();
  engine.beforeStart = (ct) => names.attach(ct);
  engine.beforeRemove = (ct) => names.detach(ct);
  const membership = new Membership({ store, hostId, advertise, ttlSeconds: hostTtl, log });
  await membership.start();
  const keys = new KeyManager({
    store,
    hostId,
    log,
    rotateEveryMs: o.keyRotateMs,
    keyFile: join(stateDir, 'keys.json'),
    apply: (k) => ports.applyKeys?.(k),
  });
  await keys.start();
  const peers = new PeerTable({
    store,
    ports,
    hostId,
    log,
    localPort: async (id) => {
      const net = (await engine.listNetworks()).find((n) => n.id === id);
      const ref = net && engine.plumbing.portRef(net);
      return ref && netnsExists(ref.sandbox) ? ref : undefined;
    },
  });
  engine.onSandbox = (id) => peers.touch(id);
  await peers.start();
  await claimSocket(socket);
  const api = createApi({
    engine,
    storeKind: o.store ? (o.storeKind ?? 'custom') : 'embedded',
    underlayMtu: mtu.underlay,
    membership,
    hostTtl,
    advertise,
    keys,
  });
  const server = createServer(api);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, resolve);
  });
  chmodSync(socket, 0o600);
  const poll = setInterval(
    () => {
      engine.pollAdopted().catch((e) => log.error({ err: e }, 'liveness poll failed'));
    },
    (o.pollSeconds ?? 1) * 1000,
  );
  poll.unref();
  log.info({ socket, reconciled }, 'listening');
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= shutdown({ server, poll, engine, peers, membership, keys, names, ports, store, socket, log });
    return closing;
  };
  return { engine, socket, reconciled, peers, membership, keys, close };
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
