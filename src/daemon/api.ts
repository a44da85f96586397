// The daemon's HTTP/JSON API, in the style of Docker's Engine API (docs/API.md).
//
// Owns: routing, request parsing and validation of Docker-shaped bodies into engine calls, the
// Docker-shaped responses (network inspect as `docker network inspect` prints it), and mapping
// VxError codes to HTTP statuses. Errors are `{ "message": ..., "code": "ERR_..." }`, so the CLI
// (and anything else) matches on the code. An optional `/vN.NN` path prefix is accepted and
// ignored, as Docker clients send one.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { isVxError, VxError } from '../errors.js';
import { netnsExists } from '../kernel/netns.js';
import { packageVersion } from '../paths.js';
import type { Engine, NetworkSpec } from './engine.js';
import type { KeyManager } from './keys.js';
import type { Membership } from './membership.js';
import { disconnectDead, inUseError, liveHosts, removeDeadEndpoints } from './orphans.js';
import type { ContainerRecord, EndpointRecord, NetworkRecord } from './records.js';

type Query = URLSearchParams;
type Handler = (p: { params: string[]; query: Query; body: unknown }) => Promise<Reply>;
interface Reply {
  status?: number;
  json?: unknown;
  text?: string;
}

const MAX_BODY = 1 << 20;
const MTU_OPT = 'com.docker.network.driver.mtu';
const VNI_OPT = 'vxlanid';
const VNI_LIST_OPT = 'com.docker.network.driver.overlay.vxlanid_list';
const KNOWN_OPTS = new Set(['encrypted', MTU_OPT, VNI_OPT, VNI_LIST_OPT]);

export interface ApiInfo {
  engine: Engine;
  storeKind: string;
  underlayMtu: number;
  /** The host's cluster membership; /info reports its view of the store. */
  membership?: Membership;
  hostTtl?: number;
  advertise?: string;
  /** The cluster keys (GET /keys, POST /keys/rotate). */
  keys?: KeyManager;
}

export function createApi(info: ApiInfo): (req: IncomingMessage, res: ServerResponse) => void {
  const routes = buildRoutes(info);
  return (req, res) => {
    handle(routes, req, res, info.membership).catch((e) =>
      info.engine.log.error({ err: e }, 'API handler failed'),
    );
  };
}

interface Route {
  method: string;
  path: RegExp;
  handler: Handler;
}

async function handle(
  routes: Route[],
  req: IncomingMessage,
  res: ServerResponse,
  membership?: Membership,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://vxnet');
  const path = url.pathname.replace(/^\/v[0-9]+(\.[0-9]+)?(?=\/)/, '');
  try {
    const body = await readBody(req);
    const route = routes.find((r) => r.method === req.method && r.path.test(path));
    if (!route) {
      const exists = routes.some((r) => r.path.test(path));
      throw new VxError(
        exists ? 'ERR_METHOD_NOT_ALLOWED' : 'ERR_NO_SUCH_ROUTE',
        `${req.method} ${path} is not an API call`,
      );
    }
    const params = route.path.exec(path)!.slice(1).map(decodeURIComponent);
    const reply = await route.handler({ params, query: url.searchParams, body });
    send(res, reply.status ?? 200, reply);
  } catch (e) {
    const err = isVxError(e) ? e : new VxError('ERR_INTERNAL', (e as Error)?.message ?? String(e));
    membership?.noteFailure(err);
    send(res, statusOf(err.code), { json: { message: err.message, code: err.code } });
  }
}

