// The tunnel endpoint's offload path: what turns 64 KB TAP frames into UDP GSO sends, and UDP GRO
// receives back into 64 KB TAP frames, on the I/O thread.
//
// Owns the regions the offload path works in (allocated on the main thread by offloadRegions, used
// by one I/O thread) and the host half of the work:
// - segmentBatch: assembly/offload.ts tso_split_batch cuts the TAP batch into segment descriptors
//   (headers in slots, payload in place, checksums complete); the caller encapsulates and queues
//   them (dp.encap sees one descriptor per wire packet, so counters count wire packets).
// - flush: the queued descriptors become sendmmsg messages: consecutive segments to the same peer
//   of one size (the last may be shorter) share one message with UDP_SEGMENT (up to 64 segments,
//   65000 bytes), each segment contributing its header slot and its payload as two iovecs. On the
//   raw underlay there is no GSO: one message per packet.
// - deliver: gro_batch merges runs of one TCP connection's segments into one TSO frame (gather
//   list with a virtio_net_hdr), written with one writev per frame.
import {
  DESC_ADDR,
  DESC_ARG,
  DESC_AUX,
  DESC_AUX2,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
} from '../../assembly/constants.js';
import type { MemView } from '../io/memview.js';
import type { TapDevice } from '../io/tap.js';
import type { UdpBind } from '../io/udp.js';
import type { WasmCore } from '../wasm/module.js';

/** Bytes per header slot (headers at 64, see assembly/offload.ts). */
const SLOT = 256;
/** A UDP GSO message: at most this many segments and bytes. */
const GSO_SEGS = 64;
const GSO_BYTES = 65000;

export interface OffloadHandle {
  /** Segment descriptors and header slots (splitCapacity of each), 8 bytes of results. */
  segs: number;
  hdrs: number;
  res: number;
  splitCapacity: number;
  /** sendmmsg messages and their (address, length) pairs: outCapacity messages, 2 pairs each. */
  msgs: number;
  msgLists: number;
  outCapacity: number;
  /** TAP writes after coalescing: descriptors, pairs (3 per input), virtio_net_hdrs (16 B apart). */
  groOut: number;
  groLists: number;
  vhdrs: number;
  groCapacity: number;
}

export function offloadRegions(
  wasm: WasmCore,
  o: { outCapacity: number; groCapacity: number; splitCapacity: number },
): OffloadHandle {
  return {
    segs: wasm.alloc(o.splitCapacity * DESC_SIZE),
    hdrs: wasm.alloc(o.splitCapacity * SLOT),
    res: wasm.alloc(8),
    splitCapacity: o.splitCapacity,
    msgs: wasm.alloc(o.outCapacity * DESC_SIZE),
    msgLists: wasm.alloc(o.outCapacity * 16),
    outCapacity: o.outCapacity,
    groOut: wasm.alloc(o.groCapacity * DESC_SIZE),
    groLists: wasm.alloc(o.groCapacity * 24),
    vhdrs: wasm.alloc(o.groCapacity * 16),
    groCapacity: o.groCapacity,
  };
}

interface OffloadExports {
  tso_split_batch(
    descs: number,
    n: number,
    out: number,
    outCap: number,
    hdrs: number,
    hdrCap: number,
    slot: number,
    res: number,
  ): number;
  gro_batch(descs: number, n: number, out: number, lists: number, vhdrs: number): number;
}

export class Offload {
  readonly stats = { tsoFrames: 0, tsoSegments: 0, groFrames: 0, groSegments: 0 };
  private readonly x: OffloadExports;

  constructor(
    private readonly h: OffloadHandle,
    wasm: WasmCore,
    private readonly view: MemView,
    /** Raw underlay: no UDP GSO, one message per packet. */
    private readonly noGso: boolean,
  ) {
    this.x = wasm.exports as unknown as OffloadExports;
  }

