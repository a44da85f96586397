// A TAP device read and written in batches straight from WASM linear memory.
//
// Owns: the /dev/net/tun fd, its TUNSETIFF/TUNSETOFFLOAD/TUNSETVNETHDRSZ setup, and its link
// settings (MTU, up) through `ip`. The fd is O_NONBLOCK: readBatch reads frames until EAGAIN (or
// the batch is full) and never blocks, so it suits both an event-loop readiness callback and a
// worker that blocks in epoll_wait first. Each frame is one read(2) through koffi into slot i at
// HEADROOM; with IFF_VNET_HDR the virtio_net_hdr lands in the VNET_HDR_LEN bytes just before the
// frame, so the datapath finds it at DESC_PTR - VNET_HDR_LEN and can write one back there before
// writeBatch. The device is not persistent: close() removes it (also after it was moved to another
// namespace, where the open fd keeps working).
import { execFileSync } from 'node:child_process';
import { DESC_LEN, DESC_PTR, DESC_SIZE, VNET_HDR_LEN } from '../../assembly/constants.js';
import { VxError } from '../errors.js';
import { core } from '../wasm/module.js';
import type { PacketBatch } from './batch.js';
import {
  EAGAIN,
  EINTR,
  errno,
  IOV_MAX,
  IOVEC_SIZE,
  memBase,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  put64,
  sys,
  sysError,
} from './libc.js';
import { MemView } from './memview.js';
import type { TapSeam } from './seams.js';

const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const IFNAMSIZ = 16;

export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
/** A TSO frame: up to 64 KB of IP packet plus the Ethernet (and a VLAN) header. */
export const TSO_MAX_FRAME = 65550;
/** The offloads a vnet-hdr TAP asks for by default: partial checksums and TCP segmentation. */
export const TUN_F_DEFAULT = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

export interface TapOptions {
  /** Interface name (1..15 chars); empty or omitted lets the kernel pick tapN. */
  name?: string;
  /** Prefix every frame with a virtio_net_hdr (IFF_VNET_HDR) and enable `offload`. */
  vnetHdr?: boolean;
  /** TUN_F_* flags for TUNSETOFFLOAD when vnetHdr is on (default TUN_F_DEFAULT; 0 for none). */
  offload?: number;
  /** Set this MTU (through `ip link`). */
  mtu?: number;
  /** Bring the link up (through `ip link`). */
  up?: boolean;
  /** The memory batches live in (default: the main thread's `core().memory`). */
  memory?: WebAssembly.Memory;
}

export interface TapStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames writeBatch could not hand to the kernel (EAGAIN/ENOBUFS/EIO...). */
  txErrors: number;
}

/** What a worker needs to drive a TAP the main thread opened (structured-cloneable). */
export interface TapHandle {
  name: string;
  fd: number;
  vnetHdr: boolean;
  tso?: boolean;
}

