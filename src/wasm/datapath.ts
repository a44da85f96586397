// The datapath's host binding: one Datapath owns one context of the WASM batch pipeline
// (assembly/datapath.ts) and its tables: FDB, peers, local ports with flood lists, neighbours
// (ARP proxy), the event ring and the counters.
//
// Every method crosses into WASM once per batch: control-plane arrays are written as fixed-size
// records into a scratch region and applied in one call (chunked by SCRATCH_RECORDS); packets go
// by descriptor batches (`{ descs }`, e.g. src/io/batch.ts's PacketBatch). Status codes coming back
// are mapped to VxError codes (docs/ERRORS.md). Views of memory are taken per call, never kept.
//
// Threads: the tables are single-writer. Whichever thread runs encap/decap for a Datapath must
// also apply its control-plane updates (between packet batches) and drain its events; other
// threads may only read (counters). Learning (on decap) writes the FDB and the peer table.
//
// Time: `now` is whole seconds on any monotonic clock the caller keeps consistent (e.g.
// `nowSeconds()`); learned FDB entries older than `ageingSeconds` go on the next `age()`.
import {
  CNT_BLOCK_SIZE,
  CNT_DROPS,
  CNT_FLOOD_PACKETS,
  CNT_LEARN_REFUSED,
  CNT_LEARNED,
  CNT_REPLIES,
  CNT_RX_BYTES,
  CNT_RX_PACKETS,
  CNT_TX_BYTES,
  CNT_TX_PACKETS,
  CTX_AGEING,
  CTX_CNT_GLOBAL,
  CTX_CNT_PEERS,
  CTX_CNT_PORTS,
  CTX_EVENT_HEAD,
  CTX_EVENT_LOST,
  CTX_EVENT_SLOTS,
  CTX_EVENT_TAIL,
  CTX_EVENTS,
  CTX_FDB,
  CTX_FDB_BYTES,
  CTX_FDB_CAPACITY,
  CTX_FDB_COUNT,
  CTX_FDB_MASK,
  CTX_FLAGS,
  CTX_FLOOD,
  CTX_MAX_FLOOD,
  CTX_MAX_PEERS,
  CTX_MAX_PORTS,
  CTX_MEM_BYTES,
  CTX_NEIGH_CAPACITY,
  CTX_NEIGH_COUNT,
  CTX_OUTER,
  CTX_PEER_COUNT,
  CTX_PEERS,
  CTX_PORTS,
  CTX_SIZE,
  DP_F_ARP_PROXY,
  DP_F_FLOOD_UNKNOWN,
  DP_F_L2MISS,
  DP_F_L3MISS,
  DP_F_LEARNING,
  DP_F_RAW_UNDERLAY,
  DROP_REASONS,
  EVT_DATA,
  EVT_L2_MISS,
  EVT_L3_MISS,
  EVT_PEER_LEARNED,
  EVT_SIZE,
  EVT_VNI,
  FDB_ADD_REPLACE,
  FDB_CAPACITY_MAX,
  FDB_ENTRY_SIZE,
  FDB_F_STATIC,
  FDB_F_USED,
  FDBREC_MAC,
  FDBREC_PEER,
  FDBREC_SIZE,
  FDBREC_STATUS,
  FDBREC_VNI,
  NEIGH_ENTRY_SIZE,
  NEIGH_IP,
  NEIGH_MAC,
  NEIGH_STATUS,
  NEIGH_VNI,
  PEER_ADDRLEN,
  PEER_F_LEARNED,
  PEER_FLAGS,
  PEER_INDEX_MAX,
  PEER_SIZE,
  PORT_SIZE,
  PORT_USED,
  PORT_VNI,
  ST_FDB_FULL,
  ST_FDB_STATIC_EXISTS,
  ST_FLOOD_FULL,
  ST_INVALID_ADDR,
  ST_INVALID_IP,
  ST_INVALID_MAC,
  ST_INVALID_PEER,
  ST_INVALID_PORT,
  ST_INVALID_VNI,
  ST_NEIGH_FULL,
  ST_NOT_FOUND,
  ST_OK,
  ST_PEER_TABLE_FULL,
  ST_PORT_TABLE_FULL,
  VNI_MAX,
  VXLAN_PORT,
} from '../../assembly/constants.js';
import { VxError, type VxErrorCode } from '../errors.js';
import { readSockaddr, type SockAddr, writeSockaddr } from '../io/sockaddr.js';
import { core, type WasmCore } from './module.js';

