// The UDP underlay: one socket on the data-path port, read and written with recvmmsg/sendmmsg
// straight from WASM linear memory.
//
// Owns: the socket fd, its options (buffer sizes, UDP_GRO, v6only), and the mmsghdr/iovec/cmsg
// arrays the two batch calls use (carved out of linear memory once, so the kernel reads and writes
// them in place). recvBatch fills descriptor i with slot i of a PacketBatch: DESC_PTR/DESC_LEN, and
// DESC_ADDR = the batch's sockaddr buffer i, holding the datagram's source; with `gro` on, DESC_AUX
// is the segment size of a coalesced datagram (0 when not coalesced). sendBatch sends any
// descriptor array: DESC_ADDR points to the destination sockaddr (e.g. in the peer table), and a
// non-zero DESC_AUX smaller than DESC_LEN asks for UDP GSO (UDP_SEGMENT) at that segment size.
// One socket is one family; a Vtep with IPv4 and IPv6 underlays opens two.
import { isIPv4, isIPv6 } from 'node:net';
import { DESC_ADDR, DESC_AUX, DESC_LEN, DESC_PTR, DESC_SIZE, VXLAN_PORT } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core } from '../wasm/module.js';
import { ADDR_SLOT, type PacketBatch } from './batch.js';
import {
  AF_INET,
  AF_INET6,
  CMSG_HDR,
  CMSG_SPACE_INT,
  check,
  EAGAIN,
  EINTR,
  errno,
  IOVEC_SIZE,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  MMSG_LEN,
  MMSGHDR_SIZE,
  MSG_CONTROL,
  MSG_CONTROLLEN,
  MSG_DONTWAIT,
  MSG_FLAGS,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_NAME,
  MSG_NAMELEN,
  MSG_TRUNC,
  memBase,
  put64,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCKADDR_IN6_LEN,
  SOL_SOCKET,
  SOL_UDP,
  sys,
  sysError,
  UDP_GRO,
  UDP_SEGMENT,
} from './libc.js';
import { MemView } from './memview.js';
import type { UdpSeam } from './seams.js';
import { readSockaddr, type SockAddr, writeSockaddr } from './sockaddr.js';

export interface UdpOptions {
  /** Local address to bind (default '0.0.0.0'; '::' or an IPv6 address for an IPv6 underlay). */
  address?: string;
  /** Local port (default 4789; 0 picks a free one). */
  port?: number;
  /** Largest number of datagrams per recvmmsg/sendmmsg call (default 64). */
  batch?: number;
  /** SO_RCVBUF / SO_SNDBUF in bytes (forced past rmem_max when root). */
  rcvbuf?: number;
  sndbuf?: number;
  /** Ask the kernel to coalesce received datagrams (UDP_GRO); DESC_AUX then gives the segment size. */
  gro?: boolean;
  /** For '::' binds: also receive IPv4 (as v4-mapped addresses). Default false: one family per socket. */
  dualStack?: boolean;
  /** The memory batches live in (default: the main thread's `core().memory`). */
  memory?: WebAssembly.Memory;
  /** Allocator for the socket's mmsghdr arrays in `memory` (default `core().alloc`). */
  alloc?: (size: number) => number;
}

export interface UdpStats {
  rxDatagrams: number;
  rxBytes: number;
  /** Datagrams larger than a slot (dropped). */
  rxTruncated: number;
  txDatagrams: number;
  txBytes: number;
  /** Datagrams sendmmsg refused (unreachable, bad address family, EMSGSIZE, ...). */
  txErrors: number;
}

const int = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
};

/** What a worker needs to drive a socket the main thread opened (structured-cloneable). */
export interface UdpHandle {
  fd: number;
  family: 4 | 6;
  batchSize: number;
  gro: boolean;
  gso?: boolean;
  regions: [number, number, number, number, number, number, number];
}

export class UdpBind implements UdpSeam {
  readonly fd: number;
  readonly family: 4 | 6;
  readonly memory: WebAssembly.Memory;
  readonly batchSize: number;
  readonly gro: boolean;
  /** Whether a non-zero DESC_AUX asks for UDP_SEGMENT (false for sockets adopted without GSO). */
  readonly gso: boolean;
  readonly stats: UdpStats = {
    rxDatagrams: 0,
    rxBytes: 0,
    rxTruncated: 0,
    txDatagrams: 0,
    txBytes: 0,
    txErrors: 0,
  };
  private readonly base: number;
  private readonly view: MemView;
  private readonly rxVec: number;
  private readonly rxIov: number;
  private readonly rxCmsg: number;
  private readonly txVec: number;
  private readonly txIov: number;
  private readonly txCmsg: number;
  private readonly gatherIov: number;
  private rxBound: PacketBatch | undefined;
  private closed = false;

