// Linux sockaddr_in / sockaddr_in6 in linear memory: the address format DESC_ADDR points to.
//
// Owns the byte layout and the text <-> bytes conversion, so peers, the UDP bind and the tests
// agree on it. sockaddr_in: family u16 (host order), port u16 (network order), 4 address bytes,
// 8 zero bytes. sockaddr_in6: family, port, flowinfo u32, 16 address bytes, scope_id u32.
import { isIPv4, isIPv6 } from 'node:net';
import { VxError } from '../errors.js';
import { AF_INET, AF_INET6, SOCKADDR_IN_LEN, SOCKADDR_IN6_LEN } from './libc.js';

export interface SockAddr {
  address: string;
  port: number;
  family: 4 | 6;
}

/** The 16 bytes of an IPv6 address in text form (with ::, and a trailing dotted quad). */
export function parseIPv6(text: string): Uint8Array {
  if (!isIPv6(text)) throw new VxError('ERR_INVALID_ADDRESS', `"${text}" is not an IPv6 address`);
  const out = new Uint8Array(16);
  let s = text.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const q = v4[1]!.split('.').map(Number);
    s = `${s.slice(0, v4.index)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** RFC 5952 text of 16 address bytes (longest run of two or more zero groups becomes ::). */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Writes a sockaddr for `address`/`port` at `ptr` in `u8`; returns its length (16 or 28). */
export function writeSockaddr(u8: Uint8Array, ptr: number, address: string, port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new VxError('ERR_INVALID_ARG', `port must be an integer in 0..65535, got ${port}`);
  }
  if (isIPv4(address)) {
    u8.fill(0, ptr, ptr + SOCKADDR_IN_LEN);
    u8[ptr] = AF_INET;
    u8[ptr + 2] = port >> 8;
    u8[ptr + 3] = port & 0xff;
    address.split('.').forEach((q, i) => {
      u8[ptr + 4 + i] = Number(q);
    });
    return SOCKADDR_IN_LEN;
  }
  const bytes = parseIPv6(address);
  u8.fill(0, ptr, ptr + SOCKADDR_IN6_LEN);
  u8[ptr] = AF_INET6;
  u8[ptr + 2] = port >> 8;
  u8[ptr + 3] = port & 0xff;
  u8.set(bytes, ptr + 8);
  return SOCKADDR_IN6_LEN;
}

/** Reads the sockaddr at `ptr` (for tests, logs and events; not for the per-packet path). */
export function readSockaddr(u8: Uint8Array, ptr: number): SockAddr {
  const family = u8[ptr]! | (u8[ptr + 1]! << 8);
  const port = (u8[ptr + 2]! << 8) | u8[ptr + 3]!;
  if (family === AF_INET) return { family: 4, port, address: u8.subarray(ptr + 4, ptr + 8).join('.') };
  if (family === AF_INET6) return { family: 6, port, address: formatIPv6(u8.subarray(ptr + 8, ptr + 24)) };
  throw new VxError('ERR_INVALID_ADDRESS', `no sockaddr at ${ptr} (family ${family})`);
}

/** sockaddr length for the family stored at `ptr` (0 when it is neither). */
export function sockaddrLen(u8: Uint8Array, ptr: number): number {
  const f = u8[ptr]!;
  return f === AF_INET ? SOCKADDR_IN_LEN : f === AF_INET6 ? SOCKADDR_IN6_LEN : 0;
}