  /**
   * Cuts `n` TAP frames (vnet hdr in front) into segments and hands them to `encap` in chunks of
   * at most splitCapacity; `encap` must send (or copy) them before it returns, because the next
   * chunk reuses the header slots.
   */
  segmentBatch(descs: number, n: number, encap: (descs: number, n: number) => void): void {
    const h = this.h;
    let done = 0;
    while (done < n) {
      const k = this.x.tso_split_batch(
        descs + done * DESC_SIZE,
        n - done,
        h.segs,
        h.splitCapacity,
        h.hdrs,
        h.splitCapacity,
        SLOT,
        h.res,
      );
      const u32 = this.view.u32();
      const consumed = u32[h.res >>> 2]!;
      const gso = u32[(h.res + 4) >>> 2]!;
      this.stats.tsoFrames += gso;
      if (gso > 0) this.stats.tsoSegments += k;
      if (k > 0) encap(h.segs, k);
      done += consumed > 0 ? consumed : 1; // a frame larger than every slot: skipped
    }
  }

  /** Clears the virtio_net_hdr in front of a frame written back to its TAP (an ARP reply). */
  prepareWrite(ptr: number): void {
    this.view.u8().fill(0, ptr - 12, ptr);
  }

  /** Sends the `n` queued descriptors at `descs` (DESC_AUX/AUX2: separate payload) as messages. */
  flush(sender: UdpBind, descs: number, n: number): void {
    const h = this.h;
    const u32 = this.view.u32();
    let m = -1;
    let list = h.msgLists;
    let seg = 0;
    let addr = 0;
    let count = 0;
    let bytes = 0;
    let closed = true;
    let pairs = 0;
    for (let q = 0; q < n; q++) {
      const d = (descs + q * DESC_SIZE) >>> 2;
      const len = u32[d + (DESC_LEN >> 2)]!;
      const to = u32[d + (DESC_ADDR >> 2)]!;
      const plen = u32[d + (DESC_AUX >> 2)]!;
      const join =
        !this.noGso && !closed && to === addr && len <= seg && count < GSO_SEGS && bytes + len <= GSO_BYTES;
      if (!join) {
        m++;
        seg = len;
        addr = to;
        count = 0;
        bytes = 0;
        pairs = 0;
        closed = false;
        const o = (h.msgs + m * DESC_SIZE) >>> 2;
        u32[o + (DESC_PTR >> 2)] = list;
        u32[o + (DESC_ADDR >> 2)] = to;
      }
      const l = list >>> 2;
      u32[l] = u32[d + (DESC_PTR >> 2)]!;
      u32[l + 1] = len - plen;
      list += 8;
      pairs++;
      if (plen > 0) {
        u32[l + 2] = u32[d + (DESC_AUX2 >> 2)]!;
        u32[l + 3] = plen;
        list += 8;
        pairs++;
      }
      count++;
      bytes += len;
      if (len < seg) closed = true;
      const o = (h.msgs + m * DESC_SIZE) >>> 2;
      u32[o + (DESC_LEN >> 2)] = pairs;
      u32[o + (DESC_AUX >> 2)] = count > 1 ? seg : 0;
    }
    if (m >= 0) sender.sendGather(h.msgs, m + 1);
  }

  /** Coalesces and writes the `n` decapsulated descriptors at `descs` to their ports' TAPs. */
  deliver(
    descs: number,
    n: number,
    tapOf: (port: number) => TapDevice | undefined,
    io: { tapTxFrames: number; tapTxErrors: number },
  ): void {
    const h = this.h;
    let at = 0;
    while (at < n) {
      const k0 = Math.min(n - at, h.groCapacity);
      const k = this.x.gro_batch(descs + at * DESC_SIZE, k0, h.groOut, h.groLists, h.vhdrs);
      const u32 = this.view.u32();
      for (let i = 0; i < k; i++) {
        const o = h.groOut + i * DESC_SIZE;
        const segs = u32[(o + DESC_AUX) >>> 2]!;
        if (segs > 1) {
          this.stats.groFrames++;
          this.stats.groSegments += segs;
        }
        const tap = tapOf(u32[(o + DESC_ARG) >>> 2]!);
        if (tap && tap.writeGather(o, 1) === 1) io.tapTxFrames++;
        else io.tapTxErrors++;
      }
      at += k0;
    }
  }
}
