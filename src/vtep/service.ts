// The tunnel endpoint's I/O thread: the pumps that move frames between the TAP ports and the
// underlay through the WASM datapath, and the one serialised applier of control-plane changes.
//
// Owns, on the I/O thread: the datapath's tables (it is their single writer: every peer, FDB and
// neighbour change arrives as a control message and is applied here between packet batches), the
// TAP ports (attached from handles the main thread opened), and the model of which VNIs and FDB
// entries use which peer (a peer leaves the WASM table when nothing uses it).
//
// Two pumps: `taps` (its fd is an epoll set holding every TAP, so ports come and go without
// restarting the loop) reads each ready TAP in batches -> [TSO segmentation] -> dp.encap -> send;
// `udp` does recvmmsg -> [expandGro] -> dp.decap -> [GRO coalescing] -> TAP writes. ARP proxy
// replies go back into the TAP they came from. Events (L2/L3 misses, learned peers) are drained
// every tick and posted to the main thread in one message; I/O counters are published to a
// shared region at the same time. See engine.ts for the main-thread side.
import {
  CNT_BLOCK_SIZE,
  CNT_DROPS,
  CNT_RX_BYTES,
  CNT_RX_PACKETS,
  CTX_CNT_GLOBAL,
  CTX_CNT_PEERS,
  CTX_CNT_PORTS,
  CTX_MAX_PEERS,
  DESC_ADDR,
  DESC_ARG,
  DESC_AUX,
  DESC_AUX2,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  DESC_VNI,
  DROP_CLEARTEXT,
  DROP_ESP_FOR_PLAIN,
  DROP_OVERSIZE,
  PEER_ADDRLEN,
  PEER_SIZE,
  VERDICT_DROP,
  VERDICT_FLOOD,
  VERDICT_LOCAL,
  VERDICT_REPLY,
  VERDICT_SEND,
} from '../../assembly/constants.js';
import { Esp, type EspHandle } from '../crypto/esp.js';
import { type EspKeySet, EspSaManager } from '../crypto/esp-sas.js';
import { type EspSplitHandle, EspSplitSealer } from '../crypto/esp-split.js';
import type { GcmTagLength } from '../crypto/gcm.js';
import { VxError } from '../errors.js';
import { PacketBatch, type PacketBatchHandle } from '../io/batch.js';
import { memBase } from '../io/libc.js';
import { MemView } from '../io/memview.js';
import { EpollSet, type Pump } from '../io/poller.js';
import { TapDevice, type TapHandle } from '../io/tap.js';
import { expandGro, UdpBind, type UdpHandle } from '../io/udp.js';
import type { IoContext, IoService } from '../io/worker.js';
import { Datapath, type DatapathEvent, type DatapathHandle, nowSeconds } from '../wasm/datapath.js';
import { instantiate } from '../wasm/module.js';
import { IO_FIELDS, type IoCounters } from './counters.js';
import { Offload, type OffloadHandle } from './offload.js';
import { setRealtime } from './sched.js';

/** Regions the main thread allocated for one engine (structured-cloneable). */
export interface ServiceData {
  dp: DatapathHandle;
  udp: UdpHandle;
  /** The raw underlay's sender (outer headers built by encap); absent: send on `udp`. */
  raw?: UdpHandle;
  /** OUTER_SIZE options struct of the raw underlay (outer_v4_batch for flood copies). */
  rawOuter?: number;
  fromTap: PacketBatchHandle;
  fromUdp: PacketBatchHandle;
  /** Descriptors of datagrams to send (SEND verdicts, flood copies, segments). */
  out: { descs: number; capacity: number };
  /** Descriptors of received datagrams after expandGro. */
  dec: { descs: number; capacity: number };
  /** Slots for the raw underlay's flood copies (each copy needs its own outer header). */
  flood?: PacketBatchHandle;
  /** TSO segmentation / GRO coalescing regions (TAPs with vnet hdr); absent: plain frames. */
  offload?: OffloadHandle;
  /** The data-path port: every received datagram's source port is read as this one (normalizeSources). */
  port: number;
  /** IO_FIELDS f64s the thread publishes its counters to. */
  ioStats: number;
  /** Ticks (event drain, ageing, I/O counters) every this many ms. */
  tickMs: number;
  /** SCHED_RR priority for the I/O thread (0: leave it in the normal class). */
  realtime: number;
  /** ESP (RFC 4303 over UDP, RFC 3948) for encrypted ports; absent: every port is cleartext. */
  esp?: EspData;
}

