// Network links: veth pairs, their properties, moving them between namespaces, and the MTU of
// the underlay.
//
// Owns: one short function per link operation, each naming the link and namespace in its errors.
// `ensureVeth` is idempotent (an existing veth of that name is adopted), `deleteLink` can run
// twice. Moving into a namespace is its own step because a move brings the link down and drops
// its addresses; do it before configuring. The overlay MTU is detected, not fixed at 1450
// (Docker's most reported overlay problem): the underlay's route MTU or device MTU, minus 50.

import { VXLAN_MTU_OVERHEAD } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { checkIfName, checkNetnsName, ip, ipJson, isExists, isMissing, type Where } from './exec.js';

export interface LinkInfo {
  name: string;
  index: number;
  mtu: number;
  mac: string;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** 'veth', 'bridge', 'tun', 'vxlan', ... ; undefined for plain devices (lo). */
  kind?: string;
  /** The bridge this link is a port of. */
  master?: string;
}

interface IpLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  flags: string[];
  master?: string;
  linkinfo?: { info_kind?: string };
}

function toInfo(l: IpLink): LinkInfo {
  const info: LinkInfo = {
    name: l.ifname,
    index: l.ifindex,
    mtu: l.mtu,
    mac: l.address,
    up: l.flags.includes('UP'),
  };
  if (l.linkinfo?.info_kind) info.kind = l.linkinfo.info_kind;
  if (l.master) info.master = l.master;
  return info;
}

function on(name: string, opts: Where): string {
  return `link "${name}"${opts.netns === undefined ? '' : ` in netns "${opts.netns}"`}`;
}

/** The link's state, or undefined when there is no such link. */
export async function getLink(name: string, opts: Where = {}): Promise<LinkInfo | undefined> {
  checkIfName(name);
  try {
    const rows = await ipJson<IpLink>(['-d', 'link', 'show', 'dev', name], {
      ...opts,
      action: `show link "${name}"`,
    });
    return rows[0] && toInfo(rows[0]);
  } catch (e) {
    if ((e as VxError).code === 'ERR_LINK_NOT_FOUND') return undefined;
    throw e;
  }
}

export async function listLinks(opts: Where & { master?: string } = {}): Promise<LinkInfo[]> {
  const filter = opts.master === undefined ? [] : ['master', checkIfName(opts.master)];
  const rows = await ipJson<IpLink>(['-d', 'link', 'show', ...filter], {
    netns: opts.netns,
    action: 'list links',
  });
  return rows.map(toInfo);
}

export interface VethOptions extends Where {
  name: string;
  peer: string;
  /** Namespace to create the peer end in (default: the same as `netns`). */
  peerNetns?: string;
  mtu?: number;
}

/** Creates a veth pair; an existing veth named `name` is adopted. */
export async function ensureVeth(o: VethOptions): Promise<void> {
  checkIfName(o.name);
  checkIfName(o.peer);
  const mtu = o.mtu === undefined ? [] : ['mtu', String(checkMtu(o.mtu))];
  const peerNs = o.peerNetns === undefined ? [] : ['netns', checkNetnsName(o.peerNetns)];
  const args = ['link', 'add', o.name, ...mtu, 'type', 'veth', 'peer', 'name', o.peer, ...peerNs, ...mtu];
  try {
    await ip(args, { netns: o.netns, action: `add veth pair "${o.name}"/"${o.peer}"` });
  } catch (e) {
    if (!isExists(e)) throw e;
    const existing = await getLink(o.name, o);
    if (existing?.kind !== 'veth')
      throw new VxError('ERR_KERNEL', `${on(o.name, o)} exists and is not a veth`);
  }
}

export interface LinkSettings extends Where {
  mtu?: number;
  mac?: string;
  up?: boolean;
  /** Make the link a port of this bridge; null detaches it from its bridge. */
  master?: string | null;
}

