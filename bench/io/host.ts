// One simulated host of bench/io.ts's `io-forward tcp-veth1500` case, run inside the host's
// namespace (`ip netns exec H node --import tsx bench/io/host.ts '<json>'`): a TAP with the
// overlay address, a UDP socket on the underlay veth, and a copy forwarder (no VXLAN) between them,
// driven by runBlocking on this process's only thread. Killed by the parent; the TAP goes with it.
//
// mode `plain`: one frame per datagram (recvmmsg/sendmmsg batches, per-frame TAP read/write).
// mode `tso`: the TAP has IFF_VNET_HDR + TSO/CSUM offload, so reads return TCP frames of up to
// 64 KB. Each is cut into MSS-sized TCP segments right here (headers copied into a header area and
// patched: IP length/id/checksum, TCP seq/flags, partial checksum; payload referenced in place by a
// second gather entry), and all segments of a TAP batch leave in one UdpBind.sendGather (sendmmsg,
// UDP_SEGMENT per message). Each datagram on the wire is [virtio_net_hdr][Ethernet frame] <= 1472
// bytes. The receiver has UDP_GRO: one recvmmsg slot holds up to 64 KB of same-size datagrams,
// which `coalesce` turns back into one TSO frame (TapDevice.writeGather: one writev, no copy).
// This is the work the WASM pipeline has to do around VXLAN; the JS here only measures the I/O.
// VXSPIN=<us> busy-polls that long after the last packet. VXDBG=1 prints counters to stderr once a second; VXPROF=<s> exits after s seconds (for --cpu-prof).
import {
  DESC_AUX,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  VNET_CSUM_OFFSET,
  VNET_CSUM_START,
  VNET_FLAGS,
  VNET_GSO_SIZE,
  VNET_GSO_TYPE,
  VNET_HDR_LEN,
  VNET_HDR_LEN_FIELD,
} from '../../assembly/constants.js';
import { PacketBatch } from '../../src/io/batch.js';
import { memBase, sys } from '../../src/io/libc.js';
import { type Pump, runBlocking, Waker } from '../../src/io/poller.js';
import { writeSockaddr } from '../../src/io/sockaddr.js';
import { TapDevice, TSO_MAX_FRAME } from '../../src/io/tap.js';
import { UdpBind } from '../../src/io/udp.js';
import { core } from '../../src/wasm/module.js';

const cfg = JSON.parse(process.argv[2]!) as {
  mode: 'plain' | 'tso';
  tapIp: string;
  local: string;
  peer: string;
};
const tso = cfg.mode === 'tso';
const { execFileSync } = await import('node:child_process');
const c = core();
const tap = TapDevice.open({ name: 'vxfwd0', vnetHdr: tso });
tap.setLink({ mtu: 1400, up: true });
execFileSync('ip', ['addr', 'add', cfg.tapIp, 'dev', tap.name]);
const udp = UdpBind.open({ address: cfg.local, port: 4789, gro: tso, rcvbuf: 8 << 20, sndbuf: 8 << 20 });
const peer = c.alloc(32);
writeSockaddr(c.u8(), peer, cfg.peer, 4789);
const frameCapacity = tso ? TSO_MAX_FRAME : 2048;
const fromTap = new PacketBatch({ capacity: tso ? 16 : 64, frameCapacity });
const fromUdp = new PacketBatch({ capacity: tso ? 16 : 64, frameCapacity });
for (let i = 0; i < fromTap.capacity; i++) c.dv().setUint32(fromTap.desc(i) + 16, peer, true);
const base = memBase(c.memory);

// ---- tso mode: segmentation into a header area + in-place payload, sent by gather -------------
const MAX_SEGS = 64;
const HDR_SLOT = 128;
const OUT = 64; // gather messages per TAP batch
const hdrArea = c.alloc(fromTap.capacity * MAX_SEGS * HDR_SLOT);
const lists = c.alloc(OUT * 2 * MAX_SEGS * 8);
const out = new PacketBatch({ capacity: OUT, frameCapacity: 64 });
let nout = 0;
let listAt = lists;
let hdrAt = hdrArea;

