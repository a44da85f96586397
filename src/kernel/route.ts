// IPv4 routes.
//
// Owns: setting a route (`ip route replace`: idempotent, and it corrects a route that differs),
// deleting one (can run twice), listing, and asking which way a destination goes.

import { parseCidr, parseIp } from '../ipam/cidr.js';
import { checkIfName, ip, ipJson, isMissing, type Where } from './exec.js';
import { checkMtu } from './link.js';

export interface RouteSpec extends Where {
  /** 'default' or a CIDR. */
  dst: string;
  via?: string;
  dev?: string;
  /** Preferred source address. */
  src?: string;
  mtu?: number;
}

export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
}

/** Validates `text` as an address (or CIDR) and returns it unchanged, for `ip`'s argv. */
function checked(text: string, parse: (t: string, what: string) => unknown, what: string): string {
  parse(text, what);
  return text;
}

function routeArgs(r: RouteSpec): string[] {
  const args = [r.dst === 'default' ? 'default' : checked(r.dst, parseCidr, 'route destination')];
  if (r.via !== undefined) args.push('via', checked(r.via, parseIp, 'gateway'));
  if (r.dev !== undefined) args.push('dev', checkIfName(r.dev));
  if (r.src !== undefined) args.push('src', checked(r.src, parseIp, 'source'));
  if (r.mtu !== undefined) args.push('mtu', String(checkMtu(r.mtu)));
  return args;
}

function describe(r: RouteSpec): string {
  return `route ${routeArgs(r).join(' ')}${r.netns === undefined ? '' : ` in netns "${r.netns}"`}`;
}

export async function replaceRoute(r: RouteSpec): Promise<void> {
  await ip(['route', 'replace', ...routeArgs(r)], { netns: r.netns, action: `set ${describe(r)}` });
}

/** Deletes a route. Can run twice. */
export async function deleteRoute(r: RouteSpec): Promise<void> {
  await ip(['route', 'del', ...routeArgs(r)], { netns: r.netns, action: `delete ${describe(r)}` }).catch(
    (e) => {
      if (!isMissing(e)) throw e;
    },
  );
}

export async function listRoutes(opts: Where = {}): Promise<RouteInfo[]> {
  const rows = await ipJson<RouteInfo>(['-4', 'route', 'show'], { ...opts, action: 'list routes' });
  return rows.map(({ dst, gateway, dev, prefsrc }) => ({ dst, gateway, dev, prefsrc }));
}

/** Which way a packet to `dest` would go (`ip route get`). */
export async function routeGet(dest: string, opts: Where = {}): Promise<RouteInfo | undefined> {
  parseIp(dest, 'destination');
  const rows = await ipJson<RouteInfo>(['route', 'get', dest], {
    ...opts,
    action: `look up the route to ${dest}`,
  });
  return rows[0];
}