/** Records per control-plane call (larger arrays are applied in chunks of this many). */
export const SCRATCH_RECORDS = 1024;

export interface DatapathOptions {
  /** Most FDB entries (static + learned), 1..16777216 (default 65536). */
  fdbCapacity?: number;
  /** Peer table size, 1..65535 (default 1024). */
  maxPeers?: number;
  /** Local ports, one per VNI, 1..65536 (default 256). */
  maxVnis?: number;
  /** Most neighbour (ARP proxy) entries (default 65536). */
  neighCapacity?: number;
  /** Peers per flood list, 1..maxPeers (default maxPeers). */
  maxFloodPeers?: number;
  /** Event ring slots, rounded up to a power of two, at least 8 (default 1024). */
  eventRingSize?: number;
  /** Seconds a learned FDB entry lives without traffic; 0 = forever (default 300). */
  ageingSeconds?: number;
  /** Learn inner source MACs and unknown source peers on decap (default false). */
  learning?: boolean;
  /** Answer ARP requests from the neighbour table, never flood ARP (default true). */
  arpProxy?: boolean;
  /** Flood unknown unicast instead of dropping it (default false). */
  floodUnknownUnicast?: boolean;
  /** Raise L2-miss events (default true). */
  l2miss?: boolean;
  /** Raise L3-miss events (default true). */
  l3miss?: boolean;
  /**
   * Address of an OUTER_SIZE options struct (assembly/outer.ts): encap then writes outer IPv4 + UDP
   * for a raw-socket underlay (IPv4 peers only); FLOOD verdicts stay unencapsulated.
   */
  rawUnderlayOuter?: number;
  /** The WASM instance to allocate in (default: the main thread's `core()`). */
  wasm?: WasmCore;
}

export type Mac = string | Uint8Array;

export interface FdbEntry {
  vni: number;
  mac: Mac;
  peer: number;
}

export interface FdbRecord {
  vni: number;
  mac: string;
  peer: number;
  static: boolean;
  /** Seconds (the `now` of the add or of the last learning refresh). */
  time: number;
}

export interface NeighbourEntry {
  vni: number;
  /** IPv4 address, dotted quad. */
  ip: string;
  mac: Mac;
}

export type DatapathEvent =
  | { type: 'l2miss'; vni: number; mac: string }
  | { type: 'l3miss'; vni: number; ip: string }
  | { type: 'peer-learned'; vni: number; peer: number; address: SockAddr | undefined };

export interface CounterBlock {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  floodPackets: number;
  replies: number;
  learned: number;
  learnRefused: number;
  /** Drops by DROP_* reason number. */
  drops: number[];
}

export interface DatapathCounters {
  /** Every drop by reason (tx/rx totals are per port and per peer). */
  global: CounterBlock;
  /** By VNI. */
  ports: Map<number, CounterBlock>;
  /** By peer index. */
  peers: Map<number, CounterBlock>;
  /** Events dropped because the ring was full. */
  eventsLost: number;
}

/** A datapath's context and a scratch region (Datapath.attach in a worker). */
export interface DatapathHandle {
  ctx: number;
  scratch: number;
}

/** Anything with a descriptor array in the same memory (src/io/batch.ts PacketBatch). */
export interface DescriptorBatch {
  readonly descs: number;
}

interface DatapathExports {
  dp_setup(ctx: number): number;
  dp_encap(ctx: number, descs: number, n: number, now: number): number;
  dp_decap(ctx: number, descs: number, n: number, now: number): number;
  dp_peer_add(ctx: number, sa: number, len: number): number;
  dp_peer_remove(ctx: number, peer: number): number;
  dp_port_add(ctx: number, vni: number): number;
  dp_port_remove(ctx: number, vni: number): number;
  dp_flood_add(ctx: number, port: number, peer: number): number;
  dp_flood_remove(ctx: number, port: number, peer: number): number;
  dp_fdb_flush_vni(ctx: number, vni: number): number;
  dp_age(ctx: number, now: number, budget: number): number;
  fdb_add_batch(ctx: number, recs: number, n: number, now: number, flags: number): number;
  fdb_remove_batch(ctx: number, recs: number, n: number): number;
  fdb_lookup_batch(ctx: number, recs: number, n: number): number;
  fdb_learn_batch(ctx: number, recs: number, n: number, now: number): number;
  neigh_add_batch(ctx: number, recs: number, n: number): number;
  neigh_remove_batch(ctx: number, recs: number, n: number): number;
}