export class TapDevice implements TapSeam {
  readonly name: string;
  readonly fd: number;
  readonly vnetHdr: boolean;
  /** Largest frame a read can return: 65550 with TSO offload on, else MTU-sized (checked per batch). */
  readonly maxFrame: number;
  private checked: PacketBatch | undefined;
  private gatherIov: Buffer | undefined;
  readonly stats: TapStats = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txErrors: 0 };
  readonly memory: WebAssembly.Memory;
  private closed = false;
  private readonly base: number;
  private readonly view: MemView;

  private constructor(name: string, fd: number, vnetHdr: boolean, memory: WebAssembly.Memory, tso = false) {
    this.maxFrame = tso ? TSO_MAX_FRAME : 0;
    this.name = name;
    this.fd = fd;
    this.vnetHdr = vnetHdr;
    this.memory = memory;
    this.base = memBase(memory);
    this.view = new MemView(memory);
  }

  /** A worker's TapDevice over the fd the main thread opened; the main thread still closes it. */
  static attach(h: TapHandle, memory: WebAssembly.Memory): TapDevice {
    const tap = new TapDevice(h.name, h.fd, h.vnetHdr, memory, h.tso);
    tap.closed = true; // close() in the worker must not remove the device under the owner
    return tap;
  }

  handle(): TapHandle {
    return { name: this.name, fd: this.fd, vnetHdr: this.vnetHdr, tso: this.maxFrame > 0 };
  }

  /** Creates (or attaches to a persistent) TAP device and opens it non-blocking. */
  static open(opts: TapOptions = {}): TapDevice {
    const name = opts.name ?? '';
    if (typeof name !== 'string' || name.length >= IFNAMSIZ || /[\s/:]/.test(name)) {
      throw new VxError(
        'ERR_INVALID_ARG',
        `options.name must be an interface name of at most 15 chars, got "${name}"`,
      );
    }
    const fd = sys.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) throw sysError('ERR_TAP_OPEN', 'cannot open /dev/net/tun');
    try {
      const ifr = Buffer.alloc(40);
      ifr.write(name, 0, 'latin1');
      ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | (opts.vnetHdr ? IFF_VNET_HDR : 0), IFNAMSIZ);
      if (sys.ioctlPtr(fd, TUNSETIFF, ifr) < 0)
        throw sysError('ERR_TAP_CREATE', `cannot create TAP "${name}"`);
      const actual = ifr.toString('latin1', 0, IFNAMSIZ).replace(/\0.*$/s, '');
      const off = opts.vnetHdr ? (opts.offload ?? TUN_F_DEFAULT) : 0;
      const tso = (off & (TUN_F_TSO4 | TUN_F_TSO6)) !== 0;
      const tap = new TapDevice(actual, fd, !!opts.vnetHdr, opts.memory ?? core().memory, tso);
      if (opts.vnetHdr) {
        const sz = Buffer.alloc(4);
        sz.writeInt32LE(VNET_HDR_LEN);
        if (sys.ioctlPtr(fd, TUNSETVNETHDRSZ, sz) < 0)
          throw sysError('ERR_TAP_CREATE', `TUNSETVNETHDRSZ on "${actual}"`);
        if (sys.ioctlInt(fd, TUNSETOFFLOAD, off) < 0)
          throw sysError('ERR_TAP_CREATE', `TUNSETOFFLOAD on "${actual}"`);
      }
      if (opts.mtu !== undefined || opts.up) tap.setLink({ mtu: opts.mtu, up: opts.up });
      return tap;
    } catch (e) {
      sys.close(fd);
      throw e;
    }
  }

  /** Sets the MTU and/or brings the link up, in the namespace the link is in now. */
  setLink(opts: { mtu?: number | undefined; up?: boolean | undefined; netns?: string }): void {
    const args = opts.netns ? ['-n', opts.netns] : [];
    args.push('link', 'set', 'dev', this.name);
    if (opts.mtu !== undefined) {
      if (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65521) {
        throw new VxError('ERR_INVALID_ARG', `options.mtu must be an integer in 68..65521, got ${opts.mtu}`);
      }
      args.push('mtu', String(opts.mtu));
    }
    if (opts.up) args.push('up');
    try {
      execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (cause) {
      throw new VxError('ERR_TAP_LINK', `ip ${args.join(' ')} failed`, { cause });
    }
  }

  /**
   * Reads frames until the device is empty or `max` (default: the batch's capacity) frames were
   * read; descriptor i gets DESC_PTR = batch.frame(i) and DESC_LEN. Returns the count (0 when
   * nothing was waiting). Never blocks.
   */
  readBatch(batch: PacketBatch, max = batch.capacity): number {
    if (batch !== this.checked) {
      if (batch.memory !== this.memory) throw new VxError('ERR_INVALID_ARG', 'batch is in another memory');
      if (batch.frameCapacity < this.maxFrame) {
        throw new VxError(
          'ERR_INVALID_ARG',
          `TAP "${this.name}" has TSO on: batch slots need frameCapacity >= ${this.maxFrame}`,
        );
      }
      this.checked = batch;
    }
    const base = this.base;
    const u32 = this.view.u32();
    const hdr = this.vnetHdr ? VNET_HDR_LEN : 0;
    const cap = batch.frameCapacity + hdr;
    const n = Math.min(max, batch.capacity);
    let i = 0;
    let bytes = 0;
    while (i < n) {
      const frame = batch.frame(i);
      const r = sys.read(this.fd, base + frame - hdr, cap);
      if (r < 0) {
        const e = errno();
        if (e === EAGAIN) break;
        if (e === EINTR) continue;
        throw sysError('ERR_TAP_IO', `read from TAP "${this.name}"`, e);
      }
      if (r <= hdr) continue; // a runt the kernel never sends; skip rather than hand on garbage
      const d = (batch.descs + i * DESC_SIZE) >>> 2;
      u32[d + (DESC_PTR >> 2)] = frame;
      u32[d + (DESC_LEN >> 2)] = r - hdr;
      bytes += r - hdr;
      i++;
    }
    this.stats.rxFrames += i;
    this.stats.rxBytes += bytes;
    return i;
  }

  /**
   * Writes descriptors [0, n) of the array at address `descs` as one frame each. With
   * vnetHdr the VNET_HDR_LEN bytes before DESC_PTR are written as the frame's virtio_net_hdr.
   * Returns how many the kernel took; the rest are counted in stats.txErrors.
   */
  writeBatch(descs: number, n: number): number {
    const base = this.base;
    const u32 = this.view.u32();
    const hdr = this.vnetHdr ? VNET_HDR_LEN : 0;
    let ok = 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const ptr = u32[d + (DESC_PTR >> 2)]!;
      const len = u32[d + (DESC_LEN >> 2)]!;
      let r = sys.write(this.fd, base + ptr - hdr, len + hdr);
      if (r < 0 && errno() === EINTR) r = sys.write(this.fd, base + ptr - hdr, len + hdr);
      if (r < 0) {
        this.stats.txErrors++;
        continue;
      }
      ok++;
      bytes += len;
    }
    this.stats.txFrames += ok;
    this.stats.txBytes += bytes;
    return ok;
  }

  /**
   * Gather write, for frames put together from pieces (GRO-style coalescing: one TSO frame from
   * the headers of the first segment and the payloads of all of them, without moving payload).
   * Descriptor i: DESC_PTR = address of DESC_LEN pairs of u32 (address, length) in linear memory,
   * written as one frame with writev; with vnetHdr the concatenation starts with the
   * virtio_net_hdr. At most IOV_MAX pairs per frame. Returns how many frames the kernel took.
   */
  writeGather(descs: number, n: number): number {
    const base = this.base;
    const u32 = this.view.u32();
    this.gatherIov ??= Buffer.alloc(IOV_MAX * IOVEC_SIZE);
    const iov = new Uint32Array(this.gatherIov.buffer, this.gatherIov.byteOffset, IOV_MAX * 4);
    let ok = 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const list = u32[d + (DESC_PTR >> 2)]! >>> 2;
      const cnt = u32[d + (DESC_LEN >> 2)]!;
      if (cnt === 0 || cnt > IOV_MAX) {
        this.stats.txErrors++;
        continue;
      }
      let len = 0;
      for (let j = 0; j < cnt; j++) {
        const l = u32[list + 2 * j + 1]!;
        put64(iov, j * 4, base + u32[list + 2 * j]!);
        put64(iov, j * 4 + 2, l);
        len += l;
      }
      let r = sys.writevBuf(this.fd, this.gatherIov, cnt);
      if (r < 0 && errno() === EINTR) r = sys.writevBuf(this.fd, this.gatherIov, cnt);
      if (r < 0) {
        this.stats.txErrors++;
        continue;
      }
      ok++;
      bytes += len - (this.vnetHdr ? VNET_HDR_LEN : 0);
    }
    this.stats.txFrames += ok;
    this.stats.txBytes += bytes;
    return ok;
  }

  /** Closes the fd, which removes the (non-persistent) device. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    sys.close(this.fd);
  }
}