  private constructor(h: UdpHandle, memory: WebAssembly.Memory, owner: boolean) {
    this.fd = h.fd;
    this.family = h.family;
    this.memory = memory;
    this.batchSize = h.batchSize;
    this.gro = h.gro;
    this.gso = h.gso ?? true;
    this.base = memBase(this.memory);
    this.view = new MemView(this.memory);
    [this.rxVec, this.rxIov, this.rxCmsg, this.txVec, this.txIov, this.txCmsg, this.gatherIov] = h.regions;
    this.closed = !owner;
    if (owner) this.initTx();
  }

  /** A worker's UdpBind over the socket and arrays the main thread set up; it never allocates. */
  static attach(h: UdpHandle, memory: WebAssembly.Memory): UdpBind {
    return new UdpBind(h, memory, false);
  }

  handle(): UdpHandle {
    const regions: UdpHandle['regions'] = [
      this.rxVec,
      this.rxIov,
      this.rxCmsg,
      this.txVec,
      this.txIov,
      this.txCmsg,
      this.gatherIov,
    ];
    return {
      fd: this.fd,
      family: this.family,
      batchSize: this.batchSize,
      gro: this.gro,
      gso: this.gso,
      regions,
    };
  }

  /**
   * Wraps a datagram socket opened elsewhere (the raw underlay's SOCK_RAW socket) for sendBatch;
   * with `gso: false` DESC_AUX is ignored. close() closes the fd.
   */
  static adopt(
    fd: number,
    family: 4 | 6,
    opts: Pick<UdpOptions, 'batch' | 'memory' | 'alloc'> & { gso?: boolean } = {},
  ): UdpBind {
    const batch = opts.batch ?? 64;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) {
      throw new VxError('ERR_INVALID_ARG', `options.batch must be an integer in 1..1024, got ${batch}`);
    }
    const alloc = opts.alloc ?? ((size: number) => core().alloc(size));
    const regions = allocRegions(alloc, batch);
    const h: UdpHandle = { fd, family, batchSize: batch, gro: false, gso: opts.gso ?? true, regions };
    return new UdpBind(h, opts.memory ?? core().memory, true);
  }

  /** Opens and binds the socket. Errors: ERR_UDP_BIND (EADDRINUSE, ...), ERR_INVALID_ARG. */
  static open(opts: UdpOptions = {}): UdpBind {
    const address = opts.address ?? '0.0.0.0';
    const port = opts.port ?? VXLAN_PORT;
    const batch = opts.batch ?? 64;
    if (!isIPv4(address) && !isIPv6(address)) {
      throw new VxError(
        'ERR_INVALID_ARG',
        `options.address must be an IPv4 or IPv6 address, got "${address}"`,
      );
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new VxError('ERR_INVALID_ARG', `options.port must be an integer in 0..65535, got ${port}`);
    }
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) {
      throw new VxError('ERR_INVALID_ARG', `options.batch must be an integer in 1..1024, got ${batch}`);
    }
    const family = isIPv4(address) ? 4 : 6;
    const fd = sys.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw sysError('ERR_UDP_BIND', `socket for ${address}:${port}`);
    try {
      if (family === 6) sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int(opts.dualStack ? 0 : 1), 4);
      if (opts.rcvbuf) setBuf(fd, SO_RCVBUFFORCE, SO_RCVBUF, opts.rcvbuf);
      if (opts.sndbuf) setBuf(fd, SO_SNDBUFFORCE, SO_SNDBUF, opts.sndbuf);
      if (opts.gro)
        check(sys.setsockopt(fd, SOL_UDP, UDP_GRO, int(1), 4), 'ERR_UDP_BIND', 'setsockopt UDP_GRO');
      const sa = new Uint8Array(SOCKADDR_IN6_LEN);
      const len = writeSockaddr(sa, 0, address, port);
      if (sys.bind(fd, sa, len) < 0)
        throw sysError('ERR_UDP_BIND', `cannot bind UDP ${address} port ${port}`);
      const alloc = opts.alloc ?? ((size: number) => core().alloc(size));
      const regions = allocRegions(alloc, batch);
      return new UdpBind(
        { fd, family, batchSize: batch, gro: !!opts.gro, regions },
        opts.memory ?? core().memory,
        true,
      );
    } catch (e) {
      sys.close(fd);
      throw e;
    }
  }

  /** The bound address and port (the port the kernel picked when bound to 0). */
  localAddress(): SockAddr {
    const sa = new Uint8Array(SOCKADDR_IN6_LEN);
    const len = [SOCKADDR_IN6_LEN];
    check(sys.getsockname(this.fd, sa, len), 'ERR_UDP_IO', 'getsockname');
    return readSockaddr(sa, 0);
  }

  private initTx(): void {
    const u32 = this.view.u32();
    for (let i = 0; i < this.batchSize; i++) {
      const m = (this.txVec + i * MMSGHDR_SIZE) >>> 2;
      put64(u32, m + (MSG_IOV >> 2), this.base + this.txIov + i * IOVEC_SIZE);
      put64(u32, m + (MSG_IOVLEN >> 2), 1);
      // The UDP_SEGMENT cmsg header is constant; only its u16 value and msg_controllen change.
      const c = (this.txCmsg + i * CMSG_SPACE_INT) >>> 2;
      put64(u32, c, CMSG_HDR + 2);
      u32[c + 2] = SOL_UDP;
      u32[c + 3] = UDP_SEGMENT;
    }
  }

  private bindRx(batch: PacketBatch): void {
    const u32 = this.view.u32();
    for (let i = 0; i < this.batchSize; i++) {
      const m = (this.rxVec + i * MMSGHDR_SIZE) >>> 2;
      const iov = this.rxIov + i * IOVEC_SIZE;
      put64(u32, m + (MSG_NAME >> 2), i < batch.capacity ? this.base + batch.addr(i) : 0);
      put64(u32, m + (MSG_IOV >> 2), this.base + iov);
      put64(u32, m + (MSG_IOVLEN >> 2), 1);
      put64(u32, m + (MSG_CONTROL >> 2), this.gro ? this.base + this.rxCmsg + i * CMSG_SPACE_INT : 0);
      if (i < batch.capacity) {
        put64(u32, (iov >>> 2) + 0, this.base + batch.frame(i));
        put64(u32, (iov >>> 2) + 2, batch.frameCapacity);
      }
    }
    this.rxBound = batch;
  }

  /**
   * Receives up to `max` waiting datagrams (default and at most min(capacity, batch option)) with
   * one recvmmsg; never blocks. Descriptor i: DESC_PTR, DESC_LEN, DESC_ADDR (source), DESC_AUX
   * (GRO segment size or 0). Truncated datagrams are dropped and counted. Returns the count.
   */
  recvBatch(batch: PacketBatch, max = batch.capacity): number {
    if (batch !== this.rxBound) {
      if (batch.memory !== this.memory) throw new VxError('ERR_INVALID_ARG', 'batch is in another memory');
      if (this.gro && batch.frameCapacity < 65535) {
        throw new VxError('ERR_INVALID_ARG', 'a UDP_GRO socket needs batch slots of frameCapacity >= 65535');
      }
      this.bindRx(batch);
    }
    const n = Math.min(max, batch.capacity, this.batchSize);
    const u32 = this.view.u32();
    for (let i = 0; i < n; i++) {
      const m = (this.rxVec + i * MMSGHDR_SIZE) >>> 2;
      u32[m + (MSG_NAMELEN >> 2)] = SOCKADDR_IN6_LEN;
      put64(u32, m + (MSG_CONTROLLEN >> 2), this.gro ? CMSG_SPACE_INT : 0);
    }
    let got = sys.recvmmsg(this.fd, this.base + this.rxVec, n, MSG_DONTWAIT, 0);
    if (got < 0) {
      const e = errno();
      if (e === EAGAIN || e === EINTR) return 0;
      throw sysError('ERR_UDP_IO', 'recvmmsg', e);
    }
    let out = 0;
    let bytes = 0;
    for (let i = 0; i < got; i++) {
      const m = (this.rxVec + i * MMSGHDR_SIZE) >>> 2;
      if (u32[m + (MSG_FLAGS >> 2)]! & MSG_TRUNC) {
        this.stats.rxTruncated++;
        continue;
      }
      const len = u32[m + (MMSG_LEN >> 2)]!;
      const d = (batch.descs + out * DESC_SIZE) >>> 2;
      u32[d + (DESC_PTR >> 2)] = batch.frame(i);
      u32[d + (DESC_LEN >> 2)] = len;
      u32[d + (DESC_ADDR >> 2)] = batch.addrs + i * ADDR_SLOT;
      u32[d + (DESC_AUX >> 2)] = this.gro ? this.groSize(u32, m, i) : 0;
      bytes += len;
      out++;
    }
    got = out;
    this.stats.rxDatagrams += got;
    this.stats.rxBytes += bytes;
    return got;
  }

  private groSize(u32: Uint32Array, m: number, i: number): number {
    if (u32[m + (MSG_CONTROLLEN >> 2)]! < CMSG_HDR + 2) return 0;
    const c = (this.rxCmsg + i * CMSG_SPACE_INT) >>> 2;
    return u32[c + 2] === SOL_UDP && u32[c + 3] === UDP_GRO ? u32[c + 4]! & 0xffff : 0;
  }

  /**
   * Sends descriptors [0, n) at address `descs`, in calls of at most `batch` datagrams. Blocks
   * only while the socket's send buffer is full (back-pressure). Returns how many were sent; the
   * ones the kernel refused are skipped and counted in stats.txErrors.
   */
  sendBatch(descs: number, n: number): number {
    let sent = 0;
    let i = 0;
    while (i < n) {
      const k = this.fillTx(descs + i * DESC_SIZE, Math.min(n - i, this.batchSize));
      sent += this.flush(k);
      i += k;
    }
    return sent;
  }

  /**
   * Gather send, for segments whose headers were built apart from their payload (TSO cut into
   * MSS-sized segments without moving the payload). Descriptor i: DESC_PTR = address of DESC_LEN
   * pairs of u32 (address, length) in linear memory, concatenated into one datagram; DESC_ADDR =
   * destination; DESC_AUX = UDP GSO segment size or 0. With GSO the kernel cuts the concatenation
   * every DESC_AUX bytes, so the pairs must line up on segment boundaries; the whole message is
   * at most 65507 bytes and 64 segments. Returns how many messages were sent.
   */
  sendGather(descs: number, n: number): number {
    let sent = 0;
    let i = 0;
    while (i < n) {
      const k = this.fillGather(descs + i * DESC_SIZE, Math.min(n - i, this.batchSize));
      if (k === 0) {
        this.stats.txErrors++; // a single message with more than GATHER_IOVS pairs
        i++;
        continue;
      }
      sent += this.flush(k);
      i += k;
    }
    return sent;
  }

  private fillGather(descs: number, max: number): number {
    const u8 = this.view.u8();
    const u32 = this.view.u32();
    const base = this.base;
    let used = 0;
    let k = 0;
    let bytes = 0;
    for (; k < max; k++) {
      const d = (descs + k * DESC_SIZE) >>> 2;
      const list = u32[d + (DESC_PTR >> 2)]! >>> 2;
      const cnt = u32[d + (DESC_LEN >> 2)]!;
      if (used + cnt > GATHER_IOVS) break;
      const addr = u32[d + (DESC_ADDR >> 2)]!;
      const m = (this.txVec + k * MMSGHDR_SIZE) >>> 2;
      const iov0 = this.gatherIov + used * IOVEC_SIZE;
      put64(u32, m + (MSG_NAME >> 2), base + addr);
      u32[m + (MSG_NAMELEN >> 2)] = u8[addr] === AF_INET6 ? SOCKADDR_IN6_LEN : 16;
      put64(u32, m + (MSG_IOV >> 2), base + iov0);
      put64(u32, m + (MSG_IOVLEN >> 2), cnt);
      let len = 0;
      for (let j = 0; j < cnt; j++) {
        const v = (iov0 >>> 2) + j * 4;
        const l = u32[list + 2 * j + 1]!;
        put64(u32, v, base + u32[list + 2 * j]!);
        put64(u32, v + 2, l);
        len += l;
      }
      this.setSegment(u32, m, k, u32[d + (DESC_AUX >> 2)]!, len);
      used += cnt;
      bytes += len;
    }
    this.stats.txBytes += bytes;
    return k;
  }

  private setSegment(u32: Uint32Array, m: number, i: number, seg: number, len: number): void {
    if (seg > 0 && seg < len && this.gso) {
      const c = this.txCmsg + i * CMSG_SPACE_INT;
      u32[(c + CMSG_HDR) >>> 2] = seg;
      put64(u32, m + (MSG_CONTROL >> 2), this.base + c);
      put64(u32, m + (MSG_CONTROLLEN >> 2), CMSG_SPACE_INT);
    } else {
      put64(u32, m + (MSG_CONTROL >> 2), 0);
      put64(u32, m + (MSG_CONTROLLEN >> 2), 0);
    }
  }

  /** sendmmsg of the k prepared messages, skipping (and counting) any the kernel refuses. */
  private flush(k: number): number {
    let sent = 0;
    let off = 0;
    while (off < k) {
      const r = sys.sendmmsg(this.fd, this.base + this.txVec + off * MMSGHDR_SIZE, k - off, 0);
      if (r > 0) {
        sent += r;
        off += r;
        continue;
      }
      if (r < 0 && errno() === EINTR) continue;
      this.stats.txErrors++; // the message at `off` failed; skip it, send the rest
      off++;
    }
    this.stats.txDatagrams += sent;
    return sent;
  }

  private fillTx(descs: number, k: number): number {
    const u8 = this.view.u8();
    const u32 = this.view.u32();
    const base = this.base;
    let bytes = 0;
    for (let i = 0; i < k; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const ptr = u32[d + (DESC_PTR >> 2)]!;
      const len = u32[d + (DESC_LEN >> 2)]!;
      const addr = u32[d + (DESC_ADDR >> 2)]!;
      const seg = u32[d + (DESC_AUX >> 2)]!;
      const m = (this.txVec + i * MMSGHDR_SIZE) >>> 2;
      const iov = (this.txIov + i * IOVEC_SIZE) >>> 2;
      put64(u32, m + (MSG_NAME >> 2), base + addr);
      u32[m + (MSG_NAMELEN >> 2)] = u8[addr] === AF_INET6 ? SOCKADDR_IN6_LEN : 16;
      put64(u32, m + (MSG_IOV >> 2), base + this.txIov + i * IOVEC_SIZE);
      put64(u32, m + (MSG_IOVLEN >> 2), 1);
      put64(u32, iov, base + ptr);
      put64(u32, iov + 2, len);
      this.setSegment(u32, m, i, seg, len);
      bytes += len;
    }
    this.stats.txBytes += bytes;
    return k;
  }

  /** Closes the socket. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    sys.close(this.fd);
  }
}

/** Iovecs shared by the messages of one sendGather call (a GSO message uses 2 per segment). */
export const GATHER_IOVS = 1024;

