// IPAM: subnets for networks and addresses for endpoints, persisted in the cluster store.
//
// Owns: which subnets and addresses are taken, as keys in the store, so that every host (and
// every concurrent request on one host) sees one truth and two allocations never collide:
//   <prefix>subnets/<a.b.c.d>-<n>        JSON SubnetInfo, one per network subnet
//   <prefix>subnets-guard                 bumped by every subnet change: the CAS token for overlap
//   <prefix>ips/<a.b.c.d>-<n>/<ip>        the owner (endpoint id) of one address
// A subnet is taken by a transaction that compares the guard's modRevision with the one the
// overlap check read, so two overlapping requests cannot both pass. An address is taken by a
// transaction comparing its key absent (and the subnet key unchanged); a lost race moves on to
// the next free candidate. Validation happens before any write, so bad input changes nothing.
// Several scopes (the global overlay pool, a host's gateway-bridge pool) are separate prefixes.

import { VxError } from '../errors.js';
import { type Plan, retryCas, type Store, transact } from '../store/store.js';
import {
  type Cidr,
  contains,
  formatCidr,
  formatIp,
  inside,
  lastIp,
  macFromIp,
  overlaps,
  parseCidr,
  parseIp,
} from './cidr.js';

export interface IpamOptions {
  store: Store;
  /** Key prefix of this address space (default '/vxnet/ipam/'). */
  prefix?: string;
  /** Where subnets come from when none is given (default '10.0.0.0/8'). */
  defaultPool?: string;
  /** Prefix length of the subnets carved from the default pool (default 24). */
  defaultPrefix?: number;
}

export interface SubnetRequest {
  /** Who holds the subnet (a network id). */
  owner: string;
  subnet?: string;
  gateway?: string;
  /** Dynamic addresses come from this sub-range; `ip` requests may use the whole subnet (as docker). */
  ipRange?: string;
}

export interface SubnetInfo {
  subnet: string;
  gateway: string;
  ipRange?: string;
  owner: string;
}

export interface IpLease {
  ip: string;
  /** The address with the subnet's prefix length, e.g. 10.0.0.2/24. */
  address: string;
  mac: string;
}

interface Checked {
  subnet?: Cidr;
  gateway?: number;
  ipRange?: Cidr;
}

const MAX_PREFIX = 30;

export class Ipam {
  private readonly store: Store;
  private readonly prefix: string;
  private readonly pool: Cidr;
  private readonly poolPrefix: number;

  constructor(options: IpamOptions) {
    this.store = options.store;
    this.prefix = options.prefix ?? '/vxnet/ipam/';
    this.pool = parseCidr(options.defaultPool ?? '10.0.0.0/8', 'options.defaultPool');
    this.poolPrefix = options.defaultPrefix ?? 24;
    if (
      !Number.isInteger(this.poolPrefix) ||
      this.poolPrefix < this.pool.prefix ||
      this.poolPrefix > MAX_PREFIX
    ) {
      throw new VxError(
        'ERR_BAD_CIDR',
        `options.defaultPrefix must be an integer from ${this.pool.prefix} to ${MAX_PREFIX}`,
      );
    }
  }

  async requestSubnet(req: SubnetRequest): Promise<SubnetInfo> {
    checkRequest(req);
    return transact(this.store, () => this.planSubnet(req), { what: 'subnet allocation' });
  }

  /** The compares and ops that take a subnet; merge them into a larger transaction (transact). */
  async planSubnet(req: SubnetRequest): Promise<Plan<SubnetInfo>> {
    const c = checkRequest(req);
    const { kvs } = await this.store.list(`${this.prefix}subnets`);
    const guard = kvs.find((kv) => kv.key === this.guardKey());
    const taken = kvs
      .filter((kv) => kv !== guard)
      .map((kv) => parseCidr((JSON.parse(kv.value) as SubnetInfo).subnet));
    const subnet = c.subnet ?? this.carve(taken);
    const clash = taken.find((t) => overlaps(t, subnet));
    if (clash) {
      throw new VxError(
        'ERR_SUBNET_OVERLAP',
        `subnet ${formatCidr(subnet)} overlaps ${formatCidr(clash)}, in use`,
      );
    }
    const info: SubnetInfo = {
      subnet: formatCidr(subnet),
      gateway: formatIp(c.gateway ?? subnet.network + 1),
      owner: req.owner,
    };
    if (c.ipRange) info.ipRange = formatCidr(c.ipRange);
    const id = subnetId(subnet);
    return {
      value: info,
      compare: [{ key: this.guardKey(), modRevision: guard?.modRevision ?? 0 }],
      success: [
        { type: 'put', key: `${this.prefix}subnets/${id}`, value: JSON.stringify(info) },
        { type: 'put', key: this.guardKey(), value: `take ${id}` },
      ],
    };
  }

