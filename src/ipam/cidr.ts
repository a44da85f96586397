// IPv4 addresses and CIDR blocks: parsing, validation and arithmetic.
//
// Owns: the one strict parser every user-supplied address goes through. Addresses are unsigned
// 32-bit numbers so containment and overlap are integer comparisons. Parsing is strict on purpose
// (no leading zeros, which some tools read as octal; no host bits in a subnet) so a typo is an
// error with a code instead of a silently different network.

import { VxError } from '../errors.js';

export interface Cidr {
  /** Network address (host bits zero). */
  network: number;
  prefix: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

export function parseIp(text: unknown, what = 'IP address'): number {
  const parts = typeof text === 'string' ? text.split('.') : [];
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p) && Number(p) <= 255)) {
    throw new VxError('ERR_BAD_IP', `${what} "${String(text)}" is not a dotted-quad IPv4 address`);
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIp(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseCidr(text: unknown, what = 'subnet'): Cidr {
  const m = typeof text === 'string' ? /^([0-9.]+)\/(0|[1-9][0-9]?)$/.exec(text) : null;
  if (!m || Number(m[2]) > 32)
    throw new VxError('ERR_BAD_CIDR', `${what} "${String(text)}" is not an IPv4 CIDR (a.b.c.d/n)`);
  const ip = parseIp(m[1], what);
  const prefix = Number(m[2]);
  const network = (ip & maskOf(prefix)) >>> 0;
  if (network !== ip) {
    const fix = `${formatIp(network)}/${prefix}`;
    throw new VxError('ERR_BAD_CIDR', `${what} "${text}" has host bits set (did you mean ${fix}?)`);
  }
  return { network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.network)}/${c.prefix}`;
}

export function lastIp(c: Cidr): number {
  return (c.network | ~maskOf(c.prefix)) >>> 0;
}

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.network && ip <= lastIp(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network <= lastIp(b) && b.network <= lastIp(a);
}

export function inside(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.network);
}

/** Docker's container MAC: 02:42 followed by the four bytes of the IPv4 address. */
export function macFromIp(ip: number | string): string {
  const n = typeof ip === 'string' ? parseIp(ip) : ip;
  const bytes = [0x02, 0x42, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
