// In-memory fakes of the TAP and UDP seams, for datapath tests without root.
//
// Owns: frame and datagram queues in JS memory, copied into and out of WASM memory by the same
// batch calls as the real seams, with the same descriptor results (DESC_PTR = slot + HEADROOM,
// DESC_ADDR = the batch's sockaddr buffer i, DESC_AUX = 0 on receive, oversize input dropped and
// counted, GSO buffers split into DESC_AUX-sized datagrams as the kernel does for a socket
// without UDP_GRO). Each fake holds an eventfd that is readable while its queue is not empty, so
// EventLoopDriver and runBlocking drive fakes exactly as they drive the kernel.
import {
  DESC_ADDR,
  DESC_AUX,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  VNET_HDR_LEN,
} from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core } from '../wasm/module.js';
import type { PacketBatch } from './batch.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, sys, sysError } from './libc.js';
import { MemView } from './memview.js';
import type { TapSeam, UdpSeam } from './seams.js';
import { readSockaddr, writeSockaddr } from './sockaddr.js';

/** A readiness fd: readable while `set(true)`. */
class Readiness {
  readonly fd: number;
  private on = false;
  constructor() {
    this.fd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.fd < 0) throw sysError('ERR_POLLER', 'eventfd');
  }
  set(readable: boolean): void {
    if (readable === this.on) return;
    this.on = readable;
    const b = Buffer.alloc(8);
    if (readable) {
      b.writeUInt32LE(1, 0);
      sys.writeBuf(this.fd, b, 8);
    } else sys.readBuf(this.fd, b, 8);
  }
  close(): void {
    sys.close(this.fd);
  }
}

export interface FakeTapOptions {
  vnetHdr?: boolean;
  memory?: WebAssembly.Memory;
}

/** A TAP whose "kernel side" is `inject()` (frames the kernel would send) and `written` (frames it got). */
export class FakeTap implements TapSeam {
  readonly vnetHdr: boolean;
  readonly memory: WebAssembly.Memory;
  /** Frames (with their virtio_net_hdr in front when vnetHdr) written by writeBatch, oldest first. */
  readonly written: Uint8Array[] = [];
  readonly stats = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txErrors: 0, rxDropped: 0 };
  private readonly queue: Uint8Array[] = [];
  private readonly ready = new Readiness();
  private readonly view: MemView;

  constructor(opts: FakeTapOptions = {}) {
    this.vnetHdr = !!opts.vnetHdr;
    this.memory = opts.memory ?? core().memory;
    this.view = new MemView(this.memory);
  }

  get fd(): number {
    return this.ready.fd;
  }

  /** Queues frames as if the kernel sent them out of the TAP (with a virtio_net_hdr in front when vnetHdr). */
  inject(...frames: Uint8Array[]): void {
    for (const f of frames) this.queue.push(f.slice());
    this.ready.set(this.queue.length > 0);
  }

  readBatch(batch: PacketBatch, max = batch.capacity): number {
    if (batch.memory !== this.memory) throw new VxError('ERR_INVALID_ARG', 'batch is in another memory');
    const hdr = this.vnetHdr ? VNET_HDR_LEN : 0;
    const n = Math.min(max, batch.capacity);
    const u8 = this.view.u8();
    const u32 = this.view.u32();
    let i = 0;
    while (i < n && this.queue.length > 0) {
      const f = this.queue.shift()!;
      if (f.length <= hdr || f.length > batch.frameCapacity + hdr) {
        this.stats.rxDropped++;
        continue;
      }
      u8.set(f, batch.frame(i) - hdr);
      const d = (batch.descs + i * DESC_SIZE) >>> 2;
      u32[d + (DESC_PTR >> 2)] = batch.frame(i);
      u32[d + (DESC_LEN >> 2)] = f.length - hdr;
      this.stats.rxBytes += f.length - hdr;
      i++;
    }
    this.stats.rxFrames += i;
    this.ready.set(this.queue.length > 0);
    return i;
  }

  writeBatch(descs: number, n: number): number {
    const hdr = this.vnetHdr ? VNET_HDR_LEN : 0;
    const u8 = this.view.u8();
    const u32 = this.view.u32();
    for (let i = 0; i < n; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const ptr = u32[d + (DESC_PTR >> 2)]!;
      const len = u32[d + (DESC_LEN >> 2)]!;
      this.written.push(u8.slice(ptr - hdr, ptr + len));
      this.stats.txBytes += len;
    }
    this.stats.txFrames += n;
    return n;
  }

  writeGather(descs: number, n: number): number {
    const u8 = this.view.u8();
    const u32 = this.view.u32();
    for (let i = 0; i < n; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const list = u32[d + (DESC_PTR >> 2)]! >>> 2;
      const cnt = u32[d + (DESC_LEN >> 2)]!;
      const parts: number[] = [];
      for (let j = 0; j < cnt; j++) {
        const p = u32[list + 2 * j]!;
        for (const b of u8.subarray(p, p + u32[list + 2 * j + 1]!)) parts.push(b);
      }
      this.written.push(Uint8Array.from(parts));
      this.stats.txBytes += parts.length - (this.vnetHdr ? VNET_HDR_LEN : 0);
    }
    this.stats.txFrames += n;
    return n;
  }

  close(): void {
    this.ready.close();
  }
}