/** The encrypted underlay's regions: an ESP context, its UDP socket (port 4500) and batches. */
export interface EspData {
  handle: EspHandle;
  udp: UdpHandle;
  /** The ESP socket's port (every peer's ESP datagrams go to it). */
  port: number;
  /** ESP as IP protocol 50 (a raw socket: packets arrive with their IPv4 header, no GSO/GRO). */
  ip: boolean;
  /** This endpoint's underlay address (SA derivation; see src/crypto/esp-sas.ts). */
  local: string;
  icvLen: GcmTagLength;
  /** Received ESP datagrams. */
  from: PacketBatchHandle;
  /** Contiguous copies of the datagrams to seal (each peer's copy its own slot). */
  seal: PacketBatchHandle;
  /** (dst, src, len) u32 triples, 2 per seal slot: the gathers into `seal` (copy_batch, one call per batch). */
  copies: number;
  /** Per datapath peer index, 32 bytes: its sockaddr at the ESP port (what sealed copies go to). */
  addrs: number;
  /** Helper threads for big seal batches (src/crypto/esp-split.ts); absent: seal on this thread. */
  split?: EspSplitHandle;
}

export interface RemoteRef {
  address: string;
  port: number;
}

export type ControlOp =
  | { op: 'addPort'; vni: number; tap: TapHandle; mtu: number; encrypted?: boolean }
  | { op: 'setKeys'; keys: EspKeySet }
  | { op: 'removePort'; vni: number }
  | { op: 'addPeer'; vni: number; remote: RemoteRef }
  | { op: 'removePeer'; vni: number; remote: RemoteRef }
  | { op: 'addFdb'; vni: number; entries: { mac: string; remote: RemoteRef }[] }
  | { op: 'removeFdb'; vni: number; macs: string[] }
  | { op: 'addNeigh'; vni: number; entries: { ip: string; mac: string }[] }
  | { op: 'removeNeigh'; vni: number; ips: string[] };

export type Control = ControlOp & { id: number };

export type ServiceMessage =
  | { kind: 'reply'; id: number; result?: unknown; error?: { code: string; message: string } }
  | { kind: 'events'; events: DatapathEvent[] };

interface Port {
  vni: number;
  index: number;
  tap: TapDevice;
  /** Longest inner frame delivered: MTU + Ethernet header + one VLAN tag (what a bridge port takes). */
  maxFrame: number;
  /** Sent only as ESP; cleartext VXLAN arriving for it is dropped (DROP_CLEARTEXT). */
  encrypted: boolean;
}

interface PeerUse {
  flood: Set<number>;
  fdb: number;
}