  /** Frees a subnet and every address in it. Can run twice. */
  async releaseSubnet(subnet: string): Promise<void> {
    const id = subnetId(parseCidr(subnet));
    this.views.delete(subnet);
    await this.store.txn({
      compare: [],
      success: [
        { type: 'delete', key: `${this.prefix}subnets/${id}` },
        { type: 'deletePrefix', prefix: `${this.prefix}ips/${id}/` },
        { type: 'put', key: this.guardKey(), value: `release ${id}` },
      ],
    });
  }

  async getSubnet(subnet: string): Promise<SubnetInfo | undefined> {
    const kv = await this.store.get(`${this.prefix}subnets/${subnetId(parseCidr(subnet))}`);
    return kv && (JSON.parse(kv.value) as SubnetInfo);
  }

  async listSubnets(): Promise<SubnetInfo[]> {
    const { kvs } = await this.store.list(`${this.prefix}subnets/`);
    return kvs.map((kv) => JSON.parse(kv.value) as SubnetInfo);
  }

  /** Takes an address in `subnet`: `ip` when given (checked), else the lowest free one in the range. */
  async requestIp(subnet: string, options: { owner: string; ip?: string }): Promise<IpLease> {
    checkOwner(options?.owner);
    const what = `address allocation in ${subnet}`;
    if (options.ip !== undefined) return transact(this.store, () => this.planIp(subnet, options), { what });
    return retryCas(async () => this.tryDynamicIp(await this.subnetFor(subnet), options.owner), { what });
  }

  /** The compares and ops that take an address; merge them into a larger transaction (transact). */
  async planIp(subnet: string, options: { owner: string; ip?: string }): Promise<Plan<IpLease>> {
    checkOwner(options?.owner);
    const wanted = options.ip === undefined ? undefined : parseIp(options.ip);
    const s = await this.subnetFor(subnet);
    let ip: number;
    if (wanted === undefined) ip = this.freeIps(s, await this.usedIps(s)).next().value ?? full(s.info);
    else ip = await this.checkStaticIp(s, wanted);
    const key = `${s.ipPrefix}${formatIp(ip)}`;
    return {
      value: lease(s.cidr, ip),
      compare: [s.guard, { key, absent: true }],
      success: [{ type: 'put', key, value: options.owner }],
    };
  }

  /**
   * planIp for a dynamic address from what this Ipam last read of the subnet, without reading the
   * store: for a daemon making many endpoints at once. The address is reserved here at once, so
   * concurrent plans of this process never pick the same one; the plan's compares (subnet
   * unchanged, address absent) still decide. After a lost race call again with `stale: true`: the
   * subnet is re-read, and from then on free addresses are picked from a random point instead of
   * the lowest (other hosts allocate in this subnet too, and would take the same lowest ones).
   * The view is also re-read when it is older than 10 s or shows the subnet full.
   */
  async planIpCached(subnet: string, options: { owner: string; stale?: boolean }): Promise<Plan<IpLease>> {
    checkOwner(options?.owner);
    const now = Date.now();
    let v = this.views.get(subnet);
    const reread = async () => {
      const s = await this.subnetFor(subnet);
      const contended = options.stale === true || v?.contended === true;
      v = { s, used: await this.usedIps(s), at: now, contended };
      this.views.set(subnet, v);
      return v;
    };
    if (!v || options.stale || now - v.at > 10_000) v = await reread();
    let ip = this.pick(v);
    if (ip === undefined && v.at !== now) ip = this.pick(await reread());
    if (ip === undefined) full(v.s.info);
    v.used.add(ip);
    const key = `${v.s.ipPrefix}${formatIp(ip)}`;
    return {
      value: lease(v.s.cidr, ip),
      compare: [v.s.guard, { key, absent: true }],
      success: [{ type: 'put', key, value: options.owner }],
    };
  }