function send(res: ServerResponse, status: number, reply: Reply): void {
  if (reply.text !== undefined) {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(reply.text);
  } else if (reply.json === undefined) {
    res.writeHead(status);
    res.end();
  } else {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(reply.json)}\n`);
  }
}

export function statusOf(code: string): number {
  if (code.endsWith('_NOT_FOUND') || code === 'ERR_NO_SUCH_ROUTE') return 404;
  if (code === 'ERR_METHOD_NOT_ALLOWED') return 405;
  if (code === 'ERR_STORE_UNAVAILABLE') return 503;
  if (
    /_IN_USE$|_ALIVE$|_EXISTS$|_RUNNING$|_STATE$|_OVERLAP$|_EXHAUSTED$|_FULL$|_CONFLICT$|_AMBIGUOUS$/.test(
      code,
    )
  )
    return 409;
  if (/^ERR_(BAD_|IP_|VNI_OUT|IPAM_NEEDS|INVALID)/.test(code)) return 400;
  return 500;
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new VxError('ERR_BAD_REQUEST', `request body over ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new VxError('ERR_BAD_REQUEST', 'request body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}

function buildRoutes(info: ApiInfo): Route[] {
  const e = info.engine;
  const r = (method: string, path: string, handler: Handler): Route => ({
    method,
    path: new RegExp(`^${path.replace(/:[a-z]+/g, '([^/]+)')}$`),
    handler,
  });
  return [
    r('GET', '/_ping', async () => ({ text: 'OK' })),
    r('GET', '/version', async () => ({
      json: { Version: packageVersion(), ApiVersion: '1.0', Os: 'linux' },
    })),
    r('GET', '/info', async () => ({ json: await infoJson(info) })),
    r('GET', '/keys', async () => ({ json: await keyManager(info).status() })),
    r('POST', '/keys/rotate', async ({ body }) => {
      const t = body === undefined ? undefined : obj(body, 'body').TimeoutMs;
      if (t !== undefined && (!Number.isInteger(t) || (t as number) < 1))
        throw new VxError('ERR_BAD_REQUEST', 'TimeoutMs must be a positive integer');
      const { id } = await keyManager(info).rotate({ timeoutMs: t as number | undefined });
      return { json: { ...(await keyManager(info).status()), rotated: id } };
    }),
    r('GET', '/networks', async () => {
      const nets = await e.listNetworks();
      return { json: await Promise.all(nets.map((n) => networkJson(e, n))) };
    }),
    r('POST', '/networks/create', async ({ body }) => {
      const net = await e.createNetwork(parseNetworkCreate(body));
      return { status: 201, json: { Id: net.id, Warning: '' } };
    }),
    r('GET', '/networks/:id', async ({ params }) => ({
      json: await networkJson(e, await e.findNetwork(params[0]!)),
    })),
    r('DELETE', '/networks/:id', async ({ params, query }) => {
      const force = ['1', 'true'].includes(query.get('force') ?? '');
      // --force: the endpoints of dead hosts go first (orphans.ts), unless a live host's remain:
      // then nothing is removed and the refusal names them.
      if (force) {
        const net = await e.findNetwork(params[0]!);
        const eps = await e.endpointsOf(net.id);
        const live = await liveHosts(e.store, e.hostId);
        if (eps.some((ep) => live.has(ep.host))) throw inUseError(net, eps, live);
        await removeDeadEndpoints(e.store, e.hostId, eps);
      }
      try {
        await e.removeNetwork(params[0]!);
      } catch (err) {
        if (!isVxError(err, 'ERR_NETWORK_IN_USE')) throw err;
        const net = await e.findNetwork(params[0]!);
        throw inUseError(net, await e.endpointsOf(net.id), await liveHosts(e.store, e.hostId));
      }
      return { status: 204 };
    }),
    r('POST', '/networks/:id/connect', async ({ params, body }) => {
      const b = obj(body, 'body');
      const cfg = endpointConfig(b.EndpointConfig, 'EndpointConfig');
      const spec = { network: params[0]!, container: str(b.Container, 'Container'), ...cfg };
      const netns = optStr(b.Netns, 'Netns');
      const ep = await e.connect(netns === undefined ? spec : { ...spec, netns });
      return { json: endpointJson(ep) };
    }),
    r('POST', '/networks/:id/disconnect', async ({ params, body }) => {
      const b = obj(body, 'body');
      const container = str(b.Container, 'Container');
      // Force: a container of a dead host loses its endpoint here (orphans.ts); others as usual.
      if (bool(b.Force, 'Force')) {
        const net = await e.findNetwork(params[0]!);
        const ipam = e.ipam;
        const o = {
          store: e.store,
          hostId: e.hostId,
          releaseIp: (sn: string, ip: string) => ipam.releaseIp(sn, ip),
        };
        if (await disconnectDead(o, net, container)) return { status: 200, json: {} };
      }
      await e.disconnect({ network: params[0]!, container });
      return { status: 200, json: {} };
    }),
    r('GET', '/containers/json', async ({ query }) => {
      const all = query.get('all') !== '0';
      const cts = (await e.listContainers()).filter((c) => all || c.state === 'running');
      return { json: await Promise.all(cts.map((c) => containerJson(e, c))) };
    }),
    r('POST', '/containers/create', async ({ query, body }) => {
      const ct = await e.createContainer(parseContainerCreate(query.get('name'), body));
      return { status: 201, json: { Id: ct.id, Warnings: [] } };
    }),
    r('GET', '/containers/:id/json', async ({ params }) => ({
      json: await containerJson(e, await e.findContainer(params[0]!)),
    })),
    r('POST', '/containers/:id/start', async ({ params }) => {
      await e.startContainer(params[0]!);
      return { status: 204 };
    }),
    r('POST', '/containers/:id/wait', async ({ params }) => ({
      json: { StatusCode: await e.wait(params[0]!) },
    })),
    r('GET', '/containers/:id/logs', async ({ params }) => ({
      text: e.logs(await e.findContainer(params[0]!)),
    })),
    r('DELETE', '/containers/:id', async ({ params, query }) => {
      const force = ['1', 'true'].includes(query.get('force') ?? '');
      await e.removeContainer(params[0]!, { force });
      return { status: 204 };
    }),
    r('GET', '/fdb', async ({ query }) => {
      const nets = await localNetworks(info, query.get('network') ?? undefined);
      const rows = await Promise.all(nets.map((n) => e.ports.fdb(e.plumbing.portRef(n))));
      return { json: rows.flat() };
    }),
    r('GET', '/peers', async () => ({ json: await e.ports.peers() })),
    r('GET', '/stats', async () => {
      const nets = await localNetworks(info);
      const ports = await Promise.all(nets.map((n) => e.ports.stats(e.plumbing.portRef(n))));
      return { json: ports.map((p, i) => ({ ...p, name: nets[i]!.name })) };
    }),
  ];
}

/**
 * Networks with an endpoint on this host (those that have a sandbox and a port here), or the one
 * asked for. While the store is away, from the networks last read and the sandboxes that exist:
 * the datapath still forwards then, and its views must still answer.
 */
async function localNetworks(info: ApiInfo, only?: string): Promise<NetworkRecord[]> {
  const e = info.engine;
  try {
    if (info.membership?.state.status === 'unavailable')
      throw new VxError('ERR_STORE_UNAVAILABLE', 'the cluster store is unavailable');
    if (only !== undefined) return [await e.findNetwork(only)];
    const used = new Set((await e.listContainers()).flatMap((c) => Object.keys(c.endpoints)));
    return (await e.listNetworks()).filter((n) => used.has(n.id));
  } catch (err) {
    if (!isVxError(err, 'ERR_STORE_UNAVAILABLE')) throw err;
    info.membership?.noteFailure(err);
    const known = e.knownNetworks.filter((n) => only === undefined || n.name === only || n.id === only);
    if (only !== undefined && known.length === 0) throw err;
    return known.filter((n) => netnsExists(e.plumbing.portRef(n).sandbox));
  }
}

/** Answers also while the store is away: counts are then null and StoreStatus says why. */
async function infoJson(info: ApiInfo) {
  const e = info.engine;
  let counts = {
    Containers: null as number | null,
    ContainersRunning: null as number | null,
    Networks: null as number | null,
  };
  if (info.membership?.state.status !== 'unavailable') {
    try {
      const cts = await e.listContainers();
      counts = {
        Containers: cts.length,
        ContainersRunning: cts.filter((c) => c.state === 'running').length,
        Networks: (await e.listNetworks()).length,
      };
    } catch (err) {
      if (!isVxError(err, 'ERR_STORE_UNAVAILABLE')) throw err;
      info.membership?.noteFailure(err);
    }
  }
  const state = info.membership?.state;
  return {
    ID: e.hostId,
    ...counts,
    OverlayPorts: e.ports.kind,
    Store: info.storeKind,
    StoreStatus: state?.status ?? 'available',
    StoreStatusSince: state?.since ?? null,
    StoreError: state?.error ?? null,
    ClusterAdvertise: info.advertise ?? null,
    HostTTL: info.hostTtl ?? null,
    UnderlayMTU: info.underlayMtu,
    OverlayMTU: e.overlayMtu,
    StateDir: e.stateDir,
    ServerVersion: packageVersion(),
  };
}

export async function networkJson(e: Engine, n: NetworkRecord) {
  const eps = await e.endpointsOf(n.id);
  const containers: Record<string, unknown> = {};
  for (const ep of eps.filter((x) => x.host === e.hostId)) {
    containers[ep.containerId] = {
      Name: ep.container,
      EndpointID: ep.id,
      MacAddress: ep.mac,
      IPv4Address: ep.address,
      IPv6Address: '',
    };
  }
  const hosts = [...new Set(eps.map((x) => x.host))].sort();
  const config: Record<string, string> = { Subnet: n.subnet, Gateway: n.gateway };
  if (n.ipRange) config.IPRange = n.ipRange;
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: 'global',
    Driver: n.driver,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [config] },
    Internal: n.internal,
    Attachable: n.attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: { ...n.options, [VNI_LIST_OPT]: String(n.vni) },
    Labels: n.labels,
    Peers: hosts.map((h) => ({ Name: h, IP: eps.find((x) => x.host === h)?.vtep ?? '' })),
    VNI: n.vni,
    MTU: e.mtuOf(n),
    Status: n.state,
  };
}

