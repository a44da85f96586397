// IP addresses on links.
//
// Owns: adding (idempotent: an address already there is fine), deleting (can run twice) and
// listing the IPv4 addresses of a link. Addresses are CIDR text ("10.0.0.2/24"), checked by the
// IPAM's strict parser before they reach `ip`.

import { VxError } from '../errors.js';
import { parseIp } from '../ipam/cidr.js';
import { checkIfName, ip, ipJson, isExists, isMissing, type Where } from './exec.js';

function checkAddress(address: unknown): string {
  const m = typeof address === 'string' ? /^([0-9.]+)\/([0-9]{1,2})$/.exec(address) : null;
  if (!m || Number(m[2]) > 32)
    throw new VxError('ERR_BAD_CIDR', `address "${String(address)}" must be a.b.c.d/n`);
  parseIp(m[1]);
  return address as string;
}

function on(dev: string, opts: Where): string {
  return `"${dev}"${opts.netns === undefined ? '' : ` in netns "${opts.netns}"`}`;
}

/** Adds `address` (a.b.c.d/n, with its broadcast) to `dev`. */
export async function addAddr(dev: string, address: string, opts: Where = {}): Promise<void> {
  checkIfName(dev);
  checkAddress(address);
  await ip(['addr', 'add', address, 'brd', '+', 'dev', dev], {
    ...opts,
    action: `add ${address} to ${on(dev, opts)}`,
  }).catch((e) => {
    if (!isExists(e)) throw e;
  });
}

/** Removes `address` from `dev`. Can run twice. */
export async function deleteAddr(dev: string, address: string, opts: Where = {}): Promise<void> {
  checkIfName(dev);
  checkAddress(address);
  await ip(['addr', 'del', address, 'dev', dev], {
    ...opts,
    action: `delete ${address} from ${on(dev, opts)}`,
  }).catch((e) => {
    if (!isMissing(e)) throw e;
  });
}

interface IpAddr {
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** The IPv4 addresses of `dev` as a.b.c.d/n. */
export async function listAddrs(dev: string, opts: Where = {}): Promise<string[]> {
  checkIfName(dev);
  const rows = await ipJson<IpAddr>(['-4', 'addr', 'show', 'dev', dev], {
    ...opts,
    action: `list addresses of ${on(dev, opts)}`,
  });
  return rows.flatMap((r) => (r.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}