const STATUS: Record<number, [VxErrorCode, string]> = {
  [ST_FDB_FULL]: ['ERR_FDB_FULL', 'the FDB is full'],
  [ST_FDB_STATIC_EXISTS]: ['ERR_FDB_STATIC_EXISTS', 'a static entry with another peer exists (use replace)'],
  [ST_NOT_FOUND]: ['ERR_NOT_FOUND', 'not found'],
  [ST_INVALID_MAC]: ['ERR_INVALID_MAC', 'zero or multicast MAC'],
  [ST_INVALID_VNI]: ['ERR_INVALID_VNI', 'VNI out of range'],
  [ST_INVALID_PEER]: ['ERR_INVALID_PEER', 'no such peer'],
  [ST_PEER_TABLE_FULL]: ['ERR_PEER_TABLE_FULL', 'the peer table is full'],
  [ST_NEIGH_FULL]: ['ERR_NEIGH_FULL', 'the neighbour table is full'],
  [ST_PORT_TABLE_FULL]: ['ERR_PORT_TABLE_FULL', 'every port (VNI) slot is in use'],
  [ST_INVALID_ADDR]: ['ERR_INVALID_ADDRESS', 'not an IPv4/IPv6 socket address'],
  [ST_FLOOD_FULL]: ['ERR_FLOOD_LIST_FULL', 'the flood list is full'],
  [ST_INVALID_PORT]: ['ERR_PORT_NOT_FOUND', 'no port for this VNI'],
  [ST_INVALID_IP]: ['ERR_INVALID_IP', 'zero, loopback, multicast or broadcast IPv4 address'],
};

function statusError(st: number, what: string): VxError {
  const [code, msg] = STATUS[st] ?? (['ERR_WASM_STATUS', `status ${st}`] as [VxErrorCode, string]);
  return new VxError(code, `${what}: ${msg}`);
}

/** Whole seconds of a monotonic clock, the `now` encap/decap/age expect. */
export function nowSeconds(): number {
  return Math.floor(performance.now() / 1000);
}

function intOption(
  opts: DatapathOptions,
  name: keyof DatapathOptions,
  dflt: number,
  min: number,
  max: number,
) {
  const v = (opts[name] as number | undefined) ?? dflt;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new VxError('ERR_INVALID_ARG', `options.${name} must be an integer in ${min}..${max}, got ${v}`);
  }
  return v;
}

/** Six MAC bytes from "aa:bb:cc:dd:ee:ff" (or "-" separated) or a 6-byte array. */
export function parseMac(mac: Mac): Uint8Array {
  if (mac instanceof Uint8Array) {
    if (mac.length !== 6) throw new VxError('ERR_INVALID_MAC', `a MAC has 6 bytes, got ${mac.length}`);
    return mac;
  }
  if (typeof mac !== 'string' || !/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i.test(mac)) {
    throw new VxError('ERR_INVALID_MAC', `"${String(mac)}" is not a MAC address`);
  }
  return Uint8Array.from(mac.split(/[:-]/), (h) => Number.parseInt(h, 16));
}

export function formatMac(u8: Uint8Array, p: number): string {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push(u8[p + i]!.toString(16).padStart(2, '0'));
  return out.join(':');
}

function parseIPv4(ip: string): number[] {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  const q = m ? m.slice(1).map(Number) : [];
  if (q.length !== 4 || q.some((x) => x > 255))
    throw new VxError('ERR_INVALID_IP', `"${ip}" is not an IPv4 address`);
  return q;
}

function checkVni(vni: number): void {
  if (!Number.isInteger(vni) || vni < 0 || vni > VNI_MAX) {
    throw new VxError('ERR_INVALID_VNI', `VNI must be an integer in 0..${VNI_MAX}, got ${vni}`);
  }
}

function checkPeerIndex(peer: number): void {
  if (!Number.isInteger(peer) || peer < 0 || peer >= PEER_INDEX_MAX) {
    throw new VxError('ERR_INVALID_PEER', `peer must be a peer index, got ${peer}`);
  }
}

