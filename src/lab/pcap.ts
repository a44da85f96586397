// A minimal pcap (libpcap classic format) writer and IPv4/UDP packet builders, for tests that hand
// vxnet's wire output to an independent decoder (tshark).
//
// Owns nothing but bytes: packets are built with correct IPv4 header checksums; UDP checksums are
// 0 (allowed on IPv4, and what Linux vxlan sends by default). LINKTYPE_RAW (101): each record is an
// IP packet with no link-layer header.
import { writeFileSync } from 'node:fs';
import { IPPROTO_UDP } from '../../assembly/constants.js';

export const LINKTYPE_RAW = 101;

/** Writes `packets` to `path` as a pcap file (microsecond timestamps, one packet per millisecond). */
export function writePcap(path: string, packets: Uint8Array[], linktype = LINKTYPE_RAW): void {
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(262144, 16); // snaplen
  gh.writeUInt32LE(linktype, 20);
  parts.push(gh);
  packets.forEach((p, i) => {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(1_700_000_000 + Math.floor(i / 1000), 0);
    rh.writeUInt32LE((i % 1000) * 1000, 4);
    rh.writeUInt32LE(p.length, 8);
    rh.writeUInt32LE(p.length, 12);
    parts.push(rh, Buffer.from(p));
  });
  writeFileSync(path, Buffer.concat(parts));
}

function ipBytes(a: string): number[] {
  const b = a.split('.').map(Number);
  if (b.length !== 4 || b.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new Error(`not an IPv4 address: ${a}`);
  }
  return b;
}

/** An IPv4 packet (20-byte header, DF, TTL 64) around `payload`. */
export function ipv4Packet(o: {
  src: string;
  dst: string;
  proto: number;
  payload: Uint8Array;
  id?: number;
}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + o.payload.length, 2);
  h.writeUInt16BE(o.id ?? 0, 4);
  h.writeUInt16BE(0x4000, 6);
  h[8] = 64;
  h[9] = o.proto;
  h.set(ipBytes(o.src), 12);
  h.set(ipBytes(o.dst), 16);
  h.writeUInt16BE(ipv4Checksum(h), 10);
  return Buffer.concat([h, Buffer.from(o.payload)]);
}

/** An IPv4/UDP packet (UDP checksum 0). */
export function udpPacket(o: {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Uint8Array;
}): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(o.sport, 0);
  u.writeUInt16BE(o.dport, 2);
  u.writeUInt16BE(8 + o.payload.length, 4);
  return ipv4Packet({
    src: o.src,
    dst: o.dst,
    proto: IPPROTO_UDP,
    payload: Buffer.concat([u, Buffer.from(o.payload)]),
  });
}

export function ipv4Checksum(h: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < h.length; i += 2) s += (h[i] << 8) | (h[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