/** Builds the I/O thread's service (serveIo factory; src/vtep/worker.ts). */
export function vtepService(data: ServiceData, ctx: IoContext): IoService {
  const { memory } = ctx;
  if (data.realtime > 0) setRealtime(data.realtime);
  const wasm = instantiate(memory);
  const dp = Datapath.attach(data.dp, wasm);
  const view = new MemView(memory);
  const udp = UdpBind.attach(data.udp, memory);
  const raw = data.raw ? UdpBind.attach(data.raw, memory) : undefined;
  const sender = raw ?? udp;
  const fromTap = PacketBatch.attach(data.fromTap, memory);
  const fromUdp = PacketBatch.attach(data.fromUdp, memory);
  const flood = data.flood ? PacketBatch.attach(data.flood, memory) : undefined;
  const outerBatch = wasm.exports.outer_v4_batch as (descs: number, n: number, cfg: number) => number;
  const base = memBase(memory);
  const peers0 = dp.peerSockaddr(0);
  const taps = new EpollSet([]);
  const byIndex: (Port | undefined)[] = [];
  const byVni = new Map<number, Port>();
  let portList: Port[] = [];
  const uses = new Map<number, PeerUse>();
  const fdbOwner = new Map<string, number>();
  const io = { tapRxFrames: 0, tapRxBytes: 0, tapTxFrames: 0, tapTxErrors: 0 };
  const off = data.offload ? new Offload(data.offload, wasm, view, raw !== undefined) : undefined;
  let nout = 0;
  // ESP: the context (this thread is its single writer), its SAs per peer, socket and batches.
  const ed = data.esp;
  const esp = ed ? Esp.attach(ed.handle, wasm) : undefined;
  const sas = ed && esp ? new EspSaManager({ esp, local: ed.local, icvLen: ed.icvLen }) : undefined;
  const espUdp = ed ? UdpBind.attach(ed.udp, memory) : undefined;
  const espFrom = ed ? PacketBatch.attach(ed.from, memory) : undefined;
  const sealB = ed ? PacketBatch.attach(ed.seal, memory) : undefined;
  const sealer = esp && ed?.split ? new EspSplitSealer(esp, ed.split) : undefined;
  const espPeers = new Map<number, string>();
  const copyBatch = wasm.exports.copy_batch as (list: number, n: number) => void;
  let nseal = 0;
  let ncopy = 0;

  // ---- Sending ---------------------------------------------------------------------------------

  function flush(): void {
    flushSeal();
    if (nout === 0) return;
    if (off) off.flush(sender, data.out.descs, nout);
    else sender.sendBatch(data.out.descs, nout);
    nout = 0;
  }

  /** Queues the packet of descriptor word index `d` (with its separate payload, if any) to `addr`. */
  function queue(u32: Uint32Array, d: number, addr: number): void {
    if (nout === data.out.capacity) {
      flush();
      u32 = view.u32();
    }
    const o = (data.out.descs + nout * DESC_SIZE) >>> 2;
    u32[o + (DESC_PTR >> 2)] = u32[d + (DESC_PTR >> 2)]!;
    u32[o + (DESC_LEN >> 2)] = u32[d + (DESC_LEN >> 2)]!;
    u32[o + (DESC_ADDR >> 2)] = addr;
    u32[o + (DESC_AUX >> 2)] = off ? u32[d + (DESC_AUX >> 2)]! : 0;
    u32[o + (DESC_AUX2 >> 2)] = off ? u32[d + (DESC_AUX2 >> 2)]! : 0;
    nout++;
  }

  /** Flood copies on the raw underlay: one copy of the frame per peer, each with its own outer header. */
  function rawFlood(d: number, list: number): void {
    if (!flood) return;
    const u8 = view.u8();
    let u32 = view.u32();
    const ptr = u32[d + (DESC_PTR >> 2)]!;
    const len = u32[d + (DESC_LEN >> 2)]!;
    // A segment's payload is apart from its headers (DESC_AUX bytes at DESC_AUX2): copy both.
    const plen = off ? u32[d + (DESC_AUX >> 2)]! : 0;
    const pay = u32[d + (DESC_AUX2 >> 2)]!;
    const vni = u32[d + (DESC_VNI >> 2)]!;
    const cnt = u32[list >>> 2]!;
    if (len > flood.frameCapacity) return;
    flush(); // the flood slots are reused below
    for (let j = 0; j < cnt; j += flood.capacity) {
      const k = Math.min(flood.capacity, cnt - j);
      for (let i = 0; i < k; i++) {
        const peer = u32[(list >>> 2) + 1 + j + i]!;
        const f = flood.frame(i);
        u8.copyWithin(f, ptr, ptr + len - plen);
        if (plen > 0) u8.copyWithin(f + len - plen, pay, pay + plen);
        const o = (flood.descs + i * DESC_SIZE) >>> 2;
        u32[o + (DESC_PTR >> 2)] = f;
        u32[o + (DESC_LEN >> 2)] = len;
        u32[o + (DESC_VNI >> 2)] = vni;
        u32[o + (DESC_ADDR >> 2)] = peers0 + peer * PEER_SIZE;
        u32[o + (DESC_AUX >> 2)] = 0;
        u32[o + (DESC_AUX2 >> 2)] = 0;
      }
      outerBatch(flood.descs, k, data.rawOuter!);
      u32 = view.u32();
      for (let i = 0; i < k; i++) {
        const o = (flood.descs + i * DESC_SIZE) >>> 2;
        if (u32[o + (DESC_LEN >> 2)] === 0) continue;
        u32[o + (DESC_AUX >> 2)] = 0; // outer_v4_batch left the flow hash there
        queue(u32, o, u32[o + (DESC_ADDR >> 2)]!);
      }
      flush();
    }
  }

  /**
   * Copies the VXLAN packet of descriptor word index `d` (headers and separate payload) into a
   * seal slot bound for datapath peer `peer`: each peer's copy is sealed under its own SA.
   */
  function queueSeal(u32: Uint32Array, d: number, peer: number): void {
    const b = sealB!;
    const len = u32[d + (DESC_LEN >> 2)]!;
    if (len > b.frameCapacity) return;
    if (nseal === b.capacity) {
      flushSeal();
      u32 = view.u32();
    }
    const ptr = u32[d + (DESC_PTR >> 2)]!;
    const plen = off ? u32[d + (DESC_AUX >> 2)]! : 0;
    const f = b.frame(nseal);
    // Gathered by flushSeal in one copy_batch call, before anything reuses the sources.
    let c = (ed!.copies >>> 2) + ncopy * 3;
    u32[c] = f;
    u32[c + 1] = ptr;
    u32[c + 2] = len - plen;
    ncopy++;
    if (plen > 0) {
      c += 3;
      u32[c] = f + len - plen;
      u32[c + 1] = u32[d + (DESC_AUX2 >> 2)]!;
      u32[c + 2] = plen;
      ncopy++;
    }
    const o = (b.descs + nseal * DESC_SIZE) >>> 2;
    u32[o + (DESC_PTR >> 2)] = f;
    u32[o + (DESC_LEN >> 2)] = len;
    u32[o + (DESC_VERDICT >> 2)] = VERDICT_SEND;
    u32[o + (DESC_ARG >> 2)] = peer;
    u32[o + (DESC_ADDR >> 2)] = ed!.addrs + peer * 32;
    u32[o + (DESC_AUX >> 2)] = 0;
    u32[o + (DESC_AUX2 >> 2)] = 0;
    nseal++;
  }

  /** Seals the queued copies (one WASM call) and sends those that have an SA on the ESP socket. */
  function flushSeal(): void {
    if (nseal === 0) return;
    const b = sealB!;
    const n = nseal;
    nseal = 0;
    copyBatch(ed!.copies, ncopy);
    ncopy = 0;
    if (sealer) sealer.seal(b.descs, n, { pushUdp: true });
    else esp!.seal(b.descs, n, { pushUdp: true });
    const u32 = view.u32();
    let k = 0;
    for (let i = 0; i < n; i++) {
      const d = (b.descs + i * DESC_SIZE) >>> 2;
      if (u32[d + (DESC_VERDICT >> 2)] !== VERDICT_SEND) continue;
      if (k !== i) u32.copyWithin((b.descs >>> 2) + k * (DESC_SIZE >> 2), d, d + (DESC_SIZE >> 2));
      k++;
    }
    if (k === 0) return;
    if (off && !ed!.ip) off.flush(espUdp!, b.descs, k);
    else espUdp!.sendBatch(b.descs, k);
  }

  /** Encapsulates the `n` frames read from `p` into fromTap (or the segments at `descs`) and sends them. */
  function encapSend(p: Port, descs: number, n: number): void {
    let u32 = view.u32();
    for (let i = 0; i < n; i++) u32[(descs + i * DESC_SIZE + DESC_ARG) >>> 2] = p.index;
    dp.encap({ descs }, n, nowSeconds());
    u32 = view.u32();
    if (p.encrypted) {
      for (let i = 0; i < n; i++) {
        const d = (descs + i * DESC_SIZE) >>> 2;
        const verdict = u32[d + (DESC_VERDICT >> 2)];
        if (verdict === VERDICT_SEND) queueSeal(u32, d, u32[d + (DESC_ARG >> 2)]!);
        else if (verdict === VERDICT_FLOOD) {
          const list = u32[d + (DESC_ADDR >> 2)]!;
          const cnt = u32[list >>> 2]!;
          for (let j = 0; j < cnt; j++) queueSeal(u32, d, u32[(list >>> 2) + 1 + j]!);
        } else if (verdict === VERDICT_REPLY) {
          if (off) off.prepareWrite(u32[d]!);
          writeTap(p, descs + i * DESC_SIZE);
        }
        u32 = view.u32();
      }
      return;
    }
    for (let i = 0; i < n; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const verdict = u32[d + (DESC_VERDICT >> 2)];
      if (verdict === VERDICT_SEND) {
        queue(u32, d, u32[d + (DESC_ADDR >> 2)]!);
      } else if (verdict === VERDICT_FLOOD) {
        const list = u32[d + (DESC_ADDR >> 2)]!;
        if (raw) {
          rawFlood(d, list);
          continue;
        }
        const cnt = u32[list >>> 2]!;
        for (let j = 0; j < cnt; j++) {
          const peer = u32[(list >>> 2) + 1 + j]!;
          queue(u32, d, peers0 + peer * PEER_SIZE);
        }
      } else if (verdict === VERDICT_REPLY) {
        if (off) off.prepareWrite(u32[d]!);
        writeTap(p, descs + i * DESC_SIZE);
      }
    }
  }

  function writeTap(p: Port, desc: number): void {
    if (p.tap.writeBatch(desc, 1) === 1) io.tapTxFrames++;
    else io.tapTxErrors++;
  }

  // ---- Pumps -----------------------------------------------------------------------------------

  const tapPump: Pump = {
    fd: taps.epfd,
    pump() {
      let moved = 0;
      for (const p of portList) {
        const n = p.tap.readBatch(fromTap);
        if (n === 0) continue;
        moved += n;
        io.tapRxFrames += n;
        if (off) {
          off.segmentBatch(fromTap.descs, n, (descs, k) => {
            encapSend(p, descs, k);
            flush(); // the next chunk reuses the header slots
          });
        } else encapSend(p, fromTap.descs, n);
        flush();
      }
      return moved;
    },
  };

  /**
   * A VXLAN sender picks its UDP source port per flow (Linux's vxlan hashes the inner headers into
   * 32768-60999; RFC 7348 section 5), so a peer is known by its address alone: each received
   * datagram's source is given the data-path port before decap looks it up in the peer table, where
   * configured peers sit at that port. Learned peers get it too, so replies go to the VXLAN port.
   */
  function normalizeSources(descs: number, m: number): void {
    const u32 = view.u32();
    const u8 = view.u8();
    for (let i = 0; i < m; i++) {
      const sa = u32[(descs + i * DESC_SIZE + DESC_ADDR) >>> 2]!;
      if (sa === 0) continue;
      u8[sa + 2] = data.port >>> 8;
      u8[sa + 3] = data.port & 0xff;
    }
  }

  /**
   * Inner frames longer than their port's MTU allows are dropped as `oversize` (decap knows no
   * MTU; the port does). Only a broken or hostile sender makes them, so this rare path finds the
   * peer by scanning the table and fixes the counter blocks directly: the drop is counted (global,
   * port, peer) and the receive decap already counted is taken back.
   */
  function dropOversize(descs: number, m: number): void {
    const u32 = view.u32();
    for (let i = 0; i < m; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      if (u32[d + (DESC_VERDICT >> 2)] !== VERDICT_LOCAL) continue;
      const p = byIndex[u32[d + (DESC_ARG >> 2)]!];
      const len = u32[d + (DESC_LEN >> 2)]!;
      if (!p || len <= p.maxFrame) continue;
      u32[d + (DESC_VERDICT >> 2)] = VERDICT_DROP;
      u32[d + (DESC_ARG >> 2)] = DROP_OVERSIZE;
      countDrop(DROP_OVERSIZE, p.index, peerOf(u32, u32[d + (DESC_ADDR >> 2)]!), len);
    }
  }

  /**
   * Cleartext VXLAN for an encrypted port is dropped and counted as `cleartext` (Docker accepted
   * it: CVE-2023-28840, CVE-2023-28842). Runs on what arrived on the plain socket only.
   */
  function dropCleartext(descs: number, m: number): void {
    if (ed) dropMismatch(descs, m, true);
  }

  /**
   * The mirror image: ESP that opened (authentic, from a peer holding the cluster key) but carries
   * VXLAN for a plain network is dropped and counted as `espForPlain` on that network's port, so
   * each network accepts exactly one kind of traffic. Runs on what the ESP socket delivered.
   */
  function dropMismatch(descs: number, m: number, cleartext: boolean): void {
    const reason = cleartext ? DROP_CLEARTEXT : DROP_ESP_FOR_PLAIN;
    const u32 = view.u32();
    for (let i = 0; i < m; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      if (u32[d + (DESC_VERDICT >> 2)] !== VERDICT_LOCAL) continue;
      const p = byIndex[u32[d + (DESC_ARG >> 2)]!];
      if (!p || p.encrypted !== cleartext) continue;
      u32[d + (DESC_VERDICT >> 2)] = VERDICT_DROP;
      u32[d + (DESC_ARG >> 2)] = reason;
      countDrop(reason, p.index, peerOf(u32, u32[d + (DESC_ADDR >> 2)]!), u32[d + (DESC_LEN >> 2)]!);
    }
  }

  function peerOf(u32: Uint32Array, sa: number): number {
    const max = u32[(data.dp.ctx + CTX_MAX_PEERS) >>> 2]!;
    for (let i = 0; i < max; i++) {
      const e = (peers0 + i * PEER_SIZE) >>> 2;
      const words = u32[e + (PEER_ADDRLEN >> 2)]! >>> 2;
      if (words === 0) continue;
      let w = 0;
      while (w < words && u32[e + w] === u32[(sa >>> 2) + w]) w++;
      if (w === words) return i;
    }
    return -1;
  }

  function countDrop(reason: number, port: number, peer: number, len: number): void {
    const dv = new DataView(memory.buffer);
    const ptr = (field: number) => dv.getUint32(data.dp.ctx + field, true);
    const add = (block: number, off: number, n: bigint) =>
      dv.setBigUint64(block + off, dv.getBigUint64(block + off, true) + n, true);
    const drop = CNT_DROPS + 8 * reason;
    const blocks = [ptr(CTX_CNT_PORTS) + port * CNT_BLOCK_SIZE];
    if (peer >= 0) blocks.push(ptr(CTX_CNT_PEERS) + peer * CNT_BLOCK_SIZE);
    add(ptr(CTX_CNT_GLOBAL), drop, 1n);
    for (const b of blocks) {
      add(b, drop, 1n);
      add(b, CNT_RX_PACKETS, -1n);
      add(b, CNT_RX_BYTES, -BigInt(len));
    }
  }

  const udpPump: Pump = {
    fd: udp.fd,
    pump() {
      const n = udp.recvBatch(fromUdp);
      if (n === 0) return 0;
      let descs = fromUdp.descs;
      let m = n;
      if (udp.gro) {
        m = expandGro(view, fromUdp.descs, n, data.dec.descs, data.dec.capacity);
        descs = data.dec.descs;
      }
      deliver(descs, m, true);
      return n;
    },
  };

  /** A raw socket's packets start with their IPv4 header: move each descriptor past it (to ESP). */
  function stripIpv4(descs: number, m: number): void {
    const u32 = view.u32();
    const u8 = view.u8();
    for (let i = 0; i < m; i++) {
      const d = (descs + i * DESC_SIZE) >>> 2;
      const len = u32[d + (DESC_LEN >> 2)]!;
      const ihl = len > 0 ? (u8[u32[d + (DESC_PTR >> 2)]!]! & 15) * 4 : 0;
      const cut = ihl >= 20 && ihl <= len ? ihl : len; // no valid header: an empty packet (truncated)
      u32[d + (DESC_PTR >> 2)] = u32[d + (DESC_PTR >> 2)]! + cut;
      u32[d + (DESC_LEN >> 2)] = len - cut;
    }
  }

  /** Decapsulates the `m` VXLAN packets at `descs` and writes them to their ports. */
  function deliver(descs: number, m: number, cleartext: boolean): void {
    normalizeSources(descs, m);
    dp.decap({ descs }, m, nowSeconds());
    dropOversize(descs, m);
    if (cleartext) dropCleartext(descs, m);
    else dropMismatch(descs, m, false);
    if (off) off.deliver(descs, m, (port) => byIndex[port]?.tap, io);
    else {
      const u32 = view.u32();
      for (let i = 0; i < m; i++) {
        const d = (descs + i * DESC_SIZE) >>> 2;
        if (u32[d + (DESC_VERDICT >> 2)] !== VERDICT_LOCAL) continue;
        const p = byIndex[u32[d + (DESC_ARG >> 2)]!];
        if (p) writeTap(p, descs + i * DESC_SIZE);
      }
    }
  }

  /** recvmmsg on the ESP socket -> [expandGro] -> esp.open (drops counted by ESP) -> decap -> TAPs. */
  const espPump: Pump | undefined =
    espUdp && espFrom
      ? {
          fd: espUdp.fd,
          pump() {
            const n = espUdp.recvBatch(espFrom);
            if (n === 0) return 0;
            let descs = espFrom.descs;
            let m = n;
            if (espUdp.gro) {
              m = expandGro(view, espFrom.descs, n, data.dec.descs, data.dec.capacity);
              descs = data.dec.descs;
            }
            if (ed!.ip) stripIpv4(descs, m);
            esp!.open(descs, m, { pullUdp: true });
            const u32 = view.u32();
            let k = 0;
            for (let i = 0; i < m; i++) {
              const d = (descs + i * DESC_SIZE) >>> 2;
              if (u32[d + (DESC_VERDICT >> 2)] !== VERDICT_LOCAL) continue;
              if (k !== i) u32.copyWithin((descs >>> 2) + k * (DESC_SIZE >> 2), d, d + (DESC_SIZE >> 2));
              k++;
            }
            if (k > 0) deliver(descs, k, false);
            return n;
          },
        }
      : undefined;

  // ---- Control ---------------------------------------------------------------------------------

  function use(index: number): PeerUse {
    let u = uses.get(index);
    if (!u) {
      u = { flood: new Set(), fdb: 0 };
      uses.set(index, u);
    }
    return u;
  }

  function release(index: number): void {
    const u = uses.get(index);
    if (!u || u.flood.size > 0 || u.fdb > 0) return;
    uses.delete(index);
    if (espPeers.delete(index)) sas!.removePeer(index);
    dp.removePeer(index);
  }

  /**
   * Gives datapath peer `index` (at `address`) its SAs and its sockaddr at the ESP port, when an
   * encrypted port uses it (peers of plain ports only take no SA slots).
   */
  function espPeer(vni: number, index: number, address: string): void {
    if (!ed || !byVni.get(vni)?.encrypted || espPeers.get(index) === address) return;
    const u8 = view.u8();
    const sa = dp.peerSockaddr(index);
    const to = ed.addrs + index * 32;
    u8.copyWithin(to, sa, sa + 28);
    u8[to + 2] = ed.port >>> 8;
    u8[to + 3] = ed.port & 0xff;
    sas!.addPeer(index, address);
    espPeers.set(index, address);
  }

  function port(vni: number): Port {
    const p = byVni.get(vni);
    if (!p) throw new VxError('ERR_PORT_NOT_FOUND', `no port for VNI ${vni}`);
    return p;
  }

  function dropFdb(vni: number, mac: string): void {
    const key = `${vni}/${mac}`;
    const owner = fdbOwner.get(key);
    if (owner === undefined) return;
    fdbOwner.delete(key);
    const u = uses.get(owner);
    if (u) u.fdb--;
    release(owner);
  }

  function apply(c: ControlOp): unknown {
    switch (c.op) {
      case 'addPort': {
        if (byVni.has(c.vni)) throw new VxError('ERR_VNI_IN_USE', `VNI ${c.vni} already has a port`);
        const index = dp.addPort(c.vni);
        if (c.encrypted && !ed) {
          dp.removePort(c.vni);
          throw new VxError('ERR_ESP_DISABLED', 'an encrypted port needs the engine opened with encryption');
        }
        const p: Port = {
          vni: c.vni,
          index,
          tap: TapDevice.attach(c.tap, memory),
          maxFrame: c.mtu + 18,
          encrypted: c.encrypted === true,
        };
        taps.add(p.tap.fd, index);
        byIndex[index] = p;
        byVni.set(c.vni, p);
        portList = [...byVni.values()];
        return index;
      }
      case 'removePort': {
        const p = byVni.get(c.vni);
        if (!p) return false;
        taps.remove(p.tap.fd);
        for (const key of [...fdbOwner.keys()]) {
          if (key.startsWith(`${c.vni}/`)) dropFdb(c.vni, key.slice(key.indexOf('/') + 1));
        }
        for (const [index, u] of uses) if (u.flood.delete(c.vni)) release(index);
        dp.removePort(c.vni);
        byIndex[p.index] = undefined;
        byVni.delete(c.vni);
        portList = [...byVni.values()];
        return true;
      }
      case 'addPeer': {
        port(c.vni);
        const index = dp.addPeer(c.remote);
        dp.addFlood(c.vni, [index]);
        use(index).flood.add(c.vni);
        espPeer(c.vni, index, c.remote.address);
        return index;
      }
      case 'removePeer': {
        const index = dp.peers().find((p) => sameRemote(p.address, c.remote))?.index;
        if (index === undefined) return false;
        if (byVni.has(c.vni)) dp.removeFlood(c.vni, [index]);
        use(index).flood.delete(c.vni);
        release(index);
        return true;
      }
      case 'addFdb': {
        port(c.vni);
        const entries = c.entries.map((e) => ({
          vni: c.vni,
          mac: e.mac.toLowerCase(),
          peer: dp.addPeer(e.remote),
        }));
        for (const e of entries) use(e.peer);
        for (let i = 0; i < entries.length; i++)
          espPeer(c.vni, entries[i]!.peer, c.entries[i]!.remote.address);
        try {
          dp.addFdb(entries, { replace: true, now: nowSeconds() });
        } finally {
          for (const e of entries) {
            const key = `${c.vni}/${e.mac}`;
            const before = fdbOwner.get(key);
            if (before === e.peer) continue;
            if (dp.lookupFdb([{ vni: c.vni, mac: e.mac }])[0] !== e.peer) continue;
            fdbOwner.set(key, e.peer);
            use(e.peer).fdb++;
            if (before !== undefined) {
              use(before).fdb--;
              release(before);
            }
          }
          for (const e of entries) release(e.peer);
        }
        return entries.length;
      }
      case 'removeFdb': {
        const macs = c.macs.map((m) => m.toLowerCase());
        const n = dp.removeFdb(macs.map((mac) => ({ vni: c.vni, mac })));
        for (const mac of macs) dropFdb(c.vni, mac);
        return n;
      }
      case 'addNeigh':
        port(c.vni);
        dp.addNeighbour(c.entries.map((e) => ({ vni: c.vni, ip: e.ip, mac: e.mac })));
        return c.entries.length;
      case 'removeNeigh':
        return dp.removeNeighbour(c.ips.map((ip) => ({ vni: c.vni, ip })));
      case 'setKeys':
        if (!sas) throw new VxError('ERR_ESP_DISABLED', 'the engine was opened without encryption');
        sas.setKeys(c.keys);
        return c.keys.keys.length;
    }
  }

  // ---- Ticks -----------------------------------------------------------------------------------

  function publish(): void {
    const dv = new DataView(memory.buffer);
    const s = udp.stats;
    const e = espUdp?.stats;
    const vals: IoCounters = {
      udpRxDatagrams: s.rxDatagrams + (e?.rxDatagrams ?? 0),
      udpRxBytes: s.rxBytes + (e?.rxBytes ?? 0),
      udpRxTruncated: s.rxTruncated + (e?.rxTruncated ?? 0),
      udpTxDatagrams: s.txDatagrams + (raw?.stats.txDatagrams ?? 0) + (e?.txDatagrams ?? 0),
      udpTxBytes: s.txBytes + (raw?.stats.txBytes ?? 0) + (e?.txBytes ?? 0),
      udpTxErrors: s.txErrors + (raw?.stats.txErrors ?? 0) + (e?.txErrors ?? 0),
      tapRxFrames: io.tapRxFrames,
      tapRxBytes: portList.reduce((a, p) => a + p.tap.stats.rxBytes, 0),
      tapTxFrames: io.tapTxFrames,
      tapTxErrors: io.tapTxErrors,
      tsoFrames: off?.stats.tsoFrames ?? 0,
      tsoSegments: off?.stats.tsoSegments ?? 0,
      groFrames: off?.stats.groFrames ?? 0,
      groSegments: off?.stats.groSegments ?? 0,
    };
    IO_FIELDS.forEach((k, i) => {
      dv.setFloat64(data.ioStats + 8 * i, vals[k], true);
    });
  }

  void base;
  return {
    pumps: espPump ? [tapPump, udpPump, espPump] : [tapPump, udpPump],
    tickMs: data.tickMs,
    onControl(msg) {
      const c = msg as Control;
      let reply: ServiceMessage;
      try {
        reply = { kind: 'reply', id: c.id, result: apply(c) };
      } catch (e) {
        const code = e instanceof VxError ? e.code : 'ERR_VTEP_CONTROL';
        reply = { kind: 'reply', id: c.id, error: { code, message: (e as Error).message } };
      }
      publish();
      ctx.emit(reply);
    },
    onTick() {
      const events = dp.drainEvents();
      if (events.length > 0) ctx.emit({ kind: 'events', events } satisfies ServiceMessage);
      dp.age(nowSeconds(), { budget: 4096 });
      publish();
    },
  };
}

function sameRemote(a: { address: string; port: number }, b: RemoteRef): boolean {
  return a.port === b.port && normalize(a.address) === normalize(b.address);
}

function normalize(address: string): string {
  return address.toLowerCase();
}