/** Connects FakeUdp endpoints by "address:port" (an in-memory underlay). */
export class FakeUnderlay {
  readonly endpoints = new Map<string, FakeUdp>();
  /** Datagrams sent to an address nobody is bound to. */
  unroutable = 0;

  /** A new endpoint bound to `address`:`port` on this underlay. */
  bind(address: string, port: number, memory?: WebAssembly.Memory): FakeUdp {
    const key = `${address}:${port}`;
    if (this.endpoints.has(key))
      throw new VxError('ERR_UDP_BIND', `cannot bind UDP ${address} port ${port}: EADDRINUSE`);
    const ep = new FakeUdp(this, address, port, memory ?? core().memory);
    this.endpoints.set(key, ep);
    return ep;
  }
}

interface Datagram {
  data: Uint8Array;
  from: { address: string; port: number };
}

export class FakeUdp implements UdpSeam {
  readonly stats = { rxDatagrams: 0, rxBytes: 0, rxTruncated: 0, txDatagrams: 0, txBytes: 0, txErrors: 0 };
  private readonly queue: Datagram[] = [];
  private readonly ready = new Readiness();
  private readonly view: MemView;

  constructor(
    private readonly net: FakeUnderlay,
    readonly address: string,
    readonly port: number,
    readonly memory: WebAssembly.Memory,
  ) {
    this.view = new MemView(memory);
  }

  get fd(): number {
    return this.ready.fd;
  }

  /** Queues a datagram as if `from` had sent it (for tests injecting hostile input). */
  deliver(data: Uint8Array, from: { address: string; port: number }): void {
    this.queue.push({ data: data.slice(), from });
    this.ready.set(true);
  }

  recvBatch(batch: PacketBatch, max = batch.capacity): number {
    const n = Math.min(max, batch.capacity);
    const u8 = this.view.u8();
    const u32 = this.view.u32();
    let i = 0;
    while (i < n && this.queue.length > 0) {
      const g = this.queue.shift()!;
      if (g.data.length > batch.frameCapacity) {
        this.stats.rxTruncated++;
        continue;
      }
      u8.set(g.data, batch.frame(i));
      writeSockaddr(u8, batch.addr(i), g.from.address, g.from.port);
      const d = (batch.descs + i * DESC_SIZE) >>> 2;
      u32[d + (DESC_PTR >> 2)] = batch.frame(i);
      u32[d + (DESC_LEN >> 2)] = g.data.length;
      u32[d + (DESC_ADDR >> 2)] = batch.addr(i);
      u32[d + (DESC_AUX >> 2)] = 0;
      this.stats.rxBytes += g.data.length;
      i++;
    }
    this.stats.rxDatagrams += i;
    this.ready.set(this.queue.length > 0);
    return i;
  }

  sendBatch(descs: number, n: number): number {
    return this.send(descs, n, false);
  }

  sendGather(descs: number, n: number): number {
    return this.send(descs, n, true);
  }

  private send(descs: number, n: number, gather: boolean): number {
    const u8 = this.view.u8();
    const u32 = this.view.u32();
    let sent = 0;
    for (let i = 0; i < n; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const ptr = u32[d + (DESC_PTR >> 2)]!;
      const cnt = u32[d + (DESC_LEN >> 2)]!;
      const seg = u32[d + (DESC_AUX >> 2)]!;
      let data: Uint8Array;
      if (gather) {
        const parts: Uint8Array[] = [];
        for (let j = 0; j < cnt; j++) {
          const p = u32[(ptr >>> 2) + 2 * j]!;
          parts.push(u8.slice(p, p + u32[(ptr >>> 2) + 2 * j + 1]!));
        }
        data = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
        let off = 0;
        for (const p of parts) {
          data.set(p, off);
          off += p.length;
        }
      } else data = u8.slice(ptr, ptr + cnt);
      let to: { address: string; port: number };
      try {
        to = readSockaddr(u8, u32[d + (DESC_ADDR >> 2)]!);
      } catch {
        this.stats.txErrors++;
        continue;
      }
      const peer = this.net.endpoints.get(`${to.address}:${to.port}`);
      const len = data.length;
      const step = seg > 0 && seg < len ? seg : Math.max(len, 1);
      for (let off = 0; off === 0 || off < len; off += step) {
        const part = data.subarray(off, Math.min(len, off + step));
        if (peer) peer.deliver(part, { address: this.address, port: this.port });
        else this.net.unroutable++;
      }
      this.stats.txBytes += len;
      sent++;
    }
    this.stats.txDatagrams += sent;
    return sent;
  }

  close(): void {
    this.net.endpoints.delete(`${this.address}:${this.port}`);
    this.ready.close();
  }
}