function endpointJson(ep: EndpointRecord) {
  return {
    EndpointID: ep.id,
    NetworkID: ep.networkId,
    Network: ep.network,
    Container: ep.container,
    IPAddress: ep.ip,
    IPPrefixLen: Number(ep.address.split('/')[1]),
    MacAddress: ep.mac,
    Interface: ep.ifname,
    Aliases: ep.aliases,
  };
}

async function containerJson(e: Engine, c: ContainerRecord) {
  const eps = await e.containerEndpoints(c);
  const networks: Record<string, unknown> = {};
  for (const ep of eps) networks[ep.network] = endpointJson(ep);
  return {
    Id: c.id,
    Name: c.name,
    Host: c.host,
    Netns: c.netns,
    NetnsPath: `/run/netns/${c.netns}`,
    External: c.external,
    Cmd: c.cmd,
    State: { Status: c.state, Running: c.state === 'running', Pid: c.pid ?? 0, ExitCode: c.exitCode ?? null },
    Created: c.created,
    NetworkSettings: {
      Networks: networks,
      Gateway: c.gateway
        ? { Interface: c.gateway.ifname, IPAddress: c.gateway.ip, HostInterface: c.gateway.hostIf }
        : null,
    },
  };
}

// --- request parsing: every field checked, with its name in the message ----------------------