function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 65536) {
    throw new VxError('ERR_INVALID_ARG', `a batch count must be an integer in 0..65536, got ${n}`);
  }
}

export class Datapath {
  /** Address of the context struct (CTX_* in assembly/constants.ts); pass it to a worker's instance. */
  readonly ctx: number;
  readonly wasm: WasmCore;
  private readonly x: DatapathExports;
  /** Scratch records for control-plane batches (SCRATCH_RECORDS x 16 bytes). */
  private readonly scratch: number;

  private constructor(wasm: WasmCore, ctx: number, scratch: number) {
    this.wasm = wasm;
    this.ctx = ctx;
    this.scratch = scratch;
    this.x = wasm.exports as unknown as DatapathExports;
  }

  /** What another thread needs to run this datapath on the same memory (structured-cloneable). */
  handle(): DatapathHandle {
    return { ctx: this.ctx, scratch: this.scratch };
  }

  /**
   * The datapath at `h.ctx` over `wasm` (a worker's instance on the shared memory). The thread
   * that attaches becomes the single writer; give it its own `scratch` (SCRATCH_RECORDS x 16 bytes).
   */
  static attach(h: DatapathHandle, wasm: WasmCore): Datapath {
    return new Datapath(wasm, h.ctx, h.scratch);
  }

  /** Validates the options, allocates every table (never freed) and returns the datapath. */
  static create(opts: DatapathOptions = {}): Datapath {
    const fdbCapacity = intOption(opts, 'fdbCapacity', 65536, 1, FDB_CAPACITY_MAX);
    const maxPeers = intOption(opts, 'maxPeers', 1024, 1, PEER_INDEX_MAX);
    const maxVnis = intOption(opts, 'maxVnis', 256, 1, 65536);
    const neighCapacity = intOption(opts, 'neighCapacity', 65536, 1, FDB_CAPACITY_MAX);
    const maxFlood = intOption(opts, 'maxFloodPeers', maxPeers, 1, maxPeers);
    const events = intOption(opts, 'eventRingSize', 1024, 1, 1 << 20);
    const ageing = intOption(opts, 'ageingSeconds', 300, 0, 0x7fffffff);
    const raw = opts.rawUnderlayOuter;
    if (raw !== undefined && (!Number.isInteger(raw) || raw <= 0)) {
      throw new VxError('ERR_INVALID_ARG', `options.rawUnderlayOuter must be a WASM address, got ${raw}`);
    }
    let flags = 0;
    if (opts.learning ?? false) flags |= DP_F_LEARNING;
    if (opts.arpProxy ?? true) flags |= DP_F_ARP_PROXY;
    if (opts.floodUnknownUnicast ?? false) flags |= DP_F_FLOOD_UNKNOWN;
    if (opts.l2miss ?? true) flags |= DP_F_L2MISS;
    if (opts.l3miss ?? true) flags |= DP_F_L3MISS;
    if (raw !== undefined) flags |= DP_F_RAW_UNDERLAY;
    const wasm = opts.wasm ?? core();
    const ctx = wasm.alloc(CTX_SIZE);
    const scratch = wasm.alloc(SCRATCH_RECORDS * 16);
    const dv = wasm.dv();
    const set = (off: number, v: number) => dv.setUint32(ctx + off, v, true);
    set(CTX_FDB_CAPACITY, fdbCapacity);
    set(CTX_MAX_PEERS, maxPeers);
    set(CTX_MAX_PORTS, maxVnis);
    set(CTX_NEIGH_CAPACITY, neighCapacity);
    set(CTX_EVENT_SLOTS, events);
    set(CTX_MAX_FLOOD, maxFlood);
    set(CTX_AGEING, ageing);
    set(CTX_FLAGS, flags);
    set(CTX_OUTER, raw ?? 0);
    const dp = new Datapath(wasm, ctx, scratch);
    let st: number;
    try {
      st = dp.x.dp_setup(ctx);
    } catch (cause) {
      throw new VxError('ERR_WASM_OOM', `cannot allocate the datapath tables (fdbCapacity ${fdbCapacity})`, {
        cause,
      });
    }
    if (st !== ST_OK) throw new VxError('ERR_INVALID_ARG', 'datapath options out of range');
    return dp;
  }

  private u32(off: number): number {
    return this.wasm.dv().getUint32(this.ctx + off, true);
  }