export async function setLink(name: string, s: LinkSettings): Promise<void> {
  checkIfName(name);
  const args: string[] = [];
  if (s.mtu !== undefined) args.push('mtu', String(checkMtu(s.mtu)));
  if (s.mac !== undefined) args.push('address', checkMac(s.mac));
  if (s.master === null) args.push('nomaster');
  else if (s.master !== undefined) args.push('master', checkIfName(s.master));
  if (s.up !== undefined) args.push(s.up ? 'up' : 'down');
  if (args.length === 0) return;
  await ip(['link', 'set', 'dev', name, ...args], {
    netns: s.netns,
    action: `set ${on(name, s)} ${args.join(' ')}`,
  });
}

/** Moves a link into namespace `to` (renaming it on the way when `rename` is given). */
export async function moveLink(name: string, o: Where & { to: string; rename?: string }): Promise<void> {
  checkIfName(name);
  const rename = o.rename === undefined ? [] : ['name', checkIfName(o.rename)];
  await ip(['link', 'set', 'dev', name, 'netns', checkNetnsName(o.to), ...rename], {
    netns: o.netns,
    action: `move ${on(name, o)} to netns "${o.to}"`,
  });
}

/** Deletes a link (for a veth, both ends). Can run twice. */
export async function deleteLink(name: string, opts: Where = {}): Promise<void> {
  checkIfName(name);
  await ip(['link', 'delete', 'dev', name], { ...opts, action: `delete ${on(name, opts)}` }).catch((e) => {
    if (!isMissing(e)) throw e;
  });
}

export function checkMtu(mtu: unknown): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new VxError('ERR_BAD_MTU', `MTU ${String(mtu)} must be an integer from 68 to 65535`);
  }
  return mtu;
}

export function checkMac(mac: unknown): string {
  if (typeof mac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) {
    throw new VxError(
      'ERR_BAD_MAC',
      `MAC address "${String(mac)}" must be six hex bytes separated by colons`,
    );
  }
  return mac.toLowerCase();
}

export interface UnderlayMtu {
  /** MTU of the path to the underlay (route MTU if the route sets one, else the device's). */
  underlay: number;
  /** underlay - 50: what an overlay's interfaces get. */
  overlay: number;
  device?: string;
  /** How it was found: the device asked for, the route to `dest`, the default route, or a 1500 fallback. */
  source: 'device' | 'route' | 'default-route' | 'fallback';
}

interface IpRoute {
  dev?: string;
  metrics?: { mtu?: number }[];
}

/**
 * Detects the underlay MTU: of `device` when given, else of the route to `dest` (the peer or the
 * advertise address), else of the default route; 1500 when there is no route at all.
 */
export async function detectUnderlayMtu(
  o: Where & { device?: string; dest?: string } = {},
): Promise<UnderlayMtu> {
  if (o.device !== undefined) return mtuOf(o.device, undefined, 'device', o);
  const args = o.dest === undefined ? ['route', 'show', 'default'] : ['route', 'get', o.dest];
  const routes = await ipJson<IpRoute>(args, {
    netns: o.netns,
    action: `look up the route to ${o.dest ?? 'default'}`,
  });
  const r = routes.find((x) => x.dev !== undefined);
  if (!r?.dev) return { underlay: 1500, overlay: 1500 - VXLAN_MTU_OVERHEAD, source: 'fallback' };
  const routeMtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  return mtuOf(r.dev, routeMtu, o.dest === undefined ? 'default-route' : 'route', o);
}

async function mtuOf(device: string, routeMtu: number | undefined, source: UnderlayMtu['source'], o: Where) {
  const link = await getLink(device, o);
  if (!link) throw new VxError('ERR_LINK_NOT_FOUND', `underlay ${on(device, o)} not found`);
  const underlay = Math.min(link.mtu, routeMtu ?? link.mtu);
  return { underlay, overlay: underlay - VXLAN_MTU_OVERHEAD, device, source };
}