function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v))
    throw new VxError('ERR_BAD_REQUEST', `${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '')
    throw new VxError('ERR_BAD_REQUEST', `${what} must be a non-empty string`);
  return v;
}

function optStr(v: unknown, what: string): string | undefined {
  return v === undefined || v === null || v === '' ? undefined : str(v, what);
}

function bool(v: unknown, what: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new VxError('ERR_BAD_REQUEST', `${what} must be true or false`);
  return v;
}

function strMap(v: unknown, what: string): Record<string, string> {
  const o = obj(v, what);
  for (const [k, x] of Object.entries(o))
    if (typeof x !== 'string') throw new VxError('ERR_BAD_REQUEST', `${what}.${k} must be a string`);
  return o as Record<string, string>;
}

export function parseNetworkCreate(body: unknown): NetworkSpec {
  const b = obj(body, 'body');
  const driver = b.Driver ?? 'overlay';
  if (driver !== 'overlay')
    throw new VxError(
      'ERR_BAD_DRIVER',
      `driver "${String(driver)}" is not supported: vxnet provides "overlay"`,
    );
  const options = strMap(b.Options, 'Options');
  for (const k of Object.keys(options))
    if (!KNOWN_OPTS.has(k))
      throw new VxError(
        'ERR_BAD_OPTION',
        `--opt ${k}: unknown network option (known: ${[...KNOWN_OPTS].join(', ')})`,
      );
  const ipam = obj(b.IPAM, 'IPAM');
  const configs = ipam.Config === undefined || ipam.Config === null ? [] : ipam.Config;
  if (!Array.isArray(configs) || configs.length > 1)
    throw new VxError('ERR_BAD_OPTION', 'IPAM.Config must be a list of at most one subnet (one --subnet)');
  const cfg = obj(configs[0], 'IPAM.Config[0]');
  const spec: NetworkSpec = {
    name: str(b.Name, 'Name'),
    internal: bool(b.Internal, 'Internal'),
    attachable: bool(b.Attachable, 'Attachable'),
    encrypted: 'encrypted' in options,
    labels: strMap(b.Labels, 'Labels'),
    options,
  };
  const subnet = optStr(cfg.Subnet, 'IPAM.Config[0].Subnet');
  const gateway = optStr(cfg.Gateway, 'IPAM.Config[0].Gateway');
  const ipRange = optStr(cfg.IPRange, 'IPAM.Config[0].IPRange');
  if (subnet !== undefined) spec.subnet = subnet;
  if (gateway !== undefined) spec.gateway = gateway;
  if (ipRange !== undefined) spec.ipRange = ipRange;
  const mtu = options[MTU_OPT];
  if (mtu !== undefined) {
    if (!/^[0-9]{1,5}$/.test(mtu))
      throw new VxError(
        'ERR_BAD_MTU',
        `--opt ${MTU_OPT}=${mtu}: the MTU must be an integer from 68 to 65535`,
      );
    spec.mtu = Number(mtu);
  }
  const vni = options[VNI_OPT] ?? options[VNI_LIST_OPT];
  if (vni !== undefined) {
    if (!/^[0-9]{1,9}$/.test(vni))
      throw new VxError(
        'ERR_VNI_OUT_OF_RANGE',
        `--opt vxlanid=${vni}: must be an integer from 4096 to 16777215`,
      );
    spec.vni = Number(vni);
  }
  return spec;
}

function endpointConfig(v: unknown, what: string): { ip?: string; aliases: string[] } {
  const c = obj(v, what);
  const ipam = obj(c.IPAMConfig, `${what}.IPAMConfig`);
  const ip = optStr(ipam.IPv4Address, `${what}.IPAMConfig.IPv4Address`);
  const aliases = c.Aliases ?? [];
  if (!Array.isArray(aliases) || !aliases.every((a) => typeof a === 'string'))
    throw new VxError('ERR_BAD_REQUEST', `${what}.Aliases must be a list of strings`);
  return ip === undefined ? { aliases } : { ip, aliases };
}

function parseContainerCreate(name: string | null, body: unknown) {
  const b = obj(body, 'body');
  const host = obj(b.HostConfig, 'HostConfig');
  const network = str(host.NetworkMode, 'HostConfig.NetworkMode');
  const eps = obj(obj(b.NetworkingConfig, 'NetworkingConfig').EndpointsConfig, 'EndpointsConfig');
  const cfg = endpointConfig(eps[network], `EndpointsConfig.${network}`);
  const cmd = b.Cmd;
  if (!Array.isArray(cmd)) throw new VxError('ERR_BAD_COMMAND', 'Cmd must be a non-empty list of strings');
  return { name: str(name ?? undefined, 'the name query parameter'), network, cmd: cmd as string[], ...cfg };
}

function keyManager(info: ApiInfo): KeyManager {
  if (!info.keys) throw new VxError('ERR_KEYS_NOT_READY', 'this daemon runs without cluster keys');
  return info.keys;
}