  /** Bytes of WASM memory the tables take (all of them), and of the FDB slots alone. */
  memoryBytes(): { total: number; fdb: number } {
    return { total: this.u32(CTX_MEM_BYTES), fdb: this.u32(CTX_FDB_BYTES) };
  }

  // ---- Peers -----------------------------------------------------------------------------------

  /** Adds a tunnel endpoint (idempotent: the same address gives the same index). */
  addPeer(peer: { address: string; port?: number }): number {
    const len = writeSockaddr(this.wasm.u8(), this.scratch, peer.address, peer.port ?? VXLAN_PORT);
    const r = this.x.dp_peer_add(this.ctx, this.scratch, len);
    if (r < 0) throw statusError(-r, `addPeer ${peer.address}`);
    return r;
  }

  /** Removes a peer with its FDB entries and flood-list memberships. Removing twice is a no-op. */
  removePeer(index: number): void {
    checkPeerIndex(index);
    const st = this.x.dp_peer_remove(this.ctx, index);
    if (st !== ST_OK && st !== ST_INVALID_PEER) throw statusError(st, `removePeer ${index}`);
  }

  /** Address of peer `index`'s sockaddr (what DESC_ADDR holds after a SEND verdict). */
  peerSockaddr(index: number): number {
    checkPeerIndex(index);
    return this.u32(CTX_PEERS) + index * PEER_SIZE;
  }

  /** The peers in use, by index. */
  peers(): { index: number; address: SockAddr; learned: boolean }[] {
    const out: { index: number; address: SockAddr; learned: boolean }[] = [];
    const dv = this.wasm.dv();
    const base = this.u32(CTX_PEERS);
    for (let i = 0, max = this.u32(CTX_MAX_PEERS); i < max; i++) {
      const e = base + i * PEER_SIZE;
      if (dv.getUint32(e + PEER_ADDRLEN, true) === 0) continue;
      const learned = (dv.getUint32(e + PEER_FLAGS, true) & PEER_F_LEARNED) !== 0;
      out.push({ index: i, address: readSockaddr(this.wasm.u8(), e), learned });
    }
    return out;
  }

  get peerCount(): number {
    return this.u32(CTX_PEER_COUNT);
  }

  // ---- Ports and flood lists -------------------------------------------------------------------

  /** Adds the local port of `vni` and returns its index (idempotent). */
  addPort(vni: number): number {
    checkVni(vni);
    const r = this.x.dp_port_add(this.ctx, vni);
    if (r < 0) throw statusError(-r, `addPort ${vni}`);
    return r;
  }

  /** Removes the port of `vni` with the VNI's FDB entries, neighbours and flood list. Idempotent. */
  removePort(vni: number): void {
    checkVni(vni);
    this.x.dp_port_remove(this.ctx, vni);
  }

  /** The port index of `vni`, or -1. */
  portOf(vni: number): number {
    const dv = this.wasm.dv();
    const base = this.u32(CTX_PORTS);
    for (let i = 0, max = this.u32(CTX_MAX_PORTS); i < max; i++) {
      const e = base + i * PORT_SIZE;
      if (dv.getUint32(e + PORT_USED, true) && dv.getUint32(e + PORT_VNI, true) === vni) return i;
    }
    return -1;
  }

  private port(vni: number, what: string): number {
    checkVni(vni);
    const port = this.portOf(vni);
    if (port < 0) throw new VxError('ERR_PORT_NOT_FOUND', `${what}: no port for VNI ${vni}`);
    return port;
  }

  /** Adds peers to the flood list of `vni` (head-end replication of BUM traffic). */
  addFlood(vni: number, peers: number[]): void {
    const port = this.port(vni, 'addFlood');
    for (const peer of peers) {
      checkPeerIndex(peer);
      const st = this.x.dp_flood_add(this.ctx, port, peer);
      if (st !== ST_OK) throw statusError(st, `addFlood VNI ${vni} peer ${peer}`);
    }
  }

  removeFlood(vni: number, peers: number[]): void {
    const port = this.port(vni, 'removeFlood');
    for (const peer of peers) this.x.dp_flood_remove(this.ctx, port, peer);
  }

  /** The flood list of `vni`: peer indexes. */
  floodList(vni: number): number[] {
    const port = this.port(vni, 'floodList');
    return readFloodList(this.wasm.dv(), this.floodListAddress(port));
  }