  /** Tells planIpCached that an address was freed (by a transaction it did not make itself). */
  forgetIp(subnet: string, ip: string): void {
    this.views.get(subnet)?.used.delete(parseIp(ip));
  }

  private readonly views = new Map<
    string,
    { s: SubnetRef; used: Set<number>; at: number; contended: boolean }
  >();

  private pick(v: { s: SubnetRef; used: Set<number>; contended: boolean }): number | undefined {
    if (!v.contended) return this.freeIps(v.s, v.used).next().value;
    const range = v.s.info.ipRange ? parseCidr(v.s.info.ipRange) : v.s.cidr;
    const gateway = parseIp(v.s.info.gateway);
    const size = lastIp(range) - range.network + 1;
    const start = Math.floor(Math.random() * size);
    for (let i = 0; i < size; i++) {
      const ip = range.network + ((start + i) % size);
      if (!v.used.has(ip) && !isReserved(v.s.cidr, gateway, ip)) return ip;
    }
    return undefined;
  }

  /** Frees an address. Can run twice. */
  async releaseIp(subnet: string, ip: string): Promise<void> {
    const id = subnetId(parseCidr(subnet));
    await this.store.delete(`${this.prefix}ips/${id}/${formatIp(parseIp(ip))}`);
    this.forgetIp(subnet, ip);
  }

  async listIps(subnet: string): Promise<{ ip: string; owner: string }[]> {
    const { kvs } = await this.store.list(`${this.prefix}ips/${subnetId(parseCidr(subnet))}/`);
    return kvs.map((kv) => ({ ip: kv.key.slice(kv.key.lastIndexOf('/') + 1), owner: kv.value }));
  }

  private guardKey(): string {
    return `${this.prefix}subnets-guard`;
  }

  /** The first default-pool block that overlaps nothing taken. */
  private carve(taken: Cidr[]): Cidr {
    const step = 2 ** (32 - this.poolPrefix);
    for (let n = this.pool.network; n <= lastIp(this.pool); n += step) {
      const candidate = { network: n, prefix: this.poolPrefix };
      if (!taken.some((t) => overlaps(t, candidate))) return candidate;
    }
    throw new VxError(
      'ERR_POOL_EXHAUSTED',
      `no free /${this.poolPrefix} left in the pool ${formatCidr(this.pool)}`,
    );
  }

  private async subnetFor(subnet: string): Promise<SubnetRef> {
    const cidr = parseCidr(subnet);
    const key = `${this.prefix}subnets/${subnetId(cidr)}`;
    const kv = await this.store.get(key);
    if (!kv) throw new VxError('ERR_SUBNET_NOT_FOUND', `subnet ${subnet} is not allocated`);
    const info = JSON.parse(kv.value) as SubnetInfo;
    const ipPrefix = `${this.prefix}ips/${subnetId(cidr)}/`;
    return { info, cidr, ipPrefix, guard: { key, modRevision: kv.modRevision } };
  }

  private async usedIps(s: SubnetRef): Promise<Set<number>> {
    const { kvs } = await this.store.list(s.ipPrefix);
    return new Set(kvs.map((kv) => parseIp(kv.key.slice(s.ipPrefix.length))));
  }

  /** Free addresses of the subnet's range in ascending order. */
  private *freeIps(s: SubnetRef, used: Set<number>): Generator<number, undefined> {
    const range = s.info.ipRange ? parseCidr(s.info.ipRange) : s.cidr;
    const gateway = parseIp(s.info.gateway);
    for (let ip = range.network; ip <= lastIp(range); ip++) {
      if (!used.has(ip) && !isReserved(s.cidr, gateway, ip)) yield ip;
    }
    return undefined;
  }