/** Appends one gather message of `pairs` (address, length) pairs starting at `list`. */
function emit(list: number, pairs: number, seg: number): void {
  const d = out.desc(nout++) >>> 2;
  const u32 = new Uint32Array(c.memory.buffer);
  u32[d] = list;
  u32[d + 1] = pairs;
  u32[d + 4] = peer;
  u32[d + 6] = seg;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Cuts the TSO frame at `ptr` (virtio_net_hdr before it) into segments queued for sendGather. */
function segment(ptr: number, len: number): void {
  const u8 = c.u8();
  const dv = c.dv();
  const h = ptr - VNET_HDR_LEN;
  const gso = u8[h + VNET_GSO_TYPE]! & 0x7f;
  const mss = dv.getUint16(h + VNET_GSO_SIZE, true);
  if (gso !== 1 || u8[ptr + 12] !== 0x08 || u8[ptr + 13] !== 0x00) {
    if (len + VNET_HDR_LEN > 1472) return;
    dv.setUint32(listAt, h, true);
    dv.setUint32(listAt + 4, len + VNET_HDR_LEN, true);
    emit(listAt, 1, 0);
    listAt += 8;
    dbg.whole++;
    return;
  }
  const ip = ptr + 14;
  const ihl = (u8[ip]! & 15) * 4;
  const tcp = ip + ihl;
  const thl = (u8[tcp + 12]! >> 4) * 4;
  const hl = 14 + ihl + thl;
  const payload = len - hl;
  const nseg = Math.ceil(payload / mss);
  if (nseg > MAX_SEGS) return;
  const id0 = dv.getUint16(ip + 4);
  const seq0 = dv.getUint32(tcp + 4);
  const flags = u8[tcp + 13]!;
  const addrSum =
    dv.getUint16(ip + 12) + dv.getUint16(ip + 14) + dv.getUint16(ip + 16) + dv.getUint16(ip + 18);
  const wire = VNET_HDR_LEN + hl + mss;
  // A UDP datagram (the GSO super-packet) carries at most 65507 bytes: one message per `per` segments.
  const per = Math.floor(65000 / wire);
  let first = listAt;
  for (let i = 0; i < nseg; i++) {
    const plen = Math.min(mss, payload - i * mss);
    const sh = hdrAt;
    hdrAt += HDR_SLOT;
    u8.copyWithin(sh, h, h + VNET_HDR_LEN + hl);
    u8[sh + VNET_GSO_TYPE] = 0;
    dv.setUint16(sh + VNET_GSO_SIZE, 0, true);
    dv.setUint16(sh + VNET_HDR_LEN_FIELD, hl, true);
    u8[sh + VNET_FLAGS] = 1; // NEEDS_CSUM
    dv.setUint16(sh + VNET_CSUM_START, 14 + ihl, true);
    dv.setUint16(sh + VNET_CSUM_OFFSET, 16, true);
    const sip = sh + VNET_HDR_LEN + 14;
    const stcp = sip + ihl;
    dv.setUint16(sip + 2, ihl + thl + plen);
    dv.setUint16(sip + 4, (id0 + i) & 0xffff);
    dv.setUint16(sip + 10, 0);
    let s = 0;
    for (let k = 0; k < ihl; k += 2) s += dv.getUint16(sip + k);
    dv.setUint16(sip + 10, ~fold(s) & 0xffff);
    dv.setUint32(stcp + 4, (seq0 + i * mss) >>> 0);
    if (i < nseg - 1) u8[stcp + 13] = flags & ~0x09; // FIN and PSH only on the last segment
    dv.setUint16(stcp + 16, fold(addrSum + 6 + thl + plen));
    dv.setUint32(listAt, sh, true);
    dv.setUint32(listAt + 4, VNET_HDR_LEN + hl, true);
    dv.setUint32(listAt + 8, ptr + hl + i * mss, true);
    dv.setUint32(listAt + 12, plen, true);
    listAt += 16;
    if ((i + 1) % per === 0 || i === nseg - 1) {
      const k = (listAt - first) >> 4;
      emit(first, 2 * k, k > 1 ? wire : 0);
      first = listAt;
    }
  }
  dbg.segs += nseg;
}

const coList = c.alloc(MAX_SEGS * 8);
/** VXCOPY=1: move the payloads together and write(2) instead of writev (to compare the two). */
const COPY = process.env.VXCOPY === '1';
const coDesc = new PacketBatch({ capacity: 1, frameCapacity: 64 });

/**
 * GRO in userspace: the `seg`-sized datagrams at `ptr` (each [virtio_net_hdr][IPv4/TCP frame], as
 * segmentAndSend made them) are one flow's consecutive segments: patch the first segment's headers
 * and write ONE TSO frame by gather (its headers, then every payload in place) (gso_type TCPV4, gso_size = MSS).
 * Returns false (nothing written) when they are not.
 */
function coalesce(ptr: number, len: number, seg: number): boolean {
  const u8 = c.u8();
  const dv = c.dv();
  const f = ptr + VNET_HDR_LEN;
  if (u8[f + 12] !== 0x08 || u8[f + 13] !== 0x00 || u8[f + 23] !== 6) return false;
  const ip = f + 14;
  const ihl = (u8[ip]! & 15) * 4;
  const tcp = ip + ihl;
  const thl = (u8[tcp + 12]! >> 4) * 4;
  const hl = 14 + ihl + thl;
  const mss = seg - VNET_HDR_LEN - hl;
  if (mss <= 0 || (u8[tcp + 13]! & 0x27) !== 0) return false; // FIN/SYN/RST/URG stay single
  const n = Math.ceil(len / seg);
  const seq0 = dv.getUint32(tcp + 4);
  for (let k = 1; k < n; k++) {
    const o = ptr + k * seg + VNET_HDR_LEN;
    for (let b = 26; b < 38; b++) if (u8[o + b] !== u8[f + b]) return false; // addresses and ports
    if (dv.getUint32(o + 14 + ihl + 4) !== (seq0 + k * mss) >>> 0) return false;
    if ((u8[o + 14 + ihl + 12]! >> 4) * 4 !== thl) return false;
  }
  // Gather list: [virtio_net_hdr + first segment], then the other segments' payloads in place.
  dv.setUint32(coList, ptr, true);
  dv.setUint32(coList + 4, VNET_HDR_LEN + hl + mss, true);
  let payload = mss;
  let flags = u8[tcp + 13]!;
  for (let k = 1; k < n; k++) {
    const o = ptr + k * seg + VNET_HDR_LEN;
    const plen = Math.min(seg, len - k * seg) - VNET_HDR_LEN - hl;
    flags |= u8[o + 14 + ihl + 13]! & 0x08;
    if (COPY) u8.copyWithin(f + hl + payload, o + hl, o + hl + plen);
    dv.setUint32(coList + 8 * k, o + hl, true);
    dv.setUint32(coList + 8 * k + 4, plen, true);
    payload += plen;
  }
  u8[tcp + 13] = flags;
  dv.setUint16(ip + 2, ihl + thl + payload);
  dv.setUint16(ip + 10, 0);
  let sum = 0;
  for (let k = 0; k < ihl; k += 2) sum += dv.getUint16(ip + k);
  dv.setUint16(ip + 10, ~fold(sum) & 0xffff);
  const addrSum =
    dv.getUint16(ip + 12) + dv.getUint16(ip + 14) + dv.getUint16(ip + 16) + dv.getUint16(ip + 18);
  dv.setUint16(tcp + 16, fold(addrSum + 6 + thl + payload));
  u8[ptr + VNET_FLAGS] = 1;
  u8[ptr + VNET_GSO_TYPE] = 1; // TCPV4
  dv.setUint16(ptr + VNET_HDR_LEN_FIELD, hl, true);
  dv.setUint16(ptr + VNET_GSO_SIZE, mss, true);
  dv.setUint16(ptr + VNET_CSUM_START, 14 + ihl, true);
  dv.setUint16(ptr + VNET_CSUM_OFFSET, 16, true);
  dv.setUint32(coDesc.desc(0) + DESC_PTR, coList, true);
  dv.setUint32(coDesc.desc(0) + DESC_LEN, n, true);
  if (COPY) {
    if (sys.write(tap.fd, base + ptr, VNET_HDR_LEN + hl + payload) < 0) dbg.werr++;
  } else if (tap.writeGather(coDesc.descs, 1) !== 1) dbg.werr++;
  return true;
}

const dbg = { co: 0, w: 0, werr: 0, rx: 0, sendErr: 0, segs: 0, whole: 0, t: Date.now() };
const exitAt = process.env.VXPROF ? Date.now() + Number(process.env.VXPROF) * 1000 : 0;
function debug(): void {
  if (exitAt && Date.now() > exitAt) process.exit(0); // lets --cpu-prof write its profile
  if (process.env.VXDBG && Date.now() - dbg.t > 1000) {
    dbg.t = Date.now();
    process.stderr.write(`${cfg.local} ${JSON.stringify(dbg)}\n`);
  }
}

const pumps: Pump[] = [
  {
    fd: tap.fd,
    pump() {
      const n = tap.readBatch(fromTap);
      if (n === 0) return 0;
      if (!tso) return udp.sendBatch(fromTap.descs, n);
      const u32 = new Uint32Array(c.memory.buffer);
      nout = 0;
      listAt = lists;
      hdrAt = hdrArea;
      for (let i = 0; i < n; i++) {
        const d = (fromTap.descs + i * DESC_SIZE) >>> 2;
        segment(u32[d + (DESC_PTR >> 2)]!, u32[d + (DESC_LEN >> 2)]!);
      }
      udp.sendGather(out.descs, nout);
      debug();
      return n;
    },
  },
  {
    fd: udp.fd,
    pump() {
      const n = udp.recvBatch(fromUdp);
      if (n === 0) return 0;
      if (!tso) return tap.writeBatch(fromUdp.descs, n);
      const u32 = new Uint32Array(c.memory.buffer);
      for (let i = 0; i < n; i++) {
        const d = (fromUdp.descs + i * DESC_SIZE) >>> 2;
        const ptr = u32[d + (DESC_PTR >> 2)]!;
        const len = u32[d + (DESC_LEN >> 2)]!;
        const seg = u32[d + (DESC_AUX >> 2)]! || len;
        if (seg < len && coalesce(ptr, len, seg)) {
          dbg.co++;
          continue;
        }
        for (let off = 0; off < len; off += seg) {
          if (sys.write(tap.fd, base + ptr + off, Math.min(seg, len - off)) < 0) dbg.werr++;
          else dbg.w++;
        }
        dbg.rx += len;
      }
      return n;
    },
  },
];
process.stdout.write('ready\n');
runBlocking(pumps, {
  stop: new Int32Array(new SharedArrayBuffer(4)),
  waker: new Waker(),
  spinUs: Number(process.env.VXSPIN ?? 0),
});