  floodListAddress(port: number): number {
    // Same stride as assembly/ports.ts flood_list().
    return this.u32(CTX_FLOOD) + port * (4 + 4 * this.u32(CTX_MAX_FLOOD));
  }

  // ---- FDB -------------------------------------------------------------------------------------

  /**
   * Adds static entries. A learned entry under the same key becomes static. An existing static
   * entry with another peer fails with ERR_FDB_STATIC_EXISTS unless `replace`. Entries are checked
   * (VNI, MAC, peer index) before any is applied; table-level failures (ERR_FDB_FULL, ...) are
   * thrown after the rest of the batch was applied, naming how many failed and the first.
   */
  addFdb(entries: readonly FdbEntry[], opts: { replace?: boolean; now?: number } = {}): void {
    for (const e of entries) {
      checkVni(e.vni);
      parseMac(e.mac);
      checkPeerIndex(e.peer);
    }
    const flags = opts.replace ? FDB_ADD_REPLACE : 0;
    this.fdbBatch(entries, 'addFdb', (n) =>
      this.x.fdb_add_batch(this.ctx, this.scratch, n, opts.now ?? 0, flags),
    );
  }

  /** Learns entries as decap would (for tests and tools); refused ones are skipped silently. */
  learnFdb(entries: readonly FdbEntry[], now: number): number {
    let refused = 0;
    this.fdbBatch(entries, '', (n) => {
      refused += this.x.fdb_learn_batch(this.ctx, this.scratch, n, now);
      return 0;
    });
    return refused;
  }

  /** Removes entries; returns how many were there (removing a missing entry is not an error). */
  removeFdb(entries: readonly { vni: number; mac: Mac }[]): number {
    let missing = 0;
    this.fdbBatch(
      entries.map((e) => ({ ...e, peer: 0 })),
      '',
      (n) => {
        missing += this.x.fdb_remove_batch(this.ctx, this.scratch, n);
        return 0;
      },
    );
    return entries.length - missing;
  }

  /** Looks entries up: the peer index of each, or -1. */
  lookupFdb(keys: readonly { vni: number; mac: Mac }[]): number[] {
    const out: number[] = [];
    this.fdbBatch(
      keys.map((e) => ({ ...e, peer: 0 })),
      '',
      (n) => {
        this.x.fdb_lookup_batch(this.ctx, this.scratch, n);
        const dv = this.wasm.dv();
        for (let i = 0; i < n; i++)
          out.push(dv.getInt32(this.scratch + i * FDBREC_SIZE + FDBREC_STATUS, true));
        return 0;
      },
    );
    return out;
  }

  /** Removes every FDB entry of `vni` (static and learned); returns how many. */
  flushVni(vni: number): number {
    checkVni(vni);
    return this.x.dp_fdb_flush_vni(this.ctx, vni);
  }

  /** Ages learned entries: looks at `budget` slots (default: all) from where the last call stopped. */
  age(now: number, opts: { budget?: number } = {}): number {
    const budget = opts.budget ?? this.u32(CTX_FDB_MASK) + 1;
    return this.x.dp_age(this.ctx, now >>> 0, budget >>> 0);
  }

  get fdbCount(): number {
    return this.u32(CTX_FDB_COUNT);
  }

  /** Every FDB entry, read from the table (a control-plane/test tool, O(slots)). */
  fdbEntries(): FdbRecord[] {
    const dv = this.wasm.dv();
    const u8 = this.wasm.u8();
    const base = this.u32(CTX_FDB);
    const out: FdbRecord[] = [];
    for (let i = 0, n = this.u32(CTX_FDB_MASK) + 1; i < n; i++) {
      const e = base + i * FDB_ENTRY_SIZE;
      const f = u8[e + 9]!;
      if (!(f & FDB_F_USED)) continue;
      out.push({
        vni: dv.getUint16(e + 6, true) | (u8[e + 8]! << 16),
        mac: formatMac(u8, e),
        peer: dv.getUint16(e + 10, true),
        static: (f & FDB_F_STATIC) !== 0,
        time: dv.getUint32(e + 12, true),
      });
    }
    return out;
  }