function allocRegions(alloc: (size: number) => number, batch: number): UdpHandle['regions'] {
  const sizes = [MMSGHDR_SIZE, IOVEC_SIZE, CMSG_SPACE_INT, MMSGHDR_SIZE, IOVEC_SIZE, CMSG_SPACE_INT];
  const r = sizes.map((sz) => alloc(batch * sz));
  r.push(alloc(GATHER_IOVS * IOVEC_SIZE));
  return r as UdpHandle['regions'];
}

function setBuf(fd: number, force: number, plain: number, bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 4096) {
    throw new VxError('ERR_INVALID_ARG', `socket buffer size must be an integer >= 4096, got ${bytes}`);
  }
  if (sys.setsockopt(fd, SOL_SOCKET, force, int(bytes), 4) < 0) {
    check(
      sys.setsockopt(fd, SOL_SOCKET, plain, int(bytes), 4),
      'ERR_UDP_BIND',
      'setsockopt SO_RCVBUF/SO_SNDBUF',
    );
  }
}

/**
 * Expands the GRO'd datagrams of a received batch into one descriptor per original datagram:
 * descriptor i of `descs` (DESC_AUX = segment size, 0 when not coalesced) becomes ceil(LEN / AUX)
 * descriptors at `out` with the same DESC_ADDR, consecutive DESC_PTR, DESC_AUX = 0, so a
 * one-datagram-per-descriptor consumer (decap) can take them. Stops when `outCapacity` is
 * reached; returns how many descriptors it wrote. The payloads stay where they are.
 */
export function expandGro(view: MemView, descs: number, n: number, out: number, outCapacity: number): number {
  const u32 = view.u32();
  let k = 0;
  for (let i = 0; i < n; i++) {
    const d = (descs + i * DESC_SIZE) >>> 2;
    const ptr = u32[d + (DESC_PTR >> 2)]!;
    const len = u32[d + (DESC_LEN >> 2)]!;
    const addr = u32[d + (DESC_ADDR >> 2)]!;
    const seg = u32[d + (DESC_AUX >> 2)]! || len;
    for (let off = 0; off < len || (len === 0 && off === 0); off += seg || 1) {
      if (k === outCapacity) return k;
      const o = (out + k * DESC_SIZE) >>> 2;
      u32[o + (DESC_PTR >> 2)] = ptr + off;
      u32[o + (DESC_LEN >> 2)] = Math.min(seg, len - off);
      u32[o + (DESC_ADDR >> 2)] = addr;
      u32[o + (DESC_AUX >> 2)] = 0;
      k++;
      if (len === 0) break;
    }
  }
  return k;
}