  private async checkStaticIp(s: SubnetRef, ip: number): Promise<number> {
    const text = formatIp(ip);
    if (!contains(s.cidr, ip))
      throw new VxError('ERR_IP_OUT_OF_RANGE', `${text} is not in subnet ${s.info.subnet}`);
    if (isReserved(s.cidr, parseIp(s.info.gateway), ip)) {
      const what = `${text} is the network, gateway or broadcast address of ${s.info.subnet}`;
      throw new VxError('ERR_IP_RESERVED', what);
    }
    if (await this.store.get(s.ipPrefix + text)) {
      throw new VxError('ERR_IP_IN_USE', `${text} is already in use in ${s.info.subnet}`);
    }
    return ip;
  }

  /** Tries free addresses in turn: a lost race moves on without re-reading the whole subnet. */
  private async tryDynamicIp(s: SubnetRef, owner: string): Promise<IpLease | undefined> {
    for (const ip of this.freeIps(s, await this.usedIps(s))) {
      const key = s.ipPrefix + formatIp(ip);
      const r = await this.store.txn({
        compare: [s.guard, { key, absent: true }],
        success: [{ type: 'put', key, value: owner }],
      });
      if (r.succeeded) return lease(s.cidr, ip);
      // Lost this address, or the subnet changed: re-read only in the second case.
      if ((await this.store.get(s.guard.key))?.modRevision !== s.guard.modRevision) return undefined;
    }
    return full(s.info);
  }
}

interface SubnetRef {
  info: SubnetInfo;
  cidr: Cidr;
  /** Key prefix of the subnet's addresses. */
  ipPrefix: string;
  /** Compare that holds while the subnet is unchanged (not released meanwhile). */
  guard: { key: string; modRevision: number };
}

function full(info: SubnetInfo): never {
  throw new VxError('ERR_SUBNET_FULL', `no free address left in ${info.ipRange ?? info.subnet}`);
}

function subnetId(c: Cidr): string {
  return `${formatIp(c.network)}-${c.prefix}`;
}

function isReserved(c: Cidr, gateway: number, ip: number): boolean {
  return ip === c.network || ip === lastIp(c) || ip === gateway;
}

function lease(c: Cidr, ip: number): IpLease {
  return { ip: formatIp(ip), address: `${formatIp(ip)}/${c.prefix}`, mac: macFromIp(ip) };
}

function checkOwner(owner: unknown): void {
  if (typeof owner !== 'string' || owner.length === 0) {
    throw new VxError('ERR_BAD_OWNER', 'options.owner must be a non-empty string');
  }
}

/** Validates a subnet request completely before anything is written. */
function checkRequest(req: SubnetRequest): Checked {
  checkOwner(req?.owner);
  if (req.subnet === undefined) {
    if (req.gateway !== undefined || req.ipRange !== undefined) {
      throw new VxError('ERR_IPAM_NEEDS_SUBNET', '--gateway and --ip-range need an explicit --subnet');
    }
    return {};
  }
  const subnet = parseCidr(req.subnet);
  if (subnet.prefix > MAX_PREFIX) {
    throw new VxError(
      'ERR_BAD_CIDR',
      `subnet ${req.subnet} is too small: the prefix must be /${MAX_PREFIX} or shorter`,
    );
  }
  const out: Checked = { subnet };
  if (req.ipRange !== undefined) {
    out.ipRange = parseCidr(req.ipRange, 'ip-range');
    if (!inside(out.ipRange, subnet)) {
      throw new VxError('ERR_IP_OUT_OF_RANGE', `ip-range ${req.ipRange} is not inside subnet ${req.subnet}`);
    }
  }
  if (req.gateway !== undefined)
    out.gateway = checkGateway(subnet, parseIp(req.gateway, 'gateway'), req.gateway);
  return out;
}

function checkGateway(subnet: Cidr, gw: number, text: string): number {
  if (!contains(subnet, gw))
    throw new VxError('ERR_IP_OUT_OF_RANGE', `gateway ${text} is not in subnet ${formatCidr(subnet)}`);
  if (gw === subnet.network || gw === lastIp(subnet)) {
    throw new VxError(
      'ERR_IP_RESERVED',
      `gateway ${text} is the network or broadcast address of ${formatCidr(subnet)}`,
    );
  }
  return gw;
}