  private fdbBatch(entries: readonly FdbEntry[], what: string, apply: (n: number) => number): void {
    let failed = 0;
    let first: VxError | undefined;
    for (let at = 0; at < entries.length; at += SCRATCH_RECORDS) {
      const n = Math.min(SCRATCH_RECORDS, entries.length - at);
      const u8 = this.wasm.u8();
      const dv = this.wasm.dv();
      for (let i = 0; i < n; i++) {
        const e = entries[at + i]!;
        const r = this.scratch + i * FDBREC_SIZE;
        dv.setUint32(r + FDBREC_VNI, e.vni, true);
        u8.set(parseMac(e.mac), r + FDBREC_MAC);
        dv.setUint16(r + FDBREC_PEER, e.peer, true);
        dv.setUint32(r + FDBREC_STATUS, 0, true);
      }
      const bad = apply(n);
      if (bad === 0) continue;
      failed += bad;
      if (first) continue;
      const dv2 = this.wasm.dv();
      for (let i = 0; i < n && !first; i++) {
        const st = dv2.getUint32(this.scratch + i * FDBREC_SIZE + FDBREC_STATUS, true);
        const e = entries[at + i]!;
        if (st !== ST_OK)
          first = statusError(st, `${what} entry ${at + i} (VNI ${e.vni}, MAC ${String(e.mac)})`);
      }
    }
    if (first) {
      throw new VxError(first.code, `${failed} of ${entries.length} entries failed; first: ${first.message}`);
    }
  }

  // ---- Neighbours (ARP proxy) ------------------------------------------------------------------

  /** Adds or replaces (VNI, IPv4) -> MAC entries; validated before any is applied. */
  addNeighbour(entries: readonly NeighbourEntry[]): void {
    this.neighBatch(entries, 'addNeighbour', (n) => this.x.neigh_add_batch(this.ctx, this.scratch, n), true);
  }

  /** Removes entries; returns how many were there. */
  removeNeighbour(entries: readonly { vni: number; ip: string }[]): number {
    let missing = 0;
    this.neighBatch(
      entries.map((e) => ({ ...e, mac: '02:00:00:00:00:01' })),
      '',
      (n) => {
        missing += this.x.neigh_remove_batch(this.ctx, this.scratch, n);
        return 0;
      },
      false,
    );
    return entries.length - missing;
  }

  get neighbourCount(): number {
    return this.u32(CTX_NEIGH_COUNT);
  }

  private neighBatch(
    entries: readonly NeighbourEntry[],
    what: string,
    apply: (n: number) => number,
    strict: boolean,
  ) {
    const recs = entries.map((e) => {
      checkVni(e.vni);
      return { vni: e.vni, ip: parseIPv4(e.ip), mac: strict ? parseMac(e.mac) : new Uint8Array(6) };
    });
    let failed = 0;
    let first: VxError | undefined;
    for (let at = 0; at < recs.length; at += SCRATCH_RECORDS) {
      const n = Math.min(SCRATCH_RECORDS, recs.length - at);
      const u8 = this.wasm.u8();
      const dv = this.wasm.dv();
      for (let i = 0; i < n; i++) {
        const e = recs[at + i]!;
        const r = this.scratch + i * NEIGH_ENTRY_SIZE;
        dv.setUint32(r + NEIGH_VNI, e.vni, true);
        u8.set(e.ip, r + NEIGH_IP);
        u8.set(e.mac, r + NEIGH_MAC);
        dv.setUint16(r + NEIGH_STATUS, 0, true);
      }
      const bad = apply(n);
      if (bad === 0) continue;
      failed += bad;
      const dv2 = this.wasm.dv();
      for (let i = 0; i < n && !first; i++) {
        const st = dv2.getUint16(this.scratch + i * NEIGH_ENTRY_SIZE + NEIGH_STATUS, true);
        const e = entries[at + i]!;
        if (st !== ST_OK) first = statusError(st, `${what} entry ${at + i} (VNI ${e.vni}, IP ${e.ip})`);
      }
    }
    if (first)
      throw new VxError(first.code, `${failed} of ${entries.length} entries failed; first: ${first.message}`);
  }

  // ---- Packets ---------------------------------------------------------------------------------

  /**
   * Encapsulates `n` frames of `batch` (DESC_ARG = source port index on input). Verdicts and the
   * moved DESC_PTR/LEN are written into the descriptors; returns how many were not dropped.
   */
  encap(batch: DescriptorBatch, n: number, now: number): number {
    checkCount(n);
    return this.x.dp_encap(this.ctx, batch.descs, n, now >>> 0);
  }

  /** Decapsulates `n` datagrams of `batch` (DESC_ADDR = source sockaddr); returns how many are delivered. */
  decap(batch: DescriptorBatch, n: number, now: number): number {
    checkCount(n);
    return this.x.dp_decap(this.ctx, batch.descs, n, now >>> 0);
  }

  // ---- Events and counters ---------------------------------------------------------------------

  /** Takes every event written since the last drain (same thread as encap/decap). */
  drainEvents(): DatapathEvent[] {
    const dv = this.wasm.dv();
    const u8 = this.wasm.u8();
    const head = this.u32(CTX_EVENT_HEAD);
    let tail = this.u32(CTX_EVENT_TAIL);
    const mask = this.u32(CTX_EVENT_SLOTS) - 1;
    const base = this.u32(CTX_EVENTS);
    const out: DatapathEvent[] = [];
    for (; tail !== head; tail = (tail + 1) >>> 0) {
      const e = base + (tail & mask) * EVT_SIZE;
      const type = dv.getUint32(e, true);
      const vni = dv.getUint32(e + EVT_VNI, true);
      if (type === EVT_L2_MISS) out.push({ type: 'l2miss', vni, mac: formatMac(u8, e + EVT_DATA) });
      else if (type === EVT_L3_MISS)
        out.push({ type: 'l3miss', vni, ip: u8.subarray(e + 8, e + 12).join('.') });
      else if (type === EVT_PEER_LEARNED) {
        const peer = dv.getUint32(e + EVT_DATA, true);
        const sa = this.peerSockaddr(peer);
        const address = dv.getUint32(sa + PEER_ADDRLEN, true) ? readSockaddr(u8, sa) : undefined;
        out.push({ type: 'peer-learned', vni, peer, address });
      }
    }
    dv.setUint32(this.ctx + CTX_EVENT_TAIL, head, true);
    return out;
  }

  /** Reads every counter block. */
  counters(): DatapathCounters {
    const dv = this.wasm.dv();
    const ports = new Map<number, CounterBlock>();
    const pbase = this.u32(CTX_PORTS);
    for (let i = 0, max = this.u32(CTX_MAX_PORTS); i < max; i++) {
      const e = pbase + i * PORT_SIZE;
      if (!dv.getUint32(e + PORT_USED, true)) continue;
      ports.set(
        dv.getUint32(e + PORT_VNI, true),
        readBlock(dv, this.u32(CTX_CNT_PORTS) + i * CNT_BLOCK_SIZE),
      );
    }
    const peers = new Map<number, CounterBlock>();
    const base = this.u32(CTX_PEERS);
    for (let i = 0, max = this.u32(CTX_MAX_PEERS); i < max; i++) {
      if (!dv.getUint32(base + i * PEER_SIZE + PEER_ADDRLEN, true)) continue;
      peers.set(i, readBlock(dv, this.u32(CTX_CNT_PEERS) + i * CNT_BLOCK_SIZE));
    }
    return {
      global: readBlock(dv, this.u32(CTX_CNT_GLOBAL)),
      ports,
      peers,
      eventsLost: this.u32(CTX_EVENT_LOST),
    };
  }
}

/** Reads a flood list (FLOOD_COUNT, then peer indexes) at `p`: what a FLOOD verdict's DESC_ADDR points at. */
export function readFloodList(dv: DataView, p: number): number[] {
  const n = dv.getUint32(p, true);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(dv.getUint32(p + 4 + 4 * i, true));
  return out;
}

function readBlock(dv: DataView, p: number): CounterBlock {
  const u = (off: number) => Number(dv.getBigUint64(p + off, true));
  const drops: number[] = [];
  for (let r = 0; r < DROP_REASONS; r++) drops.push(u(CNT_DROPS + 8 * r));
  return {
    txPackets: u(CNT_TX_PACKETS),
    txBytes: u(CNT_TX_BYTES),
    rxPackets: u(CNT_RX_PACKETS),
    rxBytes: u(CNT_RX_BYTES),
    floodPackets: u(CNT_FLOOD_PACKETS),
    replies: u(CNT_REPLIES),
    learned: u(CNT_LEARNED),
    learnRefused: u(CNT_LEARN_REFUSED),
    drops,
  };
}
